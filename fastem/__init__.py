"""fastem: fast, deterministic EM clustering on Numba kernels.

Estimators: :class:`KMeans`, :class:`GaussianMixture`, :class:`BernoulliMixture`. Kernels for your own Numba code: :mod:`fastem.kernels`.
"""
from ._version import __version__
from .estimators.bernoulli_mixture import BernoulliMixture
from .estimators.gaussian_mixture import GaussianMixture
from .estimators.kmeans import KMeans

__all__ = ["BernoulliMixture", "GaussianMixture", "KMeans", "__version__"]
