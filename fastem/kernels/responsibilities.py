"""Responsibilities: log-sum-exp normalisation of weighted log-probabilities."""
import numpy as np
from numba import prange

from ._blocks import block_bounds, n_blocks, one_item_per_block
from ._jit import kernel, run_on_threads
from ._simd import int64_bits_as_float64

# exp(x) for x <= 0 by Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-12
# Taylor polynomial for exp(r) (truncation error < 2e-16 relative); 2^n is built from its bits.
# Plain arithmetic, so the loops in normalize_log_row vectorise (libm's exp is a scalar call
# and dominated the E-step).
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125
_LN2_LO = 1.42860682030941723212e-6
_EXP_UNDERFLOW = -708.0  # below this exp(x) < 3.3e-308: returned as 0


@kernel(ordered=True)
def exp_nonpositive(x):
    """exp(x) for x <= 0 to about 1 ulp; 0 for x < -708 (and for x = -inf)."""
    xc = max(x, _EXP_UNDERFLOW)
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = int64_bits_as_float64((np.int64(n) + 1023) << 52)
    return p * scale if x >= _EXP_UNDERFLOW else 0.0


@kernel(ordered=True)
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
    for j in range(k):   # vectorised: no reduction in this loop
        row[j] = exp_nonpositive(row[j] - m)
    total = 0.0
    for j in range(k):   # an ordered sum (compiled without reassoc), the same in every caller
        total += row[j]
    inv = 1.0 / total
    for j in range(k):
        row[j] *= inv
    return m + np.log(total)



@kernel
def _responsibilities_work(lo, hi, weighted_log_prob, resp, log_norm):
    n = weighted_log_prob.shape[0]
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            row = resp[i]
            for j in range(row.shape[0]):
                row[j] = weighted_log_prob[i, j]
            log_norm[i] = normalize_log_row(row)


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
    for b in prange(n_blocks(weighted_log_prob.shape[0])):
        _responsibilities_work(b, b + 1, weighted_log_prob, resp, log_norm)


run_on_threads(responsibilities, one_item_per_block, _responsibilities_work, None)
