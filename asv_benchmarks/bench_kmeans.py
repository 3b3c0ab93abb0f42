"""k-means benchmarks: fastem next to scikit-learn (the peer).

Grid (classes with ``n_d_k, dtype`` parameters): n x d x k over n in {1e5, 1e6}, d in {8, 32},
k in {8, 64}, plus (n=300_000, d=32, k=64), for float32 and float64, each (n, d, k) one
parameter value (``fast``: the two must-have points only). Data: :func:`.common.make_data`
(16 overlapping blobs, seed 0); initial centres: :func:`.common.init_centers` (k distinct
rows, seed 1, X's dtype).

What measures "one Lloyd iteration":

* ``TimeLloydStep`` - the cleanest number: the fused kernel ``lloyd_step`` (assignment plus
  new-centre statistics) followed by the trivial M-step. fastem only (no public peer kernel).
  ``TimeLloydStepFewCentres``: the same at d in {128, 512}, k in {2, 8} (a pass that is mostly
  a read of X).
* ``TrackKMeansPerIteration`` / ``TrackSklearnKMeansPerIteration`` - per-iteration cost inside a
  real ``fit``: ``[t(max_iter=6) - t(max_iter=1)] / 5`` with ``tol=0`` and a fixed init, so
  per-fit overheads (validation, variance for ``tol``, sklearn's copy/centering of X, the final
  assignment pass) cancel. Only the must-have points (300k, 32, 64) and (1e6, 8, 8).
* ``TimeKMeansFitOneIter`` / ``TimeSklearnKMeansFitOneIter`` - a whole
  ``fit(init=C, n_init=1, max_iter=1, tol=0)``. This is one iteration *plus* per-fit overhead
  and, in both libraries, an extra final assignment pass (labels/inertia for the final centres).

``TimeKMeansToConvergence`` / ``TimeSparseKMeansToConvergence`` time whole fits per method
(issue 12's dense shapes and its CSR row); ``TimeKMeansPlusPlusShapes`` its seedings per
path. ``TimeSmallFits`` times whole small fits (iris, Old Faithful) of both libraries: their
fixed costs, issue 8's first-contact targets.
"""
import time as _time

import numpy as np

from fastem import KMeans
from fastem.kernels import lloyd_step, nearest_centers
from fastem.models.kmeans import kmeans_plusplus

from .common import (DTYPES, GRID_POINTS, KEY_POINTS, PROFILE, make_data, make_sparse_data,
                     init_centers, require_sklearn, rows)
from . import common   # the peers: common.SklearnKMeans etc., imported on first use

#: Rows of X used to warm up estimator-level benchmarks in ``setup`` (compile / cache load):
#: a C-contiguous row slice has the same Numba type as X, and 16 row blocks of 2048 exercise
#: the same multi-block code paths as the full array at a fraction of the cost.
WARMUP_ROWS = 32_768


class _Grid:
    """Data and fixed initial centres for one grid point: ``point`` = (n, d, k), and dtype."""

    params = [sorted(GRID_POINTS), DTYPES]
    param_names = ["n_d_k", "dtype"]
    timeout = 180

    def _make(self, point, dtype):
        n, d, k = point
        self.X = make_data(n, d, dtype)
        self.C = init_centers(self.X, k)
        self.k = k
        return n, d, k


# --------------------------------------------------------------------------- kernels

class TimeNearest(_Grid):
    """``nearest_centers(X, C, labels, sqdist)``: one assignment pass.

    Writes the int32 label and the float64 squared distance of every row; the search runs in
    X's dtype. Compiled (or loaded from the Numba cache) in ``setup`` by a call on the same
    arrays.
    """

    def setup(self, point, dtype):
        n, d, k = self._make(point, dtype)
        self.labels = np.empty(n, dtype=np.int32)
        self.sqdist = np.empty(n, dtype=np.float64)
        nearest_centers(self.X, self.C, self.labels, self.sqdist)  # JIT warm-up, same types

    def time_nearest_centers(self, point, dtype):
        nearest_centers(self.X, self.C, self.labels, self.sqdist)


