"""fastem: fast, deterministic EM clustering on Numba kernels.

Estimators: :class:`KMeans`, :class:`GaussianMixture`, :class:`BernoulliMixture`. Kernels for your own Numba code: :mod:`fastem.kernels`.
"""
from ._version import __version__
from .estimators._base import InconsistentVersionWarning
from .estimators.bernoulli_mixture import BernoulliMixture
from .estimators.gaussian_mixture import GaussianMixture
from .estimators.kmeans import KMeans
from .kernels._jit import CacheUnavailableWarning

__all__ = ["BernoulliMixture", "CacheUnavailableWarning", "GaussianMixture",
           "InconsistentVersionWarning", "KMeans", "__version__"]
