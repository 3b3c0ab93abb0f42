"""Slow, obviously-correct NumPy twins of the Bernoulli kernels and of Bernoulli-mixture EM.

Written from the formulas with dense float64 arrays, broadcasting and ``scipy.special.xlogy``
(``0 * log 0 = 0``); no log-odds trick, no blocking.
"""
import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp, xlog1py, xlogy

#: The M-step's floor on component weight sums (scikit-learn's ``10 * eps``).
WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps


def dense(X):
    """X as a dense float64 array (from dense or sparse input)."""
    return (X.toarray() if sp.issparse(X) else np.asarray(X)).astype(np.float64)


def log_pmf(X, theta, log_weights):
    """(n, k): ``log_weights[c] + sum_j x_ij log theta_cj + (1 - x_ij) log(1 - theta_cj)``."""
    X = dense(X)[:, None, :]
    theta = np.asarray(theta, dtype=np.float64)[None, :, :]
    with np.errstate(divide="ignore"):
        terms = xlogy(X, theta) + xlog1py(1.0 - X, -theta)
    return terms.sum(axis=2) + np.asarray(log_weights, dtype=np.float64)


def estep(X, sample_weight, theta, log_weights):
    """(nk, sx, total weighted log-likelihood) of one E-step, from the (n, k) matrices."""
    wlp = log_pmf(X, theta, log_weights)
    lse = logsumexp(wlp, axis=1)
    with np.errstate(invalid="ignore"):
        resp = np.exp(wlp - lse[:, None])
    impossible = ~np.isfinite(lse)
    resp[impossible] = 1.0 / wlp.shape[1]     # rows impossible under every component
    wr = np.asarray(sample_weight, dtype=np.float64)[:, None] * resp
    positive = np.asarray(sample_weight) > 0
    return wr.sum(axis=0), wr.T @ dense(X), float(np.sum(sample_weight[positive]
                                                          * lse[positive]))


def m_step(nk, sx, alpha):
    """Smoothed M-step: ``theta = (sx + alpha) / (N + 2 alpha)``, ``pi = N / sum N``."""
    nk = nk + WEIGHT_FLOOR
    theta = np.clip((sx + alpha) / (nk + 2.0 * alpha)[:, None], 0.0, 1.0)
    return nk / nk.sum(), theta


def em(X, sample_weight, weights, theta, alpha, n_iter):
    """Plain EM from given parameters; returns the list of (weights, theta, mean ll)."""
    w = np.asarray(sample_weight, dtype=np.float64)
    out = []
    for _ in range(n_iter):
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        nk, sx, ll = estep(X, w, theta, log_w)
        weights, theta = m_step(nk, sx, alpha)
        out.append((weights, theta, ll / w.sum()))
    return out
