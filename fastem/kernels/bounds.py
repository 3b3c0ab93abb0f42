"""Exact bound-based k-means (Hamerly 2010): Lloyd steps that skip rows whose label is fixed.

Every row keeps its label ``a``, an upper bound ``u >= ||x - c_a||`` and a lower bound
``l <= min_{j != a} ||x - c_j||`` (distances for the centres rounded to X's dtype, the centres
the search uses; computed in float64, stored as float32 rounded outwards: 8 bytes per row).
When the centres move by ``delta_j``, ``u += delta_a`` and ``l -= max_{j != a} delta_j`` keep
the bounds valid (triangle inequality). A row whose bounds separate is not searched.

**Same labels as Lloyd.** The search (``_simd``) picks the smallest *computed* score
``s_j = (||x - c_j||^2 - ||x - r||^2) / 2`` in X's dtype; its rounding error is at most
``eps = 2 (d + 4) u_T (B + ||x|| C)`` (``u_T`` the unit roundoff of X's dtype,
``B = max_j |bias_j|``, ``C = max_j ||c_j - r||``; an FMA chain of d terms plus the rounding
of the tables, with a factor 2 to spare; the few-centre search's L chains of d / L terms and
its log2 L lane additions stay within it), plus the float64 rounding of the offsets
themselves (``_offsets_rounding``: their terms may cancel, so B alone does not bound it).
A row is skipped only when
``l^2 - u^2 > 4 eps``: then every other centre's computed score exceeds the assigned one's,
so the search would return ``a`` again. Rows that fail go through the same SIMD search
(gathered into a compact block), which returns Lloyd's label bit for bit and the gap
``g = s_2 - s_a`` to the runner-up's computed score, from which ``l`` is rebuilt:
``l^2 = ||x - c_a||^2 + 2 (g - 2 eps)`` (as ``||x - c_j||^2 - ||x - c_a||^2 = 2 (s_j - s_a)``).
Float64 rows of many centres are searched through ``distances._screened_search``: the same
labels, and for the rows its float32 screen settles a lower bound on g (the float32 gap less
the screen's error margin), which keeps ``l`` a lower bound.

The centre statistics are kept by the caller and updated in place by the rows that moved
(applied after the parallel loop in row order: bitwise identical for any thread count).
"""
import numpy as np
from numba import prange

from ._blocks import chunk_bounds, fold_blocks, n_blocks, n_partials
from ._jit import BLOCK_ROWS, kernel, run_on_threads
from ._simd import axpy_sqdist, difference, search_tile, sqdist
from .csr_distances import _center_tables, _nearest_row, _row_sqdist, _top2_row, add_csr_row
from .distances import (_screened_search, centre_mean, prefetch_next_sub_block_row,
                        prefetch_sub_block, prefetches_next_sub_block, screen_scratch,
                        search_sub_block_rows, search_table, squared_row_norms, table_extents,
                        work_screen)


@kernel
def _search_tables(X, centers):
    """Search tables of ``centers`` plus what the bounds need: (tile, width, ct, half_norms,
    centre norms, slack of float64 bound arithmetic, eps factors (E B, E C))."""
    k, d = centers.shape
    tile, width = search_tile(k, X.itemsize, d)
    ct, half_norms = search_table(X, centers, tile, width)
    norms = np.sqrt(squared_row_norms(centers))
    big_b, big_c = table_extents(ct, half_norms, k, d, tile, width)
    return ((tile, width, ct, half_norms, norms)
            + _error_terms(X.itemsize, d, big_b, big_c, norms))


@kernel
def _error_terms(itemsize, d, big_b, big_c, norms):
    """(slack, eps_b, eps_c) of the module docstring for a search table whose offsets are at
    most ``big_b`` in size and whose columns at most ``big_c`` long (``norms``: ||c_j||):
    ``slack`` is the relative error of a float64 squared distance or its root (with room to
    spare), the search error is ``eps_b + ||x|| eps_c``."""
    unit = 2.0 ** -24 if itemsize == 4 else 2.0 ** -53
    factor = 2.0 * (d + 4) * unit
    slack = 4.0 * (d + 4) * 2.0 ** -53
    return (slack, factor * big_b + _offsets_rounding(d, big_c, _largest(norms)),
            factor * big_c)


@kernel
def _largest(values):
    """The largest of non-negative ``values`` (0 when empty). A loop: ``array.max()`` makes
    every cached kernel that calls it import Numba's array maths (and scipy.linalg) when it
    is loaded from the cache, most of a warm first fit."""
    largest = 0.0
    for value in values:
        largest = max(largest, value)
    return largest


@kernel
def _offsets_rounding(d, big_c, largest_norm):
    """A bound on the float64 rounding of the search table's offsets (``search_table``:
    ``sum_f c_f (c_f / 2 + r_f)`` over d features, ``c = c_j - r``), doubled: at most
    ``(d + 3) u_64 sum_f |c_f| (|c_f| / 2 + |r_f|) <= (d + 3) u_64 (C^2 / 2 + C ||r||)``, and
    ``||r|| <= max_j ||c_j||`` (r is the centres' mean). B bounds the offsets, not the terms
    they sum, which may cancel."""
    return 2.0 * (d + 3) * 2.0 ** -53 * (0.5 * big_c * big_c + big_c * largest_norm)


@kernel
def _rebuild_bounds(d2, gap, j, norms, slack, eps_b, eps_c):
    """(u, l) of a searched row: ``d2 = ||x - c_j||^2`` for its nearest centre j, ``gap``
    the runner-up's score gap."""
    u, base = _upper_and_base(d2, j, norms, slack, eps_b, eps_c)
    return u, _lower_from_gap(base, gap, slack)


@kernel
def _upper_and_base(d2, j, norms, slack, eps_b, eps_c):
    """(u, base) of a row searched to centre j at squared distance d2: the upper bound, and
    the part every lower bound shares, ``d2 - 4 eps`` (rounded down)."""
    u = np.sqrt(d2) * (1.0 + slack)
    eps = eps_b + (u + norms[j]) * eps_c
    return u, d2 * (1.0 - slack) - 4.0 * eps


