"""Gaussian mixture as an EM model (layer 2): initialisation, fused E-step, M-step.

Statistics from the fused E-step are moments about a *shift* (the current means for full,
diag and spherical; the data mean for tied), so the M-step never forms E[xx^T] - mu mu^T
from raw moments:

    delta_j = s1_j / N_j,  mean_j = shift_j + delta_j
    full:      Sigma_j = s2_j / N_j - delta_j delta_j^T + reg I
    tied:      Sigma   = (S2 - sum_j N_j delta_j delta_j^T) / sum_j N_j + reg I
    diag:      sigma2_j = max(s2_j / N_j - delta_j^2, 0) + reg
    spherical: the mean of the diag variances over the features

with N_j = sum_i w_i r_ij + 10 eps and pi_j = N_j / sum N (scikit-learn's conventions; the
floor shrinks with weights of mean < 1, see ``mixture.weight_floor``).
"""
from dataclasses import dataclass

import numpy as np

from ..kernels import (gaussian_estep_diag, gaussian_estep_full, gaussian_log_pdf_diag,
                       gaussian_log_pdf_full, precision_cholesky_factors, weighted_moments)
from .kmeans import kmeans_plusplus
from .mixture import (MixtureModel, one_hot_rows, overflow_error,
                      random_responsibilities, row_chunks, weighted_mean)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
LOG_2PI = np.log(2 * np.pi)


