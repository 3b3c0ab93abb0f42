"""The KMeans estimator: validation and attributes only; numerics live in the layers below."""
import numpy as np

from ..em import fit_em
from ..kernels import nearest_centers, sqdist_to_centers
from ..models.kmeans import KMeansModel
from ..validation import (check_array, check_float, check_int, check_is_fitted,
                          check_n_features, check_random_state, check_sample_weight)
from ._base import BaseEstimator, ClusterMixin, TransformerMixin


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering by Lloyd's algorithm on fused, deterministic Numba kernels.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {'k-means++', 'random'} or array of shape (n_clusters, n_features), default='k-means++'
        'k-means++': greedy k-means++ (``2 + int(log(n_clusters))`` candidates per centre);
        'random': distinct rows drawn with probability proportional to ``sample_weight``;
        an array: the initial centres.
    n_init : 'auto' or int, default='auto'
        Number of restarts; the one with the lowest inertia is kept. 'auto' is 1 for
        'k-means++' or an array and 10 for 'random'.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per restart.
    tol : float, default=1e-4
        Stop when the summed squared centre shift is at most ``tol`` times the mean feature
        variance of X (scikit-learn's meaning). Iteration also stops as soon as no label
        changes.
    verbose : int, default=0
        1: one line per restart; 2: also one line per iteration (inertia and ms/iteration).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation; fixes the result for any number of threads.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), X's dtype
    labels_ : ndarray of shape (n_samples,), int32
    inertia_ : float
        Weighted sum of squared distances of the samples to their closest centre.
    n_iter_ : int
    n_features_in_ : int

    Notes
    -----
    float32 and float64 C-contiguous input is used without a copy; other layouts and integer
    or boolean input are converted once (to C order, float64). Results are bitwise identical
    for any ``NUMBA_NUM_THREADS``.
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, verbose=0, random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state

    def _checked_params(self, X):
        """Validate hyper-parameters against X; returns (init, n_init)."""
        n_clusters = check_int(self.n_clusters, "n_clusters", low=1)
        check_int(self.max_iter, "max_iter", low=1)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.verbose, "verbose", low=0)
        init = self.init
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise ValueError(f"init must be 'k-means++', 'random' or an array, got {init!r}.")
        elif callable(init):
            raise TypeError("A callable init is not supported; pass the centres as an array.")
        else:
            init = check_array(init, name="init")
            if init.shape != (n_clusters, X.shape[1]):
                raise ValueError(f"init has shape {init.shape}; expected (n_clusters, n_features)"
                                 f" = ({n_clusters}, {X.shape[1]}).")
        if isinstance(self.n_init, str):
            if self.n_init != "auto":
                raise ValueError(f"n_init must be 'auto' or a positive integer, got {self.n_init!r}.")
            n_init = 10 if isinstance(init, str) and init == "random" else 1
        else:
            n_init = check_int(self.n_init, "n_init", low=1)
        if isinstance(init, np.ndarray) and n_init != 1:
            n_init = 1  # an explicit init is deterministic; restarts would repeat it
        if X.shape[0] < n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={n_clusters}.")
        return init, n_init

    def fit(self, X, y=None, sample_weight=None):
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights are equivalent to repeating rows.

        Returns
        -------
        self : KMeans
        """
        X = check_array(X, estimator_name=type(self).__name__)
        init, n_init = self._checked_params(X)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        model = KMeansModel(X, self.n_clusters, init)
        result = fit_em(model, X, sample_weight, n_init=n_init, max_iter=self.max_iter,
                        tol=self.tol, rng=check_random_state(self.random_state),
                        verbose=self.verbose, objective_name="-inertia")
        centers, labels = result.params
        self.cluster_centers_ = centers.astype(X.dtype)
        self.labels_ = labels
        self.inertia_ = -result.objective
        self.n_iter_ = result.n_iter
        self.n_features_in_ = X.shape[1]
        return self

    def _check_predict_input(self, X):
        check_is_fitted(self, "cluster_centers_")
        X = check_array(X, estimator_name=type(self).__name__)
        check_n_features(self, X)
        return X

    def _nearest(self, X):
        labels = np.empty(X.shape[0], dtype=np.int32)
        sqdist = np.empty(X.shape[0])
        nearest_centers(X, self.cluster_centers_.astype(X.dtype), labels, sqdist)
        return labels, sqdist

    def predict(self, X):
        """Index of the closest centre for each sample (int32 array of shape (n_samples,))."""
        return self._nearest(self._check_predict_input(X))[0]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distances to every centre, shape (n_samples, n_clusters), X's dtype."""
        X = self._check_predict_input(X)
        out = np.empty((X.shape[0], self.cluster_centers_.shape[0]))
        sqdist_to_centers(X, self.cluster_centers_, out)
        return np.sqrt(out, out=out).astype(X.dtype, copy=False)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit and return ``transform(X)``."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Negative (weighted) inertia of X under the fitted centres."""
        X = self._check_predict_input(X)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        return -float(sample_weight @ self._nearest(X)[1])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

