"""The one table of machine-dependent choices: SIMD tiles per CPU class.

Numba compiles for one *target* CPU: the host, or ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``
when they are set (note: ``NUMBA_CPU_NAME`` alone keeps the *host's* feature flags, so on an
AVX-512 host ``NUMBA_CPU_NAME=haswell`` still emits AVX-512 code; add an empty
``NUMBA_CPU_FEATURES=`` to get the named CPU's own features, e.g.
``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=`` for AVX2). This module asks LLVM, with exactly
the CPU name and features Numba's code generator will use, how wide its vector registers are
and whether it has a fused multiply-add, and from that picks a *class* and its row of
:data:`TILE_TABLE`. Every SIMD building block in ``_simd.py`` and ``bernoulli.py`` and every
padding width in the kernels comes from :data:`TILES`; no kernel hard-codes a width.

A tile ``(rows, vectors, vector_bytes)`` keeps ``rows x vectors`` accumulator registers,
``vectors`` centre/factor registers and one broadcast live in the innermost loop (one
broadcast-FMA per feature and accumulator), so ``rows * vectors + vectors + 1`` must fit the
register file, and ``rows * vectors`` should cover FMA latency x FMA ports (8-10 on current
x86 cores) to keep both FMA pipes busy.

Cache safety: the detected class is a function of the CPU name and features, which Numba
already puts in every cache key; the class in use (also when forced with
``FASTEM_SIMD_CLASS``) and a hash of this table and every other kernel source are added to the
key by ``_jit``.
"""
import os
import re
from collections import namedtuple

import llvmlite.binding as ll
from numba.core import config

#: One SIMD tile: ``rows`` rows x ``vectors`` registers of ``vector_bytes`` bytes each.
Tile = namedtuple("Tile", "rows vectors vector_bytes")
#: The search for a few centres with the lanes along the features (``_simd.make_row_dot_kernel``):
#: ``rows`` rows x ``centers`` centres of accumulators, ``vector_bytes`` each.
RowDot = namedtuple("RowDot", "rows centers vector_bytes")

