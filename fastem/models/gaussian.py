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
from functools import partial

import numpy as np

from ..kernels import (full_covariances, gaussian_estep_diag, gaussian_estep_full,
                       gaussian_log_pdf_diag, gaussian_log_pdf_full, nearest_centers,
                       precision_cholesky_factors, weighted_moments)
from ..kernels._jit import map_item_ranges
from ..kernels._target import PARALLEL_MIN_CHOLESKY_FLOPS, PARALLEL_MIN_COVARIANCE_ENTRIES
from ..sources import sum_chunks
from ..validation import read_only
from .kmeans import kmeans_plusplus
from .mixture import (MixtureModel, one_hot_rows, overflow_error,
                      random_responsibilities, row_chunks, weight_floor, weighted_mean)

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
        # Numba, not LAPACK: no BLAS thread pool wakes up between parallel kernels; the
        # components split between fastem's threads (each one's factor as on one thread)
        m, d = covs.shape[0], covs.shape[1]
        runs = map_item_ranges(_factor_range, m, m * d ** 3 >= PARALLEL_MIN_CHOLESKY_FLOPS,
                               covs, out)
        failed = [lo + j for lo, j in runs if j >= 0]
        if failed:
            raise _singular_error(failed[0], covariance_type)
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


def _covariance_range(lo, hi, s2, nk, delta, reg, out):
    """Whether the covariances of components [lo, hi) are all finite (written to ``out``)."""
    return full_covariances(s2[lo:hi], nk[lo:hi], delta[lo:hi], reg, out[lo:hi])


