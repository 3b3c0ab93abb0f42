"""Moment accumulation over row blocks (column means and variances)."""
import numpy as np
from numba import prange

from ._blocks import block_bounds, n_blocks
from ._jit import kernel


@kernel(parallel=True)
def column_mean_var(X):
    """Unweighted column means and (population) variances, accumulated in float64.

    Two passes: block partial sums give the mean, then block partial sums of squared
    deviations from that mean give the variance (no ``E[x^2] - E[x]^2`` cancellation).

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64

    Returns
    -------
    mean, var : ndarray, shape (d,), float64
    """
    n, d = X.shape
    nb = n_blocks(n)
    partial = np.zeros((nb, d))
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            for f in range(d):
                partial[b, f] += X[i, f]
    mean = np.zeros(d)
    for b in range(nb):
        mean += partial[b]
    mean /= n
    partial[:] = 0.0
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            for f in range(d):
                diff = np.float64(X[i, f]) - mean[f]
                partial[b, f] += diff * diff
    var = np.zeros(d)
    for b in range(nb):
        var += partial[b]
    return mean, var / n


@kernel(parallel=True)
def all_finite(X):
    """True when no element of the float array ``X`` (any shape) is NaN or +-inf."""
    flat = X.reshape(-1) if X.flags.c_contiguous else X.ravel()
    n = flat.shape[0]
    nb = n_blocks(n)
    bad = np.zeros(nb, np.bool_)
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        acc = 0.0
        for i in range(start, stop):
            acc += flat[i] * 0.0  # NaN for NaN or inf, else 0
        bad[b] = acc != 0.0
    return not bad.any()