#: Per CPU class (vector register bytes, number of vector registers):
#:
#: * ``search``: three argmin / sum-of-squares tiles ordered by width (bytes of centres or
#:   factor columns handled per pass): the narrowest that covers k is used, the last one for
#:   anything wider (nearest-centre search, Gaussian full quadratic forms);
#: * ``product``: the tile of the accumulating matrix products (Gaussian statistics, diagonal
#:   quadratic forms; float64 only);
#: * ``lanes``: float64 lanes of the Bernoulli accumulators (components are padded to a
#:   multiple of it);
#: * ``helper_lanes``, ``helper_chains``: float64 lanes and independent accumulators of the
#:   short-vector helpers (``axpy``, ``dot``, ``sqdist``, ``axpy_sqdist``: k-means++
#:   distances, a Lloyd row's float64 distance and centre sums, the M-step's Cholesky inner
#:   products). avx512: **4 lanes x 2 chains** (ymm). One zmm chain ends every distance
#:   in an ordered sum of 8 lanes (8 dependent adds); 4 lanes halve that, two chains keep 8
#:   terms per step for long rows. Intel Xeon VM (AVX-512), fastem alone, two runs each,
#:   8 x 1 / 4 x 1 / **4 x 2** / 4 x 4, ms: k-means++ 1e6 x 32, k=64 float64 1741-1794 /
#:   1377-1414 / 1422-1443 / 1494, float32 1496-1565 / 1274-1295 / 1385-1389 / 1294; Lloyd
#:   step float32 1e6 x 8, k=8 6.7-7.3 / 5.9 / 6.0-6.3 / 5.7, 1e6 x 3, k=8 6.1-6.6 /
#:   5.5-5.6 / 5.5-5.9 / 5.8, 65536 x 512, k=2 float64 12.6-13.1 / 14.4-15.1 / 13.8-14.0 /
#:   13.6 (float32 8.1-8.6 / 10.4-11.6 / 8.4-8.8 / 8.3); Cholesky factors d=512 k=8 47-53 /
#:   58-61 / 48-49 / 44, d=128 k=16 3.1 / 2.5 / 2.5 / 2.6; other Lloyd shapes (d=32 k=64,
#:   d=128 k=8, d=256 k=256) within noise. avx2: **4 lanes x 2 chains**. On the same
#:   host's AVX2 code 2 chains measured mixed (Cholesky d=512 58 -> 48 ms, float32
#:   k-means++ 1.25 -> 1.35 s); on a real AVX2 CPU (Zen 3 VM, one chain of FMAs is 4
#:   cycles a vector, 256 vectors a row at d=1024) alternating processes, 4 x 1 / 4 x 2 /
#:   4 x 4, ms: Lloyd step on 256 MB float32 d=1024 k=2 18.2-22.2 / 14.1-17.8 / 16.2-19.8,
#:   k=8 21.3-22.0 / 18.0-18.7, d=512 k=8 25.3-27.6 / 22.1-24.4, d=128 k=2 20.9-23.3 /
#:   18.6-20.8 / 18.7-19.6; float64 d=1024 k=2 14.1-16.6 / 12.5-13.7 / 11.6-12.1; Cholesky
#:   factors d=512 k=8 47-69 / 39-40 / 39-40, d=256 k=64 53-55 / 47-54 / 48-49. The
#:   cost, on short rows: k-means++ 1e6 x 32, k=64 (32 terms a distance) four alternating
#:   pairs float64 1228-1411 / 1269-1428, float32 1010-1152 / 1108-1244 (3-7%); Lloyd step
#:   1e6 x 8 float32, k=8 6.3-6.5 / 7.2-7.9; d=32 Lloyd within noise. One chain below 128
#:   terms (a branch on the length in every helper) did not win those back (k-means++
#:   float32 1211-1215 against 1010-1111) and doubled the helpers' code, so it is not in.
#:   4 x 4 measured no better than 4 x 2. sse, neon, portable: 2 x 1 (untested).
#: * deep (the k-means search over at least ``DEEP_MIN_BYTES`` of centres; None: the widest
#:   search tile): avx512 **12 x 2 x 64 B** (24 accumulators + 2 + 1 of 32 registers). Intel
#:   Xeon VM, ``sweep_tiles.py``'s measure (one thread, search alone, GFLOP/s, two runs),
#:   8 x 2 x 64 B / 12 x 2 x 64 B, float64 | float32: (d, k) = (1024, 1024) 58 / 75-82 |
#:   118 / 154-170; (512, 1024) 59 / 78-83 | 144-153 / 179-186; (1024, 256) 68-74 / 82-86 |
#:   203-214 / 202-222; (256, 256) 93 / 95-110 | 178-204 / 197-213; (128, 128) 83-90 /
#:   96-99 | 157-178 / 179-184; below the threshold (32, 1024) 80-97 / 91-93 | 155-193 /
#:   175-188, (64, 32) 63 / 50 | 106-118 / 109-111, (32, 64) 75-79 / 77-78 | 120 / 117.
#:   16 x 1 and 6 x 4 x 64 B were slower than 12 x 2 at every large shape. avx2: **6 x 2 x
#:   32 B** (its wide tile, in panel chunks; the same 12 + 2 + 1 registers). Zen 3 VM (real
#:   AVX2), Lloyd step on ``sweep_shapes.py``'s rows, 2 threads, five alternating processes,
#:   wide tile / deep, ms: float64 (screened: its float32 search takes the chunks) (d, k) =
#:   (1024, 1024) 84-103 / 68-77, (1024, 64) 44.5-48.4 / 41.9-45.3, (512, 256) 32.8-36.4 /
#:   30.2-31.8; float32 within noise: (1024, 1024) 51-61 / 52-62, (512, 1024) 25.3-26.9 /
#:   25.5-27.0, (1024, 256) 25.5-27.6 / 26.3-28.6, (128, 1024) 24.8-25.6 / 24.2-28.5. Row
#:   groups of 128 KiB were slower, 256 KiB with 128 KiB chunks no better (three rounds).
#:
#: Why these tiles (``asv_benchmarks/sweep_tiles.py``): single-thread GFLOP/s of the
#: nearest-centre search alone, medians of 5 passes, on a 2-core Intel Xeon (Emerald Rapids)
#: VM whose timings wander by +-30%; AVX2 =
#: the same host with ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=`` (real AVX2 code). Columns:
#: (d=32, k=64) f64 / f32, (d=8, k=8) f64 / f32, (d=256, k=256) f64 / f32.
#:
#: * avx512 (64 B x 32 registers), wide tile: 4 x 2 x 64 B 48 / 66-80, 8 / 4-6, 56-59 / 80-116;
#:   **8 x 2 x 64 B** 48 / 89, 10 / 6, 71 / 101; 6 x 4 x 64 B 55 / 80, 6 / 3, 76 / 79;
#:   12 x 2 x 64 B 46 / 73, 8 / 5, 72 / 145. 8 x 2 (16 accumulators + 2 + 1 registers) is
#:   best or near it everywhere. For k <= 8 (f64) / 16 (f32) one vector of centres: 8 x 1.
#: * avx2 (32 B x 16 registers): AVX-512's 4 x 2 x 64 B tile needs 16 ymm accumulators + 4
#:   centre registers and spills (Lloyd k=64 float32 ran at 0.48x scikit-learn).
#:   4 x 2 x 32 B 15-23 / 48, 9 / 6, 20-29 / 53-56; **6 x 2 x 32 B** 23-32 / 50-65, 11 / 9,
#:   31-40 / 71-76; 4 x 3 x 32 B 24-30 / 47-56, 8-9 / 6-7, 31-39 / 63-66; 3 x 4 x 32 B
#:   26 / 50, 8 / 7, 22 / 46; 8 x 1 x 32 B 25 / 55, 12 / 10, 25 / 67. 6 x 2 (12 + 2 + 1
#:   registers) wins or ties at every shape. For k <= 4 (f64) / 8 (f32) one vector of
#:   centres: 8 x 1 measured best at d=8 (above), but from d=32 on LLVM unrolls its feature
#:   loop by two and keeps two of the eight accumulators on the stack (a store-load in the
#:   FMA chain); **6 x 1** does not spill. Zen 3 VM (real AVX2), one thread, ns per row and
#:   feature with X in cache, 8 x 1 / 6 x 1: f32 d=32 0.51 / 0.38, d=128 0.41 / 0.28, d=512
#:   0.37 / 0.23; f64 d=32 0.48 / 0.37, d=128 0.41 / 0.29, d=512 0.38 / 0.24; d=8 1.01 / 0.87
#:   (4 x 1 and 12 x 1 were no better: 0.33-0.37 and 0.21-0.50 at d=512).
#: * neon (16 B x 32) and sse (16 B x 16): AVX2's shapes in 16 B vectors (NEON has registers
#:   for more; untested for lack of hardware, so the AVX2-proven shapes are used).
#: * portable (anything else, e.g. a non-x86, non-ARM CPU): 16 B vectors, 4-row tiles.
#: * product (scatter statistics; rows must divide ``BLOCK_ROWS``): 4 x 2 vectors.
#: * few (the k-means search for at most ``centers`` centres from ``FEW_MIN_FEATURES``
#:   features on, lanes along the features; None: the tiles serve every k). With k = 2 the
#:   narrow tile fills 2 of its 4 (float64) or 8 (float32) lanes and does one broadcast-FMA
#:   per row and feature; 4 rows x 2 centres of feature vectors need K d / L FMAs per row (8
#:   accumulators + 4 rows + 2 centres = 14 ymm registers). Zen 3 VM (AVX2), Lloyd iteration
#:   on 2 threads (``sweep_shapes.py``'s rows, 1e6 rows up to 256 MB of X), narrow tile /
#:   **4 x 2 x 32 B**, ms: float32 k=2 d=2 8.6 / 7.5, d=4 6.7 / 5.7, d=8 8.0 / 6.2, d=16
#:   10.0 / 8.4, d=32 13.7 / 11.8, d=512 28.9 / 24.1, d=1024 26.1 / 21.7, k=1 d=512 27.4 /
#:   23.8; float64 k=2 d=1 8.3 / 9.3, d=2 7.5 / 7.5, d=8 6.9 / 6.7, d=16 10.2 / 9.3, d=512
#:   16.2 / 15.5. avx512: **8 x 2 x 64 B** (16 zmm accumulators + 8 rows + 2 centres = 26
#:   of 32 registers). Intel Xeon VM (AVX-512; KVM reports family 6 model 167), same
#:   measurement, two runs each, narrow tile / 4 x 2 x 64 B / 8 x 2 x 64 B, ms: float32 k=2
#:   d=2 8.2 / 7.4-8.0 / 7.1-7.7, d=8 7.9 / 6.8-7.0 / 5.5-6.3, d=32 12.7 / 12.3-12.5 /
#:   10.5-11.3, d=128 26.4 / 17.7-18.8 / 19.8-20.2, d=512 25.3 / 17.7-18.4 / 17.3-17.6,
#:   d=1024 18.3 / 17.2-17.3 / 16.3-16.7; float64 k=2 d=2 6.0 / 6.6-6.9 / 7.0-7.2, d=8 6.9
#:   / 6.3-7.1 / 6.1-6.2, d=32 18.0 / 17.5-17.9 / 15.3-15.4, d=128 20.6 / 15.9-16.5 /
#:   15.3-15.6, d=512 14.6 / 13.4-14.0 / 13.1-13.2, d=1024 14.2 / 13.0-13.5 / 12.8-13.1
#:   (d=2 float64 is the one cell the narrow tile wins, by 15%). 4 x 2 x 32 B (the AVX2
#:   shape) was between the two in a first run. Not measured on neon and sse, which keep
#:   their tiles.
TILE_TABLE = {
    "avx512": dict(search=(Tile(8, 1, 32), Tile(8, 1, 64), Tile(8, 2, 64)),
                   product=Tile(4, 2, 64), lanes=8, helper_lanes=4, helper_chains=2,
                   few=RowDot(8, 2, 64), deep=Tile(12, 2, 64)),
    "avx2": dict(search=(Tile(6, 1, 32), Tile(6, 2, 32), Tile(6, 2, 32)),
                 product=Tile(4, 2, 32), lanes=4, helper_lanes=4, helper_chains=2,
                 few=RowDot(4, 2, 32), deep=Tile(6, 2, 32)),
    "neon": dict(search=(Tile(6, 1, 16), Tile(6, 2, 16), Tile(6, 2, 16)),
                 product=Tile(4, 2, 16), lanes=2, helper_lanes=2, helper_chains=1, few=None,
                 deep=None),
    "sse": dict(search=(Tile(6, 1, 16), Tile(6, 2, 16), Tile(6, 2, 16)),
                product=Tile(4, 2, 16), lanes=2, helper_lanes=2, helper_chains=1, few=None,
                deep=None),
    "portable": dict(search=(Tile(4, 1, 16), Tile(4, 2, 16), Tile(4, 2, 16)),
                     product=Tile(4, 2, 16), lanes=2, helper_lanes=2, helper_chains=1,
                     few=None, deep=None),
}
#: The k-means search takes the class's ``deep`` tile instead of its widest from this many
#: bytes of centres (k d itemsize) on: a tile streams every centre panel for each of its
#: rows groups, and once the centres outgrow the L1 cache more rows per pass read them fewer
#: times (the Gaussian quadratic forms keep their tiles).
DEEP_MIN_BYTES = 256 * 1024
#: Rows of at most this many features take the Lloyd step's float64 distance and centre-sum
#: update (``_simd.axpy_sqdist_short``) compiled for their exact length: a switch on the
#: length, one straight-line copy per length, no loop set-up or tail branches; the same
#: operations, so the same bits. Zen 3 VM (AVX2), one thread, that update alone over 1e6
#: float32 rows, k=2, ns per row, any length / its own copy: d=1 4.3 / 2.4, d=2 5.0 / 2.9,
#: d=4 4.7 / 3.0, d=8 6.1 / 3.9, d=12 6.8 / 4.7, d=16 7.6 / 8.0, d=32 11.7 / 28.6 (LLVM's
#: fully unrolled body ran slower than the loop). Whole Lloyd steps, one thread, both
#: versions in one process taking turns (median of 10 rounds), ms: float32 d=2 k=2 44.8 /
#: 40.2, k=8 43.6 / 39.7; d=8 k=2 11.0 / 10.4, k=8 13.3 / 12.0; d=12 k=8 10.2 / 9.0;
#: float64 d=2 k=2 19.5 / 18.1, d=8 k=8 7.1 / 6.6. Longer rows keep a loop of their own
#: (``distances._lloyd_rows``): with the switch in their loop d=16, k=8 float32 ran 10%
#: slower. The copies cost compile time: a cold ``lloyd_step`` (float64) took 7.7-7.9 s
#: against 7.3-7.8 s without them (three alternating cold starts).
SHORT_ROW_FEATURES = 12
#: Fewest features for the ``few`` search (at d = 1 its masked vector and lane sums cost
#: more than the narrow tile's padding, measured above).
FEW_MIN_FEATURES = 2

