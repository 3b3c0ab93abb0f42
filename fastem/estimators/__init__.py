"""fastem's estimators, and the one table of them that the model file, model selection and
the command line share."""
from .bernoulli_mixture import BernoulliMixture
from .gaussian_mixture import GaussianMixture
from .kmeans import KMeans, MiniBatchKMeans

#: every estimator by class name (the model file names its class; nothing else is loaded)
ESTIMATORS = {cls.__name__: cls for cls in (KMeans, MiniBatchKMeans, GaussianMixture,
                                            BernoulliMixture)}
#: short names, as ``select_model(estimator=...)`` and ``fastem ... --model`` take them
SHORT_NAMES = {"kmeans": "KMeans", "minibatch-kmeans": "MiniBatchKMeans",
               "gmm": "GaussianMixture", "bmm": "BernoulliMixture"}
