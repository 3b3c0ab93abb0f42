"""fastem: fast, deterministic EM clustering on Numba kernels.

Estimators: :class:`KMeans`, :class:`MiniBatchKMeans`, :class:`GaussianMixture`, :class:`BernoulliMixture`; data larger
than memory: a memory-mapped array or a :class:`ChunkedArray`. Kernels for your own Numba code: :mod:`fastem.kernels`.
Choosing K: :func:`select_model`; model files: ``estimator.save(path)`` / :func:`load`; plots:
:mod:`fastem.plotting` (matplotlib); the command line: ``fastem --help`` (:mod:`fastem.cli`).
:func:`warmup` compiles every kernel into the disk cache ahead of time (``python -m fastem warmup``).
"""
from ._version import __version__
from .estimators.bernoulli_mixture import BernoulliMixture
from .estimators.gaussian_mixture import GaussianMixture
from .estimators.kmeans import KMeans, MiniBatchKMeans
from .kernels._jit import CacheUnavailableWarning
from .persistence import InconsistentVersionWarning, load
from .selection import SelectionResult, select_model
from .sources import ChunkedArray
from ._warmup import warmup

__all__ = ["BernoulliMixture", "CacheUnavailableWarning", "ChunkedArray", "GaussianMixture",
           "InconsistentVersionWarning", "KMeans", "MiniBatchKMeans", "SelectionResult",
           "__version__", "load", "select_model", "warmup"]