@kernel
def _lower_from_gap(base, gap, slack):
    """The lower bound on the distance to a centre whose computed score lies ``gap`` above
    the winner's: ``l^2 = d2 - 4 eps + 2 gap`` (module docstring), rounded down."""
    low2 = base + 2.0 * (gap * (1.0 - slack))
    return np.sqrt(low2) * (1.0 - slack) if low2 > 0.0 else 0.0


@kernel
def _separation_floor(u, a, norms, slack, eps_b, eps_c):
    """The value a lower bound must exceed for :func:`_separated` to hold with upper bound u
    and label a: ``max(u, sqrt((u^2 (1 + slack) + 4 eps) / (1 - slack)))``, rounded up. One
    comparison per bound instead of the test's arithmetic."""
    eps = eps_b + (u + norms[a]) * eps_c
    root = np.sqrt((u * u * (1.0 + slack) + 4.0 * eps) / (1.0 - slack)) * (1.0 + 2.0 ** -48)
    return max(u, root)


#: The largest finite float32 (as a float64: exact).
FLOAT32_MAX = float(np.finfo(np.float32).max)


@kernel
def _stored_upper(u):
    """u as the float32 the bounds are stored in, rounded up (never below u)."""
    return np.float32(u * (1.0 + 2.0 ** -22))


@kernel
def _stored_lower(low):
    """A non-negative lower bound as float32, rounded down (distances are >= 0) and at most
    float32's largest finite value: beyond it the cast gave +inf, a 'bound' that separated
    every row from its upper bound (a fit on data of size 1e60 stopped after two passes)."""
    return np.float32(min(max(low, 0.0) * (1.0 - 2.0 ** -22), FLOAT32_MAX))


@kernel
def _separated(u, low, a, norms, slack, eps_b, eps_c):
    """Whether bounds (u, low) prove that the search would return label a."""
    eps = eps_b + (u + norms[a]) * eps_c
    return low > u and low * low * (1.0 - slack) - u * u * (1.0 + slack) > 4.0 * eps


@kernel
def _full_prepare(X, sample_weight, centers, labels, upper, lower):
    n, d = X.shape
    k = centers.shape[0]
    nc = n_partials(n, k * (d + 2) * 8)
    tile, width, ct, half_norms, norms, slack, eps_b, eps_c = _search_tables(X, centers)
    # (here, not in _search_tables: calls from Python run this set-up as Python)
    screen = work_screen(X, centers, ct, half_norms, tile, width)
    # per chunk: sums (k, d), [weights, inertias] (k, 2), number of changed labels
    return (nc, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c,
            np.empty((nc, k, d)), np.empty((nc, k, 2)), np.empty(nc))


@kernel
def _full_work(lo, hi, X, sample_weight, centers, labels, upper, lower, tile, ct,
               half_norms, screen, norms, slack, eps_b, eps_c, part_sums, part_moments,
               part_changed):
    n, d = X.shape
    nc = part_sums.shape[0]
    sub = search_sub_block_rows(X, tile)
    new = np.empty(sub, np.int32)
    gap = np.empty(sub)
    scratch = screen_scratch(X, screen, sub)
    ahead = prefetches_next_sub_block(X, tile)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        sums, moments = part_sums[c], part_moments[c]
        sums[:] = 0.0
        moments[:] = 0.0
        changed = 0
        for b0 in range(start, stop, sub):   # sub-blocks: the rows are still in L2 below
            b1 = min(stop, b0 + sub)
            prefetch_sub_block(X, b0, b1, tile)
            _screened_search(X, b0, b1, ct, half_norms, tile, screen, scratch, new, b0, gap)
            for i in range(b0, b1):
                j = new[i - b0]
                changed += j != labels[i]
                labels[i] = j
                w = sample_weight[i]
                if ahead:
                    prefetch_next_sub_block_row(X, i, sub, stop)
                d2 = axpy_sqdist(w, X, i * d, sums, j * d, centers, j * d, d)
                u, low = _rebuild_bounds(d2, gap[i - b0], j, norms, slack, eps_b, eps_c)
                upper[i], lower[i] = _stored_upper(u), _stored_lower(low)
                moments[j, 0] += w
                moments[j, 1] += w * d2
        part_changed[c] = changed


@kernel
def _fold_full_partials(part_sums, part_moments, part_changed):
    """(sums, moments, n_changed) from a full pass's chunks."""
    k, d = part_sums.shape[1], part_sums.shape[2]
    sums, moments = np.empty((k, d)), np.empty((k, 2))
    fold_blocks(part_sums, sums)
    fold_blocks(part_moments, moments)
    changed = 0
    for c in range(part_changed.shape[0]):   # (not .sum(): cached callers would import arraymath)
        changed += np.int64(part_changed[c])
    return sums, moments, changed


@kernel
def _full_finish(X, sample_weight, centers, labels, upper, lower, tile, ct, half_norms,
                 screen, norms, slack, eps_b, eps_c, part_sums, part_moments, part_changed):
    return _fold_full_partials(part_sums, part_moments, part_changed)


@kernel(parallel=True)
def bounded_full_step(X, sample_weight, centers, labels, upper, lower):
    """A Lloyd pass that also (re)builds every row's bounds.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64, C-contiguous
    sample_weight : ndarray, shape (n,), float64
    centers : ndarray, shape (k, d), X's dtype
    labels : ndarray, shape (n,), int32
        IN: previous labels (any values); OUT: nearest centre (Lloyd's, bit for bit).
    upper, lower : ndarray, shape (n,), float32
        OUT: the bounds (module docstring), rounded outwards to float32.

    Returns
    -------
    sums : ndarray (k, d) float64, ``sum_i w_i x_i`` per cluster
    moments : ndarray (k, 2) float64
        ``[sum_i w_i, sum_i w_i ||x_i - c_j||^2]`` per cluster j (the second column sums to
        the inertia of ``centers``).
    n_changed : int
    """
    (nc, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, part_sums, part_moments,
     part_changed) = _full_prepare(X, sample_weight, centers, labels, upper, lower)
    for c in prange(nc):
        _full_work(c, c + 1, X, sample_weight, centers, labels, upper, lower, tile, ct,
                   half_norms, screen, norms, slack, eps_b, eps_c, part_sums, part_moments,
                   part_changed)
    return _full_finish(X, sample_weight, centers, labels, upper, lower, tile, ct, half_norms,
                        screen, norms, slack, eps_b, eps_c, part_sums, part_moments,
                        part_changed)


