"""Squared Euclidean distances for CSR rows against dense centres: O(nnz k) per pass.

CSR input is ``(data, indices, indptr)``: data float32 or float64, indices/indptr int32 or
int64, row i = ``data[indptr[i]:indptr[i + 1]]`` (absolute offsets, so ``indptr[a:b + 1]``
selects rows a..b without a copy). Centres are dense, (k, d).

The search minimises the same score as the dense kernels (:mod:`fastem.kernels.distances`),
``bias_j - sum_{f in nnz(x)} x_f ct[f, j]`` with ``ct`` the centres relative to their mean
(so a row's cost is one k-wide vector update per non-zero), ties to the smallest index. The
distance to a centre is then computed in float64 as
``||x - c||^2 = ||c||^2 + sum_{f in nnz(x)} ((x_f - c_f)^2 - c_f^2)``.
"""
import numpy as np
from numba import prange

from ._blocks import (block_bounds, chunk_bounds, fold_blocks, fold_rows, n_blocks,
                      n_partials)
from ._jit import kernel, run_on_threads
from ._simd import prefetch
from ._target import CSR_PREFETCH_FLOATS, CSR_PREFETCH_NONZEROS
from .distances import (_block_sums_work, cannot_improve, search_table,
                        squared_row_norms)


@kernel
def _center_tables(data, centers):
    """(ct (d, kp), offsets (kp,), ||c_j||^2 (k,)) for the sparse search and distances."""
    kp = (centers.shape[0] + 7) // 8 * 8   # k-wide updates in whole vectors
    ct, half_norms = search_table(np.empty((0, 1), data.dtype), centers, 0, kp)
    return ct, half_norms, squared_row_norms(centers)


@kernel
def csr_column_sums(data, indices, d):
    """``(sum_i x_if, sum_i x_if^2)`` per column f < d of CSR rows, float64, in non-zero
    order (serial; what two ``numpy.bincount`` calls give, in one read of the non-zeros)."""
    s1, s2 = np.zeros(d), np.zeros(d)
    for p in range(data.shape[0]):
        x = np.float64(data[p])
        s1[indices[p]] += x
        s2[indices[p]] += x * x
    return s1, s2


@kernel
def _row_sqdist(data, indices, lo, hi, centers, j, norms):
    """``||x - centers[j]||^2`` (float64) of the CSR row ``data[lo:hi]``."""
    s = norms[j]
    for p in range(lo, hi):
        c = np.float64(centers[j, indices[p]])
        t = np.float64(data[p]) - c
        s += t * t - c * c
    return max(s, 0.0)


@kernel
def add_csr_row(sums, j, weight, data, indices, lo, hi):
    """``sums[j] += weight * x`` for the CSR row ``data[lo:hi]`` (float64 ``sums``)."""
    for p in range(lo, hi):
        sums[j, indices[p]] += weight * np.float64(data[p])


@kernel
def _nearest_row(data, indices, lo, hi, ct, half_norms, k, scores):
    """Nearest centre of the CSR row ``data[lo:hi]`` (smallest index on ties)."""
    kp = scores.shape[0]
    scores[:] = half_norms
    ahead = min(hi + CSR_PREFETCH_NONZEROS, indices.shape[0]) - CSR_PREFETCH_NONZEROS
    for p in range(lo, hi):
        if p < ahead:   # the table row of a non-zero a few ahead (rows are random reads)
            prefetch(ct, indices[p + CSR_PREFETCH_NONZEROS] * kp, min(kp, CSR_PREFETCH_FLOATS))
        v = data[p]
        f = indices[p]
        for j in range(kp):
            scores[j] -= v * ct[f, j]
    best, best_j = scores[0], 0
    for j in range(1, k):
        if scores[j] < best:
            best, best_j = scores[j], j
    return best_j


@kernel
def _top2_row(data, indices, lo, hi, ct, half_norms, k, scores):
    """:func:`_nearest_row` plus the gap from the smallest score to the second smallest
    (float64; 0 on a tie, +inf when k = 1)."""
    j = _nearest_row(data, indices, lo, hi, ct, half_norms, k, scores)
    second = np.inf
    for t in range(k):
        if t != j and scores[t] < second:
            second = scores[t]
    return j, np.float64(second) - np.float64(scores[j])


@kernel
def _lloyd_csr_prepare(data, indices, indptr, sample_weight, centers, labels, center_sums,
                       center_weights):
    n = indptr.shape[0] - 1
    k, d = centers.shape
    nc = n_partials(n, k * (d + 1) * 8)
    ct, half_norms, norms = _center_tables(data, centers)
    return nc, ct, half_norms, norms, np.empty((nc, k, d)), np.empty((nc, k)), np.empty((nc, 2))


