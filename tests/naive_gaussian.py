"""Slow, obviously-correct NumPy references for the Gaussian mixture, written from the math.

Everything is float64, computed from ``X.astype(np.float64)`` with broadcasting, two-pass
(means first, then deviations from them); no blocks, no shifts, no fused passes. Parameters use
scikit-learn's shapes for each covariance type:

* full: covariances (k, d, d); tied: (d, d); diag: (k, d); spherical: (k,)
* precisions likewise (the inverse covariances).

The weighted EM follows the textbook formulas with scikit-learn's conventions:

    r_ij   = pi_j N(x_i | mu_j, Sigma_j) / sum_l pi_l N(x_i | mu_l, Sigma_l)
    N_j    = sum_i w_i r_ij + 10 eps
    pi_j   = N_j / sum_l N_l
    mu_j   = sum_i w_i r_ij x_i / N_j
    full:      Sigma_j = sum_i w_i r_ij (x_i - mu_j)(x_i - mu_j)^T / N_j + reg I
    tied:      Sigma   = sum_j sum_i w_i r_ij (x_i - mu_j)(x_i - mu_j)^T / sum_j N_j + reg I
    diag:      sigma2_jf = sum_i w_i r_ij (x_if - mu_jf)^2 / N_j + reg
    spherical: sigma2_j  = mean_f of the diag variances
    lower bound = sum_i w_i log sum_j pi_j N(x_i | j) / sum_i w_i   (of the parameters *before*
                  the M-step, i.e. scikit-learn's ``lower_bound_``)
"""
import numpy as np

WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps


# -- densities ------------------------------------------------------------------------------
def full_covariances(covariances, covariance_type, k, d):
    """Covariances of any type as a (k, d, d) stack of full matrices."""
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return c.copy()
    if covariance_type == "tied":
        return np.repeat(c[None], k, axis=0)
    if covariance_type == "diag":
        return np.array([np.diag(row) for row in c])
    return np.array([np.eye(d) * s for s in c])


def log_gaussian(X, mean, cov):
    """log N(x | mean, cov) for every row of X, from the definition (solve + slogdet)."""
    X = np.asarray(X, dtype=np.float64)
    diff = X - mean
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    maha = np.einsum("if,if->i", diff, np.linalg.solve(cov, diff.T).T)
    d = X.shape[1]
    return -0.5 * (d * np.log(2 * np.pi) + logdet + maha)


def log_pdf_prec_chol(X, means, prec_chol, const):
    """``const[j] - 1/2 ||(x_i - mu_j)^T P_j||^2`` (the kernels' contract), (n, k)."""
    X = np.asarray(X, dtype=np.float64)
    k = means.shape[0]
    out = np.empty((X.shape[0], k))
    for j in range(k):
        p = prec_chol[0] if prec_chol.shape[0] == 1 else prec_chol[j]
        y = (X - means[j]) @ p
        out[:, j] = const[j] - 0.5 * (y * y).sum(axis=1)
    return out


def log_pdf_prec_diag(X, means, prec, const):
    """``const[j] - 1/2 sum_f ((x_if - mu_jf) prec_jf)^2``, (n, k)."""
    X = np.asarray(X, dtype=np.float64)
    z = (X[:, None, :] - means[None]) * prec[None]
    return const[None, :] - 0.5 * (z * z).sum(axis=2)


def logsumexp_rows(a):
    """Row-wise log-sum-exp with the row maximum subtracted; all -inf rows give -inf."""
    a = np.asarray(a, dtype=np.float64)
    m = a.max(axis=1)
    finite_m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return finite_m + np.log(np.exp(a - finite_m[:, None]).sum(axis=1))


def weighted_log_prob(X, weights, means, covariances, covariance_type):
    """``log pi_j + log N(x_i | j)``, (n, k)."""
    k, d = means.shape
    covs = full_covariances(covariances, covariance_type, k, d)
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    return np.stack([logw[j] + log_gaussian(X, means[j], covs[j]) for j in range(k)], axis=1)


def e_step(X, weights, means, covariances, covariance_type):
    """(responsibilities (n, k), log p(x_i) (n,))."""
    wlp = weighted_log_prob(X, weights, means, covariances, covariance_type)
    log_norm = logsumexp_rows(wlp)
    return np.exp(wlp - log_norm[:, None]), log_norm


# -- moments --------------------------------------------------------------------------------
def moments(X, resp, centres):
    """Per component j (``resp`` already multiplied by the sample weights):

    nk_j = sum_i resp_ij; s1_j = sum_i resp_ij (x_i - c_j);
    s2_j = sum_i resp_ij (x_i - c_j)(x_i - c_j)^T, with c_j = centres[j] (or centres[0]).
    """
    X = np.asarray(X, dtype=np.float64)
    k = resp.shape[1]
    nk = resp.sum(axis=0)
    s1, s2 = [], []
    for j in range(k):
        c = centres[0] if centres.shape[0] == 1 else centres[j]
        diff = X - c
        s1.append(resp[:, j] @ diff)
        s2.append((resp[:, j, None] * diff).T @ diff)
    return nk, np.array(s1), np.array(s2)


def pooled_scatter(X, resp, centre):
    """``sum_i (sum_j resp_ij) (x_i - c)(x_i - c)^T``, (d, d)."""
    X = np.asarray(X, dtype=np.float64)
    w = resp.sum(axis=1)
    diff = X - centre
    return (w[:, None] * diff).T @ diff


# -- EM -------------------------------------------------------------------------------------
def m_step(X, sample_weight, resp, covariance_type, reg_covar):
    """(weights, means, covariances) from responsibilities, textbook two-pass formulas."""
    X = np.asarray(X, dtype=np.float64)
    wr = resp * sample_weight[:, None]
    nk = wr.sum(axis=0) + WEIGHT_FLOOR
    means = (wr.T @ X) / nk[:, None]
    k, d = means.shape
    scatter = []
    for j in range(k):
        diff = X - means[j]
        scatter.append((wr[:, j, None] * diff).T @ diff)
    scatter = np.array(scatter)
    if covariance_type == "full":
        cov = scatter / nk[:, None, None] + reg_covar * np.eye(d)
    elif covariance_type == "tied":
        cov = scatter.sum(axis=0) / nk.sum() + reg_covar * np.eye(d)
    else:
        var = np.array([np.diag(s) for s in scatter]) / nk[:, None] + reg_covar
        cov = var if covariance_type == "diag" else var.mean(axis=1)
    return nk / nk.sum(), means, cov


def covariances_from_precisions(precisions, covariance_type):
    p = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(p)
    return 1.0 / p


def precisions_from_covariances(covariances, covariance_type):
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(c)
    return 1.0 / c


def em(X, sample_weight, weights, means, precisions, covariance_type, reg_covar, n_iter):
    """``n_iter`` weighted EM iterations from the given parameters.

    Returns ``(lower_bounds, (weights, means, covariances))``; ``lower_bounds[t]`` is the
    weighted mean log-likelihood of the parameters entering iteration t.
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    cov = covariances_from_precisions(precisions, covariance_type)
    bounds = []
    for _ in range(n_iter):
        resp, log_norm = e_step(X, weights, means, cov, covariance_type)
        bounds.append(float(w @ log_norm / w.sum()))
        weights, means, cov = m_step(X, w, resp, covariance_type, reg_covar)
    return np.array(bounds), (weights, means, cov)


def n_parameters(k, d, covariance_type):
    """Free parameters of a Gaussian mixture, counted from the definition."""
    cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return cov + k * d + (k - 1)
