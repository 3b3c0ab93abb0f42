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

import numpy as np

from ..kernels import (bernoulli_estep, bernoulli_estep_csr, bernoulli_log_pmf,
                       bernoulli_log_pmf_csr)
from ..kernels.bernoulli import _resp_stats, _resp_stats_csr
from ..validation import issparse
from .mixture import MixtureModel, one_hot_rows, random_responsibilities, row_chunks

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
        _resp_stats(X if rows is None else np.ascontiguousarray(X[rows]), resp, nk, sx)
    return nk, sx


def _float32_rows(X, rows):
    """Rows of X (all when ``rows`` is None) as a dense C-contiguous float32 array."""
    if issparse(X):
        sub = X if rows is None else X[rows]
        return sub.astype(np.float32).toarray()
    if rows is None:
        return np.asarray(X, dtype=np.float32, order="C")
    out = np.empty((len(rows), X.shape[1]), dtype=np.float32)
    for part in row_chunks(len(rows), 4096):     # no full-size temporary of another dtype
        out[part] = X[rows[part]]
    return out


class BernoulliMixtureModel(MixtureModel):
    """The driver's step protocol for a Bernoulli mixture.

    Parameters
    ----------
    n_components : int
    alpha : float
        Additive smoothing (see the module docstring).
    init_params : {'kmeans', 'random', 'random_from_data'}
    weights_init, means_init : ndarray or None (already validated)
    kmeans_labels : callable(X_float32, sample_weight, rng) -> labels, for 'kmeans'
        (injected by the estimator layer so models do not import estimators).
    """

    def __init__(self, n_components, alpha, init_params, weights_init=None, means_init=None,
                 kmeans_labels=None):
        self.n_components = n_components
        self.alpha = alpha
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.kmeans_labels = kmeans_labels

    # -- parameters from statistics ---------------------------------------------------------
    def params_from_stats(self, nk, sx, floor):
        """The smoothed M-step (module docstring); ``floor``: see ``mixture.weight_floor``."""
        nk = nk + floor
        theta = (sx + self.alpha) / (nk + 2.0 * self.alpha)[:, None]
        np.clip(theta, 0.0, 1.0, out=theta)
        return BernoulliParams(nk / nk.sum(), theta)

    def _initial_stats(self, X, sample_weight, rng):
        """(nk, sx) of the initial weighted responsibilities of the chosen method."""
        n, k = X.shape[0], self.n_components
        method = self.init_params
        if method == "random_from_data":
            p = sample_weight / sample_weight.sum()
            p = p if np.count_nonzero(p) >= k else None   # prefer rows with positive weight
            idx = np.sort(rng.choice(n, size=k, replace=False, p=p))
            resp = np.zeros((k, k))
            resp[np.arange(k), rng.permutation(k)] = 1.0
            return resp_statistics(X, resp * sample_weight[idx, None], idx)
        if method == "kmeans":
            rows = self._kmeans_rows(n, X.shape[1], rng)
            w = sample_weight if rows is None else sample_weight[rows]
            labels = self.kmeans_labels(_float32_rows(X, rows), w, rng)
            return resp_statistics(X, one_hot_rows(labels, k) * w[:, None], rows)
        nk, sx = np.zeros(k), np.zeros((k, X.shape[1]))
        for rows in row_chunks(n, 8192):          # small temporaries; same random stream
            resp = random_responsibilities(rng, rows.stop - rows.start, k)
            cnk, csx = resp_statistics(X, resp * sample_weight[rows, None], rows)
            nk += cnk
            sx += csx
        return nk, sx

    @staticmethod
    def _kmeans_rows(n, d, rng):
        """Sorted random row subsample for k-means (None: all rows), see KMEANS_INIT_BYTES."""
        cap = max(KMEANS_INIT_MIN_ROWS, KMEANS_INIT_BYTES // (4 * d))
        if n <= cap:
            return None
        return np.sort(rng.choice(n, size=cap, replace=False))

    # -- driver protocol ----------------------------------------------------------------------
    def initialize(self, X, sample_weight, rng):
        if self.weights_init is not None and self.means_init is not None:
            return BernoulliParams(np.array(self.weights_init, dtype=np.float64),
                                   np.array(self.means_init, dtype=np.float64))
        params = self.params_from_stats(*self._initial_stats(X, sample_weight, rng),
                                        self._floor(sample_weight))
        if self.weights_init is not None:
            params.weights = np.array(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            params.means = np.array(self.means_init, dtype=np.float64)
        return params

    def e_step(self, X, sample_weight, params):
        k, d = params.means.shape
        nk, sx = np.empty(k), np.empty((k, d))
        lw = log_weights(params.weights)
        if issparse(X):
            ll = bernoulli_estep_csr(X.data, X.indices, X.indptr, sample_weight, params.means,
                                     lw, nk, sx)
        else:
            ll = bernoulli_estep(X, sample_weight, params.means, lw, nk, sx)
        return BernoulliStats(nk, sx, ll / sample_weight.sum())

    def m_step(self, X, sample_weight, params, stats):
        return self.params_from_stats(stats.nk, stats.sx, self._floor(sample_weight))


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