#: When to go parallel: a parallel kernel called from Python on fewer rows than this runs on
#: the calling thread (``_jit.run_work_items``). Two 2048-row blocks: below that waking a
#: pool thread (~70 us measured on a 2-core VM) costs more than the work it could share
#: (a Lloyd step on 8,192 x 16, k=16: 239 us on one thread, 219 us on two). Not
#: CPU-class dependent.
PARALLEL_MIN_ROWS = 4096

#: A light pass (a few loads and flops per row: k-means++'s update from its kept lists) runs
#: on the calling thread alone below this many rows: a call on the pool costs ~50-70 us more
#: after an idle moment. Intel AVX-512 VM, 2 threads / 1 thread after a 1 ms pause, us: the
#: update from dense kept distances n=1e5 159 / 110, 3e5 373 / 308, 1e6 759 / 985, 3e6 1802
#: / 3227; the sampling's block sums (the same kind of pass) 81 / 37, 197 / 139, 566 / 510,
#: 1057 / 1606.
LIGHT_PASS_PARALLEL_MIN_ROWS = 1_000_000
#: Greedy k-means++ runs its per-step kernels on the calling thread below this many rows:
#: every step hands them to the pool and back, ~100 us with sleeping pool threads and ~10 us
#: with the spinning hand-off of ``_jit.hot_threads`` that the seeding now uses, about what
#: the second thread saves on fewer rows. Intel AVX-512 VM, whole float64 seedings with
#: ``hot_threads``, 2 threads / 1 thread, ms: (d, k) = (64, 1024) n = 4096 116 / 116, 8192
#: 163 / 197, 16384 268 / 349, 32768 456 / 625; (64, 256) 26 / 29, 38 / 53, 69 / 100, 116 /
#: 173; (8, 64) 11.4 / 6.8, 15.2 / 12.2, 20.6 / 21.7, 37.6 / 46.9; (128, 16) 9.3 / 4.5, 6.5
#: / 9.2, 10.2 / 15.6, 18.7 / 30.9. (With sleeping pool threads the break-even was 16,384:
#: (64, 1024) 8192 0.299 / 0.237 s, 16384 0.408 / 0.410 s.)
SEEDING_PARALLEL_MIN_ROWS = 8192

