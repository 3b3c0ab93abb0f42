"""Pieces shared by the mixture models (layer 2)."""
import numpy as np

#: scikit-learn adds this to every component weight sum so empty components stay finite.
WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps

#: Rows per chunk when initial responsibilities are built in NumPy (bounded temporaries).
INIT_CHUNK_ROWS = 65536


def lower_bound_converged(history, tol, previous=None):
    """scikit-learn's rule: the last change of the lower bound is smaller than ``tol``.

    ``previous`` (a warm start: the lower bound the last fit ended with) stands before
    ``history[0]``, so a warm fit can converge in its first iteration, as in scikit-learn.
    Returns a Python ``bool``.
    """
    if len(history) == 1 and previous is not None:
        return bool(abs(history[0] - previous) < tol)
    return len(history) >= 2 and bool(abs(history[-1] - history[-2]) < tol)


def row_chunks(n_rows, chunk_rows=INIT_CHUNK_ROWS):
    """Consecutive ``slice`` objects covering ``n_rows`` rows."""
    for start in range(0, n_rows, chunk_rows):
        yield slice(start, min(n_rows, start + chunk_rows))


def one_hot_rows(indices, n_components):
    """Responsibility rows for hard assignments: ``out[i, indices[i]] = 1``."""
    out = np.zeros((len(indices), n_components))
    out[np.arange(len(indices)), indices] = 1.0
    return out


def random_responsibilities(rng, n_rows, n_components):
    """scikit-learn's 'random' initial responsibilities for ``n_rows`` rows (uniform, rows sum to 1)."""
    resp = rng.uniform(size=(n_rows, n_components))
    resp /= resp.sum(axis=1)[:, None]
    return resp


def weighted_mean(X, sample_weight):
    """``sum_i w_i x_i / sum_i w_i`` in float64, chunked (never a float64 copy of X)."""
    total = np.zeros(X.shape[1])
    for rows in row_chunks(X.shape[0]):
        total += sample_weight[rows] @ X[rows].astype(np.float64, copy=False)
    return total / sample_weight.sum()
