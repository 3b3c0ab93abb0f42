"""GaussianMixture benchmarks (issue 3): fastem next to scikit-learn (the peer).

Data: :func:`.common.make_anisotropic_data` (16 overlapping blobs, each with its own random
rotation and per-axis scales, seed 0). Fixed EM start: :func:`.common.gmm_inits` (uniform
weights, k distinct rows of X as means, unit precisions in the covariance type's shape; all
float64), passed as ``weights_init``/``means_init``/``precisions_init``, so no k-means
initialisation is ever timed. ``tol=0`` (EM runs exactly ``max_iter`` iterations);
``ConvergenceWarning`` is suppressed. Parameters are ``n, d, k, covariance_type, dtype``.

Grid: ``n`` in {1e5, 1e6} x ``d`` in {4, 16, 64} x ``k`` in {4, 16} x the four covariance
types x {float32, float64}, trimmed (:data:`STEP_POINTS`; other points are skipped in
``setup``): every (d, k) at n=1e5 in float64, (1e5, 16, 16) in float32, and the must-have
point (1e6, 16, 16) in both dtypes. The expensive per-iteration fit differences, the kernels
and the peak-memory benchmarks run at the must-have point only.

What measures "one EM iteration":

* ``TimeGMMEMStep`` - the cleanest number: one fused E-step (a single pass over X giving the
  log-likelihood and the sufficient statistics) and the M-step, through
  ``fastem.models.gaussian.GaussianMixtureModel.e_step`` + ``m_step``, i.e. exactly the
  per-iteration work of ``GaussianMixture.fit`` minus the convergence test and the Python
  driver. Every call starts from the same parameters. fastem only (scikit-learn has no
  public step API).
* ``TrackGMMPerIteration`` / ``TrackSklearnGMMPerIteration`` - per-iteration cost inside a
  real ``fit``: ``[t(max_iter=3) - t(max_iter=1)] / 2`` with the fixed start and ``tol=0``,
  so per-fit overheads (validation and finiteness scan, the initial parameters, scikit-learn's
  initial M-step from responsibilities and its final E-step) cancel. Must-have point only.
* ``TimeGaussianEStepKernel`` / ``TimeGaussianLogPdfKernel`` / ``TimeResponsibilitiesKernel``
  - the public kernels alone, at the must-have point.

Also: ``PeakMemGMMFit`` / ``PeakMemSklearnGMMFit`` (a ``max_iter=3`` fit, full and diag, at
the must-have point) with the floor ``PeakMemGMMBaseline.peakmem_data_only`` to subtract, and
``TrackGMMCompile.track_gmm_cold_compile`` (empty Numba cache, fresh process).
``compare_gmm.py`` (not a benchmark) prints the same per-iteration and peak-memory comparison
as one markdown table.
"""
import sys
import time as _time
import warnings

import numpy as np

from fastem.sources import ArraySource
from fastem import GaussianMixture
from fastem.kernels import (gaussian_estep_diag, gaussian_estep_full, gaussian_log_pdf_diag,
                            gaussian_log_pdf_full, responsibilities)
from fastem.models.gaussian import GaussianMixtureModel
from fastem.validation import ConvergenceWarning

from . import common   # the peer: common.SklearnGaussianMixture, imported on first use
from .common import (COVARIANCE_TYPES, DTYPES, gmm_inits, make_anisotropic_data, PROFILE,
                     require_sklearn, rows, run_python_child, skip_unless)

#: Rows of X used to warm up in ``setup`` (compile / cache load): a C-contiguous row slice has
#: the same Numba type as X, and 16 blocks of 2048 rows exercise the multi-block code paths.
WARMUP_ROWS = 32_768

#: The must-have point (n, d, k).
KEY_N, KEY_D, KEY_K = rows(1_000_000), 16, 16

GMM_PARAMS = [[rows(100_000), KEY_N], [4, 16, 64], [4, 16], COVARIANCE_TYPES, DTYPES]
GMM_PARAM_NAMES = ["n", "d", "k", "covariance_type", "dtype"]