run_on_threads(bounded_full_step, _full_prepare, _full_work, _full_finish)


@kernel
def _other_drift(drift):
    """For each label a, the largest drift of any *other* centre: the largest drift, or for
    the centre that has it, the second largest."""
    top, runner, top_at = 0.0, 0.0, 0
    for j in range(drift.shape[0]):
        if drift[j] > top:
            top, runner, top_at = drift[j], top, j
        elif drift[j] > runner:
            runner = drift[j]
    other = np.full(drift.shape[0], top)
    other[top_at] = runner
    return other


@kernel
def _moves_and_counts(part_counts):
    """(n_changed, n_scored) of a bounded pass from its chunks' counts."""
    changed, searched = 0, 0
    for c in range(part_counts.shape[0]):
        changed += part_counts[c, 0]
        searched += part_counts[c, 1]
    return changed, searched


@kernel
def _moves_in_row_order(n, moved_rows, moved_from, part_counts):
    """(rows, old labels) of the rows a bounded pass moved, in row order."""
    nc = part_counts.shape[0]
    rows = np.empty(_moves_and_counts(part_counts)[0], np.int64)
    old = np.empty(rows.shape[0], np.int32)
    t = 0
    for c in range(nc):
        first = chunk_bounds(c, n, nc)[0]
        for slot in range(first, first + part_counts[c, 0]):
            rows[t], old[t] = moved_rows[slot], moved_from[slot]
            t += 1
    return rows, old


# A bounded pass records the rows that move (row, old label; a chunk's moves fill the slots
# from its first row on) and applies them to the statistics after the parallel loop, one at
# a time in row order: bitwise the same for any thread count. Few rows move in a bounded
# pass, so this beats a (k, d) partial table per chunk, whose zeroing and folding cost
# O(k d) per pass however few rows moved (10 MB a pass for CSR rows of 20,000 features).


@kernel
def _record_move(i, a, j, labels, moved_rows, moved_from, slot):
    """Give row i label j; when that moves it from a, record (i, a) in the chunk's next free
    ``slot`` of the moves. Returns the number of moves recorded (0 or 1)."""
    if j == a:
        return 0
    moved_rows[slot], moved_from[slot] = i, a
    labels[i] = j
    return 1


@kernel
def _step_prepare(X, sample_weight, centers, drift, shift, labels, upper, lower, sums, moments):
    n = X.shape[0]
    nc = n_blocks(n)   # one work item per block: a pass keeps no (k, d) partials
    tile, width, ct, half_norms, norms, slack, eps_b, eps_c = _search_tables(X, centers)
    # (here, not in _search_tables: calls from Python run this set-up as Python)
    screen = work_screen(X, centers, ct, half_norms, tile, width)
    return (nc, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, _other_drift(drift),
            np.empty(n, np.int64), np.empty(n, np.int32), np.empty((nc, 2), np.int64))


@kernel
def _step_work(lo, hi, X, sample_weight, centers, drift, shift, labels, upper, lower, sums,
               moments, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, other,
               moved_rows, moved_from, part_counts):
    n, d = X.shape
    nc = part_counts.shape[0]
    rows = np.empty(BLOCK_ROWS, np.int64)
    tight = np.empty(BLOCK_ROWS)
    gathered = np.empty((BLOCK_ROWS, d), X.dtype)
    new = np.empty(BLOCK_ROWS, np.int32)
    gap = np.empty(BLOCK_ROWS)
    sub = search_sub_block_rows(X, tile)
    scratch = screen_scratch(X, screen, sub)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        changed = 0
        searched = 0
        for b0 in range(start, stop, BLOCK_ROWS):
            b1 = min(stop, b0 + BLOCK_ROWS)
            m = 0
            for i in range(b0, b1):
                a = labels[i]
                u = (np.float64(upper[i]) + drift[a]) * (1.0 + slack)
                low = (np.float64(lower[i]) - other[a]) * (1.0 - slack)
                lower[i] = _stored_lower(low)
                if not _separated(u, low, a, norms, slack, eps_b, eps_c):
                    # tighten the upper bound; search only if that does not settle it
                    d2 = sqdist(X, i * d, centers, a * d, d)
                    u = np.sqrt(d2) * (1.0 + slack)
                    if not _separated(u, low, a, norms, slack, eps_b, eps_c):
                        rows[m] = i
                        tight[m] = d2
                        for f in range(d):   # not gathered[m] = X[i]: that compiles
                            gathered[m, f] = X[i, f]   # Numba's shape-error formatting
                        m += 1
                upper[i] = _stored_upper(u)
            if m == 0:
                continue
            searched += m
            for s0 in range(0, m, sub):
                _screened_search(gathered, s0, min(m, s0 + sub), ct, half_norms, tile, screen,
                                 scratch, new, 0, gap)
            for t in range(m):
                i = rows[t]
                j = new[t]
                a = labels[i]
                d2 = tight[t] if j == a else sqdist(gathered, t * d, centers, j * d, d)
                u, low = _rebuild_bounds(d2, gap[t], j, norms, slack, eps_b, eps_c)
                upper[i], lower[i] = _stored_upper(u), _stored_lower(low)
                changed += _record_move(i, a, j, labels, moved_rows, moved_from, start + changed)
        part_counts[c, 0] = changed
        part_counts[c, 1] = searched * centers.shape[0]


@kernel
def _replay_moves(X, sample_weight, shift, labels, moved_rows, moved_from, part_counts, sums,
                  moments):
    """Add the moved rows' changes to ``sums`` and ``moments``; (n_changed, n_scored)."""
    n, d = X.shape
    rows, old = _moves_in_row_order(n, moved_rows, moved_from, part_counts)
    for t in range(rows.shape[0]):
        i, a = rows[t], old[t]
        j, w = labels[i], sample_weight[i]
        moments[a, 0] -= w
        moments[j, 0] += w
        moments[a, 1] -= w * axpy_sqdist(-w, X, i * d, sums, a * d, shift, a * d, d)
        moments[j, 1] += w * axpy_sqdist(w, X, i * d, sums, j * d, shift, j * d, d)
    return _moves_and_counts(part_counts)


