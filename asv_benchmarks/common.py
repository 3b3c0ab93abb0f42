"""Shared data, parameter grids and peer detection for the asv suite.

Nothing in this module is a benchmark (asv only collects names starting with ``time_``,
``timeraw_``, ``mem_``, ``peakmem_`` and ``track_``).
"""
import numpy as np

try:  # the peer; its benchmarks are skipped when it is missing
    import sklearn  # noqa: F401
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus
except ImportError:  # pragma: no cover - depends on the environment
    SklearnKMeans = None
    sklearn_kmeans_plusplus = None

#: Fixed seeds: data, and the rows picked as initial centres.
DATA_SEED = 0
INIT_SEED = 1

DTYPES = ["float32", "float64"]

#: (n, d, k) points of the Lloyd / assignment grid. The full n x d x k product over
#: n in {1e5, 1e6}, d in {8, 32}, k in {8, 64}, plus the must-have point (300_000, 32, 64).
#: Every point runs for both dtypes.
GRID_POINTS = frozenset(
    [(n, d, k) for n in (100_000, 1_000_000) for d in (8, 32) for k in (8, 64)]
    + [(300_000, 32, 64)]
)

#: The must-have points only (used by the expensive per-iteration fit differences).
KEY_POINTS = frozenset([(300_000, 32, 64), (1_000_000, 8, 8)])

GRID_PARAMS = [[100_000, 300_000, 1_000_000], [8, 32], [8, 64], DTYPES]
GRID_PARAM_NAMES = ["n", "d", "k", "dtype"]

#: Number of overlapping Gaussian blobs in the synthetic data. Overlap keeps Lloyd from
#: reaching a fixed point within the few iterations the benchmarks run.
N_BLOBS = 16


def skip_unless(point, allowed):
    """Raise NotImplementedError (asv: "skipped") when ``point`` is not in ``allowed``."""
    if tuple(point) not in allowed:
        raise NotImplementedError(f"grid point {point} is not benchmarked")


def require_sklearn():
    """Skip the calling benchmark when the peer is not installed."""
    if SklearnKMeans is None:
        raise NotImplementedError("scikit-learn is not installed")


def make_data(n, d, dtype, seed=DATA_SEED):
    """(n, d) C-contiguous array of ``N_BLOBS`` overlapping unit-variance blobs in ``dtype``.

    Generated directly in ``dtype`` and in row chunks, so no full-size float64 temporary is
    made (keeps the peak-memory benchmarks about the fit, not about the data generation).
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    means = (2.0 * rng.standard_normal((N_BLOBS, d))).astype(dtype)
    X = rng.standard_normal((n, d), dtype=dtype)
    blob = rng.integers(N_BLOBS, size=n)
    chunk = 65_536
    for start in range(0, n, chunk):
        X[start:start + chunk] += means[blob[start:start + chunk]]
    return X


def init_centers(X, k, seed=INIT_SEED):
    """``k`` distinct rows of X (X's dtype, C-contiguous): fixed initial centres."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(X.shape[0], size=k, replace=False))
    return np.ascontiguousarray(X[rows])