@dataclass
class GaussianParams:
    """Parameters in scikit-learn's shapes for the covariance type."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


@dataclass
class GaussianStats:
    """Sufficient statistics of one fused pass (see the module docstring)."""

    nk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    shift: np.ndarray
    objective: float  # mean (weighted) log-likelihood of the parameters that produced them


def precision_cholesky(covariances, covariance_type):
    """Precision Cholesky factors from covariances; ValueError names a singular component."""
    if covariance_type in ("full", "tied"):
        covs = covariances if covariance_type == "full" else covariances[None]
        covs = np.ascontiguousarray(covs, dtype=np.float64)
        out = np.empty_like(covs)
        # serial Numba, not LAPACK: no BLAS thread pool wakes up between parallel kernels
        failed = precision_cholesky_factors(covs, out)
        if failed >= 0:
            raise _singular_error(failed, covariance_type)
        out = out if covariance_type == "full" else out[0]
    else:
        if np.any(covariances <= 0.0):
            j = int(np.flatnonzero(np.atleast_2d(covariances.reshape(len(covariances), -1)
                                                 <= 0.0).any(axis=1))[0])
            raise _singular_error(j, covariance_type)
        out = 1.0 / np.sqrt(covariances)
    # A (sub)normal but tiny covariance (e.g. data scaled by 1e-160 and reg_covar=0) has a
    # precision that overflows: as singular as an exact zero for float64.
    squares = np.square(out).reshape(1 if covariance_type == "tied" else len(out), -1)
    bad = ~np.isfinite(squares.sum(axis=1))
    if bad.any():
        raise _singular_error(int(np.flatnonzero(bad)[0]), covariance_type)
    return out


def _singular_error(component, covariance_type):
    which = "the tied covariance" if covariance_type == "tied" else f"component {component}"
    return ValueError(
        f"The covariance of {which} is singular (not positive definite) even after adding "
        "reg_covar: the data in it are collapsed or duplicated. Increase reg_covar (e.g. "
        "by a factor of 100) or use fewer components.")


def precisions_from_init(precisions_init, covariance_type):
    """Precision Cholesky factors from user-given precisions (scikit-learn's rule)."""
    from scipy import linalg   # only for user-given precisions (its import costs ~0.1 s)
    if covariance_type == "full":
        return np.array([linalg.cholesky(p, lower=True) for p in precisions_init])
    if covariance_type == "tied":
        return linalg.cholesky(precisions_init, lower=True)
    return np.sqrt(precisions_init)


def n_parameters(n_components, n_features, covariance_type):
    """Free parameters: covariances + means + (k - 1) weights."""
    k, d = n_components, n_features
    cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return int(cov + k * d + k - 1)


class GaussianMixtureModel(MixtureModel):
    """The driver's step protocol for a Gaussian mixture.

    Parameters
    ----------
    n_components, covariance_type, reg_covar, init_params : as the estimator's
    weights_init, means_init, precisions_init : ndarray or None (already validated)
    kmeans_labels : callable(X, sample_weight, rng) -> labels, for init_params='kmeans'
        (injected by the estimator layer so models do not import estimators).
    """

    def __init__(self, n_components, covariance_type, reg_covar, init_params,
                 weights_init=None, means_init=None, precisions_init=None, kmeans_labels=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.kmeans_labels = kmeans_labels

    # -- parameters from statistics ---------------------------------------------------------
    def params_from_stats(self, nk, s1, s2, shift, floor):
        """The M-step proper (see the module docstring); ``floor``: see ``weight_floor``."""
        ct, reg = self.covariance_type, self.reg_covar
        nk = nk + floor
        delta = s1 / nk[:, None]
        means = shift + delta
        d = means.shape[1]
        if ct == "full":
            cov = s2 / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
            cov = 0.5 * (cov + cov.transpose(0, 2, 1))
            cov[:, np.arange(d), np.arange(d)] += reg
        elif ct == "tied":
            between = np.einsum("j,jf,jg->fg", nk, delta, delta)
            cov = (s2[0] - between) / nk.sum()
            cov = 0.5 * (cov + cov.T)
            cov[np.arange(d), np.arange(d)] += reg
        else:
            cov = np.maximum(s2 / nk[:, None] - delta ** 2, 0.0) + reg
            if ct == "spherical":
                cov = cov.mean(axis=1)
        if not (np.isfinite(means).all() and np.isfinite(cov).all()):
            raise overflow_error("a component mean or covariance")
        return GaussianParams(nk / nk.sum(), means, cov, precision_cholesky(cov, ct))

    def _moments(self, X, resp_chunks, shift):
        """Accumulate statistics of (row slice, weighted responsibilities) chunks."""
        k, d = self.n_components, X.shape[1]
        total_nk, total_s1 = np.zeros(k), np.zeros((k, d))
        full_rows = {"full": k, "tied": 1}.get(self.covariance_type, 0)
        total_full = np.zeros((full_rows, d, d))
        total_diag = np.zeros((k if full_rows == 0 else 0, d))
        nk, s1 = np.empty(k), np.empty((k, d))
        s2_full, s2_diag = np.empty_like(total_full), np.empty_like(total_diag)
        kernel_shift = shift if self.covariance_type != "tied" else shift[:1]
        for rows, resp in resp_chunks:
            weighted_moments(X[rows], resp, kernel_shift, nk, s1, s2_full, s2_diag)
            total_nk += nk
            total_s1 += s1
            total_full += s2_full
            total_diag += s2_diag
        s2 = total_full if full_rows else total_diag
        return total_nk, total_s1, s2

    def _initial_resp_chunks(self, X, sample_weight, rng):
        """Yield (rows, w * responsibilities) for the chosen init method, chunk by chunk."""
        n, k = X.shape[0], self.n_components
        method = self.init_params
        if method in ("k-means++", "random_from_data"):
            if method == "k-means++":
                _, idx = kmeans_plusplus(X, sample_weight, k, rng)
            else:
                idx = rng.choice(n, size=k, replace=False)
            order = np.argsort(idx, kind="stable")  # rows, each with one component
            yield idx[order], one_hot_rows(order, k) * sample_weight[idx[order], None]
            return
        labels = self.kmeans_labels(X, sample_weight, rng) if method == "kmeans" else None
        for rows in row_chunks(n):
            if labels is not None:
                resp = one_hot_rows(labels[rows], k)
            else:
                resp = random_responsibilities(rng, rows.stop - rows.start, k)
            yield rows, resp * sample_weight[rows, None]

    # -- driver protocol ----------------------------------------------------------------------
    def initialize(self, X, sample_weight, rng):
        given = (self.weights_init, self.means_init, self.precisions_init)
        if all(v is not None for v in given):
            params = None
        else:
            center = weighted_mean(X, sample_weight)
            shift = np.tile(center, (self.n_components, 1))
            nk, s1, s2 = self._moments(X, self._initial_resp_chunks(X, sample_weight, rng),
                                       shift)
            params = self.params_from_stats(nk, s1, s2, shift, self._floor(sample_weight))
        weights = self.weights_init if self.weights_init is not None else params.weights
        means = self.means_init if self.means_init is not None else params.means
        if self.precisions_init is None:
            cov, prec_chol = params.covariances, params.precisions_cholesky
        else:
            prec_chol = precisions_from_init(self.precisions_init, self.covariance_type)
            cov = params.covariances if params is not None else _covariances_from_prec_chol(
                prec_chol, self.covariance_type)
        return GaussianParams(np.array(weights, dtype=np.float64),
                              np.array(means, dtype=np.float64), cov, prec_chol)

    def _kernel_form(self, params, X_features):
        """(precision layout for the kernels, const_j) from parameters."""
        ct, k, d = self.covariance_type, self.n_components, X_features
        pc = params.precisions_cholesky
        if ct == "full":
            prec, log_det = pc, np.log(np.abs(np.diagonal(pc, axis1=1, axis2=2))).sum(axis=1)
        elif ct == "tied":
            prec = pc[None]
            log_det = np.full(k, np.log(np.abs(np.diag(pc))).sum())
        elif ct == "diag":
            prec, log_det = pc, np.log(pc).sum(axis=1)
        else:
            prec, log_det = np.repeat(pc[:, None], d, axis=1), d * np.log(pc)
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        const = log_weights + log_det - 0.5 * d * LOG_2PI
        return np.ascontiguousarray(prec), const

    def e_step(self, X, sample_weight, params):
        k, d = params.means.shape
        prec, const = self._kernel_form(params, d)
        nk, s1 = np.empty(k), np.empty((k, d))
        if self.covariance_type in ("full", "tied"):
            if self.covariance_type == "full":
                shift, s2 = params.means, np.empty((k, d, d))
            else:
                shift, s2 = self._pooled_shift(X, sample_weight), np.empty((1, d, d))
            ll = gaussian_estep_full(X, sample_weight, params.means, prec, const, shift,
                                     nk, s1, s2)
        else:
            shift, s2 = params.means, np.empty((k, d))
            ll = gaussian_estep_diag(X, sample_weight, params.means, prec, const, shift,
                                     nk, s1, s2)
        if not np.isfinite(ll):
            raise overflow_error("the log-likelihood")
        return GaussianStats(nk, s1, s2, shift, ll / sample_weight.sum())

    def _pooled_shift(self, X, sample_weight):
        if getattr(self, "_shift_for", None) is not X:  # computed once per fit
            self._shift_for = X
            self._shift = weighted_mean(X, sample_weight)[None]
        return self._shift

    def m_step(self, X, sample_weight, params, stats):
        return self.params_from_stats(stats.nk, stats.s1, stats.s2, stats.shift,
                                      self._floor(sample_weight))

    def finalize(self, X, sample_weight, params, stats, converged):
        self._shift_for = None  # drop the reference to X
        return super().finalize(X, sample_weight, params, stats, converged)

    # -- prediction and sampling ------------------------------------------------------------
    def weighted_log_prob(self, X, params):
        """``log pi_j + log N(x_i | j)`` for every row, shape (n, k) float64."""
        prec, const = self._kernel_form(params, X.shape[1])
        out = np.empty((X.shape[0], self.n_components))
        if self.covariance_type in ("full", "tied"):
            gaussian_log_pdf_full(X, params.means, prec, const, out)
        else:
            gaussian_log_pdf_diag(X, params.means, prec, const, out)
        return out

    def n_parameters(self, params):
        return n_parameters(self.n_components, params.means.shape[1], self.covariance_type)

    def sample(self, params, n_samples, rng):
        counts = rng.multinomial(n_samples, params.weights)
        ct = self.covariance_type
        parts = []
        for j, (mean, count) in enumerate(zip(params.means, counts)):
            if ct == "full":
                parts.append(rng.multivariate_normal(mean, params.covariances[j], count))
            elif ct == "tied":
                parts.append(rng.multivariate_normal(mean, params.covariances, count))
            else:
                scale = np.sqrt(params.covariances[j])
                parts.append(mean + rng.standard_normal((count, mean.shape[0])) * scale)
        labels = np.repeat(np.arange(len(counts)), counts)
        return np.vstack(parts), labels

    def attributes(self, params):
        pc = params.precisions_cholesky
        if self.covariance_type == "full":
            precisions = pc @ pc.transpose(0, 2, 1)
        elif self.covariance_type == "tied":
            precisions = pc @ pc.T
        else:
            precisions = pc ** 2
        return {"weights_": params.weights, "means_": params.means,
                "covariances_": params.covariances, "precisions_cholesky_": pc,
                "precisions_": precisions}


def _covariances_from_prec_chol(prec_chol, covariance_type):
    """Covariances implied by precision Cholesky factors (for user-given precisions)."""
    if covariance_type == "full":
        return np.array([np.linalg.inv(p @ p.T) for p in prec_chol])
    if covariance_type == "tied":
        return np.linalg.inv(prec_chol @ prec_chol.T)
    return 1.0 / prec_chol ** 2