@kernel
def _step_finish(X, sample_weight, centers, drift, shift, labels, upper, lower, sums, moments,
                 tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, other, moved_rows,
                 moved_from, part_counts):
    return _replay_moves(X, sample_weight, shift, labels, moved_rows, moved_from,
                         part_counts, sums, moments)


@kernel(parallel=True)
def bounded_step(X, sample_weight, centers, drift, shift, labels, upper, lower, sums, moments):
    """A Lloyd pass that searches only the rows whose bounds do not fix their label.

    Parameters
    ----------
    X, sample_weight, centers :
        As :func:`bounded_full_step`.
    drift : ndarray, shape (k,), float64
        ``||c_j - c_j_before||``: how far each centre moved since the bounds were valid.
    shift : ndarray, shape (k, d), float64
        Reference point of each cluster's squared norms (the centres of the full pass that
        built the moments).
    labels, upper, lower : ndarray, shape (n,)
        IN/OUT: labels (int32) and bounds (float32) of the previous pass; OUT: Lloyd's labels
        for ``centers`` and valid bounds.
    sums : ndarray, shape (k, d), float64
        IN/OUT: ``sum_i w_i x_i`` per cluster; the rows that moved add their change (one row
        at a time, in row order), so a pass costs nothing per centre coordinate when few
        rows move.
    moments : ndarray, shape (k, 2), float64
        IN/OUT: ``[sum_i w_i, sum_i w_i ||x_i - shift_j||^2]`` per cluster j, likewise.

    Returns
    -------
    n_changed : int
    n_scored : int
        Centre scores computed: rows whose bounds did not settle their label, times k.
    """
    (nc, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, other, moved_rows,
     moved_from, part_counts) = _step_prepare(X, sample_weight, centers, drift, shift, labels,
                                              upper, lower, sums, moments)
    for c in prange(nc):
        _step_work(c, c + 1, X, sample_weight, centers, drift, shift, labels, upper, lower, sums,
                   moments, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, other,
                   moved_rows, moved_from, part_counts)
    return _step_finish(X, sample_weight, centers, drift, shift, labels, upper, lower, sums,
                        moments, tile, ct, half_norms, screen, norms, slack, eps_b, eps_c, other,
                        moved_rows, moved_from, part_counts)


run_on_threads(bounded_step, _step_prepare, _step_work, _step_finish)


@kernel
def bounded_objective(centers, shift, sums, moments):
    """The inertia of a bounded pass from its running statistics, in one sweep (float64).

    ``sum_j Q_j + W_j ||o_j||^2 - 2 o_j . (S_j - W_j m_j)`` with ``o_j = c_j - m_j``: no
    cancellation, as ``m_j`` (the centres of the last full pass) is close to ``c_j``.

    Parameters
    ----------
    centers : ndarray, shape (k, d)
        The centres of the pass (X's dtype).
    shift : ndarray, shape (k, d), float64
        The moments' reference points ``m_j`` (:func:`bounded_step`).
    sums, moments : ndarray, float64, shapes (k, d) and (k, 2)
        The running ``S_j = sum w x`` and ``[W_j, Q_j]`` (:func:`bounded_step`).

    Returns
    -------
    inertia : float
    finite : bool
        Whether every entry of ``sums`` is finite.
    """
    k, d = centers.shape
    inertia, finite = 0.0, True
    for j in range(k):
        w = moments[j, 0]
        cross, square = 0.0, 0.0
        for f in range(d):
            o = np.float64(centers[j, f]) - shift[j, f]
            s = sums[j, f]
            cross += o * (s - w * shift[j, f])
            square += o * o
            finite &= abs(s) <= 1.7976931348623157e308   # False for +-inf and NaN
        inertia += moments[j, 1] + w * square - 2.0 * cross
    return inertia, finite


# ------------------------------------------------------------------------------- CSR rows
# The same method for CSR X (``fastem.kernels.csr_distances``): a row is searched on its own
# (no gathering), its search error is that of an nnz-term sum, eps = 2 (nnz + 4) u_T (B + ||x|| C)
# plus the offsets' own float64 rounding (sums over all d features; ``_csr_tables``),
# and its float64 distance ``||c||^2 + sum_nnz ((x_f - c_f)^2 - c_f^2)`` is off by at most
# ``err = 8 u_64 ((nnz + 4) (||c||^2 + ||x||^2) + d ||c||^2)`` (absolute: the sum cancels; the
# last term covers ``||c||^2`` itself, a sum over all d features), which widens both bounds.


@kernel
def _csr_tables(data, centers):
    """(ct, half_norms, centre norms, squared centre norms, 2 u_T B (plus a quarter of
    :func:`_offsets_rounding`), 2 u_T C)."""
    ct, half_norms, squares = _center_tables(data, centers)
    k, d = centers.shape
    big_b, big_c = table_extents(ct, half_norms, k, d, 0, ct.shape[1])
    unit = 2.0 ** -24 if data.itemsize == 4 else 2.0 ** -53
    # the offsets are float64 sums over all d features, not nnz: their rounding enters
    # eps_b as a quarter (eps_b is multiplied by a row's terms, nnz + 4 >= 4)
    norms = np.sqrt(squares)
    return (ct, half_norms, norms, squares,
            2.0 * unit * big_b + 0.25 * _offsets_rounding(d, big_c, _largest(norms)),
            2.0 * unit * big_c)


@kernel
def _csr_upper_from(d2, xx, nnz, square, d):
    """(u >= ||x - c||, d2, its error bound, xx) from a CSR row's computed ``d2 = ||x -
    c||^2`` (``nnz`` non-zeros, ``xx = ||x||^2``, ``square = ||c||^2`` summed over ``d``
    features)."""
    err = 8.0 * 2.0 ** -53 * ((nnz + 4.0) * (square + xx) + d * square)
    return np.sqrt(d2 + err) * (1.0 + 2.0 ** -50), d2, err, xx


