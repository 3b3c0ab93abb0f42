"""First contact: import time, cold compile, warm-up and warm-cache start, in fresh processes.

Every ``track_`` starts ``sys.executable`` (the benchmarked environment's Python) with
``NUMBA_CACHE_DIR`` pointing to a new temporary directory, so neither the in-tree
``__pycache__`` nor a user cache is used, and reports seconds measured inside the child
(interpreter start-up excluded, ``import numpy`` included where it says so). These are the
targets of issue 9; ``asv_benchmarks/compile_times.py`` prints the same measurements as a
table.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

#: The first fit of each estimator, as a new user writes it (float64; uint8 for Bernoulli).
FIRST_FITS = {
    "kmeans": "KMeans(8).fit(X)",
    "gmm_full": "GaussianMixture(8, covariance_type='full').fit(X)",
    "bernoulli": "BernoulliMixture(8).fit(B)",
}

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import numpy as np
t_numpy = time.perf_counter() - t0
import fastem
from fastem import BernoulliMixture, GaussianMixture, KMeans
t_import = time.perf_counter() - t0
out = {"import": t_import, "import_after_numpy": t_import - t_numpy}
rng = np.random.default_rng(0)
X = rng.standard_normal((10000, 8))
B = (rng.random((10000, 20)) < 0.3).astype(np.uint8)
what = sys.argv[1]

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

if what == "everything":
    # all three estimators, both dtypes, dense and CSR, fit and predictions
    import scipy.sparse as sp
    out["kmeans"] = sum(timed(lambda: KMeans(3, random_state=0, max_iter=3).fit(Y).transform(Y))
                        for Y in (X, X.astype(np.float32)))
    out["gmm"] = sum(timed(lambda: [GaussianMixture(3, covariance_type=ct, random_state=0,
                                                    max_iter=3).fit(Y).predict_proba(Y)
                                    for ct in ("full", "tied", "diag", "spherical")])
                     for Y in (X, X.astype(np.float32)))
    out["bernoulli"] = sum(timed(lambda: BernoulliMixture(3, random_state=0, max_iter=3)
                                 .fit(D).predict_proba(D)) for D in (B, sp.csr_matrix(B)))
elif what != "import":
    first = timed(lambda: eval(sys.argv[2]))
    later = min(timed(lambda: eval(sys.argv[2])) for _ in range(3))
    out.update(first_fit=first, later_fit=later)
print(json.dumps(out))
"""

CHILD_TIMEOUT = 500


def run_child(cache_dir, *args, block_sklearn=False):
    """Run the child with ``NUMBA_CACHE_DIR=cache_dir``; return its timings dict."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    code = _CHILD
    if block_sklearn:   # as if scikit-learn were not installed
        code = ("import sys\nsys.modules['sklearn'] = None\n") + code
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cache_dir,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_fits(name):
    """Fresh process, empty cache: import (numpy included) + the first fit of ``name``; then
    a fresh process on that (now warm) cache: its first fit minus its best later fit.
    Returns ``(cold first fit, warm first-fit overhead)`` in seconds."""
    with tempfile.TemporaryDirectory(prefix="fastem-cold-") as cache:
        cold = run_child(cache, "fit", FIRST_FITS[name])
        warm = run_child(cache, "fit", FIRST_FITS[name])
    return cold["import"] + cold["first_fit"], warm["first_fit"] - warm["later_fit"]


def cold_everything():
    """Fresh process, empty cache: every estimator, dtype and input kind (import excluded)."""
    with tempfile.TemporaryDirectory(prefix="fastem-cold-") as cache:
        r = run_child(cache, "everything")
    return r["kmeans"] + r["gmm"] + r["bernoulli"]


def warmup_wall():
    """``python -m fastem warmup`` into an empty cache: wall seconds of the whole command."""
    with tempfile.TemporaryDirectory(prefix="fastem-warmup-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fastem", "warmup"], env=env, check=True,
                       capture_output=True, timeout=CHILD_TIMEOUT)
        return time.perf_counter() - t0


def import_time(block_sklearn=False):
    """``import numpy, fastem`` in a fresh process (nothing is compiled at import)."""
    with tempfile.TemporaryDirectory(prefix="fastem-import-") as cache:
        return run_child(cache, "import", block_sklearn=block_sklearn)["import"]


class TrackFirstContact:
    """Issue 9's targets (seconds; fresh processes, 2-core CI-like machines)."""

    unit = "seconds"
    timeout = 900
    number = 1
    repeat = 1

    def track_import(self):
        """``import numpy, fastem`` with scikit-learn installed (target <= 0.7 s)."""
        return import_time()

    def track_import_without_sklearn(self):
        """The same with scikit-learn made unimportable (target <= 0.6 s)."""
        return import_time(block_sklearn=True)

    def track_cold_everything(self):
        """Empty cache: all estimators, both dtypes, dense and CSR (target <= 45 s)."""
        return cold_everything()

    def track_warmup(self):
        """``python -m fastem warmup`` on all cores (target <= 30 s on 2 cores)."""
        return warmup_wall()


class TrackFirstFits:
    """Each estimator's first fit, cold and warm (seconds). One cold compile per estimator
    serves both tracks: ``setup_cache`` runs :func:`first_fits` once for all of them (a cold
    compile takes 10-20 s on 2 cores; the warm process then loads what it wrote)."""

    unit = "seconds"
    timeout = 900
    number = 1
    repeat = 1
    params = list(FIRST_FITS)
    param_names = ["estimator"]

    def setup_cache(self):
        return {name: first_fits(name) for name in FIRST_FITS}

    def track_cold_first_fit(self, results, name):
        """Empty cache: import + first fit (targets: kmeans 6 s, gmm_full 10 s, bernoulli 8 s)."""
        return results[name][0]

    def track_warm_first_fit_overhead(self, results, name):
        """Warm cache: first fit minus a later fit in a fresh process (target <= 0.3 s)."""
        return results[name][1]