#: When the M-step factors its k d x d covariance matrices on several threads (components
#: split between them; ``models/gaussian.precision_cholesky``): from this many ``k d^3``
#: (factor and inverse: 2/3 k d^3 flops). Measured on the 2-core AVX-512 VM, one vs two
#: threads: k d^3 = 6.6e4 (k=16, d=16) 46 / 103 us; 5.2e5 (16, 32) 200 / 192 us; 2.1e6
#: (64, 32) 819 / 619 us; 1.7e7 (64, 64) 6.8 / 3.5 ms; 2.1e9 (16, 512) 516 / 263 ms.
PARALLEL_MIN_CHOLESKY_FLOPS = 1_000_000
#: When the M-step forms its k full covariance matrices on several threads
#: (``kernels.full_covariances`` per run of components): from this many k d^2 entries.
#: 2-core AVX-512 VM, one vs two threads: k d^2 = 65,536 (16, 64) 133 / 164 us; 2^20 (16,
#: 256) 1.93 / 1.20 ms, (4, 512) 1.84 / 1.14 ms; 1.7e7 (64, 512) 74 / 38 ms.
PARALLEL_MIN_COVARIANCE_ENTRIES = 2**20

#: Pruned k-means++ measures the pairs its test keeps on a float32 copy of float64 X first
#: (``models.kmeans.seeding_shadow``, ``distances.shadow_limit``) from this many features,
#: and uses the copy while at most one in ``SHADOW_ROWS_PER_EXACT`` of the rows walked so
#: far improved (a row that improves reads both copies). Intel AVX-512 VM, whole float64
#: seedings, fastem alone, no shadow / shadow, s: (n, d, k) = (1e5, 64, 1024) 1.18 / 1.04,
#: (2e5, 128, 256) 1.14 / 0.87, (3e5, 256, 64) 1.03 / 0.97, (2e5, 64, 256) 0.63 / 0.63;
#: below 64 features it lost: (1e6, 32, 64) 0.91 / 1.04, (1e6, 16, 64) 0.82 / 0.98,
#: (3e5, 48, 256) 0.84 / 0.88 (but (3e5, 32, 1024) 2.63 / 2.47). The ratio: 2, 4 and 8 within
#: noise of each other at those shapes (e.g. (2e5, 128, 256) 0.86 / 0.82 / 0.86); without it
#: (the copy for every kept pair) (3e5, 256, 64) lost, 1.03 -> 1.20 s, its first steps
#: improving a third of the rows.
SHADOW_MIN_FEATURES = 64
SHADOW_ROWS_PER_EXACT = 4

