"""Squared Euclidean distances: nearest-centre assignment, the fused Lloyd step, k-means++.

All kernels take ``X`` of shape (n, d), float32 or float64, C-contiguous (read-only arrays
such as ``np.load(..., mmap_mode='r')`` included) and use it as given. Distances that are
returned and every statistic are accumulated in float64; the nearest-centre *search* runs in
X's dtype (as BLAS-based k-means does), the distance to the chosen centre is then recomputed
directly as ``sum_f (x_f - c_f)^2`` in float64.
"""
import numpy as np
from numba import prange

from ._blocks import block_bounds, n_blocks
from ._jit import kernel
from ._simd import lanes, nearest_rows_narrow, nearest_rows_wide  # noqa: F401  (lanes: docs)


@kernel
def _transposed_centers(X, centers, width):
    """(d, kp) transpose of ``centers`` in X's dtype and (kp,) half squared norms.

    kp is k rounded up to a multiple of ``width``; padding columns are zero and their half
    norms +inf, so a padded centre never wins the search.
    """
    k, d = centers.shape
    kp = (k + width - 1) // width * width
    ct = np.zeros((d, kp), X.dtype)
    half_norms = np.full(kp, np.inf, X.dtype)
    for j in range(k):
        s = 0.0
        for f in range(d):
            c = X.dtype.type(centers[j, f])
            ct[f, j] = c
            s += np.float64(c) * np.float64(c)
        half_norms[j] = 0.5 * s
    return ct, half_norms


@kernel
def _search_layout(X, n_centers):
    """Pick the register tile for ``n_centers``: (wide?, tile width in centres)."""
    n_lanes = 64 // X.itemsize
    wide = n_centers > n_lanes
    return wide, (2 * n_lanes if wide else n_lanes)


@kernel
def _nearest_in_block(X, start, stop, ct, half_norms, wide, out, out_offset):
    """out[i - out_offset] = nearest centre of row i, for start <= i < stop."""
    if wide:
        for i in range(start, stop, 4):
            nearest_rows_wide(X, i, stop - 1, ct, half_norms, out, out_offset)
    else:
        for i in range(start, stop, 8):
            nearest_rows_narrow(X, i, stop - 1, ct, half_norms, out, out_offset)


@kernel
def _row_sqdist(X, i, centers, j):
    """||X[i] - centers[j]||^2 in float64."""
    s = 0.0
    for f in range(X.shape[1]):
        diff = np.float64(X[i, f]) - np.float64(centers[j, f])
        s += diff * diff
    return s


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
    n = X.shape[0]
    wide, width = _search_layout(X, centers.shape[0])
    ct, half_norms = _transposed_centers(X, centers, width)
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        _nearest_in_block(X, start, stop, ct, half_norms, wide, labels, 0)
        for i in range(start, stop):
            sqdist[i] = _row_sqdist(X, i, centers, labels[i])


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

    Each fixed-size row block accumulates into its own partial; partials are summed in block
    order, so every output is bitwise identical for any number of threads.
    """
    n, d = X.shape
    k = centers.shape[0]
    nb = n_blocks(n)
    wide, width = _search_layout(X, k)
    ct, half_norms = _transposed_centers(X, centers, width)
    part_sums = np.zeros((nb, k, d))
    part_weights = np.zeros((nb, k))
    part_inertia = np.zeros(nb)
    part_changed = np.zeros(nb, np.int64)
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        new = np.empty(stop - start, np.int32)
        _nearest_in_block(X, start, stop, ct, half_norms, wide, new, start)
        sums = part_sums[b]
        inertia = 0.0
        changed = 0
        for i in range(start, stop):
            j = new[i - start]
            if j != labels[i]:
                changed += 1
                labels[i] = j
            w = sample_weight[i]
            dist = 0.0
            for f in range(d):
                x = np.float64(X[i, f])
                sums[j, f] += w * x
                diff = x - np.float64(centers[j, f])
                dist += diff * diff
            inertia += w * dist
            part_weights[b, j] += w
        part_inertia[b] = inertia
        part_changed[b] = changed
    center_sums[:] = 0.0
    center_weights[:] = 0.0
    inertia = 0.0
    n_changed = 0
    for b in range(nb):
        center_sums += part_sums[b]
        center_weights += part_weights[b]
        inertia += part_inertia[b]
        n_changed += part_changed[b]
    return inertia, n_changed


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
    n = X.shape[0]
    k = centers.shape[0]
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            for j in range(k):
                out[i, j] = _row_sqdist(X, i, centers, j)


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
    n, d = X.shape
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            s = 0.0
            for f in range(d):
                diff = np.float64(X[i, f]) - np.float64(center[f])
                s += diff * diff
            if s < min_sqdist[i]:
                min_sqdist[i] = s


@kernel(parallel=True)
def kmeanspp_potentials(X, sample_weight, candidates, min_sqdist, potentials):
    """Greedy k-means++ scores: the potential if each candidate became the next centre.

    ``potentials[c] = sum_i w_i * min(min_sqdist[i], ||X[i] - candidates[c]||^2)``,
    computed without an (n, n_candidates) temporary.

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
    n, d = X.shape
    m = candidates.shape[0]
    nb = n_blocks(n)
    partial = np.zeros((nb, m))
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            w = sample_weight[i]
            closest = min_sqdist[i]
            for c in range(m):
                s = 0.0
                for f in range(d):
                    diff = np.float64(X[i, f]) - np.float64(candidates[c, f])
                    s += diff * diff
                partial[b, c] += w * min(s, closest)
    potentials[:] = 0.0
    for b in range(nb):
        potentials += partial[b]
