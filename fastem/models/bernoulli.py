"""Bernoulli mixture as an EM model (layer 2): initialisation, fused E-step, smoothed M-step.

    p(x) = sum_c pi_c prod_j theta_cj^x_j (1 - theta_cj)^(1 - x_j)

The fused E-step (:func:`fastem.kernels.bernoulli_estep` / ``bernoulli_estep_csr``) returns
``N_c = sum_i w_i r_ic``, ``S_cj = sum_i w_i r_ic x_ij`` and the weighted log-likelihood of the
parameters that produced them. The M-step with additive smoothing ``alpha`` (the MAP estimate
under a symmetric Beta(alpha + 1, alpha + 1) prior on every theta_cj) is::

    theta_cj = (S_cj + alpha) / (N_c + 2 alpha),    pi_c = N_c / sum_c N_c

with ``N_c`` floored by ``10 eps`` (scikit-learn's convention, keeps empty components finite;
smaller for weights of mean < 1, see ``mixture.weight_floor``)
and theta clipped to [0, 1] (``S_cj <= N_c`` holds exactly only up to rounding). With
``alpha = 0`` this is plain maximum likelihood; theta may then be exactly 0 or 1, which the
kernels handle (``0 log 0 = 0``, impossible rows get -inf, never NaN). EM increases the
penalised objective ``sum_i w_i log p(x_i) + alpha sum_cj log theta_cj (1 - theta_cj)``; for
``alpha = 0`` that is the log-likelihood itself.

X is a dense binary array (bool, integer or float, used as given) or a CSR matrix.
"""
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..kernels import (bernoulli_estep, bernoulli_estep_csr, bernoulli_log_pmf,
                       bernoulli_log_pmf_csr)
from ..kernels.bernoulli import _resp_stats, _resp_stats_csr
from ..validation import issparse, read_only
from ..sources import sum_chunks
from .mixture import (MixtureModel, one_hot_rows, random_responsibilities, row_chunks,
                      weight_floor)

INIT_PARAMS = ("kmeans", "random", "random_from_data")

#: k-means initialisation runs on a float32 copy of at most this many bytes of rows (a random
#: subsample of the rows when X is larger), so initialising never copies all of X to float.
KMEANS_INIT_BYTES = 16 * 2**20

#: ... but on at least this many rows (or all of them).
KMEANS_INIT_MIN_ROWS = 1000


@dataclass
class BernoulliParams:
    """Mixture weights (k,) and success probabilities theta (k, d), float64."""

    weights: np.ndarray
    means: np.ndarray


@dataclass
class BernoulliStats:
    """Sufficient statistics of one fused pass."""

    nk: np.ndarray        # (k,)   sum_i w_i r_ic
    sx: np.ndarray        # (k, d) sum_i w_i r_ic x_ij
    objective: float      # mean weighted log-likelihood of the parameters that produced them


def n_parameters(n_components, n_features):
    """Free parameters: k d success probabilities + (k - 1) weights."""
    return int(n_components * n_features + n_components - 1)


