"""Exact k-means with one lower bound per group of centres (simplified Yinyang, Ding et al.
2015) on dense rows.

The centres are split into t groups of nearby centres (the caller's choice: ``order`` lists
the centres group by group, each group's in increasing index, ``group_start`` where each
group begins). Every row keeps its label ``a``, an upper bound ``u >= ||x - c_a||`` and one
lower bound per group, ``l_g <= min_{j in g, j != a} ||x - c_j||`` (float32, rounded
outwards, as in :mod:`fastem.kernels.bounds`). When the centres move by ``delta_j``,
``u += delta_a`` and ``l_g -= max_{j in g} delta_j``. A row is not searched when
``min_g l_g`` separates from u (the test of ``bounds``; the smallest group bound is never
below Hamerly's single bound, and a fast centre lowers only its own group's bound). A row
that fails is scored only against its label's group and the groups whose own bound does
not separate from u.

**Same labels as Lloyd.** Each group's centres form their own panels of one search table
(:func:`fastem.kernels.distances.panel_table`, relative to Lloyd's reference point, the
mean of all centres), so the tiles give every centre the score Lloyd's search gives it, bit
for bit. The groups' winners are compared by score, ties to the smaller centre index:
Lloyd's rule. A group that is not scored holds only centres whose computed score exceeds
the label's, so it cannot hold the winner. The scored groups' bounds are rebuilt from score
gaps (``bounds._rebuild_bounds``): for the winner's group from its runner-up in that group,
for another group from that group's smallest score.

The centre statistics are kept as in ``bounds``: a full pass sums them per chunk; a bounded
pass records the rows that move and applies them in row order after the parallel loop.
"""
import numpy as np
from numba import prange

from ._blocks import chunk_bounds, n_blocks, n_partials
from ._jit import BLOCK_ROWS, kernel, run_on_threads
from ._simd import axpy_sqdist, search_tile, sqdist
from ._target import GROUP_SEARCH_BYTES
from .bounds import (_error_terms, _fold_full_partials, _lower_from_gap, _record_move,
                     _replay_moves, _separation_floor, _stored_lower, _stored_upper,
                     _upper_and_base)
from .distances import (_top2_in_block, centre_mean, panel_table, prefetch_sub_block,
                        search_sub_block_rows, search_table_norms, squared_row_norms)


@kernel
def group_layout(order, group_start, width):
    """(columns, panel_start, group_of) of the grouped search table: each group takes whole
    panels of ``width`` columns (group g panels ``panel_start[g] <= p < panel_start[g + 1]``),
    its centres in ``order``'s order, padding columns -1; ``group_of[j]`` is centre j's
    group."""
    t = group_start.shape[0] - 1
    panel_start = np.zeros(t + 1, np.int64)
    for g in range(t):
        size = group_start[g + 1] - group_start[g]
        if size <= 0 or group_start[g + 1] > order.shape[0]:
            raise ValueError("group_start must increase strictly, up to len(order)")
        panel_start[g + 1] = panel_start[g] + (size + width - 1) // width
    columns = np.full(panel_start[t] * width, -1, np.int64)
    group_of = np.empty(order.shape[0], np.int32)
    for g in range(t):
        for s in range(group_start[g], group_start[g + 1]):
            columns[panel_start[g] * width + s - group_start[g]] = order[s]
            group_of[order[s]] = g
    return columns, panel_start, group_of


@kernel
def fill_groups(pairs, n_groups, group_size):
    """Centre j's group for the centre-group pairs ``pairs`` (``j * n_groups + g``, in order
    of preference): each centre takes the first of its pairs whose group still has room for
    ``group_size`` centres. Returns ``group`` (k,), int64."""
    k = pairs.shape[0] // n_groups
    group = np.full(k, -1, np.int64)
    room = np.full(n_groups, group_size, np.int64)
    for p in pairs:
        j, g = p // n_groups, p % n_groups
        if group[j] < 0 and room[g] > 0:
            group[j] = g
            room[g] -= 1
    return group


