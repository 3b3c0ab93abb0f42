"""Gaussian mixtures: log-densities, the fused E-step with moment accumulation.

Parametrisation (scikit-learn's): component j has mean ``means[j]`` and precision matrix
``P_j P_j^T`` where ``P_j`` is the *precision Cholesky factor* (any square factor works: upper
triangular from a covariance, lower from a precision). Then::

    log N(x | mu_j, Sigma_j) = -d/2 log(2 pi) + log|det P_j| - 1/2 ||(x - mu_j)^T P_j||^2

Covariance types map onto two layouts:

* full / tied  - ``prec_chol`` of shape (k, d, d), or (1, d, d) shared by all components;
* diag / spherical - ``prec`` of shape (k, d) holding 1/sigma per feature (spherical: the same
  value repeated over the d features).

``const[j] = log(pi_j) + log|det P_j| - d/2 log(2 pi)`` is precomputed by the caller (pass
``log(pi_j) = 0`` for plain densities). Differences ``x - mu_j`` are formed in float64, so
float32 data far from the origin keep their precision; X itself is never copied.
"""
import numpy as np
from numba import prange

from ._blocks import block_bounds, chunk_bounds, fold_blocks, n_blocks, n_chunks
from ._jit import kernel
from .responsibilities import normalize_log_row

#: Most partial statistic tables a fused E-step keeps (each is k*d*d floats for full).
MAX_PARTIALS = 64


@kernel
def _full_log_prob_row(X, i, means, prec_chol, const, diff, y, out):
    """out[j] = const[j] - 1/2 ||(X[i] - means[j])^T P_j||^2; keeps X[i] - means[j] in diff[j]."""
    k, d = means.shape
    shared = prec_chol.shape[0] == 1
    for j in range(k):
        p = prec_chol[0] if shared else prec_chol[j]
        dj = diff[j]
        for f in range(d):
            dj[f] = np.float64(X[i, f]) - means[j, f]
            y[f] = 0.0
        for f in range(d):
            a = dj[f]
            for g in range(d):
                y[g] += a * p[f, g]
        q = 0.0
        for g in range(d):
            q += y[g] * y[g]
        out[j] = const[j] - 0.5 * q


@kernel
def _diag_log_prob_row(X, i, means, prec, const, diff, out):
    """out[j] = const[j] - 1/2 sum_f ((X[i, f] - means[j, f]) prec[j, f])^2; diff as above."""
    k, d = means.shape
    for j in range(k):
        dj = diff[j]
        q = 0.0
        for f in range(d):
            v = np.float64(X[i, f]) - means[j, f]
            dj[f] = v
            z = v * prec[j, f]
            q += z * z
        out[j] = const[j] - 0.5 * q


@kernel(parallel=True)
def gaussian_log_pdf_full(X, means, prec_chol, const, out):
    """Log-densities for full or tied covariances.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    means : ndarray, shape (k, d), float64
    prec_chol : ndarray, shape (k, d, d) or (1, d, d) (tied), float64
    const : ndarray, shape (k,), float64
        ``log pi_j + log|det P_j| - d/2 log(2 pi)``.
    out : ndarray, shape (n, k), float64
        OUT: ``const[j] - 1/2 ||(x_i - mu_j)^T P_j||^2``.
    """
    n = X.shape[0]
    k, d = means.shape
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        diff = np.empty((k, d))
        y = np.empty(d)
        for i in range(start, stop):
            _full_log_prob_row(X, i, means, prec_chol, const, diff, y, out[i])


@kernel(parallel=True)
def gaussian_log_pdf_diag(X, means, prec, const, out):
    """Log-densities for diagonal or spherical covariances.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    means : ndarray, shape (k, d), float64
    prec : ndarray, shape (k, d), float64
        1/sigma_jf (spherical: repeat 1/sigma_j over the features).
    const : ndarray, shape (k,), float64
        ``log pi_j + sum_f log prec[j, f] - d/2 log(2 pi)``.
    out : ndarray, shape (n, k), float64
        OUT.
    """
    n = X.shape[0]
    k, d = means.shape
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        diff = np.empty((k, d))
        for i in range(start, stop):
            _diag_log_prob_row(X, i, means, prec, const, diff, out[i])


@kernel
def _accumulate_scatter(r, v, s2):
    """Upper triangle of s2 += r * v v^T."""
    d = v.shape[0]
    for f in range(d):
        a = r * v[f]
        for g in range(f, d):
            s2[f, g] += a * v[g]


