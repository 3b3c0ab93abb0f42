"""FLOP efficiency of the full-covariance E+M pass against this machine's dgemm (issue 8).

    python asv_benchmarks/full_pass_efficiency.py                      # n=1e6, d=16, k=16
    python asv_benchmarks/full_pass_efficiency.py --n 16384 --d 512 --k 8

Times ``gaussian_estep_full`` alone (log-densities, responsibilities and the k scatter
statistics in one pass; median of ``--repeats`` calls) and a 2-thread-default NumPy dgemm
(n = 4000) in the same process, and counts ``2 n k d(d+1)/2 x 2`` flops for the pass (a
triangular quadratic form and a symmetric scatter, each d(d+1)/2 multiply-adds per row and
component). For the AVX2 class on an AVX-512 host run it with ``NUMBA_CPU_NAME=haswell
NUMBA_CPU_FEATURES=`` and a fresh ``NUMBA_CACHE_DIR``; the dgemm is then still NumPy's own
(AVX-512) kernel unless OpenBLAS is told otherwise in that shell.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from common import cpu_name  # noqa: E402

from fastem.kernels import gaussian_estep_full, gaussian_log_pdf_full  # noqa: E402


def median_seconds(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    n, d, k = args.n, args.d, args.k
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    means = rng.standard_normal((k, d))
    # upper-triangular precision factors, as scikit-learn's from a covariance
    prec_chol = np.triu(np.eye(d) + 0.1 * rng.standard_normal((k, d, d)))
    const, w = np.zeros(k), np.ones(n)
    nk, s1, s2 = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
    out = np.empty((n, k))
    t_pdf = median_seconds(lambda: gaussian_log_pdf_full(X, means, prec_chol, const, out),
                           args.repeats)
    t_pass = median_seconds(
        lambda: gaussian_estep_full(X, w, means, prec_chol, const, means, nk, s1, s2),
        args.repeats)
    flops = 2 * n * k * d * (d + 1) / 2 * 2
    a, b = rng.standard_normal((4000, 4000)), rng.standard_normal((4000, 4000))
    t_gemm = median_seconds(lambda: a @ b, 3)
    gemm = 2 * 4000 ** 3 / t_gemm / 1e9
    print(f"CPU: {cpu_name()}")
    print(f"n={n} d={d} k={k}: log-densities alone {t_pdf * 1e3:.1f} ms; E+M pass "
          f"{t_pass * 1e3:.1f} ms = {flops / t_pass / 1e9:.1f} GFLOP/s; dgemm {gemm:.0f} "
          f"GFLOP/s; pass / dgemm = {flops / t_pass / 1e9 / gemm:.0%}")


if __name__ == "__main__":
    main()