@kernel
def _csr_upper(data, indices, lo, hi, centers, j, squares):
    """(u >= ||x - c_j||, computed ||x - c_j||^2, its error bound, ||x||^2) of a CSR row."""
    xx = 0.0
    for p in range(lo, hi):
        xx += np.float64(data[p]) ** 2
    d2 = _row_sqdist(data, indices, lo, hi, centers, j, squares)
    return _csr_upper_from(d2, xx, hi - lo, squares[j], centers.shape[1])


@kernel
def _csr_row_bounds(data, indices, lo, hi, centers, j, gap, squares, eps_b, eps_c):
    """(u, l, ||x - c_j||^2) of a searched CSR row with nearest centre j and score gap."""
    u, d2, err, xx = _csr_upper(data, indices, lo, hi, centers, j, squares)
    eps = (hi - lo + 4.0) * (eps_b + np.sqrt(xx) * eps_c)
    low2 = d2 - err + 2.0 * (gap * (1.0 - 2.0 ** -50) - 2.0 * eps)
    return u, _lower_from_square(low2), d2


@kernel
def _csr_margins(u, terms, a, norms, eps_b, eps_c):
    """The terms of :func:`_csr_separated` that do not depend on the lower bound."""
    eps = terms * (eps_b + (u + norms[a]) * eps_c)
    return u * u * (1.0 + 2.0 ** -50), 4.0 * eps


@kernel
def _clears(low, u, uu, eps4):
    """:func:`_csr_separated` from its :func:`_csr_margins` (branch-free)."""
    return (low > u) & (low * low * (1.0 - 2.0 ** -50) - uu > eps4)


@kernel
def _csr_separated(u, low, terms, a, norms, eps_b, eps_c):
    """:func:`_separated` for a CSR row of ``terms - 4`` non-zeros."""
    uu, eps4 = _csr_margins(u, terms, a, norms, eps_b, eps_c)
    return _clears(low, u, uu, eps4)


@kernel
def _csr_full_prepare(data, indices, indptr, sample_weight, centers, labels, upper, lower):
    n = indptr.shape[0] - 1
    k, d = centers.shape
    nc = n_partials(n, k * (d + 2) * 8)
    ct, half_norms, norms, squares, eps_b, eps_c = _csr_tables(data, centers)
    return (nc, ct, half_norms, norms, squares, eps_b, eps_c, np.empty((nc, k, d)),
            np.empty((nc, k, 2)), np.empty(nc))


@kernel
def _csr_full_work(lo, hi, data, indices, indptr, sample_weight, centers, labels, upper,
                   lower, ct, half_norms, norms, squares, eps_b, eps_c, part_sums,
                   part_moments, part_changed):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    nc = part_sums.shape[0]
    scores = np.empty(ct.shape[1], ct.dtype)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        sums, moments = part_sums[c], part_moments[c]
        sums[:] = 0.0
        moments[:] = 0.0
        changed = 0
        for i in range(start, stop):
            a, b = indptr[i], indptr[i + 1]
            j, gap = _top2_row(data, indices, a, b, ct, half_norms, k, scores)
            changed += j != labels[i]
            labels[i] = j
            u, low, d2 = _csr_row_bounds(data, indices, a, b, centers, j, gap, squares, eps_b,
                                         eps_c)
            upper[i], lower[i] = _stored_upper(u), _stored_lower(low)
            w = sample_weight[i]
            add_csr_row(sums, j, w, data, indices, a, b)
            moments[j, 0] += w
            moments[j, 1] += w * d2
        part_changed[c] = changed


@kernel
def _csr_full_finish(data, indices, indptr, sample_weight, centers, labels, upper, lower, ct,
                     half_norms, norms, squares, eps_b, eps_c, part_sums, part_moments,
                     part_changed):
    return _fold_full_partials(part_sums, part_moments, part_changed)


@kernel(parallel=True)
def bounded_full_step_csr(data, indices, indptr, sample_weight, centers, labels, upper, lower):
    """:func:`bounded_full_step` for CSR X (``data, indices, indptr``; same outputs)."""
    (nc, ct, half_norms, norms, squares, eps_b, eps_c, part_sums, part_moments,
     part_changed) = _csr_full_prepare(data, indices, indptr, sample_weight, centers, labels,
                                       upper, lower)
    for c in prange(nc):
        _csr_full_work(c, c + 1, data, indices, indptr, sample_weight, centers, labels, upper,
                       lower, ct, half_norms, norms, squares, eps_b, eps_c, part_sums,
                       part_moments, part_changed)
    return _csr_full_finish(data, indices, indptr, sample_weight, centers, labels, upper,
                            lower, ct, half_norms, norms, squares, eps_b, eps_c, part_sums,
                            part_moments, part_changed)


run_on_threads(bounded_full_step_csr, _csr_full_prepare, _csr_full_work, _csr_full_finish)


@kernel
def _csr_step_prepare(data, indices, indptr, sample_weight, centers, drift, shift, labels,
                      upper, lower, sums, moments):
    n = indptr.shape[0] - 1
    nc = n_blocks(n)   # one work item per block: a pass keeps no (k, d) partials
    ct, half_norms, norms, squares, eps_b, eps_c = _csr_tables(data, centers)
    return (nc, ct, half_norms, norms, squares, eps_b, eps_c, _other_drift(drift),
            squared_row_norms(shift), np.empty(n, np.int64), np.empty(n, np.int32),
            np.empty((nc, 2), np.int64))


