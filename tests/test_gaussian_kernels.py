"""The Gaussian-mixture kernels against scipy.stats and the NumPy twins in naive_gaussian.py.

n = 2 * 2048 + 301 rows (several fixed row blocks, the last one partial), d = 3, k = 4, X in
float32 and float64, placed away from the origin (offset 50) so that moments about a shift are
exercised; sample weights are non-unit and include zeros. Precision factors come in every
form the kernels accept: lower triangular (Cholesky of the precision), upper triangular
(inverse transposed Cholesky of the covariance, scikit-learn's), a dense square factor, and the
shared (1, d, d) tied factor.
"""
import numba
import numpy as np
import pytest
from numba import prange
from scipy import linalg
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal

from fastem.kernels import (gaussian_estep_diag, gaussian_estep_full, gaussian_log_pdf_diag,
                            gaussian_log_pdf_full, normalize_log_row, responsibilities,
                            weighted_moments)

from . import naive_gaussian as ng

N_ROWS = 2 * 2048 + 301
D, K = 3, 4
DTYPES = [np.float32, np.float64]
LOG_2PI = np.log(2 * np.pi)


def assert_rel(actual, desired, rtol, what=""):
    """max |actual - desired| <= rtol * max |desired| (a scale-aware relative check)."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (what, actual.shape, desired.shape)
    assert np.isfinite(actual).all(), what
    scale = max(np.abs(desired).max(), 1e-300)
    err = np.abs(actual - desired).max()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:.1g} * {scale:.3g}"


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.5 * np.eye(d)


@pytest.fixture(scope="module")
def problem():
    """Data, weights and mixture parameters in every layout (all float64 parameters)."""
    rng = np.random.RandomState(1234)
    mix = rng.randint(K, size=N_ROWS)
    centres = rng.normal(scale=4.0, size=(K, D)) + 50.0
    X64 = centres[mix] + rng.normal(size=(N_ROWS, D)) @ rng.normal(size=(D, D))
    w = rng.uniform(0.2, 3.0, size=N_ROWS)
    w[::53] = 0.0
    w[7] = 11.0
    means = centres + rng.normal(scale=0.5, size=(K, D))
    weights = rng.dirichlet(np.full(K, 3.0))
    covs = np.array([_random_spd(rng, D) for _ in range(K)])
    precs = np.linalg.inv(covs)
    lower = np.array([linalg.cholesky(p, lower=True) for p in precs])
    upper = np.array([linalg.solve_triangular(linalg.cholesky(c, lower=True), np.eye(D),
                                              lower=True).T for c in covs])
    q = np.linalg.qr(rng.normal(size=(D, D)))[0]
    dense = lower @ q                                   # P P^T is unchanged by the rotation
    var = rng.uniform(0.3, 3.0, size=(K, D))
    sph = rng.uniform(0.3, 3.0, size=K)
    return dict(X={np.float64: X64, np.float32: X64.astype(np.float32)}, w=w, means=means,
                weights=weights, covs=covs, lower=lower, upper=upper, dense=dense,
                tied_cov=covs[0], tied_prec_chol=lower[:1], var=var, sph=sph)


def _full_layout(p, form):
    """(prec_chol (m, d, d), covariance per component (k, d, d)) for a factor form."""
    if form == "tied":
        return np.ascontiguousarray(p["tied_prec_chol"]), np.repeat(p["tied_cov"][None], K, 0)
    return np.ascontiguousarray(p[form]), p["covs"]


def _full_const(p, prec_chol):
    logdet = np.log(np.abs(np.linalg.det(prec_chol)))          # any square factor
    logdet = np.broadcast_to(logdet, (K,))
    return np.log(p["weights"]) + logdet - 0.5 * D * LOG_2PI


def _diag_layout(p, form):
    """(prec (k, d) = 1/sigma, variances (k, d)) for 'diag' or 'spherical'."""
    var = p["var"] if form == "diag" else np.repeat(p["sph"][:, None], D, axis=1)
    return np.ascontiguousarray(1.0 / np.sqrt(var)), var


def _diag_const(p, prec):
    return np.log(p["weights"]) + np.log(prec).sum(axis=1) - 0.5 * D * LOG_2PI


def _scipy_weighted_log_prob(X, weights, means, covs):
    X64 = np.asarray(X, dtype=np.float64)
    return np.stack([np.log(weights[j]) + multivariate_normal(means[j], covs[j]).logpdf(X64)
                     for j in range(len(weights))], axis=1)


FULL_FORMS = ["lower", "upper", "dense", "tied"]


# -- log-densities ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("form", FULL_FORMS)
def test_gaussian_log_pdf_full_matches_scipy(problem, dtype, form):
    X = problem["X"][dtype]
    prec_chol, covs = _full_layout(problem, form)
    const = _full_const(problem, prec_chol)
    out = np.full((N_ROWS, K), np.nan)
    gaussian_log_pdf_full(X, problem["means"], prec_chol, const, out)
    expected = _scipy_weighted_log_prob(X, problem["weights"], problem["means"], covs)
    assert_rel(out, expected, 1e-10, "log pdf vs scipy")
    # the kernel's exact contract, from the formula
    assert_rel(out, ng.log_pdf_prec_chol(X, problem["means"], prec_chol, const), 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("form", ["diag", "spherical"])
def test_gaussian_log_pdf_diag_matches_scipy(problem, dtype, form):
    X = problem["X"][dtype]
    prec, var = _diag_layout(problem, form)
    const = _diag_const(problem, prec)
    out = np.full((N_ROWS, K), np.nan)
    gaussian_log_pdf_diag(X, problem["means"], prec, const, out)
    covs = np.array([np.diag(v) for v in var])
    expected = _scipy_weighted_log_prob(X, problem["weights"], problem["means"], covs)
    assert_rel(out, expected, 1e-10, "log pdf vs scipy")
    assert_rel(out, ng.log_pdf_prec_diag(X, problem["means"], prec, const), 1e-12)


# -- responsibilities ---------------------------------------------------------------------------
def _awkward_log_probs(rng, n, k):
    a = rng.normal(scale=30.0, size=(n, k)) - 500.0
    a[::7, 1] = -np.inf                       # rows with a -inf entry
    a[3, :k - 1] = -np.inf                    # only one finite entry
    a[11] = -1e4 + rng.normal(size=k)         # very negative: exp() underflows without the max
    a[12] = -1e4                              # very negative ties
    a[13] = 700.0 + np.arange(k)              # exp() would overflow without the max
    return a


def test_responsibilities_matches_logsumexp():
    rng = np.random.RandomState(0)
    k = 5
    wlp = _awkward_log_probs(rng, N_ROWS, k)
    resp = np.full_like(wlp, np.nan)
    log_norm = np.full(N_ROWS, np.nan)
    responsibilities(wlp, resp, log_norm)
    expected_norm = logsumexp(wlp, axis=1)
    assert np.isfinite(log_norm).all() and np.isfinite(resp).all()
    np.testing.assert_allclose(log_norm, expected_norm, rtol=1e-13, atol=0)
    np.testing.assert_allclose(resp, softmax(wlp, axis=1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-13)
    assert (resp[::7, 1] == 0.0).all()
    np.testing.assert_array_equal(resp[3], [0.0] * (k - 1) + [1.0])
    np.testing.assert_allclose(resp[12], 1.0 / k, rtol=1e-14)
    # in place (resp aliasing the input), as the estimator uses it
    inplace = wlp.copy()
    log_norm2 = np.empty(N_ROWS)
    responsibilities(inplace, inplace, log_norm2)
    np.testing.assert_array_equal(inplace, resp)
    np.testing.assert_array_equal(log_norm2, log_norm)


def test_responsibilities_all_minus_inf_row():
    """Documented edge case: an all -inf row gives log-likelihood -inf, uniform responsibilities."""
    wlp = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0]])
    resp, log_norm = np.empty_like(wlp), np.empty(2)
    responsibilities(wlp, resp, log_norm)
    assert log_norm[0] == -np.inf == logsumexp(wlp[0])
    np.testing.assert_allclose(resp[0], 1.0 / 3)
    np.testing.assert_allclose(log_norm[1], logsumexp(wlp[1]), rtol=1e-15)
    np.testing.assert_allclose(resp[1], softmax(wlp[1]), rtol=1e-15)


def test_normalize_log_row_matches_logsumexp():
    rng = np.random.RandomState(1)
    for row in _awkward_log_probs(rng, 20, 4):
        r = row.copy()
        lse = normalize_log_row(r)
        assert np.isfinite(lse) and np.isfinite(r).all()
        np.testing.assert_allclose(lse, logsumexp(row), rtol=1e-14)
        np.testing.assert_allclose(r, softmax(row), rtol=1e-13, atol=1e-300)
    single = np.array([-3.5])
    assert normalize_log_row(single) == -3.5 and single[0] == 1.0


# -- fused E-steps ------------------------------------------------------------------------------
def _reference_stats(X, w, resp, centres):
    """nk, s1, s2 about ``centres`` with ``w_i r_ij`` folded in (naive_gaussian.moments)."""
    return ng.moments(X, resp * w[:, None], centres)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("form", FULL_FORMS)
def test_gaussian_estep_full_matches_reference(problem, dtype, form):
    X, w, means = problem["X"][dtype], problem["w"], problem["means"]
    prec_chol, covs = _full_layout(problem, form)
    const = _full_const(problem, prec_chol)
    wlp = _scipy_weighted_log_prob(X, problem["weights"], means, covs)
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    nk, s1 = np.full(K, np.nan), np.full((K, D), np.nan)
    if form == "tied":
        shift = (w @ X.astype(np.float64) / w.sum())[None]          # one pooled centre
        s2 = np.full((1, D, D), np.nan)
    else:
        shift = means
        s2 = np.full((K, D, D), np.nan)
    ll = gaussian_estep_full(X, w, means, prec_chol, const, shift, nk, s1, s2)
    ref_nk, ref_s1, ref_s2 = _reference_stats(X, w, resp, shift)
    np.testing.assert_allclose(ll, w @ log_norm, rtol=1e-11)
    assert_rel(nk, ref_nk, 1e-11, "nk")
    assert_rel(s1, ref_s1, 1e-10, "s1")
    if form == "tied":
        ref_s2 = ng.pooled_scatter(X, resp * w[:, None], shift[0])[None]
    assert_rel(s2, ref_s2, 1e-10, "s2")
    assert_rel(s2, s2.transpose(0, 2, 1), 1e-12, "s2 symmetric")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("form", ["diag", "spherical"])
def test_gaussian_estep_diag_matches_reference(problem, dtype, form):
    X, w, means = problem["X"][dtype], problem["w"], problem["means"]
    prec, var = _diag_layout(problem, form)
    const = _diag_const(problem, prec)
    covs = np.array([np.diag(v) for v in var])
    wlp = _scipy_weighted_log_prob(X, problem["weights"], means, covs)
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    nk, s1, s2 = np.full(K, np.nan), np.full((K, D), np.nan), np.full((K, D), np.nan)
    ll = gaussian_estep_diag(X, w, means, prec, const, means, nk, s1, s2)
    ref_nk, ref_s1, ref_s2 = _reference_stats(X, w, resp, means)
    np.testing.assert_allclose(ll, w @ log_norm, rtol=1e-11)
    assert_rel(nk, ref_nk, 1e-11, "nk")
    assert_rel(s1, ref_s1, 1e-10, "s1")
    assert_rel(s2, np.diagonal(ref_s2, axis1=1, axis2=2), 1e-10, "s2")


# -- wide d: several factor panels, skipped zero rows, scatter sub-blocks ------------------------
WIDE_D, WIDE_K = 37, 3   # 3 panels of 16 float64 (AVX-512 tiles), 5 of 8 (AVX2), 19 of 2


@pytest.fixture(scope="module")
def wide_problem():
    """A 37-feature mixture whose factors span several tile panels, on 2048 + 301 rows (a
    full block, then a partial one ending in a partial 256-row sub-product)."""
    rng = np.random.default_rng(37)
    n, d, k = 2048 + 301, WIDE_D, WIDE_K
    means = rng.normal(scale=3.0, size=(k, d)) + 20.0
    covs = np.array([_random_spd(rng, d) / d + 0.2 * np.eye(d) for _ in range(k)])
    mix = rng.integers(k, size=n)
    X64 = np.array([rng.multivariate_normal(means[j], covs[j]) for j in mix])
    lower = np.linalg.cholesky(np.linalg.inv(covs))                  # lower triangular
    upper = np.array([linalg.solve_triangular(linalg.cholesky(c, lower=True), np.eye(d),
                                              lower=True).T for c in covs])
    dense = lower @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    return dict(X={np.float64: X64, np.float32: X64.astype(np.float32)},
                w=rng.uniform(0.2, 3.0, size=n), means=means, covs=covs,
                weights=rng.dirichlet(np.full(k, 3.0)), lower=lower, upper=upper, dense=dense)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("form", FULL_FORMS)
def test_wide_full_kernels_match_reference(wide_problem, dtype, form):
    p, d, k = wide_problem, WIDE_D, WIDE_K
    X, w, means = p["X"][dtype], p["w"], p["means"]
    if form == "tied":
        prec_chol, covs = p["upper"][:1].copy(), np.repeat(p["covs"][:1], k, 0)
    else:
        prec_chol, covs = np.ascontiguousarray(p[form]), p["covs"]
    logdet = np.broadcast_to(np.log(np.abs(np.linalg.det(prec_chol))), (k,))
    const = np.log(p["weights"]) + logdet - 0.5 * d * LOG_2PI
    wlp = _scipy_weighted_log_prob(X, p["weights"], means, covs)
    out = np.full((X.shape[0], k), np.nan)
    gaussian_log_pdf_full(X, means, prec_chol, const, out)
    assert_rel(out, wlp, 1e-9, "log pdf vs scipy")
    assert_rel(out, ng.log_pdf_prec_chol(X, means, prec_chol, const), 1e-12)

    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    shift = (w @ X.astype(np.float64) / w.sum())[None] if form == "tied" else means
    nk, s1 = np.full(k, np.nan), np.full((k, d), np.nan)
    s2 = np.full((shift.shape[0], d, d), np.nan)
    ll = gaussian_estep_full(X, w, means, prec_chol, const, shift, nk, s1, s2)
    np.testing.assert_allclose(ll, w @ log_norm, rtol=1e-10)
    ref_nk, ref_s1, ref_s2 = _reference_stats(X, w, resp, shift)
    if form == "tied":
        ref_s2 = ng.pooled_scatter(X, resp * w[:, None], shift[0])[None]
    assert_rel(nk, ref_nk, 1e-10, "nk")
    assert_rel(s1, ref_s1, 1e-9, "s1")
    assert_rel(s2, ref_s2, 1e-9, "s2")
    assert_rel(s2, s2.transpose(0, 2, 1), 1e-12, "s2 symmetric")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_wide_diag_estep_matches_reference(wide_problem, dtype):
    """[xc^2, xc, 1] spans several column panels of the statistics product at d=37."""
    p, d, k = wide_problem, WIDE_D, WIDE_K
    X, w, means = p["X"][dtype], p["w"], p["means"]
    var = np.random.default_rng(5).uniform(0.3, 3.0, size=(k, d))
    prec = 1.0 / np.sqrt(var)
    const = np.log(p["weights"]) + np.log(prec).sum(axis=1) - 0.5 * d * LOG_2PI
    wlp = _scipy_weighted_log_prob(X, p["weights"], means, np.array([np.diag(v) for v in var]))
    _check_diag_estep(X, w, means, prec, const, wlp)


def _check_diag_estep(X, w, means, prec, const, wlp):
    """gaussian_estep_diag's log-likelihood and statistics against those of the reference
    weighted log-densities ``wlp`` (n, k)."""
    k, d = means.shape
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    nk, s1, s2 = np.full(k, np.nan), np.full((k, d), np.nan), np.full((k, d), np.nan)
    ll = gaussian_estep_diag(X, w, means, prec, const, means, nk, s1, s2)
    np.testing.assert_allclose(ll, w @ log_norm, rtol=1e-10)
    ref_nk, ref_s1, ref_s2 = _reference_stats(np.asarray(X, np.float64), w, resp, means)
    assert_rel(nk, ref_nk, 1e-10, "nk")
    assert_rel(s1, ref_s1, 1e-9, "s1")
    assert_rel(s2, np.diagonal(ref_s2, axis1=1, axis2=2), 1e-9, "s2")


# (d, k) of diagonal mixtures whose log-density table is one panel wider than the product
# tile (d = 5, k = 37) and several panels with k not a multiple of their width (d = 64,
# k = 37: over DIAG_WHOLE_TABLE_BYTES on every class)
DIAG_TABLE_SHAPES = [(5, 37), (64, 37)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", DIAG_TABLE_SHAPES, ids=lambda s: "d%d-k%d" % s)
def test_diag_kernels_with_many_components_match_reference(shape, dtype):
    """Log-densities and E-step statistics of a diagonal mixture with many components,
    against the closed form in float64 (one block and a partial one)."""
    from fastem.kernels._target import DIAG_WHOLE_TABLE_BYTES
    from fastem.kernels.gaussian import _diag_layout
    d, k = shape
    rng = np.random.default_rng(d * 100 + k)
    n = 2048 + 301
    means = rng.normal(scale=3.0, size=(k, d))
    var = rng.uniform(0.3, 3.0, size=(k, d))
    prec = 1.0 / np.sqrt(var)
    weights = rng.dirichlet(np.full(k, 3.0))
    X64 = means[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    X = X64.astype(dtype)
    w = rng.uniform(0.2, 3.0, size=n)
    coef, _ = _diag_layout(means, prec, means.mean(axis=0))
    whole = coef.size * 8 <= DIAG_WHOLE_TABLE_BYTES
    assert (coef.shape[0] == 1) == whole and (d == 5) == whole, coef.shape
    const = np.log(weights) + np.log(prec).sum(axis=1) - 0.5 * d * LOG_2PI
    Xr = X.astype(np.float64)
    wlp = const - 0.5 * ((Xr[:, None, :] - means) ** 2 / var).sum(axis=2)
    out = np.full((n, k), np.nan)
    gaussian_log_pdf_diag(X, means, prec, const, out)
    np.testing.assert_allclose(out, wlp, rtol=1e-10, atol=1e-8)
    _check_diag_estep(X, w, means, prec, const, wlp)


# -- the two ways of forming full-covariance statistics -----------------------------------------
# (d, k): (16, 16) and (6, 7) take the feature product (several sub-blocks, the last one
# partial; k not a multiple of the tile's width), (9, 2) and (128, 16) the per-component
# scatter products, (128, 16) with its 2,349 rows split into chunks smaller than a block
FEATURE_SHAPES = [(16, 16), (6, 7), (9, 2), (128, 16)]


def test_full_statistics_paths_are_both_exercised():
    """The shapes below must keep covering both ways of forming the statistics, and the
    split of row blocks into several chunks."""
    from fastem.kernels.gaussian import _full_estep_plan
    plans = [_full_estep_plan(2048 + 301, d, k, False) for d, k in FEATURE_SHAPES]
    assert [plan[0] > 0 for plan in plans] == [True, True, False, False]
    assert _full_estep_plan(2048 + 301, 16, 16, True)[0] == 0   # pooled (tied): one scatter
    rows = plans[0][0]
    assert rows < 2048 and (2048 + 301) % rows != 0            # sub-blocks, a partial last
    n_chunks, unit = plans[3][3], plans[3][4]
    assert unit < 2048 and n_chunks >= 4 and (2048 + 301) % unit != 0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", FEATURE_SHAPES, ids=lambda s: "d%d-k%d" % s)
def test_full_estep_statistics_paths_match_reference(shape, dtype):
    d, k = shape
    rng = np.random.default_rng(d * 100 + k)
    n = 2048 + 301
    means = rng.normal(scale=2.0, size=(k, d)) + 30.0
    covs = np.array([_random_spd(rng, d) / d + 0.3 * np.eye(d) for _ in range(k)])
    X64 = means[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    X = X64.astype(dtype)
    w = rng.uniform(0.2, 3.0, size=n)
    w[::41] = 0.0
    weights = rng.dirichlet(np.full(k, 2.0))
    prec_chol = np.linalg.cholesky(np.linalg.inv(covs))
    const = np.log(weights) + np.log(np.abs(np.linalg.det(prec_chol))) - 0.5 * d * LOG_2PI
    wlp = _scipy_weighted_log_prob(X, weights, means, covs)
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    nk, s1, s2 = np.full(k, np.nan), np.full((k, d), np.nan), np.full((k, d, d), np.nan)
    ll = gaussian_estep_full(X, w, means, prec_chol, const, means, nk, s1, s2)
    np.testing.assert_allclose(ll, w @ log_norm, rtol=1e-10)
    ref_nk, ref_s1, ref_s2 = _reference_stats(X, w, resp, means)
    assert_rel(nk, ref_nk, 1e-10, "nk")
    assert_rel(s1, ref_s1, 1e-9, "s1")
    assert_rel(s2, ref_s2, 1e-9, "s2")
    assert_rel(s2, s2.transpose(0, 2, 1), 1e-12, "s2 symmetric")


def test_diag_estep_split_into_chunks_matches_reference():
    """2,349 rows, d = 128, k = 128: the diagonal E-step cuts its rows into chunks smaller
    than a row block (several threads on a few thousand costly rows)."""
    from fastem.kernels.gaussian import _estep_diag_prepare
    rng = np.random.default_rng(128)
    n, d, k = 2048 + 301, 128, 128
    means = rng.normal(scale=2.0, size=(k, d)) + 10.0
    var = rng.uniform(0.5, 3.0, size=(k, d))
    X = means[rng.integers(k, size=n)] + rng.normal(size=(n, d)) * np.sqrt(var[0])
    w = rng.uniform(0.2, 3.0, size=n)
    weights = rng.dirichlet(np.full(k, 2.0))
    prec = 1.0 / np.sqrt(var)
    const = np.log(weights) + np.log(prec).sum(axis=1) - 0.5 * d * LOG_2PI
    nk, s1, s2 = np.full(k, np.nan), np.full((k, d), np.nan), np.full((k, d), np.nan)
    n_chunks, unit = _estep_diag_prepare.py_func(X, w, means, prec, const, means, nk, s1,
                                                 s2)[:2]
    assert unit < 2048 and n_chunks >= 4
    ll = gaussian_estep_diag(X, w, means, prec, const, means, nk, s1, s2)
    wlp = np.log(weights) - 0.5 * (((X[:, None, :] - means) ** 2 / var).sum(axis=2)
                                   + np.log(2 * np.pi * var).sum(axis=1))
    log_norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - log_norm[:, None])
    ref_nk, ref_s1, ref_s2 = _reference_stats(X, w, resp, means)
    np.testing.assert_allclose(ll, w @ log_norm, rtol=1e-10)
    assert_rel(nk, ref_nk, 1e-10, "nk")
    assert_rel(s1, ref_s1, 1e-9, "s1")
    assert_rel(s2, np.diagonal(ref_s2, axis1=1, axis2=2), 1e-9, "s2")


# -- weighted moments ---------------------------------------------------------------------------
MOMENT_MODES = ["per-component-full+diag", "per-component-diag-only", "pooled-full"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("mode", MOMENT_MODES)
def test_weighted_moments_matches_reference(problem, dtype, mode):
    X, w = problem["X"][dtype], problem["w"]
    rng = np.random.RandomState(5)
    resp = softmax(rng.normal(scale=3.0, size=(N_ROWS, K)), axis=1) * w[:, None]
    resp[10:20, 2] = 0.0
    if mode == "pooled-full":
        shift = np.ascontiguousarray(X[:1], dtype=np.float64) + 0.25
        s2_full, s2_diag = np.full((1, D, D), np.nan), np.full((0, D), np.nan)
    else:
        shift = problem["means"] - 1.5
        m = K if mode == "per-component-full+diag" else 0
        s2_full, s2_diag = np.full((m, D, D), np.nan), np.full((K, D), np.nan)
    nk, s1 = np.full(K, np.nan), np.full((K, D), np.nan)
    weighted_moments(X, resp, shift, nk, s1, s2_full, s2_diag)
    ref_nk, ref_s1, ref_s2 = ng.moments(X, resp, shift)
    assert_rel(nk, ref_nk, 1e-12, "nk")
    assert_rel(s1, ref_s1, 1e-10, "s1")
    if mode == "pooled-full":
        assert_rel(s2_full, ng.pooled_scatter(X, resp, shift[0])[None], 1e-10, "pooled s2")
    else:
        assert_rel(s2_diag, np.diagonal(ref_s2, axis1=1, axis2=2), 1e-10, "s2_diag")
        if mode == "per-component-full+diag":
            assert_rel(s2_full, ref_s2, 1e-10, "s2_full")


# -- every GMM kernel from a user's own parallel @njit function ----------------------------------
@numba.njit(parallel=True)
def _user_pipeline(X, w, means, prec_chol, const_full, prec_diag, const_diag, resp_in, shift):
    n, d = X.shape
    k = means.shape[0]
    # some parallel work of the user's own around the kernel calls
    scaled = np.empty(n)
    for i in prange(n):
        scaled[i] = 2.0 * w[i]
    lp_full = np.empty((n, k))
    gaussian_log_pdf_full(X, means, prec_chol, const_full, lp_full)
    lp_diag = np.empty((n, k))
    gaussian_log_pdf_diag(X, means, prec_diag, const_diag, lp_diag)
    resp = np.empty((n, k))
    log_norm = np.empty(n)
    responsibilities(lp_full, resp, log_norm)
    row = lp_diag[0].copy()
    lse0 = normalize_log_row(row)
    nk_f, s1_f, s2_f = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
    ll_f = gaussian_estep_full(X, scaled, means, prec_chol, const_full, means, nk_f, s1_f, s2_f)
    nk_d, s1_d, s2_d = np.empty(k), np.empty((k, d)), np.empty((k, d))
    ll_d = gaussian_estep_diag(X, w, means, prec_diag, const_diag, means, nk_d, s1_d, s2_d)
    nk_m, s1_m, s2_m, s2_md = np.empty(k), np.empty((k, d)), np.empty((k, d, d)), np.empty((k, d))
    weighted_moments(X, resp_in, shift, nk_m, s1_m, s2_m, s2_md)
    return (lp_full, lp_diag, resp, log_norm, row, lse0, nk_f, s1_f, s2_f, ll_f, nk_d, s1_d,
            s2_d, ll_d, nk_m, s1_m, s2_m, s2_md)


def test_gmm_kernels_from_user_parallel_njit(problem):
    X, w, means = problem["X"][np.float64], problem["w"], problem["means"]
    prec_chol, covs = _full_layout(problem, "upper")
    const_full = _full_const(problem, prec_chol)
    prec_diag, var = _diag_layout(problem, "diag")
    const_diag = _diag_const(problem, prec_diag)
    resp_in = softmax(np.random.RandomState(2).normal(size=(N_ROWS, K)), axis=1) * w[:, None]
    shift = means + 0.5
    (lp_full, lp_diag, resp, log_norm, row, lse0, nk_f, s1_f, s2_f, ll_f, nk_d, s1_d, s2_d,
     ll_d, nk_m, s1_m, s2_m, s2_md) = _user_pipeline(X, w, means, prec_chol, const_full,
                                                     prec_diag, const_diag, resp_in, shift)
    weights = problem["weights"]
    ref_full = _scipy_weighted_log_prob(X, weights, means, covs)
    ref_diag = _scipy_weighted_log_prob(X, weights, means, np.array([np.diag(v) for v in var]))
    assert_rel(lp_full, ref_full, 1e-10, "log pdf full")
    assert_rel(lp_diag, ref_diag, 1e-10, "log pdf diag")
    ref_norm = logsumexp(ref_full, axis=1)
    np.testing.assert_allclose(log_norm, ref_norm, rtol=1e-10)
    ref_resp = np.exp(ref_full - ref_norm[:, None])
    np.testing.assert_allclose(resp, ref_resp, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(lse0, logsumexp(ref_diag[0]), rtol=1e-10)
    np.testing.assert_allclose(row, softmax(ref_diag[0]), rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(ll_f, 2.0 * w @ ref_norm, rtol=1e-10)
    ref = ng.moments(X, ref_resp * 2.0 * w[:, None], means)
    assert_rel(nk_f, ref[0], 1e-10, "nk full")
    assert_rel(s1_f, ref[1], 1e-9, "s1 full")
    assert_rel(s2_f, ref[2], 1e-9, "s2 full")
    resp_diag = softmax(ref_diag, axis=1)
    np.testing.assert_allclose(ll_d, w @ logsumexp(ref_diag, axis=1), rtol=1e-10)
    ref = ng.moments(X, resp_diag * w[:, None], means)
    assert_rel(nk_d, ref[0], 1e-10, "nk diag")
    assert_rel(s1_d, ref[1], 1e-9, "s1 diag")
    assert_rel(s2_d, np.diagonal(ref[2], axis1=1, axis2=2), 1e-9, "s2 diag")
    ref = ng.moments(X, resp_in, shift)
    assert_rel(nk_m, ref[0], 1e-12, "nk moments")
    assert_rel(s1_m, ref[1], 1e-10, "s1 moments")
    assert_rel(s2_m, ref[2], 1e-10, "s2 moments")
    assert_rel(s2_md, np.diagonal(ref[2], axis1=1, axis2=2), 1e-10, "s2 diag moments")


# -- precision Cholesky factors (serial M-step linear algebra) ----------------------------------
@pytest.mark.parametrize("d", [1, 3, 17, 70])   # 70: inner products of 32+ terms as SIMD dots
def test_precision_cholesky_factors_matches_numpy(d):
    from numba import njit

    from fastem.kernels import precision_cholesky_factors

    rng = np.random.default_rng(d)
    A = rng.normal(size=(4, d, d))
    covs = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d)
    reference = np.array([np.linalg.inv(np.linalg.cholesky(c)).T for c in covs])
    out = np.empty_like(covs)
    assert precision_cholesky_factors(covs, out) == -1
    np.testing.assert_allclose(out, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out @ out.transpose(0, 2, 1), np.linalg.inv(covs), rtol=1e-8)

    @njit
    def user(c, o):
        return precision_cholesky_factors(c, o)

    out2 = np.empty_like(covs)
    assert user(covs, out2) == -1
    np.testing.assert_array_equal(out2, out)
    # a rank-deficient matrix is reported by its index, not factored into inf/NaN
    bad = covs.copy()
    v = rng.normal(size=d)
    bad[2] = np.outer(v, v)
    if d > 1:
        assert precision_cholesky_factors(bad, np.empty_like(bad)) == 2
    bad[1, 0, 0] = -1.0
    assert precision_cholesky_factors(bad, np.empty_like(bad)) == 1
    if d > 40:   # rank 40: the first lost pivot is the 41st, past the SIMD threshold
        B = rng.normal(size=(d, 40))
        bad = covs.copy()
        bad[3] = B @ B.T
        assert precision_cholesky_factors(bad, np.empty_like(bad)) == 3


# -- the M-step's covariances from moments ------------------------------------------------------
@pytest.mark.parametrize("d", [1, 5, 32, 33, 70])   # one tile, exactly one, partial tiles
def test_full_covariances_matches_numpy(d):
    from numba import njit

    from fastem.kernels import full_covariances

    rng = np.random.default_rng(100 + d)
    k, reg = 3, 1e-3
    s2 = rng.normal(size=(k, d, d))                      # not symmetric: the kernel symmetrises
    nk = rng.uniform(0.5, 5.0, size=k)
    delta = rng.normal(size=(k, d))
    a = s2 / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
    reference = (a + a.transpose(0, 2, 1)) / 2 + reg * np.eye(d)
    out = np.full_like(s2, np.nan)
    assert full_covariances(s2, nk, delta, reg, out)
    np.testing.assert_allclose(out, reference, rtol=1e-13, atol=1e-13)
    assert np.array_equal(out, out.transpose(0, 2, 1))   # exactly symmetric

    @njit
    def user(s2, nk, delta, reg, out):
        return full_covariances(s2, nk, delta, reg, out)

    out2 = np.empty_like(s2)
    assert user(s2, nk, delta, reg, out2)
    np.testing.assert_array_equal(out2, out)
    for bad in (np.nan, np.inf, -np.inf):                # any non-finite entry is reported
        broken = s2.copy()
        broken[k - 1, d - 1, 0] = bad
        assert not full_covariances(broken, nk, delta, reg, out)


def test_wide_diag_log_pdf_in_sub_blocks_matches_numpy():
    """d = 300: the log-density takes each block in several sub-blocks of rows
    (``gaussian._diag_sub_block_rows``), the last one partial."""
    from fastem.kernels.gaussian import _diag_sub_block_rows
    rng = np.random.default_rng(300)
    n, d, k = 2048 + 301, 300, 3
    assert _diag_sub_block_rows(2 * d + 1) < 2048
    means = rng.normal(scale=2.0, size=(k, d))
    var = rng.uniform(0.5, 3.0, size=(k, d))
    X = means[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    prec = 1.0 / np.sqrt(var)
    const = np.log(prec).sum(axis=1) - 0.5 * d * LOG_2PI
    out = np.full((n, k), np.nan)
    gaussian_log_pdf_diag(X, means, prec, const, out)
    ref = const - 0.5 * ((X[:, None, :] - means) ** 2 / var).sum(axis=2)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-8)
