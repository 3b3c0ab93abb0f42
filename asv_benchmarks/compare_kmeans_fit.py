"""Whole KMeans fits and k-means++ seeding, fastem vs scikit-learn in ONE process (issue 12).

    python asv_benchmarks/compare_kmeans_fit.py --fit-repeat 1  # every row (~20 min, 2 cores)
    python asv_benchmarks/compare_kmeans_fit.py --quick         # n / 10, one repeat
    python asv_benchmarks/compare_kmeans_fit.py --rows 0 1 --dtypes float64 --repeat 3
    python asv_benchmarks/compare_kmeans_fit.py --shapes 61035:512:64 --parts fit  # any n:d:k

* **fit to convergence**: both libraries from the same initial centres (``init=`` the same
  k rows, ``n_init=1``, default ``tol=1e-4``, ``max_iter=300``); fastem's default
  ``algorithm='auto'`` and its ``'lloyd'`` against the best of scikit-learn's ``'lloyd'`` and
  ``'elkan'``. Both run the same iterations (exact methods, same stopping rule): the script
  prints both ``n_iter_`` values.
* **seeding**: greedy k-means++ (``2 + ln k`` candidates per centre), fastem's
  ``kmeans_plusplus`` against ``sklearn.cluster.kmeans_plusplus``.
* **default fit**: each library's ``KMeans(k, n_init=1, random_state=0)``: seeding plus
  convergence with its own defaults.

Medians of ``--repeat`` runs, the libraries alternating (0.2 s pause before each call, so
the other library's spin-waiting threads are idle); the first fastem call on small data
compiles the kernels outside the timings. Data: ``common.make_data`` (16 overlapping
unit-variance Gaussian blobs), or a TF-IDF-like CSR matrix for the sparse row.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_name, init_centers, make_data, make_sparse_data  # noqa: E402

from fastem import KMeans  # noqa: E402
from fastem.models.kmeans import kmeans_plusplus  # noqa: E402

try:
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus
except ImportError as exc:  # pragma: no cover
    raise SystemExit(f"scikit-learn is needed for the comparison: {exc}")

#: (n, d, k) of the issue's table, then the sparse row: CSR with 0.5% density
ROWS = [(1_000_000, 8, 8), (1_000_000, 32, 64), (200_000, 128, 256), (100_000, 64, 1024),
        (100_000, 20_000, 64)]
SPARSE_ROW, DENSITY = 4, 0.005


def timed(fn):
    time.sleep(0.2)  # let the other library's spinning OpenMP / BLAS threads go idle
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_times(fns, repeat):
    """Median seconds of each function (and its last result), calls alternating."""
    times = {name: [] for name in fns}
    results = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t, results[name] = timed(fn)
            times[name].append(t)
    return {name: float(np.median(t)) for name, t in times.items()}, results


def fit_row(X, k, repeat):
    init = init_centers(X, k)
    fns = {
        "fastem auto": lambda: KMeans(k, init=init, n_init=1).fit(X),
        "fastem lloyd": lambda: KMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X),
        "sklearn lloyd": lambda: SklearnKMeans(k, init=init, n_init=1,
                                               algorithm="lloyd").fit(X),
        "sklearn elkan": lambda: SklearnKMeans(k, init=init, n_init=1,
                                               algorithm="elkan").fit(X),
    }
    return median_times(fns, repeat)


def seeding_row(X, k, repeat):
    fns = {
        "fastem": lambda: kmeans_plusplus(X, None, k, np.random.RandomState(0)),
        "sklearn": lambda: sklearn_kmeans_plusplus(X, k, random_state=0),
    }
    return median_times(fns, repeat)[0]


def default_row(X, k, repeat):
    fns = {
        "fastem": lambda: KMeans(k, n_init=1, random_state=0).fit(X),
        "sklearn": lambda: SklearnKMeans(k, n_init=1, random_state=0).fit(X),
    }
    return median_times(fns, repeat)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n / 10 and one repeat")
    parser.add_argument("--rows", type=int, nargs="*", help="indices into ROWS")
    parser.add_argument("--shapes", nargs="*", default=[], metavar="N:D:K",
                        help="dense shapes instead of ROWS (e.g. a shape sweep's cells)")
    parser.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fit-repeat", type=int, default=None,
                        help="repeats of the whole fits (to convergence, default) (default: --repeat)")
    parser.add_argument("--parts", nargs="*", default=["fit", "seeding", "default"])
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print(f"CPU: {cpu_name()}; repeat {repeat}; medians in seconds\n")
    warm = make_data(2000, 16, np.float64)
    for dtype in args.dtypes:  # compile every method the rows run outside the timings
        sparse = make_sparse_data(2000, 500, 0.02, dtype)
        for algorithm in ("lloyd", "hamerly", "elkan"):
            KMeans(64, n_init=1, random_state=0, algorithm=algorithm).fit(sparse)
        kmeans_plusplus(sparse, None, 8, np.random.RandomState(0))
        for algorithm in ("lloyd", "hamerly", "yinyang"):
            KMeans(64, n_init=1, random_state=0, algorithm=algorithm).fit(warm.astype(dtype))
        kmeans_plusplus(warm.astype(dtype), None, 8, np.random.RandomState(0))
    print("| data | dtype | part | fastem | fastem lloyd | scikit-learn (best) | ratio | "
          "n_iter (fastem / sklearn) |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    shapes = [tuple(int(v) for v in shape.split(":")) for shape in args.shapes]
    rows = ([ROWS[i] for i in args.rows] if args.rows is not None else
            [] if shapes else list(ROWS)) + shapes
    for n, d, k in rows:
        if args.quick:
            n //= 10
        for dtype in args.dtypes:
            if (n, d, k) == ROWS[SPARSE_ROW]:
                X = make_sparse_data(n, d, DENSITY, dtype)
                label = f"CSR n={n:,} d={d:,} density {DENSITY:.1%} k={k}"
            else:
                X = make_data(n, d, dtype)
                label = f"n={n:,} d={d} k={k}"
            if "fit" in args.parts:
                t, fits = fit_row(X, k, args.fit_repeat or repeat)
                peer = min(t["sklearn lloyd"], t["sklearn elkan"])
                which = "lloyd" if t["sklearn lloyd"] <= t["sklearn elkan"] else "elkan"
                print(f"| {label} | {dtype} | fit to convergence | {t['fastem auto']:.3f} | "
                      f"{t['fastem lloyd']:.3f} | {peer:.3f} ({which}) | "
                      f"{peer / t['fastem auto']:.2f}x | {fits['fastem auto'].n_iter_} / "
                      f"{fits['sklearn lloyd'].n_iter_} |", flush=True)
            if "seeding" in args.parts:
                t = seeding_row(X, k, repeat)
                print(f"| {label} | {dtype} | k-means++ seeding | {t['fastem']:.3f} | | "
                      f"{t['sklearn']:.3f} | {t['sklearn'] / t['fastem']:.2f}x | |", flush=True)
            if "default" in args.parts:
                t = default_row(X, k, args.fit_repeat or repeat)
                print(f"| {label} | {dtype} | default fit | {t['fastem']:.3f} | | "
                      f"{t['sklearn']:.3f} | {t['sklearn'] / t['fastem']:.2f}x | |", flush=True)


if __name__ == "__main__":
    main()
