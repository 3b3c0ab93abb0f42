"""Online (stepwise) EM: ``partial_fit`` of GaussianMixture and BernoulliMixture.

The reference is written here from the update rule (Cappe & Moulines 2009) with raw moments in
float64 and the NumPy E-steps of ``naive_gaussian``/``naive_bernoulli``::

    s_t = (sum_i w_i r_ij, sum_i w_i r_ij x_i, sum_i w_i r_ij x_i x_i^T) / W_t
    S_1 = s_1,  S_t = (1 - rho_t) S_{t-1} + rho_t s_t,  rho_t = (t - 1 + offset) ** -decay
    parameters = the M-step of (W_1 + ... + W_t) S_t
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastem import BernoulliMixture, GaussianMixture

from . import naive_bernoulli as nb
from . import naive_gaussian as ng

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
FLOOR = 10 * np.finfo(np.float64).eps


def mixture_data(n, d=3, k=3, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    X = means[rng.randint(k, size=n)] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)
    return X.astype(dtype)


def stepwise(S, s, t, decay, offset):
    """Stepwise EM's running statistics after chunk t + 1 (math of Cappe & Moulines 2009):
    S = s for the first chunk, else S = (1 - rho) S + rho s, rho = (t + offset)^-decay."""
    if S is None:
        return s, t
    t += 1
    rho = (t + offset) ** -decay
    return [(1 - rho) * a + rho * b for a, b in zip(S, s)], t


def reference_gaussian(chunks, weights_of, params, covariance_type, reg, decay, offset):
    weights, means, cov = params
    S, t, W = None, 0, 0.0
    for X, w in zip(chunks, weights_of):
        X = X.astype(np.float64)
        resp, _ = ng.e_step(X, weights, means, cov, covariance_type)
        wr = resp * w[:, None]
        Wt = w.sum()
        s = [wr.sum(axis=0) / Wt, wr.T @ X / Wt, np.einsum("ik,id,ie->kde", wr, X, X) / Wt]
        S, t = stepwise(S, s, t, decay, offset)
        W += Wt
        nk = W * S[0] + FLOOR
        means = W * S[1] / nk[:, None]
        second = W * S[2] / nk[:, None, None] - np.einsum("kd,ke->kde", means, means)
        d = X.shape[1]
        if covariance_type == "full":
            cov = second + reg * np.eye(d)
        elif covariance_type == "tied":
            cov = np.einsum("k,kde->de", nk, second) / nk.sum() + reg * np.eye(d)
        else:
            var = np.maximum(np.diagonal(second, axis1=1, axis2=2), 0) + reg
            cov = var if covariance_type == "diag" else var.mean(axis=1)
        weights = nk / nk.sum()
    return weights, means, cov


def assert_rel(a, b, rtol, what):
    err = np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))
    assert err <= rtol, f"{what}: relative error {err:.3g}"


def initial_gaussian(X, k, covariance_type):
    """Initial parameters from a short fit (any parameters do; both sides start from them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GaussianMixture(k, covariance_type=covariance_type, max_iter=2,
                            random_state=0).fit(X)
    return g.weights_, g.means_, g.covariances_, g.precisions_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_partial_fit_matches_numpy_stepwise_em(covariance_type, dtype):
    X = mixture_data(3000, dtype=dtype)
    weights, means, cov, prec = initial_gaussian(X[:500], 3, covariance_type)
    rng = np.random.RandomState(1)
    sizes = rng.randint(50, 400, size=12)
    chunks = np.split(X, np.cumsum(sizes))[:12]
    sample_w = [rng.uniform(0.2, 3.0, size=len(c)) for c in chunks]
    est = GaussianMixture(3, covariance_type=covariance_type, reg_covar=1e-4,
                          weights_init=weights, means_init=means, precisions_init=prec,
                          learning_decay=0.6, learning_offset=2.0)
    for c, w in zip(chunks, sample_w):
        est.partial_fit(c, sample_weight=w)
    ref_w, ref_m, ref_c = reference_gaussian(chunks, sample_w, (weights, means, cov),
                                             covariance_type, 1e-4, 0.6, 2.0)
    assert est.n_iter_ == 12 and len(est.lower_bounds_) == 12
    assert_rel(est.weights_, ref_w, 1e-9, "weights_")
    assert_rel(est.means_, ref_m, 1e-9, "means_")
    assert_rel(est.covariances_, ref_c, 1e-8, "covariances_")


@pytest.mark.parametrize("form", ["dense", "csr"])
def test_bernoulli_partial_fit_matches_numpy_stepwise_em(form):
    rng = np.random.RandomState(0)
    theta_true = rng.uniform(0.1, 0.9, size=(3, 10))
    B = (rng.uniform(size=(2000, 10)) < theta_true[rng.randint(3, size=2000)]).astype(np.uint8)
    weights0, theta0 = np.full(3, 1 / 3), rng.uniform(0.2, 0.8, size=(3, 10))
    chunks = np.array_split(B, 9)
    sample_w = [rng.uniform(0.5, 2.0, size=len(c)) for c in chunks]
    alpha, decay, offset = 0.5, 0.8, 5.0
    est = BernoulliMixture(3, alpha=alpha, weights_init=weights0, means_init=theta0,
                           learning_decay=decay, learning_offset=offset)
    convert = sp.csr_matrix if form == "csr" else (lambda a: a)
    for c, w in zip(chunks, sample_w):
        est.partial_fit(convert(c), sample_weight=w)
    weights, theta, S, t, W = weights0, theta0, None, 0, 0.0
    for c, w in zip(chunks, sample_w):
        nk, sx, _ = nb.estep(c, w, theta, np.log(weights))
        S, t = stepwise(S, [nk / w.sum(), sx / w.sum()], t, decay, offset)
        W += w.sum()
        weights, theta = nb.m_step(W * S[0], W * S[1], alpha)
    assert_rel(est.weights_, weights, 1e-10, "weights_")
    assert_rel(est.means_, theta, 1e-10, "means_")


def test_partial_fit_first_call_initialises_and_fit_restarts():
    X = mixture_data(2000)
    a = GaussianMixture(3, random_state=0).partial_fit(X[:1000])
    assert a.n_iter_ == 1 and np.isfinite(a.lower_bound_)
    a.partial_fit(X[1000:])
    assert a.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X)
    fitted = a.means_.copy()
    a.partial_fit(X[:500])           # continues from the fitted parameters
    assert a.n_iter_ == 1
    assert np.abs(a.means_ - fitted).max() < 0.5
    with pytest.raises(ValueError, match="features"):
        a.partial_fit(X[:10, :2])