def log_weights(weights):
    """log(pi), with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(weights)


def penalized_objective(mean_log_likelihood, theta, alpha, total_weight):
    """The quantity EM increases, per unit weight: ``ll + alpha sum log theta (1 - theta) / W``."""
    if alpha == 0:
        return mean_log_likelihood
    return mean_log_likelihood + alpha * float(np.sum(np.log(theta) + np.log1p(-theta))) \
        / total_weight


def resp_statistics(X, resp, rows=None):
    """``(sum_i resp_ic, sum_i resp_ic x_ij)`` over ``rows`` (a slice, or index array) of X."""
    k = resp.shape[1]
    nk, sx = np.empty(k), np.empty((k, X.shape[1]))
    if issparse(X):
        if rows is None or isinstance(rows, slice):
            rows = slice(0, X.shape[0]) if rows is None else rows
            indptr = X.indptr[rows.start:rows.stop + 1]   # absolute offsets: no copy
            _resp_stats_csr(X.data, X.indices, indptr, resp, nk, sx)
        else:
            sub = X[rows]
            _resp_stats_csr(sub.data, sub.indices, sub.indptr, resp, nk, sx)
    else:
        # read-only rows (a gathered copy too): one kernel specialisation per dtype
        _resp_stats(read_only(X if rows is None else np.ascontiguousarray(X[rows])), resp,
                    nk, sx)
    return nk, sx


def _float32_rows(X):
    """X (a subsample of at most ``KMEANS_INIT_BYTES`` of float32) as a dense float32 array."""
    if issparse(X):
        return X.astype(np.float32).toarray()
    return np.asarray(X, dtype=np.float32, order="C")


class BernoulliStatistics:
    """A chunk's fused E-step statistics ``(nk, sx, log-likelihood)`` (dense or CSR) for fixed
    parameters (picklable: Dask ships it to the workers)."""

    def __init__(self, theta, log_weights):
        self.theta, self.log_weights = theta, log_weights

    def __call__(self, rows, X, w):
        k, d = self.theta.shape
        nk, sx = np.empty(k), np.empty((k, d))
        if issparse(X):
            ll = bernoulli_estep_csr(X.data, X.indices, X.indptr, w, self.theta,
                                     self.log_weights, nk, sx)
        else:
            ll = bernoulli_estep(X, w, self.theta, self.log_weights, nk, sx)
        return nk, sx, float(ll)


def _seeded_random_stats(seed, k, rows, X, w):
    """(nk, sx) of scikit-learn's 'random' responsibilities from the chunk's own stream."""
    rng = np.random.RandomState([seed, rows.start])
    nk, sx = np.zeros(k), np.zeros((k, X.shape[1]))
    for part in row_chunks(X.shape[0], 8192):
        resp = random_responsibilities(rng, part.stop - part.start, k)
        cnk, csx = resp_statistics(X, resp * w[part, None], part)
        nk += cnk
        sx += csx
    return nk, sx


class BernoulliMixtureModel(MixtureModel):
    """The driver's step protocol for a Bernoulli mixture.

    Parameters
    ----------
    n_components : int
    alpha : float
        Additive smoothing (see the module docstring).
    init_params : {'kmeans', 'random', 'random_from_data'}
    weights_init, means_init : ndarray or None (already validated)
    kmeans_fit : callable(X_float32, sample_weight, rng) -> fitted KMeans, for 'kmeans'
        (an array and its weights: the init runs on an in-memory float32 subsample)
        (injected by the estimator layer so models do not import estimators).
    """

    def __init__(self, n_components, alpha, init_params, weights_init=None, means_init=None,
                 kmeans_fit=None):
        self.n_components = n_components
        self.alpha = alpha
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.kmeans_fit = kmeans_fit

    # -- parameters from statistics ---------------------------------------------------------
    def params_from_stats(self, nk, sx, floor):
        """The smoothed M-step (module docstring); ``floor``: see ``mixture.weight_floor``."""
        nk = nk + floor
        theta = (sx + self.alpha) / (nk + 2.0 * self.alpha)[:, None]
        np.clip(theta, 0.0, 1.0, out=theta)
        return BernoulliParams(nk / nk.sum(), theta)

    def _initial_stats(self, source, rng):
        """(nk, sx) of the initial weighted responsibilities of the chosen method."""
        n, k = source.n_rows, self.n_components
        method = self.init_params
        if method == "random_from_data":
            w = source.sample_weight
            if source.distributed and w is not None and source.positive_weights() >= k:
                # the same distribution, drawn block by block (see kmeans.random_centers)
                from .kmeans import _distributed_weighted_rows
                idx = np.sort(_distributed_weighted_rows(source, k, rng))
            else:
                # rows in proportion to their weight, unless fewer than k have positive weight
                p = None
                if w is not None and source.positive_weights() >= k:
                    p = w / w.sum()
                idx = np.sort(rng.choice(n, size=k, replace=False, p=p))
            resp = np.zeros((k, k))
            resp[np.arange(k), rng.permutation(k)] = 1.0
            return resp_statistics(source.take(idx), resp * source.weights(idx)[:, None])
        if method == "kmeans":
            rows = self._kmeans_rows(n, source.n_features, rng)
            sub = source.take(rows)
            w = source.weights(rows)
            labels = self.kmeans_fit(_float32_rows(sub), w, rng).labels_
            return resp_statistics(sub, one_hot_rows(labels, k) * w[:, None])
        if source.distributed:
            return sum_chunks(source, partial(_seeded_random_stats, int(rng.randint(2**31 - 1)),
                                              k))

        def chunk_statistics(rows, X, w):   # local sources: one random stream in row order
            nk, sx = np.zeros(k), np.zeros((k, X.shape[1]))
            for part in row_chunks(X.shape[0], 8192):  # small temporaries; same random stream
                resp = random_responsibilities(rng, part.stop - part.start, k)
                cnk, csx = resp_statistics(X, resp * w[part, None], part)
                nk += cnk
                sx += csx
            return nk, sx

        return sum_chunks(source, chunk_statistics)

    @staticmethod
    def _kmeans_rows(n, d, rng):
        """Sorted random row subsample for k-means (all rows when few), see KMEANS_INIT_BYTES."""
        cap = max(KMEANS_INIT_MIN_ROWS, KMEANS_INIT_BYTES // (4 * d))
        if n <= cap:
            return np.arange(n)
        return np.sort(rng.choice(n, size=cap, replace=False))

    # -- driver protocol ----------------------------------------------------------------------
    def initialize(self, source, rng):
        if self.weights_init is not None and self.means_init is not None:
            return BernoulliParams(np.array(self.weights_init, dtype=np.float64),
                                   np.array(self.means_init, dtype=np.float64))
        params = self.params_from_stats(*self._initial_stats(source, rng), self._floor(source))
        if self.weights_init is not None:
            params.weights = np.array(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            params.means = np.array(self.means_init, dtype=np.float64)
        return params

    def chunk_statistics(self, params):
        """``f(rows, X, w) -> (nk, sx, log-likelihood)`` of one chunk (dense or CSR): the
        fused E-step kernel's statistics (what :func:`fastem.sources.sum_chunks` adds)."""
        return BernoulliStatistics(params.means, log_weights(params.weights))

    def e_step(self, source, params):
        nk, sx, ll = sum_chunks(source, self.chunk_statistics(params))
        return BernoulliStats(nk, sx, ll / source.total_weight)

    def m_step(self, source, params, stats):
        return self.params_from_stats(stats.nk, stats.sx, self._floor(source))

    # -- online (stepwise) EM ----------------------------------------------------------------
    def combine_stats(self, first, a, second, b):
        """``a * first + b * second`` (``first`` may be None)."""
        if first is None:
            return BernoulliStats(b * second.nk, b * second.sx, second.objective)
        return BernoulliStats(a * first.nk + b * second.nk, a * first.sx + b * second.sx,
                              second.objective)

    def params_from_running(self, running, weight_seen, mean_weight):
        """The M-step from normalised running statistics, scaled back to the weight seen (so
        ``alpha`` is a pseudo-count against all the data seen, as in batch EM)."""
        return self.params_from_stats(weight_seen * running.nk, weight_seen * running.sx,
                                      weight_floor(mean_weight))

    # -- prediction and sampling ------------------------------------------------------------
    def weighted_log_prob(self, X, params):
        """``log pi_c + log p(x_i | c)`` for every row, shape (n, k) float64."""
        out = np.empty((X.shape[0], self.n_components))
        lw = log_weights(params.weights)
        if issparse(X):
            bernoulli_log_pmf_csr(X.data, X.indices, X.indptr, params.means, lw, out)
        else:
            bernoulli_log_pmf(X, params.means, lw, out)
        return out

    def n_parameters(self, params):
        return n_parameters(self.n_components, params.means.shape[1])

    def sample(self, params, n_samples, rng):
        """(X uint8 of shape (n_samples, d), component labels), grouped by component."""
        counts = rng.multinomial(n_samples, params.weights)
        d = params.means.shape[1]
        X = np.empty((n_samples, d), dtype=np.uint8)
        start = 0
        for theta, count in zip(params.means, counts):
            X[start:start + count] = rng.uniform(size=(count, d)) < theta
            start += count
        return X, np.repeat(np.arange(len(counts)), counts)

    def attributes(self, params):
        return {"weights_": params.weights, "means_": params.means}
