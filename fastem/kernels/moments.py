"""Column moments and the finiteness check (one pass over row blocks each)."""
import numpy as np
from numba import prange

from ._blocks import block_bounds, fold_blocks, n_blocks
from ._jit import kernel, run_on_threads


@kernel
def _moments_prepare(X):
    nb = n_blocks(X.shape[0])
    return nb, np.empty((nb, 2, X.shape[1]))


@kernel
def _moments_work(lo, hi, X, partial):
    """Shifted sums of blocks lo..hi-1: sum(x - s) and sum((x - s)^2) with s = X[0]."""
    n, d = X.shape
    for b in range(lo, hi):
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


@kernel
def _mean_var_from_shifted_sums(X, total):
    n, d = X.shape
    mean = np.empty(d)
    var = np.empty(d)
    for f in range(d):
        m = total[0, f] / n
        mean[f] = np.float64(X[0, f]) + m
        var[f] = max(total[1, f] / n - m * m, 0.0)
    return mean, var


@kernel
def _moments_finish(X, partial):
    total = np.empty((2, X.shape[1]))
    fold_blocks(partial, total)
    return _mean_var_from_shifted_sums(X, total)


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
    nb, partial = _moments_prepare(X)
    for b in prange(nb):
        _moments_work(b, b + 1, X, partial)
    return _moments_finish(X, partial)


run_on_threads(column_mean_var, _moments_prepare, _moments_work, _moments_finish)


@kernel
def _finite_prepare(X):
    nb = n_blocks(X.shape[0])
    return nb, np.empty(nb)


@kernel
def _finite_work(lo, hi, X, bad):
    n, d = X.shape
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        acc = 0.0
        for i in range(start, stop):
            for f in range(d):
                acc += X[i, f] * 0.0  # 0 for finite values, NaN for NaN or +-inf
        bad[b] = acc


@kernel
def _finite_finish(X, bad):
    for b in range(bad.shape[0]):
        if bad[b] != 0.0:
            return False
    return True


@kernel(parallel=True)
def all_finite(X):
    """True when no element of the 2-D float array ``X`` is NaN or +-inf (no temporary)."""
    nb, bad = _finite_prepare(X)
    for b in prange(nb):
        _finite_work(b, b + 1, X, bad)
    return _finite_finish(X, bad)


run_on_threads(all_finite, _finite_prepare, _finite_work, _finite_finish)