def _factor_range(lo, hi, covs, out):
    """(lo, first singular component of ``covs[lo:hi]`` counted from lo, or -1)."""
    return lo, precision_cholesky_factors(covs[lo:hi], out[lo:hi])


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
    kmeans_fit : callable(source, None, rng) -> fitted KMeans, for init_params='kmeans'
        (injected by the estimator layer so models do not import estimators).
    """

    def __init__(self, n_components, covariance_type, reg_covar, init_params,
                 weights_init=None, means_init=None, precisions_init=None, kmeans_fit=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.kmeans_fit = kmeans_fit

    # -- parameters from statistics ---------------------------------------------------------
    def params_from_stats(self, nk, s1, s2, shift, floor):
        """The M-step proper (see the module docstring); ``floor``: see ``weight_floor``."""
        ct, reg = self.covariance_type, self.reg_covar
        nk = nk + floor
        delta = s1 / nk[:, None]
        means = shift + delta
        d = means.shape[1]
        if ct == "full":
            # one pass (Sigma_j = s2_j / N_j - delta_j delta_j^T, symmetrised, + reg I) with
            # the components split between fastem's threads; five NumPy passes over the
            # (k, d, d) arrays took 167 ms at k = 64, d = 512
            cov = np.empty(s2.shape)
            k = cov.shape[0]
            finite = all(map_item_ranges(_covariance_range, k,
                                         k * d * d >= PARALLEL_MIN_COVARIANCE_ENTRIES,
                                         np.ascontiguousarray(s2), np.ascontiguousarray(nk),
                                         np.ascontiguousarray(delta), float(reg), cov))
        elif ct == "tied":
            between = np.einsum("j,jf,jg->fg", nk, delta, delta)
            cov = (s2[0] - between) / nk.sum()
            cov = 0.5 * (cov + cov.T)
            cov[np.arange(d), np.arange(d)] += reg
        else:
            cov = np.maximum(s2 / nk[:, None] - delta ** 2, 0.0) + reg
            if ct == "spherical":
                cov = cov.mean(axis=1)
        if ct != "full":
            finite = np.isfinite(cov).all()
        if not (np.isfinite(means).all() and finite):
            raise overflow_error("a component mean or covariance")
        return GaussianParams(nk / nk.sum(), means, cov, precision_cholesky(cov, ct))

    def _moments(self, source, resp_of_chunk, shift):
        """Statistics ``(nk, s1, s2)`` of weighted responsibilities about ``shift``.

        ``resp_of_chunk(rows, X_chunk, w_chunk)`` returns ``(X rows, w * responsibilities)``
        for the chunk, or None when it has no rows to count.
        """
        full_rows = {"full": self.n_components, "tied": 1}.get(self.covariance_type, 0)
        kernel_shift = shift if self.covariance_type != "tied" else shift[:1]
        nk, s1, s2_full, s2_diag = sum_chunks(
            source, partial(_resp_moments, resp_of_chunk, self.n_components, full_rows,
                            kernel_shift))
        return nk, s1, s2_full if full_rows else s2_diag

    def _initial_resp(self, source, rng):
        """``resp_of_chunk`` (see :meth:`_moments`) for the chosen init method.

        'k-means++' and 'random_from_data' pick k rows (fetched once); 'kmeans' uses the
        labels of a KMeans fit (one int32 per row; on a Dask source each block labels its
        rows by the fitted centres, which are the labels a fit ends with); 'random' draws
        each chunk's responsibilities in row order (the same random stream for any
        chunking; on a Dask source, one stream per block).
        """
        n, k = source.n_rows, self.n_components
        method = self.init_params
        if method in ("k-means++", "random_from_data"):
            if method == "k-means++":
                _, idx = kmeans_plusplus(source, None, k, rng)
            else:
                idx = rng.choice(n, size=k, replace=False)
            order = np.argsort(idx, kind="stable")  # rows, each with one component
            rows = np.ascontiguousarray(source.take(idx[order]))
            resp = one_hot_rows(order, k) * source.weights(idx[order])[:, None]
            return partial(_given_rows_resp, rows, resp)
        if method == "kmeans":
            km = self.kmeans_fit(source, None, rng)
            if source.distributed:
                return partial(_nearest_center_resp, km.cluster_centers_)
            return partial(_labels_resp, km.labels_, k)
        if source.distributed:
            return partial(_seeded_random_resp, int(rng.randint(2**31 - 1)), k)

        def random_resp(chunk_rows, X, w):   # local sources only: one stream in row order
            for rows in row_chunks(X.shape[0]):
                resp = random_responsibilities(rng, rows.stop - rows.start, k)
                yield X[rows], resp * w[rows, None]

        return random_resp

    # -- driver protocol ----------------------------------------------------------------------
    def initialize(self, source, rng):
        given = (self.weights_init, self.means_init, self.precisions_init)
        if all(v is not None for v in given):
            params = None
        else:
            center = weighted_mean(source)
            shift = np.tile(center, (self.n_components, 1))
            nk, s1, s2 = self._moments(source, self._initial_resp(source, rng), shift)
            params = self.params_from_stats(nk, s1, s2, shift, self._floor(source))
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

    def chunk_statistics(self, params, shift):
        """``f(rows, X, w) -> (nk, s1, s2, log-likelihood)`` of one chunk: the fused E-step
        kernel's statistics about ``shift`` (what :func:`fastem.sources.sum_chunks` adds)."""
        prec, const = self._kernel_form(params, params.means.shape[1])
        return GaussianStatistics(self.covariance_type, params.means, prec, const, shift)

    def e_step(self, source, params):
        shift = self._pooled_shift(source) if self.covariance_type == "tied" else params.means
        nk, s1, s2, ll = sum_chunks(source, self.chunk_statistics(params, shift))
        if not np.isfinite(ll):
            raise overflow_error("the log-likelihood")
        return GaussianStats(nk, s1, s2, shift, ll / source.total_weight)

    def _pooled_shift(self, source):
        if getattr(self, "_shift_for", None) is not source:  # computed once per fit
            self._shift_for = source
            self._shift = weighted_mean(source)[None]
        return self._shift

    def m_step(self, source, params, stats):
        return self.params_from_stats(stats.nk, stats.s1, stats.s2, stats.shift,
                                      self._floor(source))

    # -- online (stepwise) EM ----------------------------------------------------------------
    def combine_stats(self, first, a, second, b):
        """``a * first + b * second`` (``first`` may be None), about ``second``'s shift.

        ``first`` is re-expressed about the new shift c' first (d = c - c')::

            s1' = s1 + N d,   s2' = s2 + s1 d^T + d s1^T + N d d^T   (diag: the diagonal)

        (tied: one shared shift, ``s2`` summed over the components, so N and s1 are summed
        over the components too). The shifts move with the means, so d stays small.
        """
        if first is None:
            return GaussianStats(b * second.nk, b * second.s1, b * second.s2, second.shift,
                                 second.objective)
        d = first.shift - second.shift
        nk, s1, s2 = first.nk, first.s1, first.s2
        s1_new = s1 + nk[:, None] * d
        if self.covariance_type == "tied":
            total_s1, total_n = s1.sum(axis=0), nk.sum()
            s2 = s2 + (np.outer(total_s1, d[0]) + np.outer(d[0], total_s1)
                       + total_n * np.outer(d[0], d[0]))[None]
        elif self.covariance_type == "full":
            s2 = s2 + (s1[:, :, None] * d[:, None, :] + d[:, :, None] * s1[:, None, :]
                       + nk[:, None, None] * d[:, :, None] * d[:, None, :])
        else:
            s2 = s2 + 2.0 * d * s1 + nk[:, None] * d * d
        return GaussianStats(a * nk + b * second.nk, a * s1_new + b * second.s1,
                             a * s2 + b * second.s2, second.shift, second.objective)

    def params_from_running(self, running, weight_seen, mean_weight):
        """The M-step from normalised running statistics, scaled back to the weight seen."""
        return self.params_from_stats(weight_seen * running.nk, weight_seen * running.s1,
                                      weight_seen * running.s2, running.shift,
                                      weight_floor(mean_weight))

    def finalize(self, source, params, stats, converged):
        self._shift_for = None  # drop the reference to the data
        return super().finalize(source, params, stats, converged)

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