@kernel
def _csr_step_work(lo, hi, data, indices, indptr, sample_weight, centers, drift, shift, labels,
                   upper, lower, sums, moments, ct, half_norms, norms, squares, eps_b, eps_c,
                   other, shift_squares, moved_rows, moved_from, part_counts):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    nc = part_counts.shape[0]
    scores = np.empty(ct.shape[1], ct.dtype)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        changed = 0
        searched = 0
        for i in range(start, stop):
            a = labels[i]
            lo_p, hi_p = indptr[i], indptr[i + 1]
            terms = hi_p - lo_p + 4.0
            u = (np.float64(upper[i]) + drift[a]) * (1.0 + 2.0 ** -50)
            low = (np.float64(lower[i]) - other[a]) * (1.0 - 2.0 ** -50)
            if not _csr_separated(u, low, terms, a, norms, eps_b, eps_c):
                # tighten the upper bound (O(nnz)); search (O(nnz k)) only if still needed
                u = _csr_upper(data, indices, lo_p, hi_p, centers, a, squares)[0]
            if _csr_separated(u, low, terms, a, norms, eps_b, eps_c):
                upper[i], lower[i] = _stored_upper(u), _stored_lower(low)
                continue
            searched += k
            j, gap = _top2_row(data, indices, lo_p, hi_p, ct, half_norms, k, scores)
            u, low, _ = _csr_row_bounds(data, indices, lo_p, hi_p, centers, j, gap, squares,
                                        eps_b, eps_c)
            upper[i], lower[i] = _stored_upper(u), _stored_lower(low)
            changed += _record_move(i, a, j, labels, moved_rows, moved_from, start + changed)
        part_counts[c, 0] = changed
        part_counts[c, 1] = searched


@kernel
def _replay_csr_moves(data, indices, indptr, sample_weight, shift, shift_squares, labels,
                      moved_rows, moved_from, part_counts, sums, moments):
    """:func:`_replay_moves` for CSR X."""
    rows, old = _moves_in_row_order(indptr.shape[0] - 1, moved_rows, moved_from, part_counts)
    for t in range(rows.shape[0]):
        i, a = rows[t], old[t]
        j, w = labels[i], sample_weight[i]
        lo_p, hi_p = indptr[i], indptr[i + 1]
        add_csr_row(sums, a, -w, data, indices, lo_p, hi_p)
        add_csr_row(sums, j, w, data, indices, lo_p, hi_p)
        moments[a, 0] -= w
        moments[j, 0] += w
        moments[a, 1] -= w * _row_sqdist(data, indices, lo_p, hi_p, shift, a, shift_squares)
        moments[j, 1] += w * _row_sqdist(data, indices, lo_p, hi_p, shift, j, shift_squares)
    return _moves_and_counts(part_counts)


@kernel
def _csr_step_finish(data, indices, indptr, sample_weight, centers, drift, shift, labels, upper,
                     lower, sums, moments, ct, half_norms, norms, squares, eps_b, eps_c, other,
                     shift_squares, moved_rows, moved_from, part_counts):
    return _replay_csr_moves(data, indices, indptr, sample_weight, shift, shift_squares,
                             labels, moved_rows, moved_from, part_counts, sums, moments)


@kernel(parallel=True)
def bounded_step_csr(data, indices, indptr, sample_weight, centers, drift, shift, labels,
                     upper, lower, sums, moments):
    """:func:`bounded_step` for CSR X (``data, indices, indptr``; same outputs)."""
    (nc, ct, half_norms, norms, squares, eps_b, eps_c, other, shift_squares, moved_rows,
     moved_from, part_counts) = _csr_step_prepare(data, indices, indptr, sample_weight,
                                                    centers, drift, shift, labels, upper,
                                                    lower, sums, moments)
    for c in prange(nc):
        _csr_step_work(c, c + 1, data, indices, indptr, sample_weight, centers, drift, shift,
                       labels, upper, lower, sums, moments, ct, half_norms, norms, squares, eps_b,
                       eps_c, other, shift_squares, moved_rows, moved_from, part_counts)
    return _csr_step_finish(data, indices, indptr, sample_weight, centers, drift, shift, labels,
                            upper, lower, sums, moments, ct, half_norms, norms, squares, eps_b,
                            eps_c, other, shift_squares, moved_rows, moved_from, part_counts)


run_on_threads(bounded_step_csr, _csr_step_prepare, _csr_step_work, _csr_step_finish)


# ---------------------------------------------------------------- Elkan: one bound per centre
# ``lower[i, j] <= ||x_i - c_j||`` for every centre (float32, rounded down; the entry of the
# row's own label is unused). A row is searched only over the centres whose bound does not
# separate them from its label, with the search's own arithmetic (the same products and
# subtractions in the same order as :func:`_nearest_row`), so the winner is Lloyd's label;
# the searched centres' bounds are rebuilt from their score gaps to the winner.


@kernel
def _csr_scores(data, indices, lo, hi, ct, half_norms, centres, m, out):
    """``out[t]`` = the search's computed score of centre ``centres[t]``, t < m: each the
    products and subtractions of :func:`_nearest_row` in its order (ordered subtractions,
    which nothing reassociates), four centres at a time in registers (a score kept in
    memory waits on a store and a load every non-zero); a group short of four repeats its
    last centre and drops those sums."""
    for t0 in range(0, m, 4):
        c0, c1 = centres[t0], centres[min(t0 + 1, m - 1)]
        c2, c3 = centres[min(t0 + 2, m - 1)], centres[min(t0 + 3, m - 1)]
        s0, s1, s2, s3 = half_norms[c0], half_norms[c1], half_norms[c2], half_norms[c3]
        for p in range(lo, hi):
            v = data[p]
            f = indices[p]
            s0 = difference(s0, v * ct[f, c0])
            s1 = difference(s1, v * ct[f, c1])
            s2 = difference(s2, v * ct[f, c2])
            s3 = difference(s3, v * ct[f, c3])
        out[t0] = s0
        if t0 + 1 < m:
            out[t0 + 1] = s1
        if t0 + 2 < m:
            out[t0 + 2] = s2
        if t0 + 3 < m:
            out[t0 + 3] = s3


@kernel
def _lower_from_square(low2):
    """A lower bound on a distance from a lower bound ``low2`` on its square (float64,
    rounded down; 0 for ``low2 <= 0``)."""
    return np.sqrt(low2) * (1.0 - 2.0 ** -50) if low2 > 0.0 else 0.0