class TimeLloydStep(_Grid):
    """One Lloyd iteration at kernel level: ``lloyd_step`` + the trivial M-step.

    ``lloyd_step`` (assignment, per-cluster weighted sums and weights, inertia, changed-label
    count) followed by ``new = sums / weights`` for non-empty clusters and the cast of the new
    centres to X's dtype, i.e. exactly the per-iteration work of ``KMeans.fit`` minus the
    convergence test and the Python driver. Unit sample weights. Every call starts from the
    same centres ``C`` (the timed work does not drift between repeats).
    """

    def setup(self, point, dtype):
        n, d, k = self._make(point, dtype)
        self.w = np.ones(n, dtype=np.float64)
        self.labels = np.full(n, -1, dtype=np.int32)
        self.sums = np.empty((k, d), dtype=np.float64)
        self.weights = np.empty(k, dtype=np.float64)
        self.new = np.empty((k, d), dtype=np.float64)
        self.time_lloyd_iteration(point, dtype)  # JIT warm-up, same types

    def time_lloyd_iteration(self, point, dtype):
        lloyd_step(self.X, self.w, self.C, self.labels, self.sums, self.weights)
        filled = self.weights > 0
        np.divide(self.sums, self.weights[:, None], out=self.new, where=filled[:, None])
        self.new.astype(self.X.dtype)


class TimeLloydStepFewCentres(TimeLloydStep):
    """:class:`TimeLloydStep` where a pass is mostly a read of X: few centres, rows of 128
    and 512 features. Tracks the search's prefetch of rows ahead and its L2-sized sub-blocks
    (``PREFETCH_TILE_BYTES``, ``SEARCH_SUB_BLOCK_BYTES`` in ``kernels/_target.py``)."""

    params = [[(rows(65_536), d, k) for d in (128, 512) for k in (2, 8)], DTYPES]


# --------------------------------------------------------------------------- one-iteration fits

class TimeKMeansFitOneIter(_Grid):
    """fastem ``KMeans(k, init=C, n_init=1, max_iter=1, tol=0).fit(X)``.

    One Lloyd iteration plus per-fit overhead: input validation (finiteness scan), column
    variances (for ``tol``), and the final assignment pass that makes ``labels_``/``inertia_``
    match the returned centres. For the pure iteration see ``TimeLloydStep`` and
    ``TrackKMeansPerIteration``.
    """

    warmup_time = 0.0

    def _estimator(self, k, max_iter=1):
        return KMeans(n_clusters=k, init=self.C, n_init=1, max_iter=max_iter, tol=0.0)

    def setup(self, point, dtype):
        n, d, k = self._make(point, dtype)
        self._estimator(k).fit(self.X[:WARMUP_ROWS])  # JIT warm-up, same dtype and layout

    def time_fit_one_iter(self, point, dtype):
        self._estimator(self.k).fit(self.X)


class TimeSklearnKMeansFitOneIter(_Grid):
    """Peer: scikit-learn ``KMeans(k, algorithm='lloyd', init=C, n_init=1, max_iter=1,
    tol=0).fit(X)``.

    Same measurement as ``TimeKMeansFitOneIter``: one iteration plus per-fit overhead
    (validation, a copy and centring of X, variances for ``tol``) and the final assignment
    pass. Skipped when scikit-learn is not installed.
    """

    warmup_time = 0.0

    def _estimator(self, k, max_iter=1):
        return common.SklearnKMeans(n_clusters=k, algorithm="lloyd", init=self.C, n_init=1,
                                    max_iter=max_iter, tol=0.0)

    def setup(self, point, dtype):
        require_sklearn()
        n, d, k = self._make(point, dtype)
        self._estimator(k).fit(self.X[:WARMUP_ROWS])

    def time_fit_one_iter(self, point, dtype):
        self._estimator(self.k).fit(self.X)


# --------------------------------------------------------------------------- per-iteration diff

