"""Column moments and the finiteness check (serial: each runs once per fit, memory-bound)."""
import numpy as np

from ._jit import kernel


@kernel
def column_mean_var(X):
    """Unweighted column means and (population) variances, accumulated in float64.

    Two passes: the mean, then the mean squared deviation from it (no ``E[x^2] - E[x]^2``
    cancellation).

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64

    Returns
    -------
    mean, var : ndarray, shape (d,), float64
    """
    n, d = X.shape
    mean = np.zeros(d)
    for i in range(n):
        for f in range(d):
            mean[f] += X[i, f]
    mean /= n
    var = np.zeros(d)
    for i in range(n):
        for f in range(d):
            diff = np.float64(X[i, f]) - mean[f]
            var[f] += diff * diff
    return mean, var / n


@kernel
def all_finite(X):
    """True when no element of the 2-D float array ``X`` is NaN or +-inf (no temporary)."""
    n, d = X.shape
    for i in range(n):
        acc = 0.0
        for f in range(d):
            acc += X[i, f] * 0.0  # 0 for finite values, NaN for NaN or +-inf
        if acc != 0.0:
            return False
    return True
