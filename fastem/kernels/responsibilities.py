"""Responsibilities: log-sum-exp normalisation of weighted log-probabilities."""
import numpy as np
from numba import prange

from ._blocks import block_bounds, n_blocks
from ._jit import kernel


@kernel
def normalize_log_row(row):
    """Turn one row of weighted log-probabilities into responsibilities, in place.

    ``lse = m + log(sum_j exp(row_j - m))`` with ``m = max_j row_j``; then
    ``row_j = exp(row_j - m) / sum_j exp(row_j - m)``. Returns ``lse`` (the row's
    log-likelihood). A row whose entries are all -inf returns -inf and uniform
    responsibilities.

    Parameters
    ----------
    row : ndarray, shape (k,), float64
        IN: log(pi_j) + log p(x | j); OUT: responsibilities.
    """
    k = row.shape[0]
    m = -np.inf
    for j in range(k):
        if row[j] > m:
            m = row[j]
    if m == -np.inf:
        for j in range(k):
            row[j] = 1.0 / k
        return -np.inf
    total = 0.0
    for j in range(k):
        e = np.exp(row[j] - m)
        row[j] = e
        total += e
    inv = 1.0 / total
    for j in range(k):
        row[j] *= inv
    return m + np.log(total)


@kernel(parallel=True)
def responsibilities(weighted_log_prob, resp, log_norm):
    """Row-wise log-sum-exp normalisation (e.g. for ``predict_proba``/``score_samples``).

    Parameters
    ----------
    weighted_log_prob : ndarray, shape (n, k), float64
        ``log pi_j + log p(x_i | j)``.
    resp : ndarray, shape (n, k), float64
        OUT: responsibilities; may be the same array as ``weighted_log_prob``.
    log_norm : ndarray, shape (n,), float64
        OUT: ``log sum_j exp(weighted_log_prob[i, j])``.
    """
    n = weighted_log_prob.shape[0]
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            row = resp[i]
            for j in range(row.shape[0]):
                row[j] = weighted_log_prob[i, j]
            log_norm[i] = normalize_log_row(row)
