"""Cold-compile and warm-start costs of every estimator, for the README.

Run twice with the same empty cache directory::

    NUMBA_CACHE_DIR=$(mktemp -d) python asv_benchmarks/compile_times.py   # cold: compiles
    NUMBA_CACHE_DIR=<same dir>   python asv_benchmarks/compile_times.py   # warm: cache hits

Prints the import time and the time of the first fits (float64 and float32) of KMeans (fit,
predict, transform), GaussianMixture (all four covariance types) and BernoulliMixture (dense
and CSR). The asv suite tracks the same costs in bench_compile.py and bench_gmm.py.
"""
import time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import numpy as np, scipy.sparse as sp
from fastem import KMeans, GaussianMixture, BernoulliMixture
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t
out = {"import": t_import}
out["kmeans"] = sum(timed(lambda: KMeans(3, random_state=0, max_iter=3).fit(X).transform(X)) for X in
                    (rng.standard_normal((5000, 4)).astype(dt) for dt in (np.float64, np.float32)))
out["gmm"] = sum(timed(lambda: [GaussianMixture(3, covariance_type=ct, random_state=0, max_iter=3).fit(X).predict_proba(X) for ct in ("full", "tied", "diag", "spherical")]) for X in
                 (rng.standard_normal((5000, 4)).astype(dt) for dt in (np.float64, np.float32)))
B = (rng.random((5000, 20)) < 0.3).astype(np.uint8)
out["bernoulli"] = timed(lambda: (BernoulliMixture(3, random_state=0, max_iter=3).fit(B).predict_proba(B),
                                  BernoulliMixture(3, random_state=0, max_iter=3).fit(sp.csr_matrix(B)).predict_proba(sp.csr_matrix(B))))
print(" ".join(f"{k} {v:.1f}s" for k, v in out.items()))
