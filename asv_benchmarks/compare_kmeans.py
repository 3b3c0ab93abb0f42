"""Side-by-side KMeans numbers for the README (fastem vs scikit-learn in ONE process).

    python asv_benchmarks/compare_kmeans.py            # all rows (a few minutes, 2 cores)
    python asv_benchmarks/compare_kmeans.py --quick    # smaller n, for a smoke test

Per-iteration time = (fit with max_iter=12 - fit with max_iter=2) / 10, each the best of
``--repeat`` runs, both libraries from the same initial centres with tol=0 (so both run every
iteration; both fits include the same fixed costs, which the difference removes). Seeding
compares fastem's greedy k-means++ with ``sklearn.cluster.kmeans_plusplus``; the default fit
is each library's ``KMeans(k, max_iter=5, n_init=1, random_state=0)``. The asv suite holds the
same measurements for commit-to-commit tracking; this script prints a markdown table.
"""
import argparse
import time

import numpy as np

from fastem import KMeans
from fastem.models.kmeans import kmeans_plusplus

try:
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus
except ImportError as exc:  # pragma: no cover
    raise SystemExit(f"scikit-learn is needed for the comparison: {exc}")


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def blobs(n, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-8, 8, size=(16, d))
    X = rng.standard_normal((n, d)) * 2.0 + centers[rng.integers(16, size=n)]
    return X.astype(dtype)


def per_iteration(X, k, repeat):
    init = X[:: max(1, len(X) // k)][:k].copy()
    out = []
    for fit in (lambda m: KMeans(k, init=init, max_iter=m, tol=0).fit(X),
                lambda m: SklearnKMeans(k, init=init, n_init=1, max_iter=m, tol=0,
                                        algorithm="lloyd").fit(X)):
        fit(2)  # warm-up (JIT, caches)
        t2 = best_of(lambda: fit(2), repeat)
        t12 = best_of(lambda: fit(12), repeat)
        out.append((t12 - t2) / 10)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    rows = []
    for n, d, k in [(300_000, 32, 64), (1_000_000, 8, 8)]:
        for dtype in (np.float64, np.float32):
            X = blobs(n // scale, d, dtype)
            ours, theirs = per_iteration(X, k, args.repeat)
            rows.append((f"Lloyd iteration, n={n // scale:,} d={d} k={k} {np.dtype(dtype).name}",
                         ours, theirs))
    X = blobs(1_000_000 // scale, 32, np.float64)
    w = np.ones(len(X))
    kmeans_plusplus(X[:1000], w[:1000], 64, np.random.RandomState(0))
    ours = best_of(lambda: kmeans_plusplus(X, w, 64, np.random.RandomState(0)), args.repeat)
    theirs = best_of(lambda: sklearn_kmeans_plusplus(X, 64, random_state=0), args.repeat)
    rows.append((f"k-means++ seeding, n={len(X):,} d=32 k=64 float64", ours, theirs))
    X = blobs(300_000 // scale, 32, np.float64)
    ours = best_of(lambda: KMeans(64, max_iter=5, random_state=0).fit(X), args.repeat)
    theirs = best_of(lambda: SklearnKMeans(64, max_iter=5, n_init=1, random_state=0,
                                           algorithm="lloyd").fit(X), args.repeat)
    rows.append((f"default fit (k-means++ + 5 iterations), n={len(X):,} d=32 k=64 float64",
                 ours, theirs))
    print("| measurement | fastem | scikit-learn | speed-up |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        print(f"| {name} | {1e3 * ours:.1f} ms | {1e3 * theirs:.1f} ms | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