@kernel
def _csr_lower_from_score(d2_lo, score_gap, eps):
    """A lower bound on ||x - c_j|| from ||x - c_b||^2 >= d2_lo and the computed score gap
    s_j - s_b (``||x - c_j||^2 - ||x - c_b||^2 = 2 (s_j - s_b)`` up to 4 eps)."""
    return _stored_lower(_lower_from_square(
        d2_lo + 2.0 * (score_gap * (1.0 - 2.0 ** -50) - 2.0 * eps)))


@kernel
def _elkan_csr_full_work(lo, hi, data, indices, indptr, sample_weight, centers, labels, upper,
                         lower, ct, half_norms, norms, squares, eps_b, eps_c, part_sums,
                         part_moments, part_changed):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    nc = part_sums.shape[0]
    scores = np.empty(ct.shape[1], ct.dtype)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        sums, moments = part_sums[c], part_moments[c]
        sums[:] = 0.0
        moments[:] = 0.0
        changed = 0
        for i in range(start, stop):
            a, b = indptr[i], indptr[i + 1]
            j = _nearest_row(data, indices, a, b, ct, half_norms, k, scores)
            changed += j != labels[i]
            labels[i] = j
            u, d2, err, xx = _csr_upper(data, indices, a, b, centers, j, squares)
            eps = (b - a + 4.0) * (eps_b + np.sqrt(xx) * eps_c)
            upper[i] = _stored_upper(u)
            for t in range(k):
                lower[i, t] = _csr_lower_from_score(
                    d2 - err, np.float64(scores[t]) - np.float64(scores[j]), eps)
            w = sample_weight[i]
            add_csr_row(sums, j, w, data, indices, a, b)
            moments[j, 0] += w
            moments[j, 1] += w * d2
        part_changed[c] = changed


@kernel(parallel=True)
def elkan_full_step_csr(data, indices, indptr, sample_weight, centers, labels, upper, lower):
    """:func:`bounded_full_step_csr` with one lower bound per centre: ``lower`` (n, k)
    float32."""
    (nc, ct, half_norms, norms, squares, eps_b, eps_c, part_sums, part_moments,
     part_changed) = _csr_full_prepare(data, indices, indptr, sample_weight, centers, labels,
                                       upper, lower)
    for c in prange(nc):
        _elkan_csr_full_work(c, c + 1, data, indices, indptr, sample_weight, centers, labels,
                             upper, lower, ct, half_norms, norms, squares, eps_b, eps_c,
                             part_sums, part_moments, part_changed)
    return _csr_full_finish(data, indices, indptr, sample_weight, centers, labels, upper,
                            lower, ct, half_norms, norms, squares, eps_b, eps_c, part_sums,
                            part_moments, part_changed)


run_on_threads(elkan_full_step_csr, _csr_full_prepare, _elkan_csr_full_work, _csr_full_finish)


@kernel
def _csr_reference_and_scores(data, indices, lo, hi, ref, ref_square, ct, half_norms, centres,
                              m, out):
    """(``||x - r||^2`` computed, its error bound, ``||x||^2``) of a CSR row, r the search
    table's reference point (the centres' mean, float64: a d-vector every row shares, so
    its reads hit the cache), and :func:`_csr_scores` of ``centres[:m]``: with them
    :func:`_score_sqdist` bounds every scored centre's distance without reading a centre.
    Not :func:`_csr_upper` with r as a one-row table: that sums ``||x||^2`` and the distance
    in two loops, and the extra walk of the row made the middle passes ~5% slower."""
    xx = 0.0
    xr = ref_square
    for p in range(lo, hi):
        x = np.float64(data[p])
        xx += x ** 2
        c = ref[indices[p]]
        e = x - c
        xr += e * e - c * c
    _csr_scores(data, indices, lo, hi, ct, half_norms, centres, m, out)
    _, xr, err, xx = _csr_upper_from(max(xr, 0.0), xx, hi - lo, ref_square, ref.shape[0])
    return xr, err, xx


@kernel
def _score_sqdist(score, xr, err, eps, side):
    """A bound on ``||x - c_j||^2`` from centre j's computed score: above it for ``side =
    1``, below for ``side = -1``. ``||x - c_j||^2 = 2 s_j + ||x - r||^2`` exactly (module
    docstring), the computed score is within ``eps`` of s_j and ``xr`` within ``err`` of
    ``||x - r||^2``; the last term covers this sum's own rounding (it may cancel)."""
    two_s = 2.0 * np.float64(score)
    return two_s + xr + side * (2.0 * eps + err + 2.0 ** -50 * (abs(two_s) + xr))


@kernel
def _csr_open_centres(u, bound, a, terms, norms, eps_b, eps_c, near):
    """The label a, then the centres whose bounds do not separate them from it, into
    ``near`` (k + 1 entries); returns their number (1: the row keeps its label)."""
    near[0] = a
    m = 1
    for j in range(bound.shape[0]):
        # branch-free: which centres are open is unpredictable
        near[m] = j
        m += (j != a) & (not _csr_separated(u, bound[j], terms, a, norms, eps_b, eps_c))
    return m


@kernel
def _decay_csr_lower(lower, i, drift, u, a, terms, norms, eps_b, eps_c, bound):
    """Row i's lower bounds after the centres moved by ``drift``, into ``bound`` and, stored
    as float32, back into ``lower``; returns how many centres other than the label a they
    leave open (:func:`_csr_separated` with its margins hoisted: the loop runs in vectors;
    most rows of a late pass have no open centre and need nothing else)."""
    uu, eps4 = _csr_margins(u, terms, a, norms, eps_b, eps_c)
    n_open = 0
    for j in range(bound.shape[0]):
        low = (np.float64(lower[i, j]) - drift[j]) * (1.0 - 2.0 ** -50)
        bound[j] = low
        lower[i, j] = _stored_lower(low)
        n_open += (j != a) & (not _clears(low, u, uu, eps4))
    return n_open


@kernel
def _elkan_csr_step_prepare(data, indices, indptr, sample_weight, centers, drift, shift, labels,
                            upper, lower, sums, moments):
    """:func:`_csr_step_prepare` and the search table's reference point r with ``||r||^2``
    (:func:`_csr_reference_and_scores`)."""
    ref = centre_mean(centers)
    return (*_csr_step_prepare(data, indices, indptr, sample_weight, centers, drift, shift,
                               labels, upper, lower, sums, moments),
            ref, squared_row_norms(ref.reshape((1, ref.shape[0])))[0])