#: (n, d, k, dtype) points of the EM-step grid (every covariance type runs at each).
STEP_POINTS = frozenset(
    [(rows(100_000), d, k, "float64") for d in (4, 16, 64) for k in (4, 16)]
    + [(rows(100_000), 16, 16, "float32")]
    + [(KEY_N, KEY_D, KEY_K, dtype) for dtype in DTYPES]
)

#: The must-have points only (per-iteration fit differences).
KEY_POINTS = frozenset((KEY_N, KEY_D, KEY_K, dtype) for dtype in DTYPES)

if PROFILE == "fast":  # the must-have point only
    GMM_PARAMS = [[KEY_N], [KEY_D], [KEY_K], COVARIANCE_TYPES, DTYPES]
    STEP_POINTS = KEY_POINTS

#: Kernel benchmarks: ``spherical`` runs the same diag kernels (precisions repeated over the
#: features), so it is left out.
KERNEL_COVARIANCE_TYPES = ["full", "tied", "diag"]


def _fit_quietly(estimator, X):
    """``estimator.fit(X)`` with ``ConvergenceWarning`` suppressed (tol=0 never converges)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        # scikit-learn's own class, once a peer has imported it (fastem's subclasses it then)
        sklearn_exceptions = sys.modules.get("sklearn.exceptions")
        if sklearn_exceptions is not None:
            warnings.simplefilter("ignore", category=sklearn_exceptions.ConvergenceWarning)
        return estimator.fit(X)


def _fastem_gmm(k, covariance_type, inits, max_iter):
    weights, means, precisions = inits
    return GaussianMixture(k, covariance_type=covariance_type, tol=0.0, max_iter=max_iter,
                           weights_init=weights, means_init=means, precisions_init=precisions,
                           random_state=0)


def _sklearn_gmm(k, covariance_type, inits, max_iter):
    """The peer with the same start. scikit-learn always builds initial responsibilities and
    runs an M-step on them, even when all three ``*_init`` are given (then overridden);
    ``init_params='random_from_data'`` is its cheapest way to do so (no k-means fit)."""
    weights, means, precisions = inits
    return common.SklearnGaussianMixture(k, covariance_type=covariance_type, tol=0.0,
                                         max_iter=max_iter, init_params="random_from_data",
                                         weights_init=weights, means_init=means,
                                         precisions_init=precisions, random_state=0)


class _Grid:
    """Data and the fixed EM start for one (n, d, k, covariance_type, dtype) grid point."""

    params = GMM_PARAMS
    param_names = GMM_PARAM_NAMES
    allowed = STEP_POINTS
    timeout = 300

    def _make(self, n, d, k, covariance_type, dtype):
        skip_unless((n, d, k, dtype), self.allowed)
        self.X = make_anisotropic_data(n, d, dtype)
        self.inits = gmm_inits(self.X, k, covariance_type)


# --------------------------------------------------------------------------- one EM step

class TimeGMMEMStep(_Grid):
    """One EM iteration at model level: ``stats = model.e_step(X, w, p)`` then
    ``model.m_step(X, w, p, stats)``.

    ``model`` is ``GaussianMixtureModel`` with the fixed start, ``w`` unit sample weights and
    ``p`` the initial parameters (every call starts from them, so the timed work does not
    drift). The E-step is the fused kernel (``gaussian_estep_full`` for full/tied,
    ``gaussian_estep_diag`` for diag/spherical) plus the precision layout; the M-step turns
    the statistics into weights, means, covariances and their precision Cholesky factors.
    For ``tied`` the pooled centre of the moments (the weighted mean of X, computed once per
    fit) is computed in ``setup``, as it is amortised over a fit.
    """

    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0.0

    def setup(self, n, d, k, covariance_type, dtype):
        self._make(n, d, k, covariance_type, dtype)
        weights, means, precisions = self.inits
        self.model = GaussianMixtureModel(k, covariance_type, 1e-6, "kmeans", weights, means,
                                          precisions)
        self.w = np.ones(n, dtype=np.float64)
        self.source = ArraySource(self.X, self.w)
        self.params = self.model.initialize(self.source, None)
        warm = GaussianMixtureModel(k, covariance_type, 1e-6, "kmeans", weights, means,
                                    precisions)  # JIT warm-up on a slice, same types
        small = ArraySource(self.X[:WARMUP_ROWS], self.w[:WARMUP_ROWS])
        stats = warm.e_step(small, self.params)
        warm.m_step(small, self.params, stats)
        if covariance_type == "tied":
            self.model.e_step(self.source, self.params)  # caches the pooled centre

    def time_em_step(self, n, d, k, covariance_type, dtype):
        stats = self.model.e_step(self.source, self.params)
        self.model.m_step(self.source, self.params, stats)


# --------------------------------------------------------------------------- per-iteration diff

class _PerIteration(_Grid):
    """``[t(fit, max_iter=M2) - t(fit, max_iter=M1)] / (M2 - M1)`` in seconds.

    Both fits start from the fixed ``weights_init``/``means_init``/``precisions_init`` with
    ``tol=0``; each time is the minimum over up to ``REPEATS`` interleaved (M1, M2) pairs (a
    new pair starts only while the pairs so far plus one more fit in ``MAX_TIME`` seconds;
    at least one pair). Per-fit overheads cancel, leaving the cost of one EM iteration inside
    ``fit``, the Python driver and convergence test included. Fails (rather than report a
    wrong number) if a fit stopped before ``max_iter``.
    """

    allowed = KEY_POINTS
    unit = "seconds"
    timeout = 600
    M1, M2 = 1, 3
    REPEATS = 3
    MAX_TIME = 5.0 if PROFILE == "fast" else 30.0   # the peer's (1, 3) pair takes ~3 s in fast
    warmup_rows = WARMUP_ROWS

    def setup(self, n, d, k, covariance_type, dtype):
        self._make(n, d, k, covariance_type, dtype)
        # JIT warm-up (fastem) / first-call imports (scikit-learn), same dtype and layout
        _fit_quietly(self._estimator(k, covariance_type, self.M2), self.X[:self.warmup_rows])

    def _timed_fit(self, k, covariance_type, max_iter):
        est = self._estimator(k, covariance_type, max_iter)
        start = _time.perf_counter()
        _fit_quietly(est, self.X)
        elapsed = _time.perf_counter() - start
        if est.n_iter_ != max_iter:
            raise RuntimeError(f"fit stopped after {est.n_iter_} < max_iter={max_iter} "
                               "iterations; the per-iteration difference would be wrong")
        return elapsed

    def track_seconds_per_iteration(self, n, d, k, covariance_type, dtype):
        t1, t2 = [], []
        start = _time.perf_counter()
        while len(t1) < self.REPEATS:
            t1.append(self._timed_fit(k, covariance_type, self.M1))
            t2.append(self._timed_fit(k, covariance_type, self.M2))
            spent = _time.perf_counter() - start
            if spent * (len(t1) + 1) / len(t1) > self.MAX_TIME:
                break
        return (min(t2) - min(t1)) / (self.M2 - self.M1)


class TrackGMMPerIteration(_PerIteration):
    __doc__ = "fastem ``GaussianMixture``: " + _PerIteration.__doc__

    def _estimator(self, k, covariance_type, max_iter):
        return _fastem_gmm(k, covariance_type, self.inits, max_iter)


class TrackSklearnGMMPerIteration(_PerIteration):
    __doc__ = ("Peer, scikit-learn ``GaussianMixture(init_params='random_from_data')``: "
               + _PerIteration.__doc__ + "\n    Skipped when scikit-learn is not installed.\n")

    #: the peer compiles nothing: its warm-up only does the first call's imports
    warmup_rows = 2048

    def _estimator(self, k, covariance_type, max_iter):
        return _sklearn_gmm(k, covariance_type, self.inits, max_iter)

    def setup(self, n, d, k, covariance_type, dtype):
        require_sklearn()
        super().setup(n, d, k, covariance_type, dtype)


# --------------------------------------------------------------------------- kernels

class _KernelPoint:
    """Kernel inputs at the must-have point (n=1e6, d=16, k=16) for a covariance type.

    The parameters are those after one EM step from the fixed start, computed on a
    ``WARMUP_ROWS`` slice (realistic, non-identity precisions; this also compiles or loads
    the kernels for X's dtype). ``prec``/``const`` are the kernel-layout precisions and
    per-component constants, exactly what ``GaussianMixtureModel.e_step`` passes.
    """

    params = [KERNEL_COVARIANCE_TYPES, DTYPES]
    param_names = ["covariance_type", "dtype"]
    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0.0
    timeout = 300

    def _make(self, covariance_type, dtype):
        n, d, k = KEY_N, KEY_D, KEY_K
        self.X = make_anisotropic_data(n, d, dtype)
        weights, means, precisions = gmm_inits(self.X, k, covariance_type)
        model = GaussianMixtureModel(k, covariance_type, 1e-6, "kmeans", weights, means,
                                     precisions)
        self.w = np.ones(n, dtype=np.float64)
        small = ArraySource(self.X[:WARMUP_ROWS], self.w[:WARMUP_ROWS])
        p0 = model.initialize(small, None)
        self.p = model.m_step(small, p0, model.e_step(small, p0))
        self.prec, self.const = model._kernel_form(self.p, d)  # what e_step passes
        self.full = covariance_type in ("full", "tied")
        if covariance_type == "tied":  # pooled moments about the data mean
            self.shift = self.X.mean(axis=0, dtype=np.float64)[None]
        else:
            self.shift = self.p.means
        self.nk, self.s1 = np.empty(k), np.empty((k, d))
        self.s2 = np.empty((self.shift.shape[0], d, d) if self.full else (k, d))
        self.out = np.empty((n, k))


class TimeGaussianEStepKernel(_KernelPoint):
    """``gaussian_estep_full`` (full: (k, d, d) precisions and k shifts; tied: (1, d, d) and
    one pooled shift) or ``gaussian_estep_diag`` (diag): the fused E-step pass alone, n=1e6,
    d=16, k=16, unit sample weights."""

    def setup(self, covariance_type, dtype):
        self._make(covariance_type, dtype)
        self.kernel = gaussian_estep_full if self.full else gaussian_estep_diag

    def time_estep(self, covariance_type, dtype):
        self.kernel(self.X, self.w, self.p.means, self.prec, self.const, self.shift, self.nk,
                    self.s1, self.s2)


class TimeGaussianLogPdfKernel(_KernelPoint):
    """``gaussian_log_pdf_full`` (full, tied) or ``gaussian_log_pdf_diag`` (diag): the
    (n, k) float64 weighted log-densities used by predict/score, n=1e6, d=16, k=16."""

    def setup(self, covariance_type, dtype):
        self._make(covariance_type, dtype)
        self.kernel = gaussian_log_pdf_full if self.full else gaussian_log_pdf_diag
        self.kernel(self.X[:WARMUP_ROWS], self.p.means, self.prec, self.const,
                    self.out[:WARMUP_ROWS])  # JIT warm-up, same types

    def time_log_pdf(self, covariance_type, dtype):
        self.kernel(self.X, self.p.means, self.prec, self.const, self.out)


class TimeResponsibilitiesKernel:
    """``responsibilities(wlp, resp, log_norm)``: row-wise log-sum-exp of a (1e6, 16)
    float64 array (full-covariance weighted log-densities of float64 data), into a separate
    output (``wlp`` is not modified, so every call does the same work)."""

    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self):
        point = _KernelPoint()
        point._make("full", "float64")
        gaussian_log_pdf_full(point.X, point.p.means, point.prec, point.const, point.out)
        self.wlp = point.out
        self.resp = np.empty_like(self.wlp)
        self.log_norm = np.empty(KEY_N)
        responsibilities(self.wlp[:WARMUP_ROWS], self.resp[:WARMUP_ROWS],
                         self.log_norm[:WARMUP_ROWS])  # JIT warm-up

    def time_responsibilities(self):
        responsibilities(self.wlp, self.resp, self.log_norm)


# --------------------------------------------------------------------------- peak memory

MEM_MAX_ITER = 3


class PeakMemGMMFit:
    """Peak RSS of the process around fastem ``GaussianMixture(16, covariance_type=...,
    tol=0, max_iter=3).fit(X)`` from the fixed start, n=1e6, d=16 (full and diag).

    asv's peak memory is the whole process's maximum RSS, ``setup`` included, so it contains
    the interpreter, the imported libraries, X itself (64 MB float32 / 128 MB float64) and the
    warm-up fit on a ``WARMUP_ROWS`` slice (which loads the compiled kernels; with an empty
    Numba cache it compiles them, and compiler memory then shows up here).
    ``PeakMemGMMBaseline.peakmem_data_only`` is the floor with the same X, to subtract.
    """

    params = [["full", "diag"], DTYPES]
    param_names = ["covariance_type", "dtype"]
    timeout = 300

    def _estimator(self, covariance_type, max_iter=MEM_MAX_ITER):
        return _fastem_gmm(KEY_K, covariance_type, self.inits, max_iter)

    def setup(self, covariance_type, dtype):
        self.X = make_anisotropic_data(KEY_N, KEY_D, dtype)
        self.inits = gmm_inits(self.X, KEY_K, covariance_type)
        _fit_quietly(self._estimator(covariance_type), self.X[:WARMUP_ROWS])  # warm-up

    def peakmem_fit(self, covariance_type, dtype):
        _fit_quietly(self._estimator(covariance_type), self.X)


class PeakMemSklearnGMMFit(PeakMemGMMFit):
    """Peer: peak RSS around scikit-learn ``GaussianMixture(16, covariance_type=..., tol=0,
    max_iter=3, init_params='random_from_data').fit(X)`` with the same start, n=1e6, d=16.
    Its initial (n, k) responsibilities and M-step are part of every sklearn fit, so they
    are counted. Skipped when scikit-learn is not installed.
    """

    def _estimator(self, covariance_type, max_iter=MEM_MAX_ITER):
        return _sklearn_gmm(KEY_K, covariance_type, self.inits, max_iter)

    def setup(self, covariance_type, dtype):
        require_sklearn()
        super().setup(covariance_type, dtype)


class PeakMemGMMBaseline:
    """Floor for the ``PeakMem*GMMFit`` benchmarks: the same process with the same X (n=1e6,
    d=16), no fit. fastem, numba and scikit-learn are imported by this module either way."""

    params = [DTYPES]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.X = make_anisotropic_data(KEY_N, KEY_D, dtype)

    def peakmem_data_only(self, dtype):
        pass


# --------------------------------------------------------------------------- compile

_COMPILE_CHILD = r"""
import json, sys, time, warnings
import numpy as np

t0 = time.perf_counter()
import fastem
from fastem import GaussianMixture
t_import = time.perf_counter() - t0

rng = np.random.default_rng(0)
X64 = rng.standard_normal((500, 4))
X32 = X64.astype(np.float32)
first = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for X in (X32, X64):
        for ct in ("full", "tied", "diag", "spherical"):
            t0 = time.perf_counter()
            GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
            first[f"{ct}-{X.dtype}"] = time.perf_counter() - t0
print(json.dumps({"import": t_import, "first_fits": first}))
"""


class TrackGMMCompile:
    """Cold Numba compile of GaussianMixture in a fresh process (``sys.executable``) with
    ``NUMBA_CACHE_DIR`` set to a new, empty temporary directory (neither the in-tree
    ``__pycache__`` nor a user cache is used)."""

    unit = "seconds"
    timeout = 900

    def setup(self):
        if PROFILE == "fast":   # 40 s on 2 cores; the same kernels (and more) compile there
            raise NotImplementedError("fast profile: bench_compile.TrackFirstContact."
                                      "track_cold_everything covers these kernels")

    def track_gmm_cold_compile(self):
        """``import fastem`` + the first default fit (``GaussianMixture(3, random_state=0)``,
        so including its k-means initialisation) of each covariance type, float32 then
        float64, on a tiny (500, 4) array: every kernel a default fit of each type compiles,
        for both dtypes (the log-pdf kernels used only by predict/score are not included).
        """
        import tempfile

        with tempfile.TemporaryDirectory(prefix="fastem-numba-gmm-cold-") as cache:
            r = run_python_child(_COMPILE_CHILD, env={"NUMBA_CACHE_DIR": cache}, cwd=cache,
                                 timeout=850)
        return r["import"] + sum(r["first_fits"].values())
