"""Numba's threads next to BLAS's threads: small fits, interleaving with NumPy, mid-size EM.

    python asv_benchmarks/compare_threads.py

Run it in the default environment (do not set OMP_*/OPENBLAS_* thread variables: the point
is what a user gets). Three tables:

1. Small fits, fastem and scikit-learn in one process (median of 30 fits each, alternating
   blocks): ``GaussianMixture(2).fit`` on Old Faithful (defaults, and ``init_params='random',
   max_iter=11, tol=0``), ``KMeans(3).fit`` on iris (scikit-learn with ``n_init=1``, the same
   as fastem's default for k-means++).
2. A user's loop that alternates a NumPy matrix product (BLAS, multi-threaded) with a fastem
   fit: median time of each part inside the loop against the same part run back to back and
   after an idle pause as long as the other part. It runs in child processes that never
   import scikit-learn (whose threadpoolctl makes fastem leave OpenBLAS's workers alone:
   ``fastem/_blas_pool.py``): in the default environment, and with
   ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS's workers sleep at once instead of spinning for
   ~0.1 s after each call), which shows what the spinning would cost.
3. GaussianMixture full, n=200,000 d=16 k=16, seconds per EM iteration (median of 3 x
   [t(max_iter=3) - t(max_iter=1)] / 2) in this environment and in a child process with
   ``OPENBLAS_NUM_THREADS=1`` (the figure the issue asks the default environment to reach).
"""
import os
import subprocess
import sys
import time
import warnings

import numpy as np

from fastem import GaussianMixture, KMeans
from fastem.datasets import load_faithful, load_iris

warnings.simplefilter("ignore")


def _median_alternating(a, b, repeat=30, block=5):
    a(), b()
    times = {a: [], b: []}
    for _ in range(repeat // block):
        for f in (a, b):
            f()
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                times[f].append(time.perf_counter() - t0)
    return float(np.median(times[a])), float(np.median(times[b]))


def small_fits():
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.mixture import GaussianMixture as SklearnGMM
    faithful = load_faithful()
    faithful = faithful[0] if isinstance(faithful, tuple) else faithful
    iris = load_iris()
    iris = iris[0] if isinstance(iris, tuple) else iris
    rows = [
        ("GaussianMixture(2).fit(Old Faithful 272x2)",
         lambda: GaussianMixture(2, random_state=0).fit(faithful),
         lambda: SklearnGMM(2, random_state=0).fit(faithful)),
        ("same, init_params='random', max_iter=11, tol=0",
         lambda: GaussianMixture(2, init_params="random", max_iter=11, tol=0,
                                 random_state=0).fit(faithful),
         lambda: SklearnGMM(2, init_params="random", max_iter=11, tol=0,
                            random_state=0).fit(faithful)),
        ("KMeans(3).fit(iris 150x4)",
         lambda: KMeans(3, random_state=0).fit(iris),
         lambda: SklearnKMeans(3, n_init=1, random_state=0).fit(iris)),
    ]
    print("| small fit | fastem | scikit-learn | fastem / scikit-learn |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        a, b = _median_alternating(ours, theirs)
        print(f"| {name} | {1e3 * a:.2f} ms | {1e3 * b:.2f} ms | {a / b:.2f} |")


def interleaved(label="default environment"):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((400, 400))
    X = rng.standard_normal((50_000, 8))
    fit = lambda: GaussianMixture(4, covariance_type="full", max_iter=5, tol=0,  # noqa: E731
                                  init_params="random_from_data", random_state=0).fit(X)
    product = lambda: A @ A  # noqa: E731

    def median_after(f, before=None, repeat=20):
        """Median time of ``f`` called right after ``before`` (back to back if None)."""
        f()
        ts = []
        for _ in range(repeat):
            if before is not None:
                before()
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    t_product, t_fit = median_after(product), median_after(fit)
    # the same part after an idle pause as long as the other part: what the other part's
    # absence costs by itself (a BLAS call after ~40 ms idle is slower than back to back:
    # OpenBLAS's workers, its caches and the core's clock are no longer warm)
    paused = {product: median_after(product, lambda: time.sleep(t_fit)),
              fit: median_after(fit, lambda: time.sleep(t_product))}
    mixed = {product: [], fit: []}
    for _ in range(20):
        for f in (product, fit):
            t0 = time.perf_counter()
            f()
            mixed[f].append(time.perf_counter() - t0)
    print()
    print(f"| in a user's loop ({label}) | back to back | after an idle pause | "
          "interleaved | slowdown vs back to back | vs the pause |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, f, t in (("NumPy 400x400 matrix product", product, t_product),
                       ("fastem GaussianMixture(4, full) 50,000x8, 5 iterations", fit, t_fit)):
        m = float(np.median(mixed[f]))
        print(f"| {name} | {1e3 * t:.2f} ms | {1e3 * paused[f]:.2f} ms | {1e3 * m:.2f} ms | "
              f"{m / t:.2f}x | {m / paused[f]:.2f}x |")


def interleaved_in_child(label="default environment", **env):
    """The loop in a fresh process without scikit-learn, with ``env`` added (e.g.
    ``OPENBLAS_THREAD_TIMEOUT="4"``: OpenBLAS's workers sleep as soon as a call ends; the
    default keeps them spinning for 2^28 cycles, ~0.1 s, on a core fastem's threads need)."""
    code = ("import sys; sys.path.insert(0, {!r}); import compare_threads as c; "
            "c.warnings.simplefilter('ignore'); c.interleaved({!r}); "
            "assert 'threadpoolctl' not in sys.modules").format(os.path.dirname(__file__), label)
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True, check=True)
    print(out.stdout.rstrip())


MID_CHILD = """
import time, warnings, numpy as np
from fastem import GaussianMixture
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
n, d, k = 200_000, 16, 16
X = rng.standard_normal((n, d)) + rng.integers(0, 4, size=(n, 1))
means = X[rng.choice(n, k, replace=False)]
def fit(m):
    t0 = time.perf_counter()
    GaussianMixture(k, max_iter=m, tol=0, weights_init=np.full(k, 1 / k), means_init=means,
                    precisions_init=np.tile(np.eye(d), (k, 1, 1))).fit(X)
    return time.perf_counter() - t0
fit(1)
print(np.median([(fit(3) - fit(1)) / 2 for _ in range(9)]))
"""


def mid_size():
    print()
    print("| GaussianMixture full, n=200,000 d=16 k=16 | s / EM iteration |")
    print("|---|---:|")
    for name, extra in (("default environment", {}),
                        ("OPENBLAS_NUM_THREADS=1", {"OPENBLAS_NUM_THREADS": "1"})):
        out = subprocess.run([sys.executable, "-c", MID_CHILD], env=dict(os.environ, **extra),
                             capture_output=True, text=True, check=True)
        print(f"| {name} | {float(out.stdout.split()[-1]):.4f} |")


if __name__ == "__main__":
    small_fits()
    interleaved_in_child()
    interleaved_in_child("OPENBLAS_THREAD_TIMEOUT=4", OPENBLAS_THREAD_TIMEOUT="4")
    mid_size()
