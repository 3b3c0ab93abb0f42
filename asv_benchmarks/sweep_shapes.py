"""Shape sweep, fastem vs scikit-learn per iteration in ONE process (issue 8).

    python asv_benchmarks/sweep_shapes.py                    # both grids, both dtypes
    python asv_benchmarks/sweep_shapes.py --models kmeans --dtypes float32
    python asv_benchmarks/sweep_shapes.py --quick            # a tenth of the work per point
    python asv_benchmarks/sweep_shapes.py --models full --ds 256 512 --dtypes float64

* **KMeans**: d in {2, 8, 32, 128, 512, 1024} x k in {2, 8, 64, 256, 1024}; one Lloyd
  iteration of each library from the same initial centres, exactly as
  ``compare_kmeans.py`` measures it (fastem's fused E+M step against scikit-learn's
  ``lloyd_iter_chunked_dense`` under its BLAS limit; medians of single iterations).
* **GaussianMixture** full and diag: d in {2, 16, 64, 256, 512} x k in {2, 16, 64}; seconds
  per EM iteration as ``compare_gmm.py`` measures them (``[t(3 iterations) - t(1)] / 2``
  from the same weights, means and precisions).

n is chosen per point so that one iteration is a fixed amount of arithmetic (``--flops``:
``2 n k d`` for KMeans; ``--gmm-flops``: ``2 n k d^2`` for a full and ``6 n k d`` for a diag
mixture, smaller since scikit-learn's full EM runs at a few GFLOP/s), between
2,048 rows and 1,000,000, with X at most ``--max-mb`` MB. Prints one markdown table per
model: the speed-up (scikit-learn's time / fastem's) per (d, k) and dtype, and the CPU.
"""
import argparse
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from common import cpu_name  # noqa: E402
from compare_gmm import seconds_per_iteration  # noqa: E402
from compare_kmeans import blobs, per_iteration  # noqa: E402

from asv_benchmarks.common import make_anisotropic_data  # noqa: E402

KMEANS_D = (2, 8, 32, 128, 512, 1024)
KMEANS_K = (2, 8, 64, 256, 1024)
GMM_D = (2, 16, 64, 256, 512)
GMM_K = (2, 16, 64)
MIN_ROWS, MAX_ROWS = 2_048, 1_000_000


def rows_for(work_per_row, d, itemsize, flops, max_mb):
    n = int(flops / work_per_row)
    n = min(n, int(max_mb * 2**20 / (d * itemsize)))
    return max(MIN_ROWS, min(MAX_ROWS, n))


def kmeans_point(d, k, dtype, args):
    n = rows_for(2 * k * d, d, np.dtype(dtype).itemsize, args.flops, args.max_mb)
    n = max(n, 4 * k)
    X = blobs(n, d, dtype)
    ours, theirs = per_iteration(X, k, rounds=args.rounds, block=args.block)
    return n, ours, theirs


def gmm_point(covariance_type, d, k, dtype, args):
    work = 2 * k * d * d if covariance_type == "full" else 6 * k * d
    n = max(rows_for(work, d, np.dtype(dtype).itemsize, args.gmm_flops, args.max_mb), 4 * k)
    X = make_anisotropic_data(n, d, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = seconds_per_iteration("fastem", X, k, covariance_type, args.repeats)
        theirs = seconds_per_iteration("sklearn", X, k, covariance_type, args.repeats)
    return n, ours, theirs


def table(title, ds, ks, dtypes, measure):
    print(f"\n**{title}** (speed-up = scikit-learn's time / fastem's per iteration; n rows; "
          f"> 1: fastem faster)\n", flush=True)
    head = " | ".join(f"k={k} {np.dtype(t).name}" for k in ks for t in dtypes)
    print(f"| d | {head} |")
    print("|---:|" + "---:|" * (len(ks) * len(dtypes)), flush=True)
    worst = None
    for d in ds:
        cells = []
        for k in ks:
            for dtype in dtypes:
                try:
                    n, ours, theirs = measure(d, k, dtype)
                except (ValueError, np.linalg.LinAlgError) as exc:
                    # e.g. scikit-learn's "ill-defined empirical covariance" in float32
                    cells.append(f"failed: {type(exc).__name__}: {str(exc)[:60]}")
                    continue
                ratio = theirs / ours
                worst = ratio if worst is None else min(worst, ratio)
                cells.append(f"{ratio:.2f}x ({ours * 1e3:.0f} ms, n={n:,})")
        print(f"| {d} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nlowest speed-up: {worst:.2f}x" if worst else "", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["kmeans", "full", "diag"])
    parser.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    parser.add_argument("--flops", type=float, default=4e9,
                        help="arithmetic per iteration that sets n (default 4e9)")
    parser.add_argument("--gmm-flops", type=float, default=1e9,
                        help="the same for the mixtures (default 1e9)")
    parser.add_argument("--max-mb", type=float, default=256, help="largest X in MB")
    parser.add_argument("--rounds", type=int, default=2, help="KMeans: alternating rounds")
    parser.add_argument("--block", type=int, default=4, help="KMeans: iterations per round")
    parser.add_argument("--repeats", type=int, default=3,
                        help="GMM: fit differences (median; one is noise on a VM)")
    parser.add_argument("--quick", action="store_true", help="--flops and --gmm-flops / 10")
    parser.add_argument("--ds", nargs="*", type=int, help="only these d of the grids")
    parser.add_argument("--ks", nargs="*", type=int, help="only these k of the grids")
    args = parser.parse_args(argv)
    if args.quick:
        args.flops /= 10
        args.gmm_flops /= 10
    dtypes = [np.dtype(t).type for t in args.dtypes]
    from fastem.kernels._target import describe
    print(f"CPU: {cpu_name()}; fastem: {describe()}; --flops {args.flops:g}, --gmm-flops "
          f"{args.gmm_flops:g} per iteration", flush=True)
    def pick(grid, chosen):
        return tuple(v for v in grid if chosen is None or v in chosen)

    if "kmeans" in args.models:
        table("KMeans, one Lloyd iteration", pick(KMEANS_D, args.ds), pick(KMEANS_K, args.ks),
              dtypes, lambda d, k, t: kmeans_point(d, k, t, args))
    for ct in ("full", "diag"):
        if ct in args.models:
            table(f"GaussianMixture {ct}, one EM iteration", pick(GMM_D, args.ds),
                  pick(GMM_K, args.ks), dtypes,
                  lambda d, k, t, ct=ct: gmm_point(ct, d, k, t, args))


if __name__ == "__main__":
    main()
