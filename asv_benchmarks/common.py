"""Shared data, parameter grids and peer detection for the asv suite.

Nothing in this module is a benchmark (asv only collects names starting with ``time_``,
``timeraw_``, ``mem_``, ``peakmem_`` and ``track_``).
"""
import importlib
import importlib.util
import os
import platform

import numpy as np

#: Benchmark profile, from ``FASTEM_BENCH_PROFILE`` (as scikit-learn's asv suite has them):
#:
#: * ``fast`` (default): every row count divided by 10 and each grid trimmed to its must-have
#:   points - for commit-to-commit tracking on small machines;
#: * ``regular``: the sizes of the published README tables (n up to 1e6);
#: * ``large``: row counts x 3, past every cache level (slow peers: budget an hour).
PROFILE = os.environ.get("FASTEM_BENCH_PROFILE", "fast")
_ROW_SCALE = {"fast": (1, 10), "regular": (1, 1), "large": (3, 1)}
if PROFILE not in _ROW_SCALE:
    raise ValueError(f"FASTEM_BENCH_PROFILE={PROFILE!r} is not one of {sorted(_ROW_SCALE)}")


def rows(n):
    """Row count ``n`` of the ``regular`` profile scaled for the active :data:`PROFILE`."""
    num, den = _ROW_SCALE[PROFILE]
    return n * num // den


#: The peer's objects, imported on first use (this module's ``__getattr__``; None when
#: scikit-learn is missing, and its benchmarks are then skipped). asv runs every benchmark
#: point in a fresh process, and importing scikit-learn takes about 2 s of it: fastem's own
#: points must not pay for that (``asv run --quick`` spent most of its time importing).
_PEERS = {"SklearnKMeans": ("sklearn.cluster", "KMeans"),
          "sklearn_kmeans_plusplus": ("sklearn.cluster", "kmeans_plusplus"),
          "SklearnMiniBatchKMeans": ("sklearn.cluster", "MiniBatchKMeans"),
          "SklearnGaussianMixture": ("sklearn.mixture", "GaussianMixture")}


def __getattr__(name):
    if name not in _PEERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _PEERS[name]
    try:
        value = getattr(importlib.import_module(module), attr)
    except ImportError:  # pragma: no cover - depends on the environment
        value = None
    globals()[name] = value
    return value


#: Fixed seeds: data, and the rows picked as initial centres.
DATA_SEED = 0
INIT_SEED = 1

DTYPES = ["float32", "float64"]

#: (n, d, k) points of the Lloyd / assignment grid (n as in the ``regular`` profile, scaled
#: by :func:`rows`): the n x d x k product over n in {1e5, 1e6}, d in {8, 32}, k in {8, 64},
#: plus the must-have point (300_000, 32, 64). Every point runs for both dtypes. The k-means
#: benchmarks take the point as one parameter: asv starts a process for every combination
#: of its parameters, even one that is skipped (about 1 s each, 72 in the ``fast`` run).
GRID_POINTS = frozenset(
    [(rows(n), d, k) for n in (100_000, 1_000_000) for d in (8, 32) for k in (8, 64)]
    + [(rows(300_000), 32, 64)]
)

#: The must-have points only (used by the expensive per-iteration fit differences).
KEY_POINTS = frozenset([(rows(300_000), 32, 64), (rows(1_000_000), 8, 8)])

if PROFILE == "fast":  # the two must-have shapes only: every grid point costs a fresh process
    GRID_POINTS = KEY_POINTS

#: Number of overlapping Gaussian blobs in the synthetic data. Overlap keeps Lloyd from
#: reaching a fixed point within the few iterations the benchmarks run.
N_BLOBS = 16


def skip_unless(point, allowed):
    """Raise NotImplementedError (asv: "skipped") when ``point`` is not in ``allowed``."""
    if tuple(point) not in allowed:
        raise NotImplementedError(f"grid point {point} is not benchmarked")