#: How many surviving rows ahead pruned k-means++ prefetches (``prefetch`` in _simd.py):
#: the rows left after the pruning test are scattered over X, where the hardware
#: prefetcher does not follow. Measured on the Zen 5 VM (AVX-512), whole float64 seedings,
#: without / with 8 rows ahead: (1e5, 64, 1024) 2.2-2.4 / 1.8-1.9 s; (1e6, 32, 64) and
#: (2e5, 128, 256) unchanged within noise. Other distances not tried.
PREFETCH_ROWS = 8
#: The sparse search (``csr_distances._nearest_row``) prefetches the centre-table row of the
#: non-zero this many ahead (its first ``CSR_PREFETCH_FLOATS`` entries): a row's non-zeros
#: pick table rows at random. Measured on the Intel AVX-512 VM, one Lloyd pass over CSR
#: n=1e5, d=20,000, 0.5% dense, 2 threads, without / with 4 x 64: k=64 float64 176-179 /
#: 144-150 ms, float32 104 / 86-101 ms; k=1024 float64 2.50 / 2.12-2.20 s, float32 1.71 /
#: 1.17-1.53 s; k=8 unchanged. 8 ahead measured the same, 128 floats no better. Elkan's
#: gathered scoring of a few centres (``bounds._csr_scores``) got 10-25% slower
#: with the same prefetches, so it has none.
CSR_PREFETCH_NONZEROS = 4
CSR_PREFETCH_FLOATS = 64
#: The nearest-centre search prefetches the rows two tiles ahead when one tile's rows fit in
#: this many bytes (a 4 KiB page: ``distances.prefetch_tile_ahead``). Its tiles read their
#: rows interleaved, feature by feature; rows that share a page defeat the hardware
#: prefetcher. Measured on the Zen 3 VM (AVX2), one thread, one search pass over 128 MB (6 x 1
#: narrow tile), without / with: float32 k=2 d=128 25.8 / 13.2 ms, k=8 d=128 21.1 / 12.3 ms,
#: k=16 d=128 29.2 / 16.3 ms; float64 k=2 d=32 13.9 / 7.2 ms, k=8 d=32 14.5 / 8.9 ms; k=64,
#: d=8 and d=512 unchanged within noise. Tiles over 4 KiB (d=128 float64: 6 KiB) gained
#: 0-10%, within this VM's noise, so they do not prefetch.
PREFETCH_TILE_BYTES = 4096
#: Rows of this many bytes, [low, high), are prefetched a whole search sub-block at a time,
#: in address order, before the tiles read them from memory (``distances.prefetch_sub_block``;
#: not the deep tile). Several such rows share a 4 KiB page and a tile of them (over the
#: 4 KiB above, so no per-tile prefetch) reads them feature by feature; the search ran at
#: about half the speed of a plain sweep over the same rows (one thread, d=128 k=8 float64:
#: sweep 18 ms, search 35 ms, and 9 ms of that search with X in L2). Intel AVX-512 VM, Lloyd
#: step on 256 MB of X, 2 threads, three alternating rounds, without / with, ms: d=128 k=8
#: float64 23.6-24.9 / 19.9-21.0, k=64 52.6-54.6 / 45.3-48.2, float32 52.0-53.5 / 47.8-50.0;
#: d=256 k=8 float32 28.5-33.2 / 24.0-25.2; d=64 k=8 float64 21.1-21.5 / 20.1-20.8; d=128
#: k=2 within noise. AVX2 class (haswell code): d=128 k=8 float64 23.5-25.3 / 20.4-20.8,
#: k=64 64.9-69.4 / 61.0-61.6; d=256 k=8 float32 29.6-33.8 / 27.1-27.8. Rows of 2 KiB lost
#: (d=256 k=2 float64 16.0-16.1 / 16.9-17.2, d=512 k=64 float32 46-49 / 47-53) and of 4 KiB
#: more (d=512 k=8 float64 16.0-16.3 / 19.7-21.0): each is its own page, which the hardware
#: follows.
#: Whole fits, 15 iterations on 128 MB: Lloyd d=128 k=64 float64 461-477 / 407-420 ms,
#: Hamerly 497-500 / 477-484 ms; Yinyang d=256 k=256 float32 1489-1510 / 1462-1497 ms (its
#: groups sweep a sub-block once; a sweep before every group's search lost 4%).
SWEEP_ROW_BYTES = (512, 2048)
#: Rows of this many bytes, [low, high), are prefetched one search sub-block ahead while a
#: pass uses the current sub-block's labels (the Lloyd step's float64 distances and centre
#: sums, the nearest-centre search's distances, the bounded methods' full pass): row i + sub
#: during row i's turn (``distances.prefetch_next_sub_block_row``; not the deep tile, whose
#: 512 KiB row groups fill L2). The search then finds its rows in L2 instead of waiting for
#: memory between its FMAs; without it one thread's search took 13.3 ms from memory and
#: 7.5 ms from L3 (d=512, k=8 float32, 60,000 rows). Zen 3 VM (AVX2), Lloyd step on 128 MB
#: of X, 2 threads, both versions in one process taking turns to go first (median of 6
#: rounds, each the best of 5), without / with, ms: float32 d=128 k=2 11.9 / 10.1, k=8
#: 15.2 / 13.8, k=64 33.1 / 31.6; d=256 k=8 14.3 / 9.9; d=512 k=8 11.2 / 10.2, k=64 37.7 /
#: 37.5; float64 d=64 k=8 10.9 / 8.5; d=128 k=8 10.2 / 8.5, k=64 21.1 / 21.1. Rows of 4 KiB
#: (each its own page, which the hardware prefetcher follows) were mixed: k=2 gained (d=1024
#: float32 8.8 / 8.1, d=512 float64 7.6 / 7.0), k=8 did not (11.6 / 11.9, 9.9 / 9.7) and
#: lost on 256 MB (d=1024 float32 20.5 / 22.2 ms), so they are left out. Shorter rows lost
#: too (one thread, 128 MB: d=2 k=2 float32 183-184 / 194-196 ms, d=64 k=8 18.2-18.9 /
#: 19.2-20.3 ms; several rows share a line, and the hardware prefetcher follows a row-order
#: pass).
NEXT_SUB_BLOCK_ROW_BYTES = (512, 4096)

