"""Column moments and the finiteness check (one pass over row blocks each)."""
import numpy as np
from numba import prange

from ._blocks import block_bounds, fold_blocks, n_blocks
from ._jit import kernel


@kernel(parallel=True)
def column_mean_var(X):
    """Unweighted column means and (population) variances, accumulated in float64.

    One pass of Welford-free shifted sums: each block accumulates sum(x - s) and
    sum((x - s)^2) about s = X[0] (so no ``E[x^2] - E[x]^2`` cancellation for data far
    from the origin); the fold and the final correction are exact algebra.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64

    Returns
    -------
    mean, var : ndarray, shape (d,), float64
    """
    n, d = X.shape
    nb = n_blocks(n)
    partial = np.empty((nb, 2, d))
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        acc = partial[b]
        for f in range(d):
            acc[0, f] = 0.0
            acc[1, f] = 0.0
        for i in range(start, stop):
            for f in range(d):
                v = np.float64(X[i, f]) - np.float64(X[0, f])
                acc[0, f] += v
                acc[1, f] += v * v
    total = np.empty((2, d))
    fold_blocks(partial, total)
    mean = np.empty(d)
    var = np.empty(d)
    for f in range(d):
        m = total[0, f] / n
        mean[f] = np.float64(X[0, f]) + m
        var[f] = max(total[1, f] / n - m * m, 0.0)
    return mean, var


@kernel(parallel=True)
def all_finite(X):
    """True when no element of the 2-D float array ``X`` is NaN or +-inf (no temporary)."""
    n, d = X.shape
    nb = n_blocks(n)
    bad = np.empty(nb)
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        acc = 0.0
        for i in range(start, stop):
            for f in range(d):
                acc += X[i, f] * 0.0  # 0 for finite values, NaN for NaN or +-inf
        bad[b] = acc
    for b in range(nb):
        if bad[b] != 0.0:
            return False
    return True