@kernel
def _lloyd_csr_work(lo, hi, data, indices, indptr, sample_weight, centers, labels,
                    center_sums, center_weights, ct, half_norms, norms, part_sums,
                    part_weights, part_scalars):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    nc = part_sums.shape[0]
    scores = np.empty(ct.shape[1], ct.dtype)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        sums, weights = part_sums[c], part_weights[c]
        sums[:] = 0.0
        weights[:] = 0.0
        inertia = 0.0
        changed = 0
        for i in range(start, stop):
            a, b = indptr[i], indptr[i + 1]
            j = _nearest_row(data, indices, a, b, ct, half_norms, k, scores)
            changed += j != labels[i]
            labels[i] = j
            w = sample_weight[i]
            add_csr_row(sums, j, w, data, indices, a, b)
            inertia += w * _row_sqdist(data, indices, a, b, centers, j, norms)
            weights[j] += w
        part_scalars[c, 0] = inertia
        part_scalars[c, 1] = changed


@kernel
def _lloyd_csr_finish(data, indices, indptr, sample_weight, centers, labels, center_sums,
                      center_weights, ct, half_norms, norms, part_sums, part_weights,
                      part_scalars):
    fold_blocks(part_sums, center_sums)
    fold_rows(part_weights, center_weights)
    totals = np.empty(2)
    fold_rows(part_scalars, totals)
    return totals[0], np.int64(totals[1])


@kernel(parallel=True)
def lloyd_step_csr(data, indices, indptr, sample_weight, centers, labels, center_sums,
                   center_weights):
    """:func:`fastem.kernels.lloyd_step` for CSR X (same outputs and conventions).

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays (module docstring); n = ``indptr.shape[0] - 1``.
    sample_weight, centers, labels, center_sums, center_weights :
        As :func:`fastem.kernels.lloyd_step` (``centers`` in data's dtype).

    Returns
    -------
    inertia : float
    n_changed : int
    """
    nc, ct, half_norms, norms, part_sums, part_weights, part_scalars = _lloyd_csr_prepare(
        data, indices, indptr, sample_weight, centers, labels, center_sums, center_weights)
    for c in prange(nc):
        _lloyd_csr_work(c, c + 1, data, indices, indptr, sample_weight, centers, labels,
                        center_sums, center_weights, ct, half_norms, norms, part_sums,
                        part_weights, part_scalars)
    return _lloyd_csr_finish(data, indices, indptr, sample_weight, centers, labels,
                             center_sums, center_weights, ct, half_norms, norms, part_sums,
                             part_weights, part_scalars)


run_on_threads(lloyd_step_csr, _lloyd_csr_prepare, _lloyd_csr_work, _lloyd_csr_finish)


@kernel
def _nearest_csr_prepare(data, indices, indptr, centers, labels, sqdist):
    ct, half_norms, norms = _center_tables(data, centers)
    return n_blocks(indptr.shape[0] - 1), ct, half_norms, norms


@kernel
def _nearest_csr_work(lo, hi, data, indices, indptr, centers, labels, sqdist, ct, half_norms,
                      norms):
    n = indptr.shape[0] - 1
    k = centers.shape[0]
    scores = np.empty(ct.shape[1], ct.dtype)
    for blk in range(lo, hi):
        start, stop = block_bounds(blk, n)
        for i in range(start, stop):
            a, b = indptr[i], indptr[i + 1]
            j = _nearest_row(data, indices, a, b, ct, half_norms, k, scores)
            labels[i] = j
            sqdist[i] = _row_sqdist(data, indices, a, b, centers, j, norms)


@kernel(parallel=True)
def nearest_centers_csr(data, indices, indptr, centers, labels, sqdist):
    """:func:`fastem.kernels.nearest_centers` for CSR X (labels int32, sqdist float64)."""
    nb, ct, half_norms, norms = _nearest_csr_prepare(data, indices, indptr, centers, labels,
                                                     sqdist)
    for blk in prange(nb):
        _nearest_csr_work(blk, blk + 1, data, indices, indptr, centers, labels, sqdist, ct,
                          half_norms, norms)


run_on_threads(nearest_centers_csr, _nearest_csr_prepare, _nearest_csr_work, None)


@kernel
def _sqdist_csr_prepare(data, indices, indptr, centers, out):
    return n_blocks(indptr.shape[0] - 1), squared_row_norms(centers)


@kernel
def _sqdist_csr_work(lo, hi, data, indices, indptr, centers, out, norms):
    n = indptr.shape[0] - 1
    for blk in range(lo, hi):
        start, stop = block_bounds(blk, n)
        for i in range(start, stop):
            for j in range(centers.shape[0]):
                out[i, j] = _row_sqdist(data, indices, indptr[i], indptr[i + 1], centers, j,
                                        norms)


@kernel(parallel=True)
def sqdist_to_centers_csr(data, indices, indptr, centers, out):
    """:func:`fastem.kernels.sqdist_to_centers` for CSR X: ``out[i, j] = ||x_i - c_j||^2``."""
    nb, norms = _sqdist_csr_prepare(data, indices, indptr, centers, out)
    for blk in prange(nb):
        _sqdist_csr_work(blk, blk + 1, data, indices, indptr, centers, out, norms)