@kernel
def _elkan_csr_step_finish(data, indices, indptr, sample_weight, centers, drift, shift, labels,
                           upper, lower, sums, moments, ct, half_norms, norms, squares, eps_b,
                           eps_c, other, shift_squares, moved_rows, moved_from, part_counts,
                           ref, ref_square):
    return _csr_step_finish(data, indices, indptr, sample_weight, centers, drift, shift, labels,
                            upper, lower, sums, moments, ct, half_norms, norms, squares, eps_b,
                            eps_c, other, shift_squares, moved_rows, moved_from, part_counts)


@kernel
def _elkan_csr_step_work(lo, hi, data, indices, indptr, sample_weight, centers, drift, shift,
                         labels, upper, lower, sums, moments, ct, half_norms, norms, squares,
                         eps_b, eps_c, other, shift_squares, moved_rows, moved_from, part_counts,
                         ref, ref_square):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    nc = part_counts.shape[0]
    near = np.empty(k + 1, np.int64)   # the label, then the centres not separated from it
    bound = np.empty(k)
    scores = np.empty(k, ct.dtype)
    every = np.empty(ct.shape[1], ct.dtype)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        changed = 0
        searched = 0
        for i in range(start, stop):
            a = labels[i]
            lo_p, hi_p = indptr[i], indptr[i + 1]
            terms = hi_p - lo_p + 4.0
            u = (np.float64(upper[i]) + drift[a]) * (1.0 + 2.0 ** -50)
            if _decay_csr_lower(lower, i, drift, u, a, terms, norms, eps_b, eps_c,
                                bound) == 0:
                upper[i] = _stored_upper(u)   # every bound separates: the label stays
                continue
            m = _csr_open_centres(u, bound, a, terms, norms, eps_b, eps_c, near)
            if m > 1:
                by_scores = 4 * m <= k
                if by_scores:
                    # few open centres: score them in one pass; the winner among them is
                    # the search's (they include every centre the tight bound leaves
                    # open), and its score and theirs give every bound (_score_sqdist)
                    xr, err, xx = _csr_reference_and_scores(data, indices, lo_p, hi_p, ref,
                                                            ref_square, ct, half_norms,
                                                            near, m, scores)
                else:
                    # many: tighten first (O(nnz)), which may close them all
                    u, d2, err, xx = _csr_upper(data, indices, lo_p, hi_p, centers, a,
                                                squares)
                    m = _csr_open_centres(u, bound, a, terms, norms, eps_b, eps_c, near)
                    if 4 * m > k:
                        # still many: the vectorised search of all centres costs less
                        # than gathering, and refreshes every bound (same scores)
                        _nearest_row(data, indices, lo_p, hi_p, ct, half_norms, k, every)
                        m = k
                        for j in range(k):
                            near[j] = j
                            scores[j] = every[j]
                    elif m > 1:
                        _csr_scores(data, indices, lo_p, hi_p, ct, half_norms, near, m,
                                    scores)
            if m > 1:
                searched += m
                best = 0
                for t in range(1, m):   # smallest score; ties to the smallest index
                    if scores[t] < scores[best] or (scores[t] == scores[best]
                                                    and near[t] < near[best]):
                        best = t
                j = near[best]
                if by_scores:
                    eps = terms * (eps_b + np.sqrt(xx) * eps_c)
                    u = np.sqrt(_score_sqdist(scores[best], xr, err, eps, 1.0)) * (
                        1.0 + 2.0 ** -50)
                    for t in range(m):
                        low = _lower_from_square(_score_sqdist(scores[t], xr, err, eps, -1.0))
                        bound[near[t]] = max(bound[near[t]], np.float64(_stored_lower(low)))
                else:
                    if j != a:
                        u, d2, err, xx = _csr_upper(data, indices, lo_p, hi_p, centers, j,
                                                    squares)
                    eps = terms * (eps_b + np.sqrt(xx) * eps_c)
                    for t in range(m):
                        bound[near[t]] = max(bound[near[t]], np.float64(_csr_lower_from_score(
                            d2 - err, np.float64(scores[t]) - np.float64(scores[best]), eps)))
                changed += _record_move(i, a, j, labels, moved_rows, moved_from, start + changed)
                for t in range(m):   # the others' decayed bounds are stored already
                    lower[i, near[t]] = _stored_lower(bound[near[t]])
            upper[i] = _stored_upper(u)
        part_counts[c, 0] = changed
        part_counts[c, 1] = searched


@kernel(parallel=True)
def elkan_step_csr(data, indices, indptr, sample_weight, centers, drift, shift, labels, upper,
                   lower, sums, moments):
    """:func:`bounded_step_csr` with one lower bound per centre (``lower`` (n, k) float32):
    a row is scored only against the centres its bounds do not rule out."""
    (nc, ct, half_norms, norms, squares, eps_b, eps_c, other, shift_squares, moved_rows,
     moved_from, part_counts, ref, ref_square) = _elkan_csr_step_prepare(
        data, indices, indptr, sample_weight, centers, drift, shift, labels, upper, lower, sums,
        moments)
    for c in prange(nc):
        _elkan_csr_step_work(c, c + 1, data, indices, indptr, sample_weight, centers, drift, shift,
                             labels, upper, lower, sums, moments, ct, half_norms, norms, squares,
                             eps_b, eps_c, other, shift_squares, moved_rows, moved_from,
                             part_counts, ref, ref_square)
    return _elkan_csr_step_finish(data, indices, indptr, sample_weight, centers, drift, shift,
                                  labels, upper, lower, sums, moments, ct, half_norms, norms,
                                  squares, eps_b, eps_c, other, shift_squares, moved_rows,
                                  moved_from, part_counts, ref, ref_square)


run_on_threads(elkan_step_csr, _elkan_csr_step_prepare, _elkan_csr_step_work,
               _elkan_csr_step_finish)
