"""Side-by-side KMeans numbers for the README (fastem vs scikit-learn in ONE process).

    python asv_benchmarks/compare_kmeans.py            # all rows (a few minutes, 2 cores)
    python asv_benchmarks/compare_kmeans.py --quick    # smaller n, for a smoke test

Per-iteration time: the median of single Lloyd iterations of each library's own loop, from
the same initial centres, run in alternating blocks (3 rounds x 6 timed iterations each,
after one untimed iteration that lets the other library's OpenMP threads stop spinning):
fastem's E-step (the fused ``lloyd_step`` kernel) + M-step as the driver runs them, and
scikit-learn's ``lloyd_iter_chunked_dense`` (its fused assignment + centre update; a private
function, the body of its Lloyd loop, run under ``threadpool_limits(1, 'blas')`` exactly as
scikit-learn runs it). A median of single iterations is robust to the slow
phases of a shared VM, which a difference of two whole fits is not. Seeding
compares fastem's greedy k-means++ with ``sklearn.cluster.kmeans_plusplus``; the default fit
is each library's ``KMeans(k, max_iter=5, n_init=1, random_state=0)``. The asv suite holds the
same measurements for commit-to-commit tracking; this script prints a markdown table.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best_of  # noqa: E402

from fastem import KMeans  # noqa: E402
from fastem.models.kmeans import KMeansModel, kmeans_plusplus  # noqa: E402
from fastem.sources import ArraySource  # noqa: E402

try:
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_limits
    N_THREADS = _openmp_effective_n_threads()
except ImportError as exc:  # pragma: no cover
    raise SystemExit(f"scikit-learn is needed for the comparison: {exc}")


def blobs(n, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-8, 8, size=(16, d))
    X = rng.standard_normal((n, d)) * 2.0 + centers[rng.integers(16, size=n)]
    return X.astype(dtype)


def per_iteration(X, k, rounds=3, block=6):
    init = X[:: max(1, len(X) // k)][:k].copy()
    w = np.ones(len(X), dtype=X.dtype)
    w64 = w.astype(np.float64)
    source = ArraySource(X, w64)
    model = KMeansModel(source, k, init)
    state = {"ours": model.initialize(source, None), "old": init.copy(),
             "new": np.empty_like(init)}
    sk_weight, sk_shift = np.empty(k, X.dtype), np.empty(k, X.dtype)
    sk_labels = np.full(len(X), -1, dtype=np.int32)

    def ours():
        stats = model.e_step(source, state["ours"])
        state["ours"] = model.m_step(source, state["ours"], stats)

    def theirs():
        # as scikit-learn's own Lloyd loop does: BLAS single-threaded inside its OpenMP loop
        with threadpool_limits(limits=1, user_api="blas"):
            lloyd_iter_chunked_dense(X, w, state["old"], state["new"], sk_weight, sk_labels,
                                     sk_shift, N_THREADS)
        state["old"], state["new"] = state["new"], state["old"]

    times = {ours: [], theirs: []}
    for _ in range(rounds):
        for step in (ours, theirs):
            step()  # not timed: the other library's OpenMP threads may still be spinning
            for _ in range(block):
                t0 = time.perf_counter()
                step()
                times[step].append(time.perf_counter() - t0)
    return float(np.median(times[ours])), float(np.median(times[theirs]))


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