@kernel
def _mirror_upper(s2):
    """Copy the upper triangle of each (d, d) matrix in s2 (m, d, d) to its lower triangle."""
    for m in range(s2.shape[0]):
        for f in range(s2.shape[1]):
            for g in range(f):
                s2[m, f, g] = s2[m, g, f]


@kernel(parallel=True)
def gaussian_estep_full(X, sample_weight, means, prec_chol, const, shift, nk, s1, s2):
    """Fused E-step and sufficient statistics for full or tied covariances.

    One pass over X: log-densities, responsibilities ``r_ij`` (log-sum-exp) and the
    statistics, without an (n, k) or (n, d) temporary.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    sample_weight : ndarray, shape (n,), float64
    means : ndarray, shape (k, d), float64
    prec_chol : ndarray, shape (k, d, d) (full) or (1, d, d) (tied), float64
    const : ndarray, shape (k,), float64
        ``log pi_j + log|det P_j| - d/2 log(2 pi)``.
    shift : ndarray, shape (k, d) or (1, d), float64
        Centre of the accumulated moments: (k, d) per component (full; pass ``means``), or
        (1, d) one pooled centre (tied). Shifting avoids E[xx^T] - mu mu^T cancellation.
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i w_i r_ij``.
    s1 : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ij (x_i - c_j)`` with ``c_j = shift[j]`` (or ``shift[0]``).
    s2 : ndarray, shape (k, d, d) or (1, d, d), float64
        OUT: ``sum_i w_i r_ij (x_i - c_j)(x_i - c_j)^T`` per component when ``shift`` has k
        rows; ``sum_i w_i (x_i - c)(x_i - c)^T`` (pooled, tied) when it has one row.

    Returns
    -------
    float
        ``sum_i w_i log p(x_i)``, the weighted log-likelihood of the input parameters.
    """
    n = X.shape[0]
    k, d = means.shape
    pooled = shift.shape[0] == 1
    m2 = s2.shape[0]
    nc = n_chunks(n, MAX_PARTIALS)
    p_nk = np.empty((nc, k))
    p_s1 = np.empty((nc, k, d))
    p_s2 = np.empty((nc, m2, d, d))
    p_ll = np.empty((nc, 1))
    for c in prange(nc):
        start, stop = chunk_bounds(c, n, nc)
        c_nk, c_s1, c_s2 = p_nk[c], p_s1[c], p_s2[c]
        c_nk[:] = 0.0
        c_s1[:] = 0.0
        c_s2[:] = 0.0
        diff = np.empty((k, d))
        y = np.empty(d)
        row = np.empty(k)
        centred = np.empty(d)
        ll = 0.0
        for i in range(start, stop):
            _full_log_prob_row(X, i, means, prec_chol, const, diff, y, row)
            w = sample_weight[i]
            ll += w * normalize_log_row(row)
            if pooled:
                for f in range(d):
                    centred[f] = np.float64(X[i, f]) - shift[0, f]
                _accumulate_scatter(w, centred, c_s2[0])
            for j in range(k):
                r = w * row[j]
                if r == 0.0:
                    continue
                c_nk[j] += r
                v = centred if pooled else diff[j]
                if not pooled:
                    for f in range(d):
                        v[f] += means[j, f] - shift[j, f]
                    _accumulate_scatter(r, v, c_s2[j])
                for f in range(d):
                    c_s1[j, f] += r * v[f]
        p_ll[c, 0] = ll
    fold_blocks(p_nk, nk)
    fold_blocks(p_s1, s1)
    fold_blocks(p_s2, s2)
    _mirror_upper(s2)
    total = np.empty(1)
    fold_blocks(p_ll, total)
    return total[0]