class _PerIteration(_Grid):
    """``[t(fit, max_iter=M2) - t(fit, max_iter=M1)] / (M2 - M1)`` in seconds.

    Both fits use ``init=C, n_init=1, tol=0``; each time is the minimum of ``REPEATS``
    interleaved runs. Per-fit overheads (validation, variances, copies, the final assignment
    pass) cancel, leaving the cost of one Lloyd iteration inside ``fit``, the Python driver
    and convergence test included. Fails (rather than report a wrong number) if a fit
    converged before ``max_iter``.
    """

    params = [sorted(KEY_POINTS), DTYPES]
    unit = "seconds"
    timeout = 300
    M1, M2 = 1, 6
    REPEATS = 3

    def setup(self, point, dtype):
        n, d, k = self._make(point, dtype)
        self._estimator(k, self.M2).fit(self.X[:WARMUP_ROWS])  # JIT warm-up

    def _timed_fit(self, k, max_iter):
        est = self._estimator(k, max_iter)
        start = _time.perf_counter()
        est.fit(self.X)
        elapsed = _time.perf_counter() - start
        if est.n_iter_ != max_iter:
            raise RuntimeError(f"fit converged after {est.n_iter_} < max_iter={max_iter} "
                               "iterations; the per-iteration difference would be wrong")
        return elapsed

    def track_seconds_per_iteration(self, point, dtype):
        t1, t2 = [], []
        for _ in range(self.REPEATS):
            t1.append(self._timed_fit(self.k, self.M1))
            t2.append(self._timed_fit(self.k, self.M2))
        return (min(t2) - min(t1)) / (self.M2 - self.M1)


class TrackKMeansPerIteration(_PerIteration):
    __doc__ = "fastem ``KMeans``: " + _PerIteration.__doc__
    _estimator = TimeKMeansFitOneIter._estimator


class TrackSklearnKMeansPerIteration(_PerIteration):
    __doc__ = ("Peer, scikit-learn ``KMeans(algorithm='lloyd')``: " + _PerIteration.__doc__
               + "\n    Skipped when scikit-learn is not installed.\n")
    _estimator = TimeSklearnKMeansFitOneIter._estimator

    def setup(self, point, dtype):
        require_sklearn()
        super().setup(point, dtype)


# --------------------------------------------------------------------------- k-means++ seeding

SEED_N, SEED_D, SEED_K = rows(1_000_000), 32, 64


class TimeKMeansPlusPlus:
    """fastem ``models.kmeans.kmeans_plusplus(X, w, 64, RandomState(0))``, n=1e6, d=32.

    Greedy k-means++ with the default ``2 + int(log k)`` = 6 local trials per centre, unit
    weights. A fresh ``RandomState(0)`` per call, so every call picks the same centres.
    """

    params = [DTYPES]
    param_names = ["dtype"]
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, dtype):
        self.X = make_data(SEED_N, SEED_D, dtype)
        self.w = np.ones(SEED_N, dtype=np.float64)
        kmeans_plusplus(self.X[:WARMUP_ROWS], self.w[:WARMUP_ROWS], SEED_K,
                        np.random.RandomState(0))  # JIT warm-up

    def time_kmeans_plusplus(self, dtype):
        kmeans_plusplus(self.X, self.w, SEED_K, np.random.RandomState(0))


class TimeSklearnKMeansPlusPlus(TimeKMeansPlusPlus):
    """Peer: ``sklearn.cluster.kmeans_plusplus(X, 64, random_state=0)``, n=1e6, d=32.

    Same default number of local trials (``2 + int(log k)``); includes its row-norm
    computation. Skipped when scikit-learn is not installed.
    """

    def setup(self, dtype):
        require_sklearn()
        self.X = make_data(SEED_N, SEED_D, dtype)

    def time_kmeans_plusplus(self, dtype):
        common.sklearn_kmeans_plusplus(self.X, SEED_K, random_state=0)


SEED_SHAPES = [(1_000_000, 8, 8), (1_000_000, 32, 64), (200_000, 128, 256), (100_000, 64, 1024)]
SEED_DTYPES = DTYPES
if PROFILE == "fast":  # the default profile's time budget: k = 1024, float64
    SEED_SHAPES, SEED_DTYPES = SEED_SHAPES[3:], ["float64"]