def require_sklearn():
    """Skip the calling benchmark when the peer is not installed."""
    if importlib.util.find_spec("sklearn") is None:
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
    """``k`` distinct rows of X (X's dtype, C-contiguous; dense for CSR X): fixed initial
    centres."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(X.shape[0], size=k, replace=False))
    return X[rows].toarray() if hasattr(X, "toarray") else np.ascontiguousarray(X[rows])


# --------------------------------------------------------------------------- Gaussian mixtures
# (added for bench_gmm.py / compare_gmm.py)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]

#: Fixed seed of the per-blob rotations and scales of :func:`make_anisotropic_data`.
ANISO_SEED = 2


def make_anisotropic_data(n, d, dtype, seed=DATA_SEED):
    """(n, d) C-contiguous array of ``N_BLOBS`` overlapping *anisotropic* Gaussian blobs.

    Blob ``b`` is ``mean_b + z @ A_b`` with ``z`` standard normal and ``A_b = diag(s_b) Q_b``:
    ``Q_b`` a random rotation (QR of a Gaussian matrix), ``s_b`` per-axis scales in
    [e^-1, e] (so each blob's covariance ``A_b^T A_b`` is a tilted ellipsoid with condition
    number <= e^4, a different one per blob). Means are ``2 * standard normal``, as in
    :func:`make_data`. Generated in ``dtype`` in row chunks (no full-size float64
    temporary); sklearn-free and deterministic for a given (n, d, dtype, seed).
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    means = (2.0 * rng.standard_normal((N_BLOBS, d))).astype(dtype)
    shape_rng = np.random.default_rng(ANISO_SEED)
    transforms = []
    for _ in range(N_BLOBS):
        q, r = np.linalg.qr(shape_rng.standard_normal((d, d)))
        q *= np.sign(np.diag(r))  # a uniformly random rotation
        scales = np.exp(shape_rng.uniform(-1.0, 1.0, size=d))
        transforms.append((scales[:, None] * q).astype(dtype))
    X = np.empty((n, d), dtype=dtype)
    blob = rng.integers(N_BLOBS, size=n)
    chunk = 65_536
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        z = rng.standard_normal((stop - start, d), dtype=dtype)
        b = blob[start:stop]
        out = X[start:stop]
        for j in range(N_BLOBS):
            rows = np.flatnonzero(b == j)
            if rows.size:
                out[rows] = z[rows] @ transforms[j] + means[j]
    return X


def gmm_inits(X, k, covariance_type, seed=INIT_SEED):
    """Fixed EM starting point, float64: ``(weights_init, means_init, precisions_init)``.

    Uniform weights, ``k`` distinct rows of X as means (:func:`init_centers`) and unit
    precisions in the covariance type's shape ((k, d, d) full, (d, d) tied, (k, d) diag,
    (k,) spherical). Both fastem's and scikit-learn's ``GaussianMixture`` accept these, so
    given all three, fits start from the same parameters.
    """
    d = X.shape[1]
    weights = np.full(k, 1.0 / k)
    means = init_centers(X, k, seed).astype(np.float64)
    precisions = {"full": lambda: np.tile(np.eye(d), (k, 1, 1)),
                  "tied": lambda: np.eye(d),
                  "diag": lambda: np.ones((k, d)),
                  "spherical": lambda: np.ones(k)}[covariance_type]()
    return weights, means, precisions


def run_python_child(script, *args, env=None, cwd=None, timeout=500):
    """Run ``python -c script *args`` with ``sys.executable`` (the benchmarked environment).

    ``env`` entries are added to ``os.environ``. The child must print a JSON object as its
    last stdout line; that object is returned. RuntimeError (with the child's stderr) when
    it exits non-zero.
    """
    import json
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                          env=dict(os.environ, **(env or {})), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_of(fn, repeat):
    """Shortest of ``repeat`` timed calls of ``fn()``, in seconds (for the comparison
    scripts; not a benchmark)."""
    import time
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu_name():
    """The CPU model, its ISA class (AVX-512 / AVX2 / other), the CPU count and the class of
    the code fastem compiles (``NUMBA_CPU_NAME`` may make it another than the host's), for
    reports."""
    from fastem.kernels import _target
    return f"{_host_cpu()}; fastem's code: {_target.SIMD_CLASS} class ({_target.CPU_NAME})"


def _host_cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor()
        flags = open("/proc/cpuinfo").read()
        isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "other"
        return f"{name} ({isa}, {os.cpu_count()} CPUs)"
    except OSError:
        return platform.processor()


def make_sparse_data(n, d, density, dtype, n_topics=N_BLOBS, seed=DATA_SEED):
    """(n, d) CSR matrix like TF-IDF rows: ``density * d`` non-zeros per row, 80% of them from
    the row's topic (one of ``n_topics`` sets of ``3 * density * d`` columns), exponential
    values, each row scaled to unit Euclidean norm (as ``TfidfVectorizer`` does)."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    per_row = max(1, int(round(density * d)))
    topics = rng.integers(d, size=(n_topics, 3 * per_row))
    topic = rng.integers(n_topics, size=n)
    own = rng.uniform(size=(n, per_row)) < 0.8
    cols = np.where(own, topics[topic[:, None], rng.integers(3 * per_row, size=(n, per_row))],
                    rng.integers(d, size=(n, per_row)))
    X = sp.csr_matrix((rng.exponential(size=n * per_row), cols.ravel(),
                       np.arange(0, n * per_row + 1, per_row)), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / norms) @ X
    return X.tocsr().astype(dtype)
