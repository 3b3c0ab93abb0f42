"""Numba compile / cache-load cost, measured in fresh Python processes.

Every ``track_`` here starts ``sys.executable`` (the benchmarked environment's Python) with
``NUMBA_CACHE_DIR`` pointing to a new temporary directory, so neither the in-tree
``__pycache__`` nor a user cache is used. The child imports fastem and fits
``KMeans(n_clusters=3, random_state=0)`` on a tiny (500, 4) float32 array and then on its
float64 copy (all public code paths of a default fit, both dtypes), and reports its own
timings (interpreter start-up and the numpy import excluded).
"""
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, sys, time
import numpy as np

t0 = time.perf_counter()
import fastem
from fastem import KMeans
t_import = time.perf_counter() - t0
if sys.argv[1:] == ["import-only"]:
    print(json.dumps({"import": t_import}))
    raise SystemExit(0)

rng = np.random.default_rng(0)
X64 = rng.standard_normal((500, 4))
X32 = X64.astype(np.float32)

def fit_both():
    KMeans(n_clusters=3, random_state=0).fit(X32)
    KMeans(n_clusters=3, random_state=0).fit(X64)

t0 = time.perf_counter()
fit_both()
t_first = time.perf_counter() - t0
later = []
for _ in range(5):
    t0 = time.perf_counter()
    fit_both()
    later.append(time.perf_counter() - t0)
print(json.dumps({"import": t_import, "first_fit": t_first, "later_fit": min(later)}))
"""

CHILD_TIMEOUT = 500


def _run_child(cache_dir, *args):
    """Run the child script with ``NUMBA_CACHE_DIR=cache_dir``; return its timings dict."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, cwd=cache_dir,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class TrackCompile:
    """Cold compile and warm-cache start-up cost of fastem in a fresh process."""

    unit = "seconds"
    timeout = 600

    def track_cold_compile(self):
        """Empty Numba cache: ``import fastem`` + first float32 fit + first float64 fit.

        What a user pays once after installing (or after a cache-invalidating upgrade):
        compiling every kernel a default fit uses, for both dtypes, plus the import.
        """
        with tempfile.TemporaryDirectory(prefix="fastem-numba-cold-") as cache:
            r = _run_child(cache)
        return r["import"] + r["first_fit"]

    def track_warm_first_fit_overhead(self):
        """Warm Numba cache: what a fresh process adds for its first fit.

        A first child fills an empty cache (untimed); a second fresh child times its first
        float32 + float64 fits (loading the compiled kernels from the cache) minus the best
        later float32 + float64 fits in the same process.
        """
        with tempfile.TemporaryDirectory(prefix="fastem-numba-warm-") as cache:
            _run_child(cache)
            r = _run_child(cache)
        return r["first_fit"] - r["later_fit"]

    def track_import(self):
        """``import fastem`` in a fresh process (numpy already imported, numba not).

        Nothing is compiled at import (kernels compile lazily on first call), so this does
        not depend on the Numba cache.
        """
        with tempfile.TemporaryDirectory(prefix="fastem-numba-import-") as cache:
            r = _run_child(cache, "import-only")
        return r["import"]
