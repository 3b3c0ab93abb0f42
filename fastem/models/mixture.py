"""Pieces shared by the mixture models (layer 2)."""
import numpy as np

#: scikit-learn adds this to every component weight sum so empty components stay finite.
WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps

#: Rows per chunk when initial responsibilities are built in NumPy (bounded temporaries).
INIT_CHUNK_ROWS = 65536


def weight_floor(mean_weight):
    """The floor added to every component's weight sum, for sample weights of this mean.

    scikit-learn's ``10 eps`` for weights of mean >= 1 (unit weights included, so fits match
    scikit-learn bit for bit); scaled down with smaller weights, so that weights like 1e-300
    (the fit is invariant to their scale) do not drown under the floor. Never below the
    smallest normal float64, so an empty component still divides by a positive number.
    """
    return max(WEIGHT_FLOOR * min(1.0, float(mean_weight)), np.finfo(np.float64).tiny)


def overflow_error(what):
    """ValueError for statistics that overflowed float64 because X (or the weights) are huge."""
    return ValueError(
        f"Numerical overflow: {what} is not finite. The values of X (times sample_weight) are "
        "too large in magnitude for float64 sums of squares (about 1e150 and beyond). Rescale "
        "X, e.g. standardise each feature, or scale down sample_weight.")


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


def weighted_mean(source):
    """``sum_i w_i x_i / sum_i w_i`` in float64, in row pieces (never a float64 copy of X)."""
    from ..sources import sum_chunks
    return sum_chunks(source, _weighted_column_sums)[0] / source.total_weight


def _weighted_column_sums(rows, X, w):
    """Chunk statistics ``(sum_i w_i x_i,)`` in float64."""
    total = np.zeros(X.shape[1])
    for part in row_chunks(X.shape[0]):
        total += w[part] @ X[part].astype(np.float64, copy=False)
    return (total,)


def lost_mass_events(nk, relative=1e-12):
    """Verbose reports of components whose weight sum N_k fell below ``relative`` of the total.

    Such a component keeps finite parameters (the weight floor and, for Gaussians,
    ``reg_covar``), but no longer describes any data.
    """
    total = float(nk.sum())
    lost = np.flatnonzero(nk <= relative * total)
    if lost.size == 0:
        return []
    return [f"component(s) {lost.tolist()} lost (almost) all their mass "
            f"(N_k <= {relative:g} of the total); their parameters stay finite"]


class MixtureModel:
    """Driver-protocol pieces shared by the mixture models (layer 2).

    Subclasses provide ``initialize``, ``e_step`` (stats with ``nk`` and ``objective``),
    ``m_step`` and the prediction helpers; this class provides the weight floor (computed once
    per fit), scikit-learn's lower-bound convergence rule (warm starts included), verbose
    events and ``finalize``.
    """

    #: Warm start: the previous fit's lower bound (set by the estimator), else None.
    previous_lower_bound = None

    def _floor(self, source):
        return weight_floor(source.weight_mean)

    def events(self, stats):
        """Verbose reports: components that lost their mass in the last E-step."""
        return lost_mass_events(stats.nk)

    def has_converged(self, params, new_params, stats, history, tol):
        return lower_bound_converged(history, tol, self.previous_lower_bound)

    def finalize(self, source, params, stats, converged):
        return params, stats.objective