@pytest.mark.parametrize("decay, offset", [(0.5, 10.0), (1.5, 10.0), (0.7, -1.0)])
def test_learning_parameters_are_checked(decay, offset):
    with pytest.raises(ValueError, match="learning_"):
        GaussianMixture(2, learning_decay=decay, learning_offset=offset).partial_fit(
            mixture_data(100))
    with pytest.raises(ValueError, match="learning_"):
        BernoulliMixture(2, learning_decay=decay, learning_offset=offset).partial_fit(
            np.eye(4, dtype=np.uint8).repeat(5, axis=0))


def test_first_chunk_needs_enough_rows():
    with pytest.raises(ValueError, match="first chunk"):
        GaussianMixture(5).partial_fit(mixture_data(3))


# ------------------------------------------------------------------- the quality target

def overlapping_gaussian_mixture(n, seed):
    """8 components in d=10 whose neighbours overlap (the common case, not easy blobs)."""
    rng = np.random.RandomState(0)
    k, d = 8, 10
    means = rng.normal(scale=1.5, size=(k, d))
    A = rng.normal(size=(k, d, d)) * 0.4
    chol = np.linalg.cholesky(np.einsum("kij,klj->kil", A, A) + 0.5 * np.eye(d))
    pi = rng.dirichlet(np.full(k, 5.0))
    draw = np.random.RandomState(seed)
    z = draw.choice(k, size=n, p=pi)
    return means[z] + np.einsum("nij,nj->ni", chol[z], draw.normal(size=(n, d)))


def chunks_of(X, rows):
    """A generator: what a stream reader hands to partial_fit."""
    for start in range(0, len(X), rows):
        yield X[start:start + rows]


def test_one_online_pass_is_within_002_nats_of_batch_em_gaussian():
    X = overlapping_gaussian_mixture(1_000_000, seed=1)
    held_out = overlapping_gaussian_mixture(100_000, seed=2)
    weights, means, _, prec = initial_gaussian(X[:20_000], 8, "full")
    init = dict(weights_init=weights, means_init=means, precisions_init=prec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(8, **init).fit(X)
    online = GaussianMixture(8, **init)
    for chunk in chunks_of(X, 1000):
        online.partial_fit(chunk)
    gap = batch.score(held_out) - online.score(held_out)
    assert online.n_iter_ == 1000
    assert gap <= 0.02, f"online pass is {gap:.4f} nats/sample below batch EM"


def test_one_online_pass_is_within_002_nats_of_batch_em_bernoulli():
    rng = np.random.RandomState(0)
    k, d = 10, 64
    theta = rng.beta(0.7, 0.7, size=(k, d))
    pi = rng.dirichlet(np.full(k, 5.0))

    def draw(n, seed):
        r = np.random.RandomState(seed)
        z = r.choice(k, size=n, p=pi)
        return (r.uniform(size=(n, d)) < theta[z]).astype(np.uint8)

    X, held_out = draw(1_000_000, 1), draw(100_000, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = BernoulliMixture(k, max_iter=1, random_state=0).fit(X[:20_000])
    init = dict(weights_init=start.weights_, means_init=start.means_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = BernoulliMixture(k, **init).fit(X)
    online = BernoulliMixture(k, **init)
    for chunk in chunks_of(X, 1000):
        online.partial_fit(chunk)
    gap = batch.score(held_out) - online.score(held_out)
    assert gap <= 0.02, f"online pass is {gap:.4f} nats/sample below batch EM"
