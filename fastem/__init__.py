"""fastem: fast, deterministic EM clustering on Numba kernels.

Estimators: :class:`KMeans`. Kernels for your own Numba code: :mod:`fastem.kernels`.
"""
from ._version import __version__
from .estimators.kmeans import KMeans

__all__ = ["KMeans", "__version__"]
