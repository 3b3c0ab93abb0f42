"""Compile every kernel a fit or prediction uses, in parallel processes, into the disk cache.

Numba compiles under a per-process lock, so the work is spread over processes: each runs
small fits and predictions (the "jobs" below) of every estimator, dtype and input kind, which
compiles exactly the kernels that real calls of that kind load later. Processes share the
cache directory; fastem's cache writer locks each kernel's index file while it updates it
(``kernels/_jit.py``), so concurrent writers never drop each other's entries.

Use it once per machine, Docker image or cluster node (``NUMBA_CACHE_DIR`` pointing at a
directory that the image or the nodes keep)::

    python -m fastem warmup            # or: import fastem; fastem.warmup()

A first fit with an empty cache also compiles in two processes (:func:`compile_ahead`): a
helper compiles the kernels the fit needs later (a mixture's EM iterations, KMeans'
k-means++) while the fitting process compiles the ones it needs first, each on one core.
"""
import os
import subprocess
import sys
import time
import warnings

from .kernels._jit import usable_cores

#: (job name, estimator, dtype or input kind). The KMeans fits come first: every mixture's
#: 'kmeans' initialisation (float32 rows for the Bernoulli mixture) then loads their kernels
#: from the cache instead of compiling them again in each process; the rest largest first,
#: so that the processes finish together. Every job is a fit plus every prediction method.
JOBS = (
    ("KMeans float64", "kmeans", "fit", "float64"),
    ("KMeans float32", "kmeans", "fit", "float32"),
    ("GaussianMixture full float64", "gmm", "full", "float64"),
    ("GaussianMixture full float32", "gmm", "full", "float32"),
    ("KMeans bounds, wide data, predictions float64", "kmeans", "rest", "float64"),
    ("KMeans bounds, wide data, predictions float32", "kmeans", "rest", "float32"),
    ("GaussianMixture tied float64", "gmm", "tied", "float64"),
    ("GaussianMixture tied float32", "gmm", "tied", "float32"),
    ("GaussianMixture diag float64", "gmm", "diag", "float64"),
    ("GaussianMixture diag float32", "gmm", "diag", "float32"),
    ("GaussianMixture spherical float64", "gmm", "spherical", "float64"),
    ("GaussianMixture spherical float32", "gmm", "spherical", "float32"),
    ("BernoulliMixture dense uint8", "bernoulli", "dense", "uint8"),
    ("BernoulliMixture dense bool", "bernoulli", "dense", "bool"),
    ("BernoulliMixture dense float64", "bernoulli", "dense", "float64"),
    ("BernoulliMixture CSR uint8", "bernoulli", "csr", "uint8"),
    ("BernoulliMixture CSR float64", "bernoulli", "csr", "float64"),
)


