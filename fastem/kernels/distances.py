"""Squared Euclidean distances: nearest-centre assignment, the fused Lloyd step, k-means++.

All kernels take ``X`` of shape (n, d), float32 or float64, C-contiguous (read-only arrays
such as ``np.load(..., mmap_mode='r')`` included) and use it as given. Distances that are
returned and every statistic are accumulated in float64; the nearest-centre *search* runs in
X's dtype (as BLAS-based k-means does; float64 searches of many centres are screened in
float32 first, :func:`_screened_search`, with the float64 search's labels bit for bit), the
distance to the chosen centre is then recomputed directly as ``sum_f (x_f - c_f)^2`` in
float64.
"""
import numpy as np
from numba import prange
from numba.extending import overload

from ._blocks import (block_bounds, chunk_bounds, fold_blocks, fold_rows, n_blocks,
                      n_partials, one_item_per_block)
from ._jit import BLOCK_ROWS, kernel, run_on_threads
from ._simd import (DEEP_BYTES, DEEP_VECTOR_BYTES, HAS_DEEP, ROWS_PER_SQDIST, SEARCH_ROWS,
                    add_product, axpy_sqdist, axpy_sqdist_short, difference, dot,
                    nearest_rows_deep_part, nearest_rows_few, nearest_rows_medium,
                    nearest_rows_narrow, nearest_rows_wide, prefetch, search_tile, sqdist,
                    sqdist_rows, top2_rows_deep_part, top2_rows_few, top2_rows_medium,
                    top2_rows_narrow, top2_rows_wide)
from ._target import (DEEP_PANEL_CHUNK_BYTES, DEEP_ROW_GROUP_BYTES, HAS_FMA,
                      NEXT_SUB_BLOCK_ROW_BYTES, PREFETCH_ROWS, PREFETCH_TILE_BYTES,
                      SCREEN_FEATURES, SCREEN_MAX_TERM, SCREEN_MIN_CENTERS, SCREEN_MIN_WORK,
                      SEARCH_SUB_BLOCK_BYTES, SHADOW_ROWS_PER_EXACT, SHORT_ROW_FEATURES,
                      SWEEP_ROW_BYTES)


@kernel
def search_table(X, centers, tile, width):
    """The centre table of search ``tile`` (:func:`fastem.kernels._simd.search_tile`): the
    centres relative to their mean r, in X's dtype, and (kp,) score offsets.

    The search minimises ``bias_j - x . ct_j`` with ``ct_j = c_j - r`` and
    ``bias_j = ||c_j - r||^2 / 2 + r . (c_j - r)``, which equals
    ``(||x - c_j||^2 - ||x - r||^2) / 2``: the same argmin as the plain
    ``||c_j||^2 / 2 - x . c_j``, but the products involve ``c_j - r`` (the spread of the
    centres) instead of ``c_j`` itself, so float32 data far from the origin keep their
    resolution (rounding ~ ulp(x) |c_j - r| instead of ulp(x) |c_j|).

    kp is k rounded up to a multiple of ``width``; padding centres are zero and their offsets
    +inf, so a padded centre never wins the search. Tiles 0-2 take the transpose in panels
    of ``width`` columns, shape (kp / width * d, width) (``_simd``'s layout; ``width = kp``:
    plain (d, kp)); tile 3 (a few centres, lanes along the features) the rows, (kp, d).
    """
    k, d = centers.shape
    kp = (k + width - 1) // width * width
    r = centre_mean(centers)
    half_norms = np.full(kp, np.inf, X.dtype)
    if tile == 3:
        ct = np.zeros((kp, d), X.dtype)
        for j in range(k):
            s = 0.0
            for f in range(d):
                c = np.float64(X.dtype.type(centers[j, f])) - r[f]
                ct[j, f] = c
                s += c * (0.5 * c + r[f])
            half_norms[j] = s
        return ct, half_norms
    columns = np.full(kp, -1, np.int64)
    columns[:k] = np.arange(k)
    return panel_table(X, centers, r, columns, width)


