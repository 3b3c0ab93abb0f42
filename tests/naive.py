"""Slow, obviously-correct NumPy twins of fastem's kernels, written from the formulas.

Everything is computed in float64 from ``X.astype(np.float64)`` with broadcasting; no
blocking, no SIMD, no expanded-norm tricks. Tests compare the Numba kernels (and the
estimators built on them) against these functions.
"""
import numpy as np


def sqdist_to_centers(X, centers):
    """(n, k) matrix of ``||X[i] - centers[j]||^2`` in float64."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(centers, dtype=np.float64)
    out = np.empty((X.shape[0], C.shape[0]))
    step = max(1, 2**22 // max(1, C.size))          # rows per (rows, k, d) temporary
    for i in range(0, X.shape[0], step):
        diff = X[i:i + step, None, :] - C[None, :, :]
        out[i:i + step] = (diff * diff).sum(axis=2)
    return out


def nearest_centers(X, centers):
    """Labels (smallest index among the nearest, ``np.argmin``'s rule) and squared distances."""
    D = sqdist_to_centers(X, centers)
    labels = np.argmin(D, axis=1).astype(np.int32)
    return labels, D[np.arange(D.shape[0]), labels]


def relative_gap(X, centers):
    """Per row: (second smallest - smallest) / (smallest + 1) squared distance.

    Rows with a small gap are near-ties, where a search in float32 (or with the expanded
    formula ``||c||^2 - 2 x.c``) may legitimately pick the other centre.
    """
    D = np.sort(sqdist_to_centers(X, centers), axis=1)
    if D.shape[1] < 2:
        return np.full(D.shape[0], np.inf)
    return (D[:, 1] - D[:, 0]) / (D[:, 0] + 1.0)


def lloyd_step(X, sample_weight, centers, previous_labels):
    """One Lloyd pass from the formulas.

    Returns
    -------
    labels : (n,) int32, nearest centre of each row
    sums : (k, d) float64, ``sum_{i: label_i = j} w_i x_i``
    weights : (k,) float64, ``sum_{i: label_i = j} w_i``
    inertia : float, ``sum_i w_i ||x_i - centers[label_i]||^2`` for the *input* centres
    n_changed : int, ``#{i: label_i != previous_labels_i}``
    """
    X64 = np.asarray(X, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    k, d = centers.shape
    labels, sqdist = nearest_centers(X64, centers)
    sums = np.zeros((k, d))
    weights = np.zeros(k)
    for j in range(k):
        mask = labels == j
        sums[j] = (w[mask, None] * X64[mask]).sum(axis=0)
        weights[j] = w[mask].sum()
    inertia = float((w * sqdist).sum())
    n_changed = int((labels != np.asarray(previous_labels)).sum())
    return labels, sums, weights, inertia, n_changed


def update_min_sqdist(X, center, min_sqdist):
    """``min(min_sqdist, ||X[i] - center||^2)`` (a new array)."""
    return np.minimum(min_sqdist, sqdist_to_centers(X, np.asarray(center)[None, :])[:, 0])


def kmeanspp_potentials(X, sample_weight, candidates, min_sqdist):
    """``potentials[c] = sum_i w_i * min(min_sqdist[i], ||X[i] - candidates[c]||^2)``."""
    D = sqdist_to_centers(X, candidates)
    w = np.asarray(sample_weight, dtype=np.float64)
    return (w[:, None] * np.minimum(np.asarray(min_sqdist)[:, None], D)).sum(axis=0)


def improved_dense(rows, sqdist, counts, closest, block_rows=2048):
    """Decode k-means++'s per-block lists of improving rows (``kmeanspp_potentials_kept``:
    block b's entries at ``start ... start + counts[b]`` hold ``row - start`` and the squared
    distance, or with ``counts[b] = -1`` every row's distance in place) into one dense row:
    the distance where it is below ``closest``, +inf elsewhere."""
    out = np.full(len(rows), np.inf)
    for b, count in enumerate(counts):
        start = b * block_rows
        if count < 0:
            block = slice(start, start + block_rows)
            out[block] = np.where(sqdist[block] < closest[block], sqdist[block], np.inf)
        else:
            out[start + rows[start:start + count]] = sqdist[start:start + count]
    return out


def column_mean_var(X):
    """Unweighted column means and population variances in float64."""
    X64 = np.asarray(X, dtype=np.float64)
    mean = X64.mean(axis=0)
    return mean, ((X64 - mean) ** 2).mean(axis=0)


def all_finite(X):
    return bool(np.isfinite(X).all())


def inertia(X, centers, sample_weight=None):
    """Weighted k-means objective of ``centers`` (each row to its nearest centre)."""
    _, sqdist = nearest_centers(X, centers)
    w = np.ones(len(sqdist)) if sample_weight is None else np.asarray(sample_weight, float)
    return float((w * sqdist).sum())


def lloyd(X, init, sample_weight=None, *, max_iter=300, tol=0.0):
    """Reference Lloyd loop with scikit-learn's stopping rules.

    Each iteration labels every row with its nearest centre, then moves every non-empty
    centre to the weighted mean of its rows (an empty cluster takes the point farthest from
    its centre; ties to the lexicographically smallest point, then the lowest row index; rows of
    zero weight are never moved). Stops when
    no label changes (strict convergence) or when the summed squared centre shift is at most
    ``tol * mean(var(X, axis=0))``. If it stopped for another reason the labels are recomputed
    for the final centres, as scikit-learn does.

    Returns ``(centers, labels, inertia, n_iter)``.
    """
    X64 = np.asarray(X, dtype=np.float64)
    n = X64.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    centers = np.array(init, dtype=np.float64)
    k = centers.shape[0]
    tol_scaled = tol * column_mean_var(X64)[1].mean()
    labels = np.full(n, -1)
    strict = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new_labels, sqdist = nearest_centers(X64, centers)
        changed = not np.array_equal(new_labels, labels)
        labels = new_labels
        new_centers = centers.copy()
        counts = np.array([w[labels == j].sum() for j in range(k)])
        member = labels.copy()
        far = sorted(range(n), key=lambda i: (-sqdist[i] if w[i] > 0 else np.inf,
                                              tuple(X64[i]), i))
        empty = [j for j in range(k) if counts[j] == 0]
        for j, row in zip(empty, far):
            if w[row] <= 0:
                break
            member[row] = j
        for j in range(k):
            mask = member == j
            if w[mask].sum() > 0:
                new_centers[j] = (w[mask, None] * X64[mask]).sum(axis=0) / w[mask].sum()
        shift = ((new_centers - centers) ** 2).sum()
        centers = new_centers
        if not changed and not empty:
            strict = True
            break
        if shift <= tol_scaled:
            break
    if not strict:
        labels, _ = nearest_centers(X64, centers)
    sqdist = ((X64 - centers[labels]) ** 2).sum(axis=1)
    return centers, labels.astype(np.int32), float((w * sqdist).sum()), n_iter