def run_job(job):
    """Run one job in this process (compiles and caches what it uses); returns its name."""
    import numpy as np

    from . import BernoulliMixture, GaussianMixture, KMeans
    from .kernels import float32_shadow
    from .kernels._jit import compile_hot_threads
    from .models.kmeans import kmeans_plusplus
    from .sources import ArraySource
    from .validation import read_only

    name, estimator, kind, dtype = job
    rng = np.random.default_rng(0)
    # more rows than PARALLEL_MIN_ROWS: the same work kernels as large data
    X = rng.standard_normal((5000, 3)).astype(dtype if estimator != "bernoulli" else "float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # convergence at max_iter=2 is irrelevant here
        if estimator == "kmeans" and kind == "fit":   # what the mixtures' init uses too
            for init in ("k-means++", "random"):
                KMeans(3, init=init, max_iter=2, random_state=0).fit(X)
        elif estimator == "kmeans":
            km = KMeans(3, algorithm="hamerly", max_iter=3, random_state=0).fit(X)
            km.predict(X), km.transform(X), km.score(X)
            # 'auto' for many centres: Yinyang's group bounds (more features: t >= 2 groups)
            X8 = rng.standard_normal((5000, 8)).astype(dtype)
            KMeans(128, init=X8[:128], n_init=1, algorithm="yinyang", max_iter=3).fit(X8)
            # Lloyd, Hamerly and predictions with many centres: float64's screened search
            X32 = rng.standard_normal((5000, 32)).astype(dtype)
            for algorithm in ("lloyd", "hamerly"):
                km = KMeans(32, init=X32[:32], n_init=1, algorithm=algorithm, max_iter=3)
                km.fit(X32).predict(X32)
            # k-means++'s other paths: pruned or not, keeping the candidates' distances
            # (2 x 8 bytes <= a row) or not (64 x 8 bytes > a row; also streamed rows)
            wide = ArraySource(read_only(rng.standard_normal((5000, 16)).astype(dtype)))
            for prune in (False, True):
                for n_local_trials in (2, 64):
                    kmeans_plusplus(wide, None, 3, rng, n_local_trials, prune)
            # large seedings: the float32 shadow of float64 rows, the hot threads' counters
            float32_shadow(wide.X, np.empty(wide.X.shape, np.float32), np.empty(5000))
            compile_hot_threads()
        elif estimator == "gmm":
            for init in ("kmeans", "k-means++", "random", "random_from_data"):
                gm = GaussianMixture(2, covariance_type=kind, init_params=init, max_iter=2,
                                     random_state=0).fit(X)
            gm.predict(X), gm.predict_proba(X), gm.score_samples(X), gm.score(X)
        else:
            B = (X > 0).astype(dtype)
            if kind == "csr":
                import scipy.sparse as sp
                B = sp.csr_matrix(B)
            for init in ("kmeans", "random", "random_from_data"):
                bm = BernoulliMixture(2, init_params=init, max_iter=2, random_state=0).fit(B)
            bm.predict(B), bm.predict_proba(B), bm.score_samples(B), bm.score(B)
    return name


def _worker(job):
    global _compile_ahead_off
    t0 = time.perf_counter()
    _compile_ahead_off = True    # warm-up processes compile everything themselves
    try:
        return run_job(job), time.perf_counter() - t0
    finally:
        _compile_ahead_off = False


def warmup(n_jobs=None, verbose=True):
    """Compile every kernel that fits and predictions use, for float32 and float64, dense and
    CSR input, into Numba's on-disk cache, using ``n_jobs`` processes.

    Parameters
    ----------
    n_jobs : int, optional
        Processes to use (default: the number of CPUs this process may run on).
    verbose : bool, default=True
        Print one progress line per finished job (to stderr).

    Returns
    -------
    float
        Wall time in seconds.

    Notes
    -----
    Later processes with the same ``NUMBA_CACHE_DIR`` (or the default cache next to the
    installed package) load the compiled kernels instead of compiling them. The cache is
    specific to the CPU model, Numba version and fastem version: warm up on the machine (or
    image) that runs the fits. Your own ``@njit`` code reuses their work kernels; only the
    parallel kernels' ``prange`` loops (with their set-up and fold steps) compile with it.
    """
    import multiprocessing

    t0 = time.perf_counter()
    if n_jobs is None:
        n_jobs = usable_cores()
    n_jobs = max(1, min(int(n_jobs), len(JOBS)))

    def report(done, name, seconds):
        if verbose:
            print(f"\rfastem warmup: {done}/{len(JOBS)} compiled ({name}, {seconds:.1f} s; "
                  f"{time.perf_counter() - t0:.1f} s elapsed)", file=sys.stderr, flush=True)

    if n_jobs == 1:
        for done, job in enumerate(JOBS, 1):
            report(done, *_worker(job))
    else:
        # fresh interpreters: no state, threads or locks inherited from the caller
        context = multiprocessing.get_context("spawn")
        with context.Pool(n_jobs) as pool:
            for done, (name, seconds) in enumerate(pool.imap_unordered(_worker, JOBS), 1):
                report(done, name, seconds)
    elapsed = time.perf_counter() - t0
    if verbose:
        print(f"fastem warmup: {len(JOBS)} jobs in {elapsed:.1f} s with {n_jobs} processes",
              file=sys.stderr, flush=True)
    return elapsed


# ---------------------------------------------------------------------------- compile ahead
#: ``FASTEM_COMPILE_AHEAD=0`` in the environment turns :func:`compile_ahead` off.
COMPILE_AHEAD_VARIABLE = "FASTEM_COMPILE_AHEAD"
#: Rows of the helper's data: more than PARALLEL_MIN_ROWS, so it compiles the work kernels
#: that large data runs. Its widest data (``COMPILE_AHEAD_MAX_FEATURES`` columns) is 80 MB.
AHEAD_JOB_ROWS = 5000
COMPILE_AHEAD_MAX_FEATURES = 2048
#: Components / clusters of the helper's job: the kernels' types do not depend on k, and a
#: small k keeps the helper's parameters small (k full d x d matrices).
AHEAD_JOB_MAX_COMPONENTS = 4
#: Longest wait for the helper (seconds); after it the fit compiles what is still missing.
COMPILE_AHEAD_TIMEOUT = 300.0
_compile_ahead_off = False   # True while this process runs warm-up jobs


#: The helper's program: it imports this very fastem from its file (the kernels' cache keys
#: include their sources; another fastem on the child's path would fill the wrong entries),
#: without putting the package's directory in front of the standard library on sys.path.
_HELPER_CODE = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location(
    "fastem", sys.argv[1], submodule_search_locations=[os.path.dirname(sys.argv[1])])
module = sys.modules["fastem"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from fastem._warmup import run_ahead_job
run_ahead_job(*sys.argv[2:])
"""


class _Helper:
    """A running helper process; ``wait()`` returns once it has exited (or timed out)."""

    def __init__(self, process):
        self.process = process

    def wait(self):
        try:
            self.process.wait(timeout=COMPILE_AHEAD_TIMEOUT)
        except subprocess.TimeoutExpired:   # compile the rest here; the helper is harmless
            pass


def compile_ahead(kernel, source, job, *args):
    """Start a helper process that compiles, into the disk cache, kernels that this fit
    needs later, while this process compiles the ones it needs first (Numba compiles under
    a per-process lock: one process uses one core). The fit calls the helper's ``wait()``
    where it needs them, then loads them from the cache.

    Parameters
    ----------
    kernel : ParallelKernel
        The first of the kernels the helper compiles: the helper runs only when its work
        kernel is in neither this process nor the disk cache (a cold cache), so warm
        processes never start one.
    source : fastem.sources.RowSource
        The fit's rows (their dtype, sparsity and number of features decide the kernels).
    job : {"em", "seeding"}
        "em": the EM iterations of a mixture (``args``: "gmm" and the covariance type, or
        "bernoulli" and "dense"/"csr"; the number of components), compiled while the fit
        compiles its k-means initialisation. "seeding": k-means++ (``args``: the number of
        clusters), compiled while a KMeans fit compiles the Lloyd kernel for its ``tol``
        scale.

    Returns
    -------
    _Helper or None
        None when the helper would not help: turned off (``FASTEM_COMPILE_AHEAD=0``), one
        CPU, a frozen application, a distributed or very wide source, or a warm cache.
    """
    from .kernels._jit import _CheckedFunctionCache

    work = kernel._plan[1]
    cache = getattr(work, "_cache", None)
    if (work.overloads or _compile_ahead_off   # compiled in this process: the common case
            or os.environ.get(COMPILE_AHEAD_VARIABLE, "1") == "0"
            or usable_cores() < 2 or getattr(sys, "frozen", False) or not sys.executable
            or source.distributed or source.n_features > COMPILE_AHEAD_MAX_FEATURES
            or not isinstance(cache, _CheckedFunctionCache)):
        return None
    try:
        if cache._cache_file._load_index():
            return None                     # compiled before (maybe for another dtype)
        index_dtype = "int32"
        if source.sparse and source.in_memory is not None:
            index_dtype = str(source.in_memory.indices.dtype)
        package_init = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py")
        argv = [package_init, job, str(source.dtype), str(source.n_features), index_dtype,
                *map(str, args)]
        process = subprocess.Popen(
            [sys.executable, "-c", _HELPER_CODE, *argv], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, **{COMPILE_AHEAD_VARIABLE: "0"}))
    except Exception:  # noqa: BLE001 - only ever an optimisation: the fit compiles itself
        return None
    return _Helper(process)


def run_ahead_job(job, dtype, n_features, index_dtype, *args):
    """What :func:`compile_ahead`'s helper process runs, on rows like the fit's: "em" - a
    small fit from given parameters (so no initialisation); "seeding" - k-means++."""
    import numpy as np

    from . import BernoulliMixture, GaussianMixture
    from .kernels._jit import compile_hot_threads
    from .models.kmeans import default_local_trials, kmeans_plusplus
    from .sources import ArraySource
    from .validation import read_only

    d = int(n_features)
    rng = np.random.default_rng(0)
    U = rng.random((AHEAD_JOB_ROWS, d))
    if job == "seeding":   # the fit's k decides the path: its candidates and pruning
        k = int(args[0])
        kmeans_plusplus(ArraySource(read_only(U.astype(dtype))), None,
                        min(k, AHEAD_JOB_MAX_COMPONENTS), rng, default_local_trials(k),
                        prune=bool(int(args[1])))
        compile_hot_threads()   # the fit's seeding hands its steps over with them
        return
    estimator, kind, k = args[0], args[1], min(int(args[2]), AHEAD_JOB_MAX_COMPONENTS)
    weights = np.full(k, 1.0 / k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if estimator == "gmm":
            precisions = {"full": np.tile(np.eye(d), (k, 1, 1)), "tied": np.eye(d),
                          "diag": np.ones((k, d)), "spherical": np.ones(k)}[kind]
            GaussianMixture(k, covariance_type=kind, weights_init=weights,
                            means_init=U[:k], precisions_init=precisions,
                            max_iter=2).fit(U.astype(dtype))
        else:
            B = (U < 0.3).astype(dtype)
            if kind == "csr":
                import scipy.sparse as sp
                B = sp.csr_matrix(B)
                B.indices, B.indptr = (B.indices.astype(index_dtype),
                                       B.indptr.astype(index_dtype))
            BernoulliMixture(k, weights_init=weights, means_init=rng.uniform(0.2, 0.8, (k, d)),
                             max_iter=2).fit(B)