@kernel
def panel_table(X, centers, r, columns, width):
    """A search table in panels of ``width`` columns (tiles 0-2 and 4 of
    :func:`search_table`, relative to the reference point ``r``) holding centre
    ``columns[c]`` in column c (-1: a padding column, zero with offset +inf); ``columns`` has
    a multiple of ``width`` entries. A centre's column and offset have the same bits in
    every such table with the same r, so the tiles give it the same score in any of them."""
    d = centers.shape[1]
    kp = columns.shape[0]
    half_norms = np.full(kp, np.inf, X.dtype)
    # panel by panel, feature by feature: the table is written in order (a centre at a time
    # would store one float per table row, a cache miss each once the table outgrows L2)
    ct = np.zeros((kp // width * d, width), X.dtype)
    acc = np.zeros(kp)
    for panel in range(kp // width):
        first = panel * width
        for f in range(d):
            row = panel * d + f
            for col in range(first, first + width):
                j = columns[col]
                if j >= 0:
                    c = np.float64(X.dtype.type(centers[j, f])) - r[f]
                    ct[row, col - first] = c
                    acc[col] += c * (0.5 * c + r[f])
    for col in range(kp):
        if columns[col] >= 0:
            half_norms[col] = acc[col]
    return ct, half_norms


@kernel
def centre_mean(centers):
    """The reference point r of :func:`search_table`: the centres' mean, in float64."""
    k, d = centers.shape
    r = np.zeros(d)
    for j in range(k):
        for f in range(d):
            r[f] += np.float64(centers[j, f])
    r /= k
    return r


@kernel
def search_table_norms(ct, k, d, tile, width):
    """``||ct_j||`` (float64, (k,)) of a :func:`search_table` table, read in memory order."""
    sq = np.zeros(k)
    if tile == 3:
        for j in range(k):
            for f in range(d):
                sq[j] += np.float64(ct[j, f]) ** 2
    else:
        for row in range(ct.shape[0]):
            first = row // d * width
            for col in range(min(width, k - first)):
                sq[first + col] += np.float64(ct[row, col]) ** 2
    return np.sqrt(sq)


@kernel
def prefetch_tile_ahead(X, i, stop, rows):
    """Prefetch the ``rows`` rows two tiles after row ``i`` (below ``stop``) when one tile's
    rows fit in a 4 KiB page (``PREFETCH_TILE_BYTES``): a tile reads its rows interleaved,
    feature by feature, and within one page the hardware prefetcher does not follow that."""
    d = X.shape[1]
    ahead = i + 2 * rows
    if rows * d * X.itemsize <= PREFETCH_TILE_BYTES and ahead < stop:
        prefetch(X, ahead * d, min(rows, stop - ahead) * d)


@kernel
def prefetch_sub_block(X, start, stop, tile):
    """Prefetch rows [start, stop) in one sweep before search ``tile`` reads them tile by
    tile from memory, when a row is ``SWEEP_ROW_BYTES`` long: such rows share 4 KiB pages,
    and a tile reading several of them feature by feature defeats the hardware prefetcher,
    while a sweep in address order does not (no effect on results). Not for the deep tile,
    whose chunked search is bound by its arithmetic."""
    row_bytes = X.shape[1] * X.itemsize
    if tile != 4 and SWEEP_ROW_BYTES[0] <= row_bytes < SWEEP_ROW_BYTES[1]:
        prefetch(X, start * X.shape[1], (stop - start) * X.shape[1])


@kernel
def prefetches_next_sub_block(X, tile):
    """Whether a pass that uses each row right after searching it prefetches the next
    sub-block's rows meanwhile (:func:`prefetch_next_sub_block_row`): rows of
    ``NEXT_SUB_BLOCK_ROW_BYTES``, not the deep tile."""
    row_bytes = X.shape[1] * X.itemsize
    return tile != 4 and NEXT_SUB_BLOCK_ROW_BYTES[0] <= row_bytes < NEXT_SUB_BLOCK_ROW_BYTES[1]


@kernel
def prefetch_next_sub_block_row(X, i, sub, stop):
    """Prefetch row ``i + sub`` (below ``stop``): called for row i of a sub-block of ``sub``
    rows while its label is used, it brings the next sub-block into the cache before the
    search reads it (no effect on results)."""
    ahead = i + sub
    if ahead < stop:
        d = X.shape[1]
        prefetch(X, ahead * d, d)


@kernel
def search_sub_block_rows(X, tile):
    """Rows searched before their labels are used (distance, centre sums): as many whole
    tiles as fit in ``SEARCH_SUB_BLOCK_BYTES`` (at least one tile, at most a block), so that
    the second read of each row comes from the L2 cache. Rows are independent in the search
    and used in row order after it, so results do not depend on this choice."""
    rows = SEARCH_ROWS[tile]
    budget = DEEP_ROW_GROUP_BYTES if tile == 4 else SEARCH_SUB_BLOCK_BYTES
    fit = budget // (X.shape[1] * X.itemsize) // rows * rows
    return min(BLOCK_ROWS, max(rows, fit))


@kernel
def deep_search(X, start, stop, ct, half_norms, out, out_offset, gap):
    """The deep tile's search of rows [start, stop) with the centre panels in chunks of
    ``DEEP_PANEL_CHUNK_BYTES``: each chunk serves every tile of these rows while it is in
    the L2 cache, instead of the whole table streaming past every tile (at k d = 1M float64,
    8 MB per 12 rows). ``gap`` None: labels only, ``nearest_rows_deep``'s bit for bit; else
    also the runner-up's score gap (the bounded methods), ``top2_rows_deep``'s bit for bit.
    Between chunks each row's lane-wise best scores, their columns and (top-2) runner-up
    scores wait in memory."""
    rows = SEARCH_ROWS[4]
    m = stop - start
    n_panels = half_norms.shape[0] // (DEEP_BYTES // X.itemsize)
    chunk = max(1, DEEP_PANEL_CHUNK_BYTES // (DEEP_BYTES * X.shape[1]))
    if m <= rows:   # one tile of rows: nothing to share a chunk with
        chunk = n_panels
    # a table of one chunk is one call per tile that ends at the last panel (no lanes stored)
    lanes = DEEP_VECTOR_BYTES // X.itemsize
    best, col = np.empty((m, lanes), X.dtype), np.empty((m, lanes), np.int32)
    runner_up = np.empty((0 if gap is None else m, lanes), X.dtype)
    for p0 in range(0, n_panels, chunk):
        p1 = min(n_panels, p0 + chunk)
        for i in range(start, stop, rows):
            if p0 == 0:   # the first chunk reads the rows from memory, the others from L2
                prefetch_tile_ahead(X, i, stop, rows)
            if gap is None:
                nearest_rows_deep_part(X, i, stop - 1, ct, half_norms, out, out_offset, p0,
                                       p1, (best, col), start)
            else:
                top2_rows_deep_part(X, i, stop - 1, ct, half_norms, out, out_offset, p0, p1,
                                    (best, col, runner_up), start, gap)


@kernel
def _nearest_in_block(X, start, stop, ct, half_norms, tile, out, out_offset):
    """out[i - out_offset] = nearest centre of row i, for start <= i < stop."""
    if HAS_DEEP and tile == 4:
        deep_search(X, start, stop, ct, half_norms, out, out_offset, None)
        return
    rows = SEARCH_ROWS[tile]
    prefetch_sub_block(X, start, stop, tile)
    for i in range(start, stop, rows):
        prefetch_tile_ahead(X, i, stop, rows)
        if tile == 3:
            nearest_rows_few(X, i, stop - 1, ct, half_norms, out, out_offset)
        elif tile == 2:
            nearest_rows_wide(X, i, stop - 1, ct, half_norms, out, out_offset)
        elif tile == 1:
            nearest_rows_medium(X, i, stop - 1, ct, half_norms, out, out_offset)
        else:
            nearest_rows_narrow(X, i, stop - 1, ct, half_norms, out, out_offset)


@kernel
def _top2_in_block(X, start, stop, ct, half_norms, tile, out, out_offset, gap):
    """out / gap [i - out_offset] = nearest centre / runner-up's score gap of row i."""
    if HAS_DEEP and tile == 4:
        deep_search(X, start, stop, ct, half_norms, out, out_offset, gap)
        return
    rows = SEARCH_ROWS[tile]
    for i in range(start, stop, rows):
        prefetch_tile_ahead(X, i, stop, rows)
        if tile == 3:
            top2_rows_few(X, i, stop - 1, ct, half_norms, out, out_offset, gap)
        elif tile == 2:
            top2_rows_wide(X, i, stop - 1, ct, half_norms, out, out_offset, gap)
        elif tile == 1:
            top2_rows_medium(X, i, stop - 1, ct, half_norms, out, out_offset, gap)
        else:
            top2_rows_narrow(X, i, stop - 1, ct, half_norms, out, out_offset, gap)


@kernel
def _wide_search(X, start, stop, ct, half_norms, tile, out, out_offset, gap):
    """The wide (2) or deep (4) tile's search of rows [start, stop), the only tiles of a
    screened search (:func:`screen_table`): labels, and with ``gap`` (not None) the
    runner-up's score gap. The rows are independent, so each row's scores and label are
    those of :func:`_nearest_in_block` bit for bit, wherever the row sits."""
    if HAS_DEEP and tile == 4:
        deep_search(X, start, stop, ct, half_norms, out, out_offset, gap)
        return
    for i in range(start, stop, SEARCH_ROWS[2]):
        if gap is None:
            nearest_rows_wide(X, i, stop - 1, ct, half_norms, out, out_offset)
        else:
            top2_rows_wide(X, i, stop - 1, ct, half_norms, out, out_offset, gap)


@kernel
def table_extents(ct, half_norms, k, d, tile, width):
    """``(B, C)`` of a :func:`search_table` table of k centres: the largest offset
    ``max_j |bias_j|`` and the largest column length ``max_j ||ct_j||`` (float64), the sizes
    that bound the search's rounding error (the screen's margin, the bounded methods' eps)."""
    spreads = search_table_norms(ct, k, d, tile, width)
    big_b, big_c = 0.0, 0.0
    for j in range(k):
        big_b = max(big_b, abs(np.float64(half_norms[j])))
        big_c = max(big_c, spreads[j])
    return big_b, big_c


@kernel
def screen_applies(itemsize, k, d, tile):
    """Whether a search of k centres in d features by ``tile`` on rows of ``itemsize`` bytes
    is screened (:func:`screen_table`): float64 rows, at least ``SCREEN_MIN_CENTERS``
    centres and ``SCREEN_MIN_WORK`` multiply-adds a row, d in ``SCREEN_FEATURES``, and the
    wide or deep tile (the only ones for many centres)."""
    return (itemsize == 8 and k >= SCREEN_MIN_CENTERS and k * d >= SCREEN_MIN_WORK
            and SCREEN_FEATURES[0] <= d <= SCREEN_FEATURES[1] and (tile == 2 or tile == 4))


@kernel
def screen_table(X, centers, ct, half_norms, tile, width):
    """The float32 copy of a float64 search table that screens the search
    (:func:`_screened_search`): ``(tile32, ct32, bias32, B, C)`` with ``ct32``/``bias32`` the
    table ``(ct, half_norms)`` of :func:`search_table` rounded to float32 in the panels of
    float32 search tile ``tile32``, ``B = max_j |bias_j|`` and ``C = max_j ||ct_j||``; or
    ``tile32 = -1`` (no screen) where :func:`screen_applies` says no, where the float32
    search would not take the wide or deep tile, or where B or C are too large for float32
    arithmetic (``SCREEN_MAX_TERM``)."""
    k, d = centers.shape
    off = (-1, np.zeros((0, 1), np.float32), np.zeros(0, np.float32), 0.0, 0.0)
    if not screen_applies(X.itemsize, k, d, tile):
        return off
    tile32, width32 = search_tile(k, 4, d)
    if tile32 != 2 and tile32 != 4:
        return off
    big_b, big_c = table_extents(ct, half_norms, k, d, tile, width)
    if not (big_b < SCREEN_MAX_TERM and big_c < SCREEN_MAX_TERM):
        return off
    kp = (k + width32 - 1) // width32 * width32
    ct32 = np.zeros((kp // width32 * d, width32), np.float32)
    bias32 = np.full(kp, np.inf, np.float32)
    for panel in range(kp // width32):
        for f in range(d):
            for col in range(width32):
                j = panel * width32 + col
                if j < k:
                    ct32[panel * d + f, col] = ct[j // width * d + f, j % width]
    for j in range(k):
        bias32[j] = half_norms[j]
    return tile32, ct32, bias32, big_b, big_c


def work_screen(X, centers, ct, half_norms, tile, width):
    """The screen a parallel kernel's work items get (``prepare``'s part): from Python,
    :func:`screen_table`'s tuple where a screen applies, else None, so that the work kernel
    compiles a specialisation without the screened path for the many fits that never use
    it (a few seconds less of compiling on a cold cache). Compiled callers (the ``prange``
    kernels your ``@njit`` code calls) always get None: they reuse the fits' unscreened
    specialisation instead of compiling another, and find the same labels."""
    k, d = centers.shape
    if not getattr(screen_applies, "py_func", screen_applies)(X.itemsize, k, d, tile):
        return None
    screen = screen_table(X, centers, ct, half_norms, tile, width)
    return screen if screen[0] >= 0 else None


@overload(work_screen)
def _work_screen_compiled(X, centers, ct, half_norms, tile, width):
    return lambda X, centers, ct, half_norms, tile, width: None


@kernel
def screen_scratch(X, screen, rows):
    """Per-thread buffers of :func:`_screened_search` for sub-blocks of ``rows`` rows of X
    (None without a screen): the float32 rows, their float64 norms, screened labels and
    gaps, the rows left to the float64 search, a copy of them and their gaps."""
    if screen is None:
        return None
    d = X.shape[1]
    return (np.empty((rows, d), np.float32), np.empty(rows), np.empty(rows, np.int32),
            np.empty(rows), np.empty(rows, np.int64), np.empty((rows, d), X.dtype),
            np.empty(rows))


@kernel
def _screened_search(X, start, stop, ct, half_norms, tile, screen, scratch, out, out_offset,
                     gap):
    """:func:`_nearest_in_block`'s labels (bit for bit) of float64 rows [start, stop), most of
    them found by a float32 search at twice the lanes per vector (``screen``: a valid
    :func:`screen_table`; None: the plain search). With ``gap`` (not None) also a lower
    bound on each row's runner-up score gap, as :func:`_top2_in_block` gives it (the
    bounded methods): the exact float64 gap for the rows searched in float64.

    Let ``S_j = bias_j - x . ct_j`` be a row's exact score on the float64 table. The float64
    search computes it with an error of at most ``e64 = (rho d + 4) u64 (B + ||x|| C)``, the
    float32 search of the rounded row and table (``x``, ``ct`` and ``bias`` each rounded once
    more, relative error u32) within ``e32 = (rho d + 4) u32 (B + ||x|| C)`` (rho: roundings
    per term, 1 with FMA, 2 without; ``d rho u32 <= 2^-10``, so 1% covers the higher-order
    terms; float32 underflow adds at most ``2^-120 (d + 4) (1 + C + ||x||)``). If the float32
    search's runner-up lies ``g32`` above its winner a, with ``g32 > margin = 2 (e32 + e64)``,
    then for every other j the float64 scores satisfy ``s64_j - s64_a >= g32 - margin > 0``:
    the float64 search returns a too, with no tie, and its gap is at least ``g32 - margin``.
    Rows that fail (near ties, rows with norms beyond float32 arithmetic, NaN) are gathered
    and searched in float64 with the tile and table the unscreened search uses, so every
    label is the unscreened one."""
    if screen is None:   # (pruned at compile time where the screen is None)
        if gap is None:
            _nearest_in_block(X, start, stop, ct, half_norms, tile, out, out_offset)
        else:
            _top2_in_block(X, start, stop, ct, half_norms, tile, out, out_offset, gap)
        return
    tile32, ct32, bias32, big_b, big_c = screen
    rows32, norms, found, gap32, unsure, rows64, gap64 = scratch
    d = X.shape[1]
    m = stop - start
    for i in range(m):
        s = 0.0
        for f in range(d):
            v = X[start + i, f]
            rows32[i, f] = v
            s += v * v
        norms[i] = np.sqrt(s)
    _wide_search(rows32, 0, m, ct32, bias32, tile32, found, 0, gap32)
    # (1 + 2^-20): the float64 rounding of the norms, of this arithmetic and of the gap
    rho = 1.0 if HAS_FMA else 2.0
    coef = 2.0 * 1.01 * (rho * d + 4.0) * (2.0 ** -24 + 2.0 ** -53) * (1.0 + 2.0 ** -20)
    floor = 2.0 * 2.0 ** -120 * (d + 4.0)
    n_unsure = 0
    for i in range(m):
        xn = norms[i]
        margin = coef * (big_b + xn * big_c) + floor * (1.0 + big_c + xn)
        if gap32[i] > margin and xn < SCREEN_MAX_TERM:
            out[start + i - out_offset] = found[i]
            if gap is not None:
                gap[start + i - out_offset] = gap32[i] - margin
        else:
            for f in range(d):
                rows64[n_unsure, f] = X[start + i, f]
            unsure[n_unsure] = i
            n_unsure += 1
    if n_unsure > 0:
        if gap is None:
            _wide_search(rows64, 0, n_unsure, ct, half_norms, tile, found, 0, None)
        else:
            _wide_search(rows64, 0, n_unsure, ct, half_norms, tile, found, 0, gap64)
        for t in range(n_unsure):
            out[start + unsure[t] - out_offset] = found[t]
            if gap is not None:
                gap[start + unsure[t] - out_offset] = gap64[t]


@kernel
def _row_sqdist(X, i, centers, j):
    """||X[i] - centers[j]||^2 in float64."""
    d = X.shape[1]
    return sqdist(X, i * d, centers, j * d, d)


@kernel
def _search_prepare(X, centers, labels, sqdist):
    tile, width = search_tile(centers.shape[0], X.itemsize, X.shape[1])
    ct, half_norms = search_table(X, centers, tile, width)
    screen = work_screen(X, centers, ct, half_norms, tile, width)
    return n_blocks(X.shape[0]), ct, half_norms, tile, screen


@kernel
def _search_work(lo, hi, X, centers, labels, sqdist, ct, half_norms, tile, screen):
    n = X.shape[0]
    sub = search_sub_block_rows(X, tile)
    scratch = screen_scratch(X, screen, sub)
    ahead = prefetches_next_sub_block(X, tile)
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for s0 in range(start, stop, sub):
            s1 = min(stop, s0 + sub)
            _screened_search(X, s0, s1, ct, half_norms, tile, screen, scratch, labels, 0,
                             None)
            for i in range(s0, s1):
                if ahead:
                    prefetch_next_sub_block_row(X, i, sub, stop)
                sqdist[i] = _row_sqdist(X, i, centers, labels[i])


@kernel(parallel=True)
def nearest_centers(X, centers, labels, sqdist):
    """Label every row with its nearest centre.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64, C-contiguous
    centers : ndarray, shape (k, d), float32 or float64, C-contiguous
        The search runs in X's dtype (centres are rounded to it).
    labels : ndarray, shape (n,), int32
        OUT: index of the nearest centre (smallest index on ties).
    sqdist : ndarray, shape (n,), float64
        OUT: squared Euclidean distance to that centre.
    """
    nb, ct, half_norms, tile, screen = _search_prepare(X, centers, labels, sqdist)
    for b in prange(nb):
        _search_work(b, b + 1, X, centers, labels, sqdist, ct, half_norms, tile, screen)


run_on_threads(nearest_centers, _search_prepare, _search_work, None)


@kernel
def _lloyd_rows(X, s0, s1, new, sample_weight, centers, labels, sums, weights, inertia,
                changed, ahead, sub, stop):
    """The Lloyd step's use of the labels ``new`` of rows [s0, s1): store them, count the
    changed ones, add each row to its centre's sums and weight and its float64 distance to
    the inertia, in row order; returns the updated ``(inertia, changed)``. Rows of at most
    ``SHORT_ROW_FEATURES`` features take :func:`axpy_sqdist_short` in a loop of their own
    (its per-length copies slow a loop over longer rows); ``ahead``: prefetch the next
    sub-block (:func:`prefetch_next_sub_block_row`), never for such short rows."""
    d = X.shape[1]
    if d <= SHORT_ROW_FEATURES:
        for i in range(s0, s1):
            j = new[i - s0]
            changed += j != labels[i]  # branch-free: label changes are unpredictable
            labels[i] = j
            w = sample_weight[i]
            inertia += w * axpy_sqdist_short(w, X, i * d, sums, j * d, centers, j * d, d)
            weights[j] += w
        return inertia, changed
    for i in range(s0, s1):
        j = new[i - s0]
        changed += j != labels[i]
        labels[i] = j
        w = sample_weight[i]
        if ahead:
            prefetch_next_sub_block_row(X, i, sub, stop)
        inertia += w * axpy_sqdist(w, X, i * d, sums, j * d, centers, j * d, d)
        weights[j] += w
    return inertia, changed


@kernel
def _lloyd_prepare(X, sample_weight, centers, labels, center_sums, center_weights):
    n, d = X.shape
    k = centers.shape[0]
    nc = n_partials(n, k * (d + 1) * 8)
    tile, width = search_tile(k, X.itemsize, d)
    ct, half_norms = search_table(X, centers, tile, width)
    screen = work_screen(X, centers, ct, half_norms, tile, width)
    # per chunk: sums (k, d), weights (k,), [inertia, number of changed labels]
    return (nc, ct, half_norms, tile, screen, np.empty((nc, k, d)), np.empty((nc, k)),
            np.empty((nc, 2)))


@kernel
def _lloyd_work(lo, hi, X, sample_weight, centers, labels, center_sums, center_weights,
                ct, half_norms, tile, screen, part_sums, part_weights, part_scalars):
    n, d = X.shape
    k = centers.shape[0]
    nc = part_sums.shape[0]
    sub = search_sub_block_rows(X, tile)
    new = np.empty(sub, np.int32)
    scratch = screen_scratch(X, screen, sub)
    ahead = prefetches_next_sub_block(X, tile)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        sums = part_sums[c]
        weights = part_weights[c]
        for j in range(k):
            weights[j] = 0.0
            for f in range(d):
                sums[j, f] = 0.0
        inertia = 0.0
        changed = 0
        for s0 in range(start, stop, sub):   # sub-blocks: the rows are still in L2 below
            s1 = min(stop, s0 + sub)
            _screened_search(X, s0, s1, ct, half_norms, tile, screen, scratch, new, s0, None)
            inertia, changed = _lloyd_rows(X, s0, s1, new, sample_weight, centers, labels,
                                           sums, weights, inertia, changed, ahead, sub, stop)
        part_scalars[c, 0] = inertia
        part_scalars[c, 1] = changed


@kernel
def _lloyd_finish(X, sample_weight, centers, labels, center_sums, center_weights,
                  ct, half_norms, tile, screen, part_sums, part_weights, part_scalars):
    fold_blocks(part_sums, center_sums)
    fold_rows(part_weights, center_weights)
    totals = np.empty(2)
    fold_rows(part_scalars, totals)
    return totals[0], np.int64(totals[1])


@kernel(parallel=True)
def lloyd_step(X, sample_weight, centers, labels, center_sums, center_weights):
    """One fused Lloyd pass: assignment plus the statistics of the new centres.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64, C-contiguous
    sample_weight : ndarray, shape (n,), float64
    centers : ndarray, shape (k, d), float32 or float64
        IN: current centres.
    labels : ndarray, shape (n,), int32
        IN: previous labels (any values, e.g. -1, on the first pass); OUT: new labels.
    center_sums : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i x_i`` over the rows assigned to each centre.
    center_weights : ndarray, shape (k,), float64
        OUT: ``sum_i w_i`` over the rows assigned to each centre.

    Returns
    -------
    inertia : float
        ``sum_i w_i ||x_i - centers[label_i]||^2`` for the *input* centres.
    n_changed : int
        Number of rows whose label changed.

    Each chunk (a run of whole row blocks; how many depends on n, k and d only) accumulates
    into its own partial; partials are summed in chunk order, so every output is bitwise
    identical for any number of threads.
    """
    nc, ct, half_norms, tile, screen, part_sums, part_weights, part_scalars = _lloyd_prepare(
        X, sample_weight, centers, labels, center_sums, center_weights)
    for c in prange(nc):
        _lloyd_work(c, c + 1, X, sample_weight, centers, labels, center_sums, center_weights,
                    ct, half_norms, tile, screen, part_sums, part_weights, part_scalars)
    return _lloyd_finish(X, sample_weight, centers, labels, center_sums, center_weights,
                         ct, half_norms, tile, screen, part_sums, part_weights, part_scalars)


run_on_threads(lloyd_step, _lloyd_prepare, _lloyd_work, _lloyd_finish)


@kernel
def _sqdist_work(lo, hi, X, centers, out):
    n = X.shape[0]
    k = centers.shape[0]
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            for j in range(k):
                out[i, j] = _row_sqdist(X, i, centers, j)


@kernel(parallel=True)
def sqdist_to_centers(X, centers, out):
    """All squared distances ``out[i, j] = ||X[i] - centers[j]||^2``.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    centers : ndarray, shape (k, d), float32 or float64
    out : ndarray, shape (n, k), float64
        OUT.
    """
    for b in prange(n_blocks(X.shape[0])):
        _sqdist_work(b, b + 1, X, centers, out)


run_on_threads(sqdist_to_centers, one_item_per_block, _sqdist_work, None)


@kernel
def _block_sqdist(start, stop, X, points, dist, base):
    """``dist[c, i - base] = ||X[i] - points[c]||^2`` (``sqdist``'s bits) for the rows
    ``start <= i < stop``: ``ROWS_PER_SQDIST`` rows at a time, copied as the columns of a
    float64 block and measured one row per vector lane (:func:`~fastem.kernels._simd.
    sqdist_rows`: no horizontal sum per row), the rows after the last full group one at a
    time."""
    d = X.shape[1]
    xt = np.empty((d, ROWS_PER_SQDIST))
    grouped = start + (stop - start) // ROWS_PER_SQDIST * ROWS_PER_SQDIST
    for i0 in range(start, grouped, ROWS_PER_SQDIST):
        for t in range(d):
            for r in range(ROWS_PER_SQDIST):
                xt[t, r] = X[i0 + r, t]
        for c in range(points.shape[0]):
            sqdist_rows(xt, points, c * d, d, dist, c * dist.shape[1] + i0 - base)
    for i in range(grouped, stop):
        for c in range(points.shape[0]):
            dist[c, i - base] = sqdist(X, i * d, points, c * d, d)


@kernel
def _min_sqdist_work(lo, hi, X, center, min_sqdist):
    n, d = X.shape
    point, dist = center.reshape((1, d)), np.empty((1, BLOCK_ROWS))
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        _block_sqdist(start, stop, X, point, dist, start)
        for i in range(start, stop):
            if dist[0, i - start] < min_sqdist[i]:
                min_sqdist[i] = dist[0, i - start]


@kernel(parallel=True)
def update_min_sqdist(X, center, min_sqdist):
    """k-means++ update: ``min_sqdist[i] = min(min_sqdist[i], ||X[i] - center||^2)``.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    center : ndarray, shape (d,), float32 or float64
        The newest centre.
    min_sqdist : ndarray, shape (n,), float64
        IN/OUT: squared distance of each row to its closest centre so far (start with +inf).
    """
    for b in prange(n_blocks(X.shape[0])):
        _min_sqdist_work(b, b + 1, X, center, min_sqdist)


run_on_threads(update_min_sqdist, one_item_per_block, _min_sqdist_work, None)


@kernel
def _potentials_prepare(X, sample_weight, candidates, min_sqdist, potentials):
    nb = n_blocks(X.shape[0])
    return nb, np.empty((nb, candidates.shape[0]))


@kernel
def pair_term(acc, s, w, closest, direct):
    """A block's potential sum ``acc`` after row (weight ``w``, squared distance ``closest``
    to its nearest centre) meets a candidate at squared distance ``s``: plus ``w * min(s,
    closest)`` in a ``direct`` block, else plus the improvement ``w * max(closest - s, 0)``
    (branch-free: whether a row improves is a coin toss in the first steps; adding +0 leaves
    the sum as it is, so the pruned passes, which skip pairs that cannot improve, get the
    same bits). Ordered operations (``_simd.add_product``): the same sums in every pass.
    Scalars only, so that the call inlines (array arguments would cost reference counts)."""
    if direct:
        return add_product(acc, w, min(s, closest))
    return add_product(acc, w, max(difference(closest, s), 0.0))


@kernel
def _start_block(start, stop, sample_weight, min_sqdist, acc, counts):
    """Zero the block's accumulators and list lengths; return the block's current potential
    ``S_b = sum w_i min_sqdist[i]`` (as :func:`potential_block_sums`) and whether the block
    sums its terms directly (``S_b`` not finite: rows with no centre yet)."""
    acc[:] = 0.0
    counts[:] = 0
    total = dot(sample_weight, start, min_sqdist, start, stop - start)
    # a comparison, not np.isfinite: compiled with fastem's fast-math flags, np.isfinite of
    # the helper's sum said True for +inf and NaN
    return total, not (total < np.inf)


@kernel
def _finish_block(b, total, direct, acc, counts, partial, improved_counts, keep):
    """``partial[b, c]``: candidate c's potential over block b, ``S_b - improvement``;
    ``keep``: the lengths of the block's lists."""
    for c in range(acc.shape[0]):
        partial[b, c] = acc[c] if direct else difference(total, acc[c])
        if keep:
            improved_counts[c, b] = counts[c]


@kernel
def _plain_block(start, stop, X, sample_weight, candidates, min_sqdist, direct, acc, counts,
                 dist, base):
    """Every row of block b against every candidate: the distances into ``dist[c, i -
    base]``, then their terms in row order (:func:`pair_term`; two passes: the sums' chains
    and the distances' FMAs overlap badly in one). Marks the block dense (``counts = -1``):
    with ``base = 0`` and ``dist`` the kept distances, every row's distance in place."""
    m = candidates.shape[0]
    _block_sqdist(start, stop, X, candidates, dist, base)
    # four candidates' sums at a time in registers (an array element's chain would wait
    # on a store and a load every row); a group short of four repeats its last candidate
    # and drops those sums
    for c0 in range(0, m, 4):
        c1, c2, c3 = min(c0 + 1, m - 1), min(c0 + 2, m - 1), min(c0 + 3, m - 1)
        a0, a1, a2, a3 = acc[c0], acc[c1], acc[c2], acc[c3]
        for i in range(start, stop):
            w, closest = sample_weight[i], min_sqdist[i]
            a0 = pair_term(a0, dist[c0, i - base], w, closest, direct)
            a1 = pair_term(a1, dist[c1, i - base], w, closest, direct)
            a2 = pair_term(a2, dist[c2, i - base], w, closest, direct)
            a3 = pair_term(a3, dist[c3, i - base], w, closest, direct)
        acc[c0] = a0
        if c0 + 1 < m:
            acc[c1] = a1
        if c0 + 2 < m:
            acc[c2] = a2
        if c0 + 3 < m:
            acc[c3] = a3
    counts[:] = -1


@kernel
def _potential_rows(lo, hi, X, sample_weight, candidates, min_sqdist, partial,
                    improved_rows, improved_sqdist, improved_counts, keep):
    n = X.shape[0]
    m = candidates.shape[0]
    acc, counts = np.empty(m), np.empty(m, np.int64)
    dist = improved_sqdist if keep else np.empty((m, min(n, BLOCK_ROWS)))
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        total, direct = _start_block(start, stop, sample_weight, min_sqdist, acc, counts)
        _plain_block(start, stop, X, sample_weight, candidates, min_sqdist, direct, acc, counts,
                     dist, 0 if keep else start)
        _finish_block(b, total, direct, acc, counts, partial, improved_counts, keep)


@kernel
def _potentials_work(lo, hi, X, sample_weight, candidates, min_sqdist, potentials, partial):
    _potential_rows(lo, hi, X, sample_weight, candidates, min_sqdist, partial,
                    np.empty((0, 0), np.int32), np.empty((0, 0)), np.empty((0, 0), np.int64),
                    False)


@kernel
def _potentials_finish(X, sample_weight, candidates, min_sqdist, potentials, partial):
    fold_rows(partial, potentials)


@kernel(parallel=True)
def kmeanspp_potentials(X, sample_weight, candidates, min_sqdist, potentials):
    """Greedy k-means++ scores: the potential if each candidate became the next centre.

    ``potentials[c] = sum_i w_i * min(min_sqdist[i], ||X[i] - candidates[c]||^2)``,
    computed without an (n, n_candidates) temporary, block by block (``BLOCK_ROWS`` rows)
    as the block's current potential ``S_b = sum_i w_i min_sqdist[i]`` (the value of
    :func:`potential_block_sums`) minus the candidate's improvement ``sum w_i
    (min_sqdist[i] - ||X[i] - c||^2)`` over the rows it brings closer: few rows improve
    once several centres are chosen, so the pruned passes (:func:`seed_potentials`) touch
    nothing else, with the same sums bit for bit. A block whose ``S_b`` is not finite
    (rows without a centre yet, ``min_sqdist = inf``) sums ``w_i * min(...)`` directly.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    sample_weight : ndarray, shape (n,), float64
    candidates : ndarray, shape (m, d), float32 or float64
    min_sqdist : ndarray, shape (n,), float64
        Squared distance of each row to its closest chosen centre.
    potentials : ndarray, shape (m,), float64
        OUT.
    """
    nb, partial = _potentials_prepare(X, sample_weight, candidates, min_sqdist, potentials)
    for b in prange(nb):
        _potentials_work(b, b + 1, X, sample_weight, candidates, min_sqdist, potentials,
                         partial)
    _potentials_finish(X, sample_weight, candidates, min_sqdist, potentials, partial)


run_on_threads(kmeanspp_potentials, _potentials_prepare, _potentials_work, _potentials_finish)


@kernel
def _potentials_kept_work(lo, hi, X, sample_weight, candidates, min_sqdist, potentials,
                          improved_rows, improved_sqdist, improved_counts, partial):
    _potential_rows(lo, hi, X, sample_weight, candidates, min_sqdist, partial, improved_rows,
                    improved_sqdist, improved_counts, True)


@kernel
def _potentials_kept_prepare(X, sample_weight, candidates, min_sqdist, potentials,
                             improved_rows, improved_sqdist, improved_counts):
    return _potentials_prepare(X, sample_weight, candidates, min_sqdist, potentials)


@kernel
def _potentials_kept_finish(X, sample_weight, candidates, min_sqdist, potentials,
                            improved_rows, improved_sqdist, improved_counts, partial):
    fold_rows(partial, potentials)


@kernel(parallel=True)
def kmeanspp_potentials_kept(X, sample_weight, candidates, min_sqdist, potentials,
                             improved_rows, improved_sqdist, improved_counts):
    """:func:`kmeanspp_potentials` that also keeps, per candidate, the rows it would bring
    closer and their distances, so that the chosen candidate's update
    (:func:`seed_update_kept`) needs no pass over X.

    Parameters
    ----------
    X, sample_weight, candidates, min_sqdist, potentials :
        As :func:`kmeanspp_potentials`.
    improved_rows : ndarray, shape (m, n), int32
        OUT: for candidate c and block b (rows ``start <= i < stop``) with
        ``improved_counts[c, b] >= 0`` (the pruned passes), ``improved_rows[c, start:start +
        improved_counts[c, b]]`` lists the rows with ``||X[i] - candidates[c]||^2 <
        min_sqdist[i]``, in order, as ``i - start``. Not written by this kernel.
    improved_sqdist : ndarray, shape (m, n), float64
        OUT: their squared distances to candidate c, at the same positions; in a block with
        ``improved_counts[c, b] = -1`` (this kernel's every block), every row's distance at
        the row's own position.
    improved_counts : ndarray, shape (m, n_blocks), int64
        OUT: how many rows of each block candidate c improves, or -1 (dense block).
    """
    nb, partial = _potentials_kept_prepare(X, sample_weight, candidates, min_sqdist,
                                           potentials, improved_rows, improved_sqdist,
                                           improved_counts)
    for b in prange(nb):
        _potentials_kept_work(b, b + 1, X, sample_weight, candidates, min_sqdist, potentials,
                              improved_rows, improved_sqdist, improved_counts, partial)
    _potentials_kept_finish(X, sample_weight, candidates, min_sqdist, potentials,
                            improved_rows, improved_sqdist, improved_counts, partial)


run_on_threads(kmeanspp_potentials_kept, _potentials_kept_prepare, _potentials_kept_work,
               _potentials_kept_finish)


@kernel
def cannot_improve(gap, closest, d):
    """Whether a row at squared distance ``closest`` from its nearest centre m cannot get
    closer to a point c with ``||c - m||^2 = gap``: ``||c - m|| >= 2 sqrt(closest)`` gives
    ``||x - c|| >= ||c - m|| - ||x - m|| >= sqrt(closest)`` (triangle inequality; Raff
    2021). The margin ``s = 8 (d + 4) u_64`` covers the rounding of the three float64
    distances, so a skipped row's computed distance could not have been smaller either:
    results stay bitwise those of the search without pruning."""
    slack = 8.0 * (d + 4) * 2.0 ** -53
    return gap * (1.0 - slack) >= 4.0 * closest * (1.0 + slack)


@kernel
def squared_row_norms(A):
    """``out[i] = ||A[i]||^2`` in float64 (serial; for small A such as centres)."""
    k, d = A.shape
    norms = np.empty(k)
    for j in range(k):
        s = 0.0
        for f in range(d):
            s += np.float64(A[j, f]) ** 2
        norms[j] = s
    return norms


@kernel
def squared_row_distances(A, B):
    """``out[i] = ||A[i] - B[i]||^2`` in float64 (C-contiguous A and B of one shape; one
    read of each and no temporaries: how far each of k centres moved, for k d beyond the
    caches). ``sqdist``'s fixed order: the same bits in every build (the convergence test
    compares the total with the tolerance)."""
    k, d = A.shape
    out = np.empty(k)
    for j in range(k):
        out[j] = sqdist(A, j * d, B, j * d, d)
    return out


@kernel
def row_minima(A):
    """``out[i] = min_j A[i, j]`` (serial; for small A)."""
    out = np.empty(A.shape[0])
    for i in range(A.shape[0]):
        out[i] = np.inf
        for j in range(A.shape[1]):
            out[i] = min(out[i], A[i, j])
    return out


@kernel
def pairwise_sqdist(A, B, out):
    """``out[i, j] = ||A[i] - B[j]||^2`` in float64 (serial; for small A and B)."""
    d = A.shape[1]
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = sqdist(A, i * d, B, j * d, d)


@kernel
def _seed_update_work(lo, hi, X, sample_weight, center, center_id, center_gaps, min_sqdist,
                      nearest, block_sums):
    n, d = X.shape
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            if not cannot_improve(center_gaps[nearest[i]], min_sqdist[i], d):
                s = sqdist(X, i * d, center, 0, d)
                if s < min_sqdist[i]:
                    min_sqdist[i] = s
                    nearest[i] = center_id
        _block_sums_work(b, b + 1, sample_weight, min_sqdist, block_sums)  # block still in cache


@kernel(parallel=True)
def seed_update(X, sample_weight, center, center_id, center_gaps, min_sqdist, nearest,
                block_sums):
    """Pruned k-means++ update for a new centre, fused with the sampling's block sums.

    ``min_sqdist[i] = min(min_sqdist[i], ||X[i] - center||^2)`` (``nearest[i] = center_id``
    where the new centre is closer), skipping rows whose nearest centre m has
    ``||center - m|| >= 2 sqrt(min_sqdist[i])`` (they cannot get closer, see
    :func:`cannot_improve`); then ``block_sums[b] = sum_{i in block b} w_i * min_sqdist[i]``
    as :func:`potential_block_sums`. Same results, bit for bit, as
    :func:`update_min_sqdist` followed by :func:`potential_block_sums`.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    sample_weight : ndarray, shape (n,), float64
    center : ndarray, shape (d,), X's dtype
    center_id : int
    center_gaps : ndarray, shape (n_centers,), float64
        ``||center - centers[j]||^2`` for every earlier centre j (any values >= 0 when there
        is none yet: ``min_sqdist`` is +inf then, so nothing is skipped).
    min_sqdist : ndarray, shape (n,), float64
        IN/OUT.
    nearest : ndarray, shape (n,), int32
        IN/OUT: index of each row's nearest centre so far (0 before the first).
    block_sums : ndarray, shape (n_blocks,), float64
        OUT.
    """
    for b in prange(n_blocks(X.shape[0])):
        _seed_update_work(b, b + 1, X, sample_weight, center, center_id, center_gaps,
                          min_sqdist, nearest, block_sums)


run_on_threads(seed_update, one_item_per_block, _seed_update_work, None)


@kernel
def _shadow_work(lo, hi, X, shadow, row_norms):
    n, d = X.shape
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            for t in range(d):
                shadow[i, t] = X[i, t]
            row_norms[i] = np.sqrt(dot(X, i * d, X, i * d, d))


@kernel(parallel=True)
def float32_shadow(X, shadow, row_norms):
    """X rounded to float32, and its rows' norms, for the pruned k-means++ potentials.

    Parameters
    ----------
    X : ndarray, shape (n, d), float64
    shadow : ndarray, shape (n, d), float32
        OUT: ``X`` rounded to float32 (entries beyond float32's range become inf: check
        ``row_norms`` first, see :func:`seed_potentials`).
    row_norms : ndarray, shape (n,), float64
        OUT: ``||X[i]||``.
    """
    for b in prange(n_blocks(X.shape[0])):
        _shadow_work(b, b + 1, X, shadow, row_norms)


run_on_threads(float32_shadow, one_item_per_block, _shadow_work, None)


@kernel
def shadow_limit(closest, row_norm, candidate_norm, d):
    """A squared distance computed from float32 copies of a row and a candidate (widened to
    float64, :func:`sqdist`) at or above which their float64 distance is at least
    ``closest``, so the pair cannot improve its row and is skipped without reading X.

    Rounding to float32 moves each coordinate by at most ``u |x_t|`` (``u = 2^-24``; below
    the normal range by at most ``2^-150``), so ``||x32 - c32||`` is within
    ``delta = u (||x|| + ||c||) + 2^-149 sqrt(d)`` of ``||x - c||``; with the float64 sums'
    relative rounding ``s`` (as :func:`cannot_improve`, doubled), a shadow distance of at
    least ``(1 + s) (sqrt(closest (1 + s)) + delta)^2`` proves ``||x - c||^2 (1 - s) >=
    closest``, i.e. the float64 distance is not smaller than ``closest``.
    """
    slack = 16.0 * (d + 4) * 2.0 ** -53
    delta = (1.0 + slack) * 2.0 ** -24 * (row_norm + candidate_norm) + 2.0 ** -149 * np.sqrt(d)
    reach = np.sqrt(closest * (1.0 + slack)) + delta
    return (1.0 + slack) * reach * reach


@kernel
def _seed_potential_rows(lo, hi, X, sample_weight, candidates, center_gaps, smallest_gaps,
                         min_sqdist, nearest, partial, improved_rows, improved_sqdist,
                         improved_counts, keep, shadow, row_norms, shadow_candidates,
                         candidate_norm):
    """Blocks [lo, hi) of the pruned potentials (and, ``keep``, the improving rows' lists).

    Two steps per block: list the pairs the test keeps (branch-free: a per-pair branch
    mispredicts whenever part of the pairs is pruned, and cost more than the distances it
    saved; first the rows whose nearest centre's closest candidate passes, one test a row,
    then those rows' pairs), then compute their distances (prefetching the scattered rows)
    and add them in row order (:func:`pair_term`): a skipped pair cannot improve its row,
    so the sums are those of :func:`kmeanspp_potentials`, bit for bit. With a float32
    ``shadow`` of X (rows > 0), a listed pair first gets its distance from the shadow (half
    the bytes of a float64 row) and is skipped when :func:`shadow_limit` proves that it
    cannot improve; only the others read X. A block that sums directly (rows without a
    centre, which the test never skips) takes every pair.
    """
    n, d = X.shape
    m = candidates.shape[0]
    shadowed = shadow.shape[0] > 0
    acc, counts = np.empty(m), np.empty(m, np.int64)
    dist = improved_sqdist if keep else np.empty((m, min(n, BLOCK_ROWS)))   # direct blocks
    open_rows = np.empty(BLOCK_ROWS, np.int32)        # rows with a pair left (- start)
    pairs_end = np.empty(BLOCK_ROWS, np.int64)        # their pairs: up to pairs_end[r]
    pair_cols = np.empty(m * BLOCK_ROWS, np.int32)    # the candidates of those pairs
    walked, improving = SHADOW_ROWS_PER_EXACT, 0      # rows walked, and improved (prior)
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        total, direct = _start_block(start, stop, sample_weight, min_sqdist, acc, counts)
        if direct:
            _plain_block(start, stop, X, sample_weight, candidates, min_sqdist, True, acc,
                         counts, dist, 0 if keep else start)
            _finish_block(b, total, direct, acc, counts, partial, improved_counts, keep)
            continue
        n_open = 0
        for i in range(start, stop):   # rows that no candidate can improve: one test each
            open_rows[n_open] = i - start
            n_open += not cannot_improve(smallest_gaps[nearest[i]], min_sqdist[i], d)
        n_pairs = 0
        for r in range(n_open):
            i = start + open_rows[r]
            closest, a = min_sqdist[i], nearest[i]
            for c in range(m):
                pair_cols[n_pairs] = c
                n_pairs += not cannot_improve(center_gaps[a, c], closest, d)
            pairs_end[r] = n_pairs
        p = 0
        if not shadowed:   # the walk without a shadow (kept apart: this loop is the
            for r in range(n_open):   # whole pass at small d, where an extra test a row shows)
                if r + PREFETCH_ROWS < n_open:   # the surviving rows are scattered over X
                    prefetch(X, (start + open_rows[r + PREFETCH_ROWS]) * d, d)
                i = start + open_rows[r]
                w, closest = sample_weight[i], min_sqdist[i]
                while p < pairs_end[r]:
                    c = pair_cols[p]
                    s = sqdist(X, i * d, candidates, c * d, d)
                    acc[c] = pair_term(acc[c], s, w, closest, False)
                    if keep:   # candidate c's list of this block, branch-free
                        at = start + counts[c]
                        improved_rows[c, at], improved_sqdist[c, at] = i - start, s
                        counts[c] += s < closest
                    p += 1
        else:
            for r in range(n_open):
                # the shadow pays while few of the walked rows need X (a pair that improves);
                # the share so far in this run of blocks decides, row by row
                shaded = walked > SHADOW_ROWS_PER_EXACT * improving
                if r + PREFETCH_ROWS < n_open:
                    ahead = (start + open_rows[r + PREFETCH_ROWS]) * d
                    if shaded:
                        prefetch(shadow, ahead, d)
                    else:
                        prefetch(X, ahead, d)
                i = start + open_rows[r]
                w, closest = sample_weight[i], min_sqdist[i]
                walked += p < pairs_end[r]
                limit = (shadow_limit(closest, row_norms[i], candidate_norm, d) if shaded
                         else 0.0)
                improved = False
                while p < pairs_end[r]:
                    c = pair_cols[p]
                    p += 1
                    if (shaded and sqdist(shadow, i * d, shadow_candidates, c * d, d)
                            >= limit):
                        continue
                    s = sqdist(X, i * d, candidates, c * d, d)
                    acc[c] = pair_term(acc[c], s, w, closest, False)
                    improved |= s < closest
                    if keep:
                        at = start + counts[c]
                        improved_rows[c, at], improved_sqdist[c, at] = i - start, s
                        counts[c] += s < closest
                improving += improved
        _finish_block(b, total, direct, acc, counts, partial, improved_counts, keep)


@kernel
def _seed_potentials_work(lo, hi, X, sample_weight, candidates, center_gaps, min_sqdist,
                          nearest, potentials, shadow, row_norms, partial, smallest_gaps,
                          shadow_candidates, candidate_norm):
    _seed_potential_rows(lo, hi, X, sample_weight, candidates, center_gaps, smallest_gaps,
                         min_sqdist, nearest, partial, np.empty((0, 0), np.int32),
                         np.empty((0, 0)), np.empty((0, 0), np.int64), False, shadow,
                         row_norms, shadow_candidates, candidate_norm)


@kernel
def _seed_potentials_prepare(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                             potentials, shadow, row_norms):
    nb = n_blocks(X.shape[0])
    largest = 0.0   # a loop, not ndarray.max: that would load numba.np.arraymath (warm start)
    for s in squared_row_norms(candidates):
        largest = max(largest, s)
    return (nb, np.empty((nb, candidates.shape[0])), row_minima(center_gaps),
            candidates.astype(np.float32), np.sqrt(largest))


@kernel
def _seed_potentials_finish(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                            potentials, shadow, row_norms, partial, smallest_gaps,
                            shadow_candidates, candidate_norm):
    fold_rows(partial, potentials)


@kernel(parallel=True)
def seed_potentials(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                    potentials, shadow, row_norms):
    """:func:`kmeanspp_potentials` with the pruning of :func:`seed_update` (bitwise the same
    potentials): candidate c skips the rows whose nearest centre m has
    ``center_gaps[m, c] = ||centers[m] - candidates[c]||^2 >= 4 min_sqdist[i]``.

    Parameters
    ----------
    X, sample_weight, candidates, min_sqdist, potentials :
        As :func:`kmeanspp_potentials`.
    center_gaps : ndarray, shape (n_centers, m), float64
        Squared distances of every chosen centre to every candidate.
    nearest : ndarray, shape (n,), int32
        Index of each row's nearest chosen centre (:func:`seed_update`).
    shadow : ndarray, shape (n, d) or (0, d), float32
        X rounded to float32 (shape (0, d): none). The pairs the test keeps are first
        measured on it, and skipped when that proves they cannot improve their row
        (:func:`shadow_limit`); results are the same bit for bit. For float64 X whose
        entries float32 can hold (``|x| < 3.4e38``); worth it from a few cache lines a row.
    row_norms : ndarray, shape (n,) or (0,), float64
        ``||X[i]||`` (with a shadow).
    """
    nb, partial, smallest_gaps, shadow_candidates, candidate_norm = _seed_potentials_prepare(
        X, sample_weight, candidates, center_gaps, min_sqdist, nearest, potentials, shadow,
        row_norms)
    for b in prange(nb):
        _seed_potentials_work(b, b + 1, X, sample_weight, candidates, center_gaps, min_sqdist,
                              nearest, potentials, shadow, row_norms, partial, smallest_gaps,
                              shadow_candidates, candidate_norm)
    _seed_potentials_finish(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                            potentials, shadow, row_norms, partial, smallest_gaps,
                            shadow_candidates, candidate_norm)


run_on_threads(seed_potentials, _seed_potentials_prepare, _seed_potentials_work,
               _seed_potentials_finish)


@kernel
def _seed_kept_work(lo, hi, X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                    potentials, improved_rows, improved_sqdist, improved_counts, shadow,
                    row_norms, partial, smallest_gaps, shadow_candidates, candidate_norm):
    _seed_potential_rows(lo, hi, X, sample_weight, candidates, center_gaps, smallest_gaps,
                         min_sqdist, nearest, partial, improved_rows, improved_sqdist,
                         improved_counts, True, shadow, row_norms, shadow_candidates,
                         candidate_norm)


@kernel
def _seed_kept_prepare(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                       potentials, improved_rows, improved_sqdist, improved_counts, shadow,
                       row_norms):
    return _seed_potentials_prepare(X, sample_weight, candidates, center_gaps, min_sqdist,
                                    nearest, potentials, shadow, row_norms)


@kernel
def _seed_kept_finish(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                      potentials, improved_rows, improved_sqdist, improved_counts, shadow,
                      row_norms, partial, smallest_gaps, shadow_candidates, candidate_norm):
    fold_rows(partial, potentials)


@kernel(parallel=True)
def seed_potentials_kept(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                         potentials, improved_rows, improved_sqdist, improved_counts, shadow,
                         row_norms):
    """:func:`seed_potentials` that also keeps the rows each candidate would bring closer
    and their distances (as :func:`kmeanspp_potentials_kept`, the same rows and distances
    bit for bit, as lists), so that the chosen candidate's update
    (:func:`seed_update_kept`) needs no second pass over X.

    Parameters
    ----------
    X, sample_weight, candidates, center_gaps, min_sqdist, nearest, potentials :
        As :func:`seed_potentials`.
    improved_rows, improved_sqdist, improved_counts :
        OUT, as :func:`kmeanspp_potentials_kept`.
    shadow, row_norms :
        As :func:`seed_potentials`.
    """
    nb, partial, smallest_gaps, shadow_candidates, candidate_norm = _seed_kept_prepare(
        X, sample_weight, candidates, center_gaps, min_sqdist, nearest, potentials,
        improved_rows, improved_sqdist, improved_counts, shadow, row_norms)
    for b in prange(nb):
        _seed_kept_work(b, b + 1, X, sample_weight, candidates, center_gaps, min_sqdist,
                        nearest, potentials, improved_rows, improved_sqdist, improved_counts,
                        shadow, row_norms, partial, smallest_gaps, shadow_candidates,
                        candidate_norm)
    _seed_kept_finish(X, sample_weight, candidates, center_gaps, min_sqdist, nearest,
                      potentials, improved_rows, improved_sqdist, improved_counts, shadow,
                      row_norms, partial, smallest_gaps, shadow_candidates, candidate_norm)


run_on_threads(seed_potentials_kept, _seed_kept_prepare, _seed_kept_work, _seed_kept_finish)


@kernel
def _seed_update_kept_work(lo, hi, sample_weight, improved_rows, improved_sqdist,
                           improved_counts, center_id, min_sqdist, nearest, block_sums):
    n = min_sqdist.shape[0]
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        count = improved_counts[b]
        if count < 0:   # every row's distance in place
            for i in range(start, stop):
                if improved_sqdist[i] < min_sqdist[i]:
                    min_sqdist[i] = improved_sqdist[i]
                    nearest[i] = center_id
        for t in range(start, start + count):
            i = start + improved_rows[t]
            min_sqdist[i] = improved_sqdist[t]
            nearest[i] = center_id
        if count != 0:   # else the block's sum stands
            _block_sums_work(b, b + 1, sample_weight, min_sqdist, block_sums)


@kernel(parallel=True)
def seed_update_kept(sample_weight, improved_rows, improved_sqdist, improved_counts,
                     center_id, min_sqdist, nearest, block_sums):
    """:func:`seed_update` from the new centre's improving rows kept by
    :func:`seed_potentials_kept` or :func:`kmeanspp_potentials_kept` (their row for the
    chosen candidate): the same rows get the same distances, so the same results bit for
    bit, without reading X; a block whose list is empty keeps its sum.

    Parameters
    ----------
    sample_weight : ndarray, shape (n,), float64
    improved_rows : ndarray, shape (n,), int32
    improved_sqdist : ndarray, shape (n,), float64
    improved_counts : ndarray, shape (n_blocks,), int64
        The chosen candidate's lists (:func:`kmeanspp_potentials_kept`).
    center_id : int
    min_sqdist, nearest : IN/OUT, as :func:`seed_update`.
    block_sums : ndarray, shape (n_blocks,), float64
        IN/OUT: the sums of :func:`potential_block_sums` before the update, after it.
    """
    for b in prange(n_blocks(min_sqdist.shape[0])):
        _seed_update_kept_work(b, b + 1, sample_weight, improved_rows, improved_sqdist,
                               improved_counts, center_id, min_sqdist, nearest, block_sums)


run_on_threads(seed_update_kept, one_item_per_block, _seed_update_kept_work, None)


@kernel
def _block_sums_work(lo, hi, sample_weight, min_sqdist, out):
    n = min_sqdist.shape[0]
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        # the helper's explicit chains fix the order of the sum: a plain loop's order is the
        # vectoriser's choice, which may differ where the loop is inlined (seed_update)
        out[b] = dot(sample_weight, start, min_sqdist, start, stop - start)


@kernel(parallel=True)
def potential_block_sums(sample_weight, min_sqdist, out):
    """k-means++ sampling support: ``out[b] = sum_{i in block b} w_i * min_sqdist[i]``.

    Parameters
    ----------
    sample_weight, min_sqdist : ndarray, shape (n,), float64
    out : ndarray, shape (n_blocks,), float64
        OUT, one entry per fixed row block (``BLOCK_ROWS`` rows).
    """
    for b in prange(n_blocks(min_sqdist.shape[0])):
        _block_sums_work(b, b + 1, sample_weight, min_sqdist, out)


run_on_threads(potential_block_sums, one_item_per_block, _block_sums_work, None)


@kernel
def draw_by_potential(sample_weight, min_sqdist, block_sums, targets, out):
    """Rows drawn with probability proportional to ``w_i * min_sqdist[i]``.

    ``out[t]`` is the first row whose running sum of ``w * min_sqdist`` reaches
    ``targets[t]`` (``numpy.searchsorted`` on the cumulative sum, without materialising it):
    the block is found from ``block_sums`` (see :func:`potential_block_sums`), then the rows
    of that block are scanned.

    Parameters
    ----------
    sample_weight, min_sqdist : ndarray, shape (n,), float64
    block_sums : ndarray, shape (n_blocks,), float64
    targets : ndarray, shape (m,), float64
        Uniform draws in [0, sum of block_sums).
    out : ndarray, shape (m,), int64
        OUT: row indices (the last row if rounding leaves a target unreached).
    """
    n = min_sqdist.shape[0]
    for t in range(targets.shape[0]):
        target = targets[t]
        running = 0.0
        out[t] = n - 1
        for b in range(block_sums.shape[0]):
            if running + block_sums[b] < target:
                running += block_sums[b]
                continue
            start, stop = block_bounds(b, n)
            for i in range(start, stop):
                running += sample_weight[i] * min_sqdist[i]
                if running >= target:
                    out[t] = i
                    break
            break