#: The Lloyd step and the nearest-centre search use a row's label right after searching it
#: (distance in float64, centre sums): they search this many bytes of rows at a time
#: (``distances.search_sub_block_rows``) so that the second read hits the L2 cache (512 KiB
#: per core on Zen 3, 1-2 MiB on newer cores), not L3 or memory. Zen 3 VM, Lloyd step on 256
#: MB, 2 threads, whole 2048-row blocks / 128 KiB: float64 d=1024 k=2 21.4-22.8 / 16.0-16.3
#: ms, d=512 k=8 21.6-22.7 / 17.8-17.9 ms, float32 d=1024 k=2 29.5-30.4 / 26.0-27.3 ms;
#: k >= 64 and d <= 32 within noise (the search, not the second read, bounds those).
SEARCH_SUB_BLOCK_BYTES = 128 * 1024
#: The deep tile's search (``distances.deep_search``) takes rows this many bytes at a time
#: and runs each chunk of ``DEEP_PANEL_CHUNK_BYTES`` of centre panels over all their tiles,
#: so that the chunk is read from memory once per group instead of once per tile (a table
#: of k d = 1M float64, 8 MB, streamed past every 12 rows: ~30 GB/s of this VM's ~30 GB/s
#: on two threads). Both fit a 1 MiB L2 (Zen 4) with room. Intel Xeon VM (AVX-512), Lloyd
#: step on 4,096 rows, 2 threads, ms, per tile / 512 + 256 KiB, alternating processes: d=1024
#: k=1024 float64 86-94 / 68-70, float32 43-44 / 35-38; d=512 k=1024 float64 39-41 / 33;
#: d=1024 k=256 float64 18-19 / 17-18; d=128 k=1024 7.8-8.6 / 7.5-7.7; d=512 k=256 float32
#: 4.5-4.9 / 4.9. Groups of 1-2 MiB and chunks of 128-512 KiB within noise of these.
#: The bounded methods' top-2 search (full passes, Yinyang's groups) takes the same chunks
#: (``distances.deep_search`` with a gap). Whole fits, 15 iterations on 128 MB, 2 threads,
#: per tile / chunked, s: Hamerly d=1024 k=1024 float64 3.94-4.69 / 3.65-3.67, d=512
#: k=512 2.30-2.39 / 2.20-2.25; Elkan d=512 k=1024 float32 4.14-4.20 / 3.92-4.06; Yinyang
#: d=1024 k=1024 float64 (groups of 64 centres, 512 KB) 3.00-3.19 / 2.90-3.06.
DEEP_ROW_GROUP_BYTES = 512 * 1024
#: Screened search (``distances._screened_search``): a float64 k-means search first runs
#: in float32 (twice the lanes per vector) and keeps the labels its error bound certifies;
#: the rest (near ties) are searched again in float64 - the same labels bit for bit. Used
#: from SCREEN_MIN_CENTERS centres and SCREEN_MIN_WORK = k d on, for d in SCREEN_FEATURES
#: (up to 4096 the bound's higher-order terms stay within its 1%: d rho u32 <= 2^-10), and
#: while the table's terms stay below SCREEN_MAX_TERM (far from float32's overflow). Below,
#: the copy of each row to float32 costs more than the halved search saves. Zen 3 VM (avx2),
#: 2 threads, float64 Lloyd step, unscreened / screened, ms, three alternating runs
#: (blobs of ``compare_kmeans.py``): (n, d, k) = (1e6, 16, 32) 21-22 / 23-24; (3e5, 32,
#: 32) 11 / 11-16; (1e5, 64, 32) 7.6-8.2 / 6.4-6.9; (1e6, 16, 64) 35-39 / 30-33; (3e5, 32,
#: 64) 19-20 / 16-17; (1e5, 16, 256) 13-14 / 8.4-9.3; (1e6, 8, 64) 25-39 / 29-37; (3e5, 8,
#: 256) 26-41 / 21-28; (1e5, 8, 1024) 35-38 / 23-31; (1e6, 2, 64) 18 / 16-31; (30517, 1024,
#: 64) 60-68 / 52-60; (61035, 512, 64) 57-72 / 45-64; (15258, 512, 256) 52-93 / 36-40. The
#: float32 search also has to certify (the fraction searched again is ~1% at d = 128 and
#: ~5% at d = 1024, k = 1024 on those blobs).
SCREEN_MIN_CENTERS = 32
SCREEN_MIN_WORK = 1024
SCREEN_FEATURES = (8, 4096)
SCREEN_MAX_TERM = 2.0 ** 100
DEEP_PANEL_CHUNK_BYTES = 256 * 1024
#: The diagonal-covariance E-step and log-density take rows a sub-block at a time, from X
#: to their statistics, so that the sub-block's features [xc^2, xc, 1] and their panel copy
#: (2 (2d + 1) float64 a row) take at most this many bytes and stay in L2. Whole 2,048-row
#: blocks of them (17 MB per thread at d = 512) were written and read four times, from L3
#: at best. Intel Xeon VM (AVX-512; a large L3), EM iteration on 65,536 x 512, k = 2
#: float64, alternating processes: 63-65 ms either way; in one slow hour the block version
#: took 120 ms, the sub-blocks 63 ms (not reproduced). d = 512, k = 16 / 64: 25 / 23 ms
#: either way. The scratch per thread falls from 35 MB to 0.5 MB at d = 512.
DIAG_FEATURE_BYTES = 512 * 1024
#: The diagonal log-density product (``gaussian._diag_block_log_prob``) takes its whole
#: coefficient table in one pass per tile of rows while the table has at most this many
#: bytes (it stays in L1), else one panel of the product tile's width (8 float64 columns on
#: AVX2) at a time over all the sub-block's rows (a panel stays in L2). Zen 3 VM, product
#: tile alone, one thread, GFLOP/s, whole table by size: 20-32 KB 47.5-47.7; 66-135 KB
#: 35-43; 266-528 KB 24-26; one 8-column panel of 66 KB 49.7. E-step d = 512, k = 64
#: float64, 2 threads: 29-31 -> 22-23 ms with panels.
DIAG_WHOLE_TABLE_BYTES = 32 * 1024

