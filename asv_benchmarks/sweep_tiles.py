"""Single-thread GFLOP/s of the nearest-centre search for candidate SIMD tiles.

    NUMBA_NUM_THREADS=1 python asv_benchmarks/sweep_tiles.py 6x2x32,4x3x32,8x1x32
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= NUMBA_NUM_THREADS=1 \\
        python asv_benchmarks/sweep_tiles.py 6x2x32,4x2x32      # AVX2 code on any AVX2+ host

Each argument is rows x vectors x vector bytes (``fastem.kernels._target.Tile``). For each tile
the search alone (no statistics) runs over n rows for (d, k) = (32, 64), (8, 8) and
(256, 256), float64 and float32; printed: 2 n d k / median time of 5 passes. This is the
measurement behind the rows of ``_target.TILE_TABLE``; on a shared VM repeat it, the medians
move by up to ~30%.
"""
import sys
import time

import numpy as np
from numba import njit

from fastem.kernels._simd import make_tile_kernel
from fastem.kernels._target import Tile, describe
from fastem.kernels.distances import search_table

CASES = [(100_000, 32, 64), (100_000, 8, 8), (20_000, 256, 256)]


def sweep(tile_shape):
    tile = make_tile_kernel(tile_shape, "argmin")
    rows = tile_shape.rows

    @njit
    def search(X, ct, half_norms, out):
        n = X.shape[0]
        for i in range(0, n, rows):
            tile(X, i, n - 1, ct, half_norms, out, 0)

    results = []
    for n, d, k in CASES:
        for dtype in (np.float64, np.float32):
            X = np.random.default_rng(0).standard_normal((n, d)).astype(dtype)
            width = tile_shape.vectors * tile_shape.vector_bytes // X.itemsize
            ct, half_norms = search_table(X, X[:k].copy(), 0, width)
            out = np.empty(n, np.int32)
            search(X, ct, half_norms, out)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                search(X, ct, half_norms, out)
                times.append(time.perf_counter() - t0)
            gflops = 2 * n * d * k / np.median(times) / 1e9
            results.append(f"d={d} k={k} {np.dtype(dtype).name} {gflops:5.1f}")
    return results


if __name__ == "__main__":
    print(describe())
    for spec in sys.argv[1].split(","):
        shape = Tile(*map(int, spec.split("x")))
        print(f"{spec}: " + " | ".join(sweep(shape)), flush=True)
