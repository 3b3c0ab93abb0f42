"""Side-by-side KMeans numbers for the README (fastem vs scikit-learn in ONE process).

    python asv_benchmarks/compare_kmeans.py            # all rows (a few minutes, 2 cores)
    python asv_benchmarks/compare_kmeans.py --quick    # smaller n, for a smoke test

Per-iteration time: the median over 15 Lloyd iterations (after 2 warm-up iterations) of one
iteration of each library's own loop, interleaved, from the same initial centres: fastem's
E-step (the fused ``lloyd_step`` kernel) + M-step as the driver runs them, and scikit-learn's
``lloyd_iter_chunked_dense`` (its fused assignment + centre update; a private function, the
body of its Lloyd loop). A median of single iterations is robust to the minutes-long slow
phases of this shared VM, which a difference of two whole fits is not. Seeding
compares fastem's greedy k-means++ with ``sklearn.cluster.kmeans_plusplus``; the default fit
is each library's ``KMeans(k, max_iter=5, n_init=1, random_state=0)``. The asv suite holds the
same measurements for commit-to-commit tracking; this script prints a markdown table.
"""
import argparse
import time

import numpy as np

from fastem import KMeans
from fastem.models.kmeans import KMeansModel, kmeans_plusplus

try:
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    N_THREADS = _openmp_effective_n_threads()
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


def per_iteration(X, k, n_iter=15, warmup=2):
    init = X[:: max(1, len(X) // k)][:k].copy()
    w = np.ones(len(X), dtype=X.dtype)
    model = KMeansModel(X, k, init)
    centers = model.initialize(X, w.astype(np.float64), None)
    sk_old, sk_new = init.copy(), np.empty_like(init)
    sk_weight, sk_shift = np.empty(k, X.dtype), np.empty(k, X.dtype)
    sk_labels = np.full(len(X), -1, dtype=np.int32)
    w64 = w.astype(np.float64)
    ours, theirs = [], []
    for it in range(warmup + n_iter):
        t0 = time.perf_counter()
        stats = model.e_step(X, w64, centers)
        centers = model.m_step(X, w64, centers, stats)
        t1 = time.perf_counter()
        lloyd_iter_chunked_dense(X, w, sk_old, sk_new, sk_weight, sk_labels, sk_shift, N_THREADS)
        sk_old, sk_new = sk_new, sk_old
        t2 = time.perf_counter()
        if it >= warmup:
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
    return float(np.median(ours)), float(np.median(theirs))


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
            ours, theirs = per_iteration(X, k)
            rows.append((f"Lloyd iteration, n={n // scale:,} d={d} k={k} {np.dtype(dtype).name}",
                         ours, theirs))
    X = blobs(1_000_000 // scale, 32, np.float64)
    sklearn_kmeans_plusplus(X[:1000], 64, random_state=0)
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