class GaussianStatistics:
    """A chunk's fused E-step statistics ``(nk, s1, s2, log-likelihood)`` about ``shift``
    for fixed parameters in the kernels' form (picklable: Dask ships it to the workers)."""

    def __init__(self, covariance_type, means, prec, const, shift):
        self.covariance_type = covariance_type
        self.means, self.prec, self.const, self.shift = means, prec, const, shift

    def __call__(self, rows, X, w):
        k, d = self.means.shape
        nk, s1 = np.empty(k), np.empty((k, d))
        if self.covariance_type in ("full", "tied"):
            s2 = np.empty((1 if self.covariance_type == "tied" else k, d, d))
            estep = gaussian_estep_full
        else:
            s2, estep = np.empty((k, d)), gaussian_estep_diag
        ll = estep(X, w, self.means, self.prec, self.const, self.shift, nk, s1, s2)
        return nk, s1, s2, float(ll)


def _resp_moments(resp_of_chunk, k, full_rows, shift, rows, X, w):
    """Chunk statistics ``(nk, s1, s2_full, s2_diag)`` of the weighted responsibilities that
    ``resp_of_chunk(rows, X, w)`` yields as ``(X rows, w * resp)`` pairs, about ``shift``."""
    d = X.shape[1]
    shapes = ((k,), (k, d), (full_rows, d, d), (k if full_rows == 0 else 0, d))
    out = [np.zeros(shape) for shape in shapes]
    for Xr, resp in resp_of_chunk(rows, X, w):
        parts = [np.empty(shape) for shape in shapes]
        # read-only rows: given rows (random_from_data) are a fresh copy, the others views of
        # the validated X; one kernel specialisation for both
        weighted_moments(read_only(Xr), resp, shift, *parts)
        for total, part in zip(out, parts):
            total += part
    return tuple(out)


def _given_rows_resp(rows, resp, chunk_rows, X, w):
    """Initial responsibilities of a few given rows (counted once, with the first chunk)."""
    return [(rows, resp)] if chunk_rows.start == 0 else []


def _labels_resp(labels, k, chunk_rows, X, w):
    """One-hot responsibilities of the fit's labels (an n-long array on the client)."""
    for rows in row_chunks(X.shape[0]):
        glob = slice(chunk_rows.start + rows.start, chunk_rows.start + rows.stop)
        yield X[rows], one_hot_rows(labels[glob], k) * w[rows, None]


def _nearest_center_resp(centers, chunk_rows, X, w):
    """One-hot responsibilities of each row's nearest centre (computed where the chunk is)."""
    kernel_centers = centers.astype(X.dtype)
    for rows in row_chunks(X.shape[0]):
        Xr = X[rows]
        labels, sqdist = np.empty(Xr.shape[0], dtype=np.int32), np.empty(Xr.shape[0])
        nearest_centers(Xr, kernel_centers, labels, sqdist)
        yield Xr, one_hot_rows(labels, len(centers)) * w[rows, None]


def _seeded_random_resp(seed, k, chunk_rows, X, w):
    """scikit-learn's 'random' responsibilities from the chunk's own random stream."""
    rng = np.random.RandomState([seed, chunk_rows.start])
    for rows in row_chunks(X.shape[0]):
        yield X[rows], random_responsibilities(rng, rows.stop - rows.start, k) * w[rows, None]


def _covariances_from_prec_chol(prec_chol, covariance_type):
    """Covariances implied by precision Cholesky factors (for user-given precisions)."""
    if covariance_type == "full":
        return np.array([np.linalg.inv(p @ p.T) for p in prec_chol])
    if covariance_type == "tied":
        return np.linalg.inv(prec_chol @ prec_chol.T)
    return 1.0 / prec_chol ** 2