@kernel(parallel=True)
def gaussian_estep_diag(X, sample_weight, means, prec, const, shift, nk, s1, s2):
    """Fused E-step and sufficient statistics for diagonal or spherical covariances.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    sample_weight : ndarray, shape (n,), float64
    means : ndarray, shape (k, d), float64
    prec : ndarray, shape (k, d), float64
        1/sigma_jf (spherical: repeated over the features).
    const : ndarray, shape (k,), float64
    shift : ndarray, shape (k, d), float64
        Centre of the accumulated moments (pass ``means``).
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i w_i r_ij``.
    s1 : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ij (x_i - shift_j)``.
    s2 : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ij (x_i - shift_j)^2`` (element-wise).

    Returns
    -------
    float
        ``sum_i w_i log p(x_i)``.
    """
    n = X.shape[0]
    k, d = means.shape
    nb = n_blocks(n)
    p_nk = np.empty((nb, k))
    p_s1 = np.empty((nb, k, d))
    p_s2 = np.empty((nb, k, d))
    p_ll = np.empty((nb, 1))
    for b in prange(nb):
        start, stop = block_bounds(b, n)
        b_nk, b_s1, b_s2 = p_nk[b], p_s1[b], p_s2[b]
        b_nk[:] = 0.0
        b_s1[:] = 0.0
        b_s2[:] = 0.0
        diff = np.empty((k, d))
        row = np.empty(k)
        ll = 0.0
        for i in range(start, stop):
            _diag_log_prob_row(X, i, means, prec, const, diff, row)
            w = sample_weight[i]
            ll += w * normalize_log_row(row)
            for j in range(k):
                r = w * row[j]
                if r == 0.0:
                    continue
                b_nk[j] += r
                for f in range(d):
                    v = diff[j, f] + (means[j, f] - shift[j, f])
                    b_s1[j, f] += r * v
                    b_s2[j, f] += r * v * v
        p_ll[b, 0] = ll
    fold_blocks(p_nk, nk)
    fold_blocks(p_s1, s1)
    fold_blocks(p_s2, s2)
    total = np.empty(1)
    fold_blocks(p_ll, total)
    return total[0]


@kernel(parallel=True)
def weighted_moments(X, resp, shift, nk, s1, s2_full, s2_diag):
    """Moments of X under given (weighted) responsibilities, e.g. for initialisation.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    resp : ndarray, shape (n, k), float64
        ``w_i r_ij`` (sample weights already folded in).
    shift : ndarray, shape (k, d) or (1, d), float64
        Centre per component, or one pooled centre.
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i resp_ij``.
    s1 : ndarray, shape (k, d), float64
        OUT: ``sum_i resp_ij (x_i - c_j)``.
    s2_full : ndarray, shape (m, d, d), float64
        OUT: scatter about the centre; m = k (per component), 1 (pooled: ``sum_i (sum_j
        resp_ij) (x_i - c)(x_i - c)^T``) or 0 (not computed).
    s2_diag : ndarray, shape (k, d) or (0, d), float64
        OUT: ``sum_i resp_ij (x_i - c_j)^2``, or not computed when it has 0 rows.
    """
    n, d = X.shape
    k = resp.shape[1]
    per_component = shift.shape[0] != 1
    m_full = s2_full.shape[0]
    do_diag = s2_diag.shape[0] > 0
    nc = n_chunks(n, MAX_PARTIALS)
    p_nk = np.empty((nc, k))
    p_s1 = np.empty((nc, k, d))
    p_full = np.empty((nc, m_full, d, d))
    p_diag = np.empty((nc, s2_diag.shape[0], d))
    for c in prange(nc):
        start, stop = chunk_bounds(c, n, nc)
        p_nk[c][:] = 0.0
        p_s1[c][:] = 0.0
        p_full[c][:] = 0.0
        p_diag[c][:] = 0.0
        v = np.empty(d)
        for i in range(start, stop):
            total = 0.0
            for j in range(k):
                r = resp[i, j]
                total += r
                if r == 0.0:
                    continue
                cj = j if per_component else 0
                for f in range(d):
                    v[f] = np.float64(X[i, f]) - shift[cj, f]
                p_nk[c, j] += r
                for f in range(d):
                    p_s1[c, j, f] += r * v[f]
                if do_diag:
                    for f in range(d):
                        p_diag[c, j, f] += r * v[f] * v[f]
                if per_component and m_full > 0:
                    _accumulate_scatter(r, v, p_full[c, j])
            if not per_component and m_full > 0 and total != 0.0:
                for f in range(d):
                    v[f] = np.float64(X[i, f]) - shift[0, f]
                _accumulate_scatter(total, v, p_full[c, 0])
    fold_blocks(p_nk, nk)
    fold_blocks(p_s1, s1)
    if m_full > 0:
        fold_blocks(p_full, s2_full)
        _mirror_upper(s2_full)
    if do_diag:
        fold_blocks(p_diag, s2_diag)