#: A group-bounded k-means pass (``group_bounds``) gathers the rows its bounds do not settle
#: from a slice of this many bytes of rows (at most a row block, at least 64 rows), then
#: scores them group by group: each group's table stays in L1 while the gathered rows pass
#: through it, so larger slices give a group more rows per call. Intel Xeon VM (AVX-512),
#: bounded passes captured from whole fits, slices of 2048 / 512 / 128 rows: n=1e5, d=64,
#: k=1024 float64 (512 B rows) 25.7 / 26.8 / 27.7 ms and 12.2 / 12.8 / 14.7 ms; n=2e5,
#: d=128, k=256 float32 36.8 / 38.4 / 38.5 ms.
GROUP_SEARCH_BYTES = 512 * 1024

#: When greedy k-means++ prunes with the triangle inequality (Raff 2021; models/kmeans.py,
#: ``prunes_seeding``): CSR rows always; dense rows from PRUNED_SEEDING_MIN_FEATURES features
#: on, or from PRUNED_SEEDING_MANY_CENTERS_MIN_FEATURES with at least
#: PRUNED_SEEDING_MANY_CENTERS centres (more centres, more rows whose nearest centre rules
#: every candidate out). Elsewhere the plain passes (every distance) beat the pruning tests.
#: Measured on the Intel AVX-512 VM with the potentials as block sums minus improvements (a
#: pruned pass touches only the rows some candidate may improve), whole float64 seedings,
#: seconds plain / pruned: (n, d, k) = (1e6, 8, 8) 0.085 / 0.121; (1e6, 32, 8) 0.160 /
#: 0.172; (1e6, 16, 16) 0.229 / 0.240; (1e6, 24, 16) 0.291 / 0.262; (1e6, 8, 64) 0.640 /
#: 0.792; (1e6, 12, 64) 0.849 / 0.762; (1e6, 16, 64) 1.051 / 0.710; (1e6, 32, 64) 1.39 /
#: 0.87; (5e5, 48, 64) 1.044 / 0.470; (2e5, 128, 64) 0.983 / 0.314; (1e6, 12, 256) 3.63 /
#: 2.37; (1e6, 24, 256) 5.53 / 2.66; (2e5, 64, 256) 1.70 / 0.62; (2e5, 128, 256) 4.15 /
#: 1.04; (1e5, 64, 1024) 3.49 / 1.31; float32 (1e6, 8, 8) 0.104 / 0.116, (1e6, 16, 64)
#: 0.979 / 0.717, (1e6, 32, 64) 1.39 / 0.81. (Before that change the pruned passes wrote and
#: summed every pair, and lost up to d = 48 on the Zen 5 VM.) Not measured on another class.
PRUNED_SEEDING_MIN_FEATURES = 96
PRUNED_SEEDING_MANY_CENTERS_MIN_FEATURES = 12
PRUNED_SEEDING_MANY_CENTERS = 16

_PROBE_IR = """
define void @widest(<16 x float>* %a, <16 x float>* %b) {
  %x = load <16 x float>, <16 x float>* %a
  %y = load <16 x float>, <16 x float>* %b
  %z = fadd <16 x float> %x, %y
  store <16 x float> %z, <16 x float>* %a
  ret void
}
declare <2 x double> @llvm.fma.v2f64(<2 x double>, <2 x double>, <2 x double>)
define void @fused(<2 x double>* %a) {
  %x = load <2 x double>, <2 x double>* %a
  %z = call <2 x double> @llvm.fma.v2f64(<2 x double> %x, <2 x double> %x, <2 x double> %x)
  store <2 x double> %z, <2 x double>* %a
  ret void
}
"""