run_on_threads(sqdist_to_centers_csr, _sqdist_csr_prepare, _sqdist_csr_work, None)


@kernel
def _seed_update_csr_prepare(data, indices, indptr, sample_weight, center, center_id,
                             center_gaps, min_sqdist, nearest, block_sums):
    return n_blocks(indptr.shape[0] - 1), squared_row_norms(center)


@kernel
def _seed_update_csr_work(lo, hi, data, indices, indptr, sample_weight, center, center_id,
                          center_gaps, min_sqdist, nearest, block_sums, norm):
    n = indptr.shape[0] - 1
    d = center.shape[1]
    for blk in range(lo, hi):
        start, stop = block_bounds(blk, n)
        for i in range(start, stop):
            if not cannot_improve(center_gaps[nearest[i]], min_sqdist[i], d):
                s = _row_sqdist(data, indices, indptr[i], indptr[i + 1], center, 0, norm)
                if s < min_sqdist[i]:
                    min_sqdist[i] = s
                    nearest[i] = center_id
        _block_sums_work(blk, blk + 1, sample_weight, min_sqdist, block_sums)


@kernel(parallel=True)
def seed_update_csr(data, indices, indptr, sample_weight, center, center_id, center_gaps,
                    min_sqdist, nearest, block_sums):
    """:func:`fastem.kernels.seed_update` for CSR X; ``center`` has shape (1, d)."""
    nb, norm = _seed_update_csr_prepare(data, indices, indptr, sample_weight, center,
                                        center_id, center_gaps, min_sqdist, nearest,
                                        block_sums)
    for blk in prange(nb):
        _seed_update_csr_work(blk, blk + 1, data, indices, indptr, sample_weight, center,
                              center_id, center_gaps, min_sqdist, nearest, block_sums, norm)


run_on_threads(seed_update_csr, _seed_update_csr_prepare, _seed_update_csr_work, None)


@kernel
def _seed_potentials_csr_prepare(data, indices, indptr, sample_weight, candidates,
                                 center_gaps, min_sqdist, nearest, potentials):
    nb = n_blocks(indptr.shape[0] - 1)
    # the candidates transposed: a non-zero's m candidate values share one cache line
    return nb, squared_row_norms(candidates), np.ascontiguousarray(candidates.T), \
        np.empty((nb, candidates.shape[0]))


@kernel
def _seed_potentials_csr_work(lo, hi, data, indices, indptr, sample_weight, candidates,
                              center_gaps, min_sqdist, nearest, potentials, norms,
                              candidates_t, partial):
    n = indptr.shape[0] - 1
    m, d = candidates.shape
    dist = np.empty(m)
    for blk in range(lo, hi):
        start, stop = block_bounds(blk, n)
        for c in range(m):
            partial[blk, c] = 0.0
        for i in range(start, stop):
            w = sample_weight[i]
            closest = min_sqdist[i]
            a = nearest[i]
            needed = False
            for c in range(m):
                if not cannot_improve(center_gaps[a, c], closest, d):
                    needed = True
                    break
            if needed:
                # every candidate's _row_sqdist in one pass over the row (the same
                # operations in the same order per candidate, so the same bits): the
                # reads of the candidates are random, one line per non-zero instead of m
                for c in range(m):
                    dist[c] = norms[c]
                for p in range(indptr[i], indptr[i + 1]):
                    v = np.float64(data[p])
                    f = indices[p]
                    for c in range(m):
                        cv = np.float64(candidates_t[f, c])
                        t = v - cv
                        dist[c] += t * t - cv * cv
            for c in range(m):
                if cannot_improve(center_gaps[a, c], closest, d):
                    partial[blk, c] += w * closest
                else:
                    partial[blk, c] += w * min(closest, max(dist[c], 0.0))


@kernel
def _seed_potentials_csr_finish(data, indices, indptr, sample_weight, candidates,
                                center_gaps, min_sqdist, nearest, potentials, norms,
                                candidates_t, partial):
    fold_rows(partial, potentials)


@kernel(parallel=True)
def seed_potentials_csr(data, indices, indptr, sample_weight, candidates, center_gaps,
                        min_sqdist, nearest, potentials):
    """:func:`fastem.kernels.seed_potentials` for CSR X (dense candidates (m, d))."""
    nb, norms, candidates_t, partial = _seed_potentials_csr_prepare(
        data, indices, indptr, sample_weight, candidates, center_gaps, min_sqdist, nearest,
        potentials)
    for blk in prange(nb):
        _seed_potentials_csr_work(blk, blk + 1, data, indices, indptr, sample_weight,
                                  candidates, center_gaps, min_sqdist, nearest, potentials,
                                  norms, candidates_t, partial)
    _seed_potentials_csr_finish(data, indices, indptr, sample_weight, candidates,
                                center_gaps, min_sqdist, nearest, potentials, norms,
                                candidates_t, partial)


run_on_threads(seed_potentials_csr, _seed_potentials_csr_prepare, _seed_potentials_csr_work,
               _seed_potentials_csr_finish)