class TimeKMeansPlusPlusShapes:
    """Greedy k-means++ on issue 12's dense shapes at the profile's scale ((1e6, 8, 8),
    (1e6, 32, 64), (2e5, 128, 256), (1e5, 64, 1024) rows for ``regular``; ``fast``: the
    last, float64), per path: fastem's plain and pruned passes (``prune=False/True``: the
    same centres, bit for bit; the rule in ``kernels/_target.py`` picks one per shape) and
    the peer's ``kmeans_plusplus`` (skipped without scikit-learn)."""

    params = [SEED_SHAPES, ["fastem-plain", "fastem-pruned", "sklearn"], SEED_DTYPES]
    param_names = ["shape", "method", "dtype"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0

    def setup(self, shape, method, dtype):
        n, d, k = shape
        if method == "sklearn":
            require_sklearn()
        self.X = make_data(rows(n), d, dtype)
        if method == "sklearn":
            self.seed = lambda: common.sklearn_kmeans_plusplus(self.X, k, random_state=0)
            return
        prune = method == "fastem-pruned"
        self.seed = lambda: kmeans_plusplus(self.X, None, k, np.random.RandomState(0),
                                            prune=prune)
        kmeans_plusplus(self.X[:WARMUP_ROWS], None, 8, np.random.RandomState(0),
                        prune=prune)  # JIT warm-up

    def time_kmeans_plusplus(self, shape, method, dtype):
        self.seed()


# --------------------------------------------------------------------------- default fit

FIT_N, FIT_D, FIT_K, FIT_MAX_ITER = rows(300_000), 32, 64, 5


class TimeKMeansDefaultFit:
    """fastem ``KMeans(n_clusters=64, max_iter=5, random_state=0).fit(X)``, n=300k, d=32.

    Defaults otherwise: greedy k-means++ seeding, ``n_init='auto'`` (1 restart), ``tol=1e-4``;
    i.e. seeding + up to 5 Lloyd iterations + the final assignment pass.
    """

    params = [DTYPES]
    param_names = ["dtype"]
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0
    timeout = 600

    def _estimator(self):
        return KMeans(n_clusters=FIT_K, max_iter=FIT_MAX_ITER, random_state=0)

    def setup(self, dtype):
        self.X = make_data(FIT_N, FIT_D, dtype)
        self._estimator().fit(self.X[:WARMUP_ROWS])  # JIT warm-up

    def time_fit(self, dtype):
        self._estimator().fit(self.X)


class TimeSklearnKMeansDefaultFit(TimeKMeansDefaultFit):
    """Peer: scikit-learn ``KMeans(64, max_iter=5, n_init=1, random_state=0,
    algorithm='lloyd').fit(X)``, n=300k, d=32: greedy k-means++ + up to 5 Lloyd iterations.
    Skipped when scikit-learn is not installed.
    """

    def _estimator(self):
        return common.SklearnKMeans(n_clusters=FIT_K, max_iter=FIT_MAX_ITER, n_init=1,
                                    random_state=0, algorithm="lloyd")

    def setup(self, dtype):
        require_sklearn()
        super().setup(dtype)


# --------------------------------------------------------------------------- peak memory

MEM_N, MEM_D, MEM_K, MEM_MAX_ITER = rows(1_000_000), 32, 8, 10


class PeakMemKMeansFit:
    """Peak RSS of the process around fastem ``KMeans(8, max_iter=10, random_state=0).fit(X)``,
    n=1e6, d=32 (k-means++ + up to 10 iterations).

    asv's peak memory is the whole process's maximum RSS, so it includes the interpreter, the
    imported libraries and X itself (128 MB float32 / 256 MB float64); ``peakmem_data_only``
    in ``PeakMemBaseline`` is that floor, to subtract.
    """

    params = [DTYPES]
    param_names = ["dtype"]
    timeout = 300

    def _estimator(self):
        return KMeans(n_clusters=MEM_K, max_iter=MEM_MAX_ITER, random_state=0)

    def setup(self, dtype):
        self.X = make_data(MEM_N, MEM_D, dtype)
        self._estimator().fit(self.X[:WARMUP_ROWS])  # JIT warm-up

    def peakmem_fit(self, dtype):
        self._estimator().fit(self.X)


class PeakMemSklearnKMeansFit(PeakMemKMeansFit):
    """Peer: peak RSS around scikit-learn ``KMeans(8, max_iter=10, n_init=1, random_state=0,
    algorithm='lloyd').fit(X)``, n=1e6, d=32 (its default ``copy_x=True`` copies X).
    Skipped when scikit-learn is not installed.
    """

    def _estimator(self):
        return common.SklearnKMeans(n_clusters=MEM_K, max_iter=MEM_MAX_ITER, n_init=1,
                                    random_state=0, algorithm="lloyd")

    def setup(self, dtype):
        require_sklearn()
        super().setup(dtype)


class PeakMemBaseline:
    """Floor for the ``PeakMem*Fit`` benchmarks: the same process with the same X, no fit."""

    params = [DTYPES]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.X = make_data(MEM_N, MEM_D, dtype)

    def peakmem_data_only(self, dtype):
        pass


class TimeKMeansToConvergence:
    """Whole fits to convergence (``tol=1e-4``, ``max_iter=300``) from fixed initial centres,
    per method: fastem's 'lloyd', 'hamerly' and 'yinyang' (bounds; the same iterations;
    'yinyang' runs 'hamerly' where fewer than two groups fit) and the peer's 'lloyd' and
    'elkan' (skipped without scikit-learn). The issue-12 shapes at the profile's
    scale: (1e6, 8, 8), (1e6, 32, 64), (2e5, 128, 256), (1e5, 64, 1024) rows for ``regular``.
    """

    shapes = [(1_000_000, 8, 8), (1_000_000, 32, 64), (200_000, 128, 256), (100_000, 64, 1024)]
    dtypes = DTYPES
    if PROFILE == "fast":   # the default fit's shape and the many-centre one, float64
        shapes, dtypes = [(1_000_000, 32, 64), (100_000, 64, 1024)], ["float64"]
    params = [shapes, ["fastem-lloyd", "fastem-hamerly", "fastem-yinyang", "sklearn-lloyd",
                       "sklearn-elkan"], dtypes]
    param_names = ["shape", "method", "dtype"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, shape, method, dtype):
        n, d, k = shape
        library, algorithm = method.split("-")
        if library == "sklearn":
            require_sklearn()
        self.X = make_data(rows(n), d, dtype)
        init = init_centers(self.X, k)
        cls = KMeans if library == "fastem" else common.SklearnKMeans
        self.make = lambda: cls(k, init=init, n_init=1, algorithm=algorithm)
        self.make().fit(self.X[:max(k, WARMUP_ROWS)])  # JIT warm-up

    def time_fit_to_convergence(self, shape, method, dtype):
        self.make().fit(self.X)


class TimeSparseKMeansToConvergence:
    """:class:`TimeKMeansToConvergence` on issue 12's sparse row: TF-IDF-like CSR
    (:func:`.common.make_sparse_data`, 20,000 features, 0.5% non-zeros, k = 64; 1e5 rows for
    ``regular``), fastem's 'lloyd' and 'elkan' (per-centre bounds, 'auto' here) against the
    peer's 'lloyd' and 'elkan'."""

    params = [["fastem-lloyd", "fastem-elkan", "sklearn-lloyd", "sklearn-elkan"],
              ["float64"] if PROFILE == "fast" else DTYPES]
    param_names = ["method", "dtype"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, method, dtype):
        library, algorithm = method.split("-")
        if library == "sklearn":
            require_sklearn()
        k = 64
        self.X = make_sparse_data(rows(100_000), 20_000, 0.005, dtype)
        init = init_centers(self.X, k)
        cls = KMeans if library == "fastem" else common.SklearnKMeans
        self.make = lambda: cls(k, init=init, n_init=1, algorithm=algorithm)
        self.make().fit(self.X[:WARMUP_ROWS // 8])  # JIT warm-up (same CSR types)

    def time_fit_to_convergence(self, method, dtype):
        self.make().fit(self.X)


# --------------------------------------------------------------------------- small fits

class TimeSmallFits:
    """Fixed costs of a whole small fit (issue 8's first-contact targets; the same fits as
    ``compare_threads.py``): ``KMeans(3).fit`` on iris (150 x 4) and
    ``GaussianMixture(2).fit`` on Old Faithful (272 x 2), library defaults, ``random_state=0``;
    scikit-learn's KMeans with ``n_init=1`` (fastem's default for k-means++). The peer is
    skipped when scikit-learn is not installed.
    """

    params = [["kmeans_iris", "gmm_faithful"], ["fastem", "sklearn"]]
    param_names = ["fit", "library"]

    def setup(self, fit, library):
        from fastem import GaussianMixture
        from fastem.datasets import load_faithful, load_iris

        if library == "sklearn":
            require_sklearn()
        if fit == "kmeans_iris":
            data = load_iris()
            make = (lambda: KMeans(3, random_state=0)) if library == "fastem" else (
                lambda: common.SklearnKMeans(3, n_init=1, random_state=0))
        else:
            data = load_faithful()
            make = (lambda: GaussianMixture(2, random_state=0)) if library == "fastem" else (
                lambda: common.SklearnGaussianMixture(2, random_state=0))
        self.X = np.ascontiguousarray(data[0] if isinstance(data, tuple) else data)
        self.make = make
        self.make().fit(self.X)   # compile / load the kernels

    def time_fit(self, fit, library):
        self.make().fit(self.X)