def target_cpu():
    """(cpu name, feature string) exactly as Numba's JIT code generator will use them."""
    name = config.CPU_NAME or ll.get_host_cpu_name()
    if config.CPU_FEATURES is not None:
        return name, config.CPU_FEATURES
    from numba.core.codegen import get_host_cpu_features
    return name, get_host_cpu_features()


def probe_target(name, features):
    """Ask LLVM how it compiles wide vector code for ``name``/``features``.

    Returns ``(arch, vector_bytes, has_fma)``: the target architecture name, the width of the
    widest vector register LLVM uses for a 64-byte vector operation and whether ``llvm.fma``
    becomes a single instruction (not a call into libm).
    """
    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    target = ll.Target.from_default_triple()
    machine = target.create_target_machine(cpu=name, features=features, opt=2)
    asm = machine.emit_assembly(ll.parse_assembly(_PROBE_IR))
    widest, fused = asm.split("fused:", 1) if "fused:" in asm else (asm, "")
    arch = target.name
    if arch.startswith("x86"):
        vector_bytes = 64 if "zmm" in widest else 32 if "ymm" in widest else 16
        has_fma = bool(re.search(r"\bvfmadd", fused))
    else:
        vector_bytes = 16
        has_fma = bool(re.search(r"\b(fmla|fmadd|xvmadd|vfmadd)", fused))
    return arch, vector_bytes, has_fma


def classify(arch, vector_bytes, has_fma):
    """CPU class (a key of :data:`TILE_TABLE`) of a probed target."""
    if arch.startswith("x86"):
        if vector_bytes >= 64 and has_fma:
            return "avx512"
        if vector_bytes >= 32 and has_fma:
            return "avx2"
        return "sse"
    if arch.startswith("aarch64") or arch.startswith("arm64"):
        return "neon"
    return "portable"


def _choose():
    forced = os.environ.get("FASTEM_SIMD_CLASS")
    if forced and forced not in TILE_TABLE:
        raise ValueError(f"FASTEM_SIMD_CLASS={forced!r} is not one of {sorted(TILE_TABLE)}")
    name, features = target_cpu()
    arch, vector_bytes, has_fma = probe_target(name, features)
    return name, forced or classify(arch, vector_bytes, has_fma), has_fma


#: Target CPU name, its class and whether it has FMA, decided once per process.
#: ``FASTEM_SIMD_CLASS`` (a key of :data:`TILE_TABLE`) forces a narrower class's tiles on a
#: wider CPU (tests run every class's tiles this way; it never makes code the CPU cannot run,
#: since the instructions still follow Numba's target).
CPU_NAME, SIMD_CLASS, HAS_FMA = _choose()
#: The row of :data:`TILE_TABLE` every SIMD kernel uses.
TILES = TILE_TABLE[SIMD_CLASS]

#: 'auto' runs 'yinyang' (group bounds; ``models/kmeans.py``) on dense rows from this many
#: bytes of centres (k d itemsize) on, from 64 clusters. Below, Yinyang's upkeep of its
#: group bounds costs more than the scores it skips; a score costs more on narrower
#: vectors, so those classes switch earlier. Whole fits from fixed centres, Intel Xeon VM,
#: 2 threads, n = 2e5, Hamerly / Yinyang seconds. AVX-512: float64 d=8 k=256 (16 KiB) 1.03 /
#: 1.34, d=32 k=128 (32 KiB) 1.53 / 1.54, d=32 k=256 (64 KiB) 2.45 / 1.64, d=128 k=64 (64 KiB)
#: 2.88 / 2.35, d=8 k=1024 (64 KiB) 1.99 / 1.43; float32 d=32 k=256 (32 KiB) 1.10 / 1.08,
#: d=128 k=64 (32 KiB) 1.67 / 1.69, d=16 k=1024 (64 KiB) 2.04 / 1.30. AVX2 class: float64 d=8
#: k=64 (4 KiB) 0.76 / 0.98, d=8 k=128 (8 KiB) 1.02 / 1.14, d=32 k=64 (16 KiB) 1.08 / 1.11,
#: d=8 k=256 (16 KiB) 1.88 / 1.65, d=32 k=128 (32 KiB) 2.31 / 1.80, d=32 k=256 3.86 / 2.03;
#: float32 d=8 k=256 (8 KiB) 1.19 / 1.34, d=128 k=64 (32 KiB) 2.32 / 1.97, d=32 k=256 (32
#: KiB) 1.81 / 1.41. NEON, SSE and portable (not measured) take AVX2's value.
YINYANG_MIN_TABLE_BYTES = {"avx512": 64 * 1024}.get(SIMD_CLASS, 16 * 1024)


def describe():
    """One line naming the target CPU, its class and the tiles in use (for reports)."""
    search = ", ".join(f"{t.rows}x{t.vectors}x{t.vector_bytes}B" for t in TILES["search"])
    p, few = TILES["product"], TILES["few"]
    few = f"{few.rows}x{few.centers}x{few.vector_bytes}B" if few else "none"
    deep = TILES["deep"]
    deep = f"{deep.rows}x{deep.vectors}x{deep.vector_bytes}B" if deep else "none"
    return (f"target {CPU_NAME} -> {SIMD_CLASS} (fma={HAS_FMA}); search tiles {search}; "
            f"deep {deep}; few-centre search {few}; product {p.rows}x{p.vectors}x{p.vector_bytes}B; "
            f"lanes {TILES['lanes']}; helpers {TILES['helper_lanes']} lanes x "
            f"{TILES['helper_chains']}")