@kernel
def _group_tables(X, centers, order, group_start):
    """The grouped search table and what the bounds need: (tile, width, ct, half_norms,
    columns, panel_start, group_of, centre norms, slack, eps_b, eps_c). The tile is the
    narrowest that holds a group of average size."""
    k, d = centers.shape
    t = group_start.shape[0] - 1
    tile, width = search_tile((k + t - 1) // t, X.itemsize, 0)
    columns, panel_start, group_of = group_layout(order, group_start, width)
    ct, half_norms = panel_table(X, centers, centre_mean(centers), columns, width)
    norms = np.sqrt(squared_row_norms(centers))
    spreads = search_table_norms(ct, columns.shape[0], d, tile, width)
    big_b, big_c = 0.0, 0.0
    for col in range(columns.shape[0]):
        if columns[col] >= 0:
            big_b = max(big_b, abs(np.float64(half_norms[col])))
            big_c = max(big_c, spreads[col])
    return ((tile, width, ct, half_norms, columns, panel_start, group_of, norms)
            + _error_terms(X.itemsize, d, big_b, big_c, norms))


@kernel
def _take_winners(g, q, first, entry_row, entry_at, columns, panel_start, width, found,
                  scores, entry_score, best_score, best_centre, best_second):
    """Fold group g's search of q rows into their running winners: entry ``first + e`` is
    row slot ``entry_row[first + e]``; its group score goes to ``entry_score[entry_at[..]]``.
    Ties go to the smaller centre index (Lloyd's rule), whatever the order of the groups."""
    for e in range(q):
        s = entry_row[first + e]
        j = columns[panel_start[g] * width + found[e]]
        score = scores[e, 0]
        entry_score[entry_at[first + e]] = score
        if score < best_score[s] or (score == best_score[s] and j < best_centre[s]):
            best_score[s], best_centre[s], best_second[s] = score, j, scores[e, 1]


@kernel
def _group_table(ct, half_norms, panel_start, width, d, g):
    """Group g's panels of the grouped table, and their offsets."""
    p0, p1 = panel_start[g], panel_start[g + 1]
    return ct[p0 * d:p1 * d], half_norms[p0 * width:p1 * width]


@kernel
def _reset_winners(m, best_score, best_centre, best_second):
    for s in range(m):
        best_score[s], best_centre[s], best_second[s] = np.inf, 0, np.inf


@kernel
def _store_winner_bounds(i, j, d2, best, second, group_of, norms, slack, eps_b, eps_c, upper,
                         lower):
    """Row i's upper bound and its bound for its winner j's group (from the runner-up's score
    ``second`` there; ``best`` is j's score, d2 its squared distance). Returns (j's group,
    the base every other scored group's bound shares)."""
    u, base = _upper_and_base(d2, j, norms, slack, eps_b, eps_c)
    gj = group_of[j]
    upper[i] = _stored_upper(u)
    lower[i, gj] = _stored_lower(_lower_from_gap(base, second - best, slack))
    return gj, base


@kernel
def _store_group_lower(i, g, gj, base, score, best, slack, lower):
    """Row i's bound for group g from that group's smallest score (its winner's group gj
    takes the runner-up's instead)."""
    if g != gj:
        lower[i, g] = _stored_lower(_lower_from_gap(base, score - best, slack))


# ----------------------------------------------------------------------------- full pass

@kernel
def _group_full_prepare(X, sample_weight, centers, order, group_start, labels, upper, lower):
    n, d = X.shape
    k = centers.shape[0]
    nc = n_partials(n, k * (d + 2) * 8)
    return ((nc,) + _group_tables(X, centers, order, group_start)
            + (np.empty((nc, k, d)), np.empty((nc, k, 2)), np.empty(nc)))


@kernel
def _group_full_work(lo, hi, X, sample_weight, centers, order, group_start, labels, upper,
                     lower, tile, width, ct, half_norms, columns, panel_start, group_of, norms,
                     slack, eps_b, eps_c, part_sums, part_moments, part_changed):
    n, d = X.shape
    t = lower.shape[1]
    nc = part_sums.shape[0]
    sub = search_sub_block_rows(X, tile)
    found = np.empty(sub, np.int32)
    scores = np.empty((sub, 2))
    group_score = np.empty(sub * t)   # (row slot, group)
    best_score, best_centre, best_second = np.empty(sub), np.empty(sub, np.int32), np.empty(sub)
    # every group scores every row: entry s * t + g is row slot s's score for group g
    entry_row = np.empty(sub, np.int32)
    for s in range(sub):
        entry_row[s] = s
    entry_at = np.empty(sub, np.int64)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        sums, moments = part_sums[c], part_moments[c]
        sums[:] = 0.0
        moments[:] = 0.0
        changed = 0
        for b0 in range(start, stop, sub):   # the rows stay in L2 while every group is scored
            b1 = min(stop, b0 + sub)
            m = b1 - b0
            _reset_winners(m, best_score, best_centre, best_second)
            prefetch_sub_block(X, b0, b1, tile)   # once: later groups read it from L2
            for g in range(t):
                table, bias = _group_table(ct, half_norms, panel_start, width, d, g)
                _top2_in_block(X, b0, b1, table, bias, tile, found, b0, scores)
                for s in range(m):
                    entry_at[s] = s * t + g
                _take_winners(g, m, 0, entry_row, entry_at, columns, panel_start, width, found,
                              scores, group_score, best_score, best_centre, best_second)
            for i in range(b0, b1):
                s = i - b0
                j = best_centre[s]
                changed += j != labels[i]
                labels[i] = j
                w = sample_weight[i]
                d2 = axpy_sqdist(w, X, i * d, sums, j * d, centers, j * d, d)
                moments[j, 0] += w
                moments[j, 1] += w * d2
                best = best_score[s]
                gj, base = _store_winner_bounds(i, j, d2, best, best_second[s], group_of, norms,
                                                slack, eps_b, eps_c, upper, lower)
                for g in range(t):
                    _store_group_lower(i, g, gj, base, group_score[s * t + g], best, slack,
                                       lower)
        part_changed[c] = changed


@kernel
def _group_full_finish(X, sample_weight, centers, order, group_start, labels, upper, lower,
                       tile, width, ct, half_norms, columns, panel_start, group_of, norms,
                       slack, eps_b, eps_c, part_sums, part_moments, part_changed):
    return _fold_full_partials(part_sums, part_moments, part_changed)


@kernel(parallel=True)
def group_bounded_full_step(X, sample_weight, centers, order, group_start, labels, upper,
                            lower):
    """A Lloyd pass that also (re)builds every row's group bounds (module docstring).

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64, C-contiguous
    sample_weight : ndarray, shape (n,), float64
    centers : ndarray, shape (k, d), X's dtype
    order : ndarray, shape (k,), int64
        The centres group by group, each group's in increasing index.
    group_start : ndarray, shape (t + 1,), int64
        Group g is ``order[group_start[g]:group_start[g + 1]]``; an empty group raises
        ValueError.
    labels : ndarray, shape (n,), int32
        IN: previous labels (any values); OUT: nearest centre (Lloyd's, bit for bit).
    upper : ndarray, shape (n,), float32
        OUT: ``>= ||x_i - c_label||``.
    lower : ndarray, shape (n, t), float32
        OUT: ``lower[i, g] <=`` the distance from row i to every centre of group g but its
        label.

    Returns
    -------
    sums, moments, n_changed :
        As :func:`fastem.kernels.bounded_full_step`.
    """
    (nc, tile, width, ct, half_norms, columns, panel_start, group_of, norms, slack, eps_b,
     eps_c, part_sums, part_moments, part_changed) = _group_full_prepare(
        X, sample_weight, centers, order, group_start, labels, upper, lower)
    for c in prange(nc):
        _group_full_work(c, c + 1, X, sample_weight, centers, order, group_start, labels, upper,
                         lower, tile, width, ct, half_norms, columns, panel_start, group_of,
                         norms, slack, eps_b, eps_c, part_sums, part_moments, part_changed)
    return _group_full_finish(X, sample_weight, centers, order, group_start, labels, upper,
                              lower, tile, width, ct, half_norms, columns, panel_start,
                              group_of, norms, slack, eps_b, eps_c, part_sums, part_moments,
                              part_changed)


run_on_threads(group_bounded_full_step, _group_full_prepare, _group_full_work,
               _group_full_finish)


# -------------------------------------------------------------------------- bounded pass

@kernel
def _group_drift(drift, order, group_start):
    """The largest drift in each group."""
    t = group_start.shape[0] - 1
    out = np.zeros(t)
    for g in range(t):
        for s in range(group_start[g], group_start[g + 1]):
            out[g] = max(out[g], drift[order[s]])
    return out


@kernel
def _group_step_prepare(X, sample_weight, centers, drift, shift, order, group_start, labels,
                        upper, lower, sums, moments):
    n = X.shape[0]
    nc = n_blocks(n)   # one work item per block: a pass keeps no (k, d) partials
    return ((nc,) + _group_tables(X, centers, order, group_start)
            + (_group_drift(drift, order, group_start), np.empty(n, np.int64),
               np.empty(n, np.int32), np.empty((nc, 2), np.int64)))


@kernel
def _group_step_work(lo, hi, X, sample_weight, centers, drift, shift, order, group_start,
                     labels, upper, lower, sums, moments, tile, width, ct, half_norms, columns,
                     panel_start, group_of, norms, slack, eps_b, eps_c, group_drift,
                     moved_rows, moved_from, part_counts):
    n, d = X.shape
    t = lower.shape[1]
    nc = part_counts.shape[0]
    sub = min(BLOCK_ROWS, max(64, GROUP_SEARCH_BYTES // (d * X.itemsize)))
    rows = np.empty(sub, np.int64)
    tight = np.empty(sub)
    gathered = np.empty((sub, d), X.dtype)
    # row slot s's open groups are entries s * t ... s * t + n_open[s] - 1
    n_open = np.empty(sub, np.int64)
    open_group = np.empty(sub * t, np.int32)
    entry_score = np.empty(sub * t)
    # the entries again, group by group (group g from group_first[g]): slot and entry index
    group_first = np.empty(t + 1, np.int64)
    group_next = np.empty(t, np.int64)
    entry_row = np.empty(sub * t, np.int32)
    entry_at = np.empty(sub * t, np.int64)
    buffer = np.empty((sub, d), X.dtype)
    found = np.empty(sub, np.int32)
    scores = np.empty((sub, 2))
    best_score, best_centre, best_second = np.empty(sub), np.empty(sub, np.int32), np.empty(sub)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        changed = 0
        scored = 0
        for b0 in range(start, stop, sub):
            b1 = min(stop, b0 + sub)
            m = 0
            group_first[:] = 0
            for i in range(b0, b1):
                a = labels[i]
                u = (np.float64(upper[i]) + drift[a]) * (1.0 + slack)
                smallest = np.inf
                for g in range(t):
                    low = _stored_lower((np.float64(lower[i, g]) - group_drift[g])
                                        * (1.0 - slack))
                    lower[i, g] = low
                    smallest = min(smallest, np.float64(low))
                if smallest <= _separation_floor(u, a, norms, slack, eps_b, eps_c):
                    # tighten the upper bound; score groups only if that does not settle it
                    d2 = sqdist(X, i * d, centers, a * d, d)
                    scored += 1
                    u = np.sqrt(d2) * (1.0 + slack)
                    floor = _separation_floor(u, a, norms, slack, eps_b, eps_c)
                    if smallest <= floor:
                        own = group_of[a]
                        e = m * t
                        for g in range(t):
                            if g == own or lower[i, g] <= floor:
                                open_group[e] = g
                                group_first[g + 1] += 1
                                e += 1
                        n_open[m] = e - m * t
                        rows[m] = i
                        tight[m] = d2
                        for f in range(d):
                            gathered[m, f] = X[i, f]
                        m += 1
                upper[i] = _stored_upper(u)
            if m == 0:
                continue
            for g in range(t):
                group_first[g + 1] += group_first[g]
                group_next[g] = group_first[g]
            for s in range(m):
                for e in range(s * t, s * t + n_open[s]):
                    g = open_group[e]
                    entry_row[group_next[g]] = s
                    entry_at[group_next[g]] = e
                    group_next[g] += 1
            _reset_winners(m, best_score, best_centre, best_second)
            for g in range(t):
                first, q = group_first[g], group_first[g + 1] - group_first[g]
                if q == 0:
                    continue
                for e in range(q):
                    s = entry_row[first + e]
                    for f in range(d):
                        buffer[e, f] = gathered[s, f]
                table, bias = _group_table(ct, half_norms, panel_start, width, d, g)
                _top2_in_block(buffer, 0, q, table, bias, tile, found, 0, scores)
                scored += q * (group_start[g + 1] - group_start[g])
                _take_winners(g, q, first, entry_row, entry_at, columns, panel_start, width,
                              found, scores, entry_score, best_score, best_centre, best_second)
            for s in range(m):
                i = rows[s]
                j = best_centre[s]
                a = labels[i]
                d2 = tight[s] if j == a else sqdist(gathered, s * d, centers, j * d, d)
                best = best_score[s]
                gj, base = _store_winner_bounds(i, j, d2, best, best_second[s], group_of, norms,
                                                slack, eps_b, eps_c, upper, lower)
                for e in range(s * t, s * t + n_open[s]):
                    _store_group_lower(i, open_group[e], gj, base, entry_score[e], best, slack,
                                       lower)
                changed += _record_move(i, a, j, labels, moved_rows, moved_from, start + changed)
        part_counts[c, 0] = changed
        part_counts[c, 1] = scored


@kernel
def _group_step_finish(X, sample_weight, centers, drift, shift, order, group_start, labels,
                       upper, lower, sums, moments, tile, width, ct, half_norms, columns,
                       panel_start, group_of, norms, slack, eps_b, eps_c, group_drift,
                       moved_rows, moved_from, part_counts):
    return _replay_moves(X, sample_weight, shift, labels, moved_rows, moved_from,
                         part_counts, sums, moments)


@kernel(parallel=True)
def group_bounded_step(X, sample_weight, centers, drift, shift, order, group_start, labels,
                       upper, lower, sums, moments):
    """A Lloyd pass that scores only the rows, and of each only the groups of centres, that
    its group bounds do not settle (module docstring).

    Parameters
    ----------
    X, sample_weight, centers, order, group_start :
        As :func:`group_bounded_full_step`.
    drift, shift, sums, moments :
        As :func:`fastem.kernels.bounded_step`.
    labels, upper, lower :
        IN/OUT: as :func:`group_bounded_full_step` leaves them (valid for the centres before
        ``drift``); OUT: Lloyd's labels for ``centers`` and valid bounds.

    Returns
    -------
    n_changed : int
    n_scored : int
        Centre scores and distances computed.
    """
    (nc, tile, width, ct, half_norms, columns, panel_start, group_of, norms, slack, eps_b,
     eps_c, group_drift, moved_rows, moved_from, part_counts) = _group_step_prepare(
        X, sample_weight, centers, drift, shift, order, group_start, labels, upper, lower,
        sums, moments)
    for c in prange(nc):
        _group_step_work(c, c + 1, X, sample_weight, centers, drift, shift, order, group_start,
                         labels, upper, lower, sums, moments, tile, width, ct, half_norms,
                         columns, panel_start, group_of, norms, slack, eps_b, eps_c,
                         group_drift, moved_rows, moved_from, part_counts)
    return _group_step_finish(X, sample_weight, centers, drift, shift, order, group_start,
                              labels, upper, lower, sums, moments, tile, width, ct, half_norms,
                              columns, panel_start, group_of, norms, slack, eps_b, eps_c,
                              group_drift, moved_rows, moved_from, part_counts)


run_on_threads(group_bounded_step, _group_step_prepare, _group_step_work, _group_step_finish)
