"""GaussianMixture against scikit-learn (same initial parameters), the weighted NumPy EM in
naive_gaussian.py, hypothesis properties, estimator behaviour and scikit-learn compatibility.

scikit-learn runs with one BLAS thread (threadpoolctl) so its fits stay fast on a busy machine.
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import check_estimator
from threadpoolctl import threadpool_limits

from fastem import GaussianMixture

from . import naive_gaussian as ng

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
INIT_PARAMS = ["kmeans", "k-means++", "random", "random_from_data"]
HYPOTHESIS = settings(max_examples=15, deadline=None, derandomize=True)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def assert_rel(actual, desired, rtol, what=""):
    """max |actual - desired| <= rtol * max |desired| (a scale-aware relative check)."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (what, actual.shape, desired.shape)
    assert np.isfinite(actual).all(), what
    scale = max(np.abs(desired).max(), 1e-300)
    err = np.abs(actual - desired).max()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:.1g} * {scale:.3g}"


def anisotropic_blobs(n_per=150, d=3, k=3, seed=0):
    rng = np.random.RandomState(seed)
    parts = [rng.normal(size=(n_per, d)) @ rng.normal(size=(d, d)) + 6 * rng.normal(size=d)
             for _ in range(k)]
    return np.vstack(parts)


DATASETS = {
    "iris": lambda: load_iris().data,
    "digits": lambda: load_digits().data,
    "blobs": anisotropic_blobs,
}
_cache = {}


def dataset(name):
    if name not in _cache:
        _cache[name] = np.ascontiguousarray(DATASETS[name](), dtype=np.float64)
    return _cache[name]


def sklearn_init(X, k, covariance_type, reg_covar=1e-6, seed=0):
    """weights/means/precisions from one scikit-learn EM step (valid, non-trivial parameters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = SkGaussianMixture(k, covariance_type=covariance_type, reg_covar=reg_covar,
                              max_iter=1, init_params="random_from_data",
                              random_state=seed).fit(X)
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)


def random_init(X, k, covariance_type, seed):
    """Random but valid initial parameters (rows of X as means, scaled data variance)."""
    rng = np.random.RandomState(seed)
    n, d = X.shape
    weights = rng.dirichlet(np.full(k, 5.0))
    means = X[rng.choice(n, size=k, replace=False)] + 0.1 * rng.normal(size=(k, d))
    var = X.var(axis=0).mean() * rng.uniform(0.5, 2.0, size=k)
    prec = {"full": np.array([np.eye(d) / v for v in var]), "tied": np.eye(d) / var[0],
            "diag": 1.0 / (var[:, None] * rng.uniform(0.5, 2.0, size=(k, d))),
            "spherical": 1.0 / var}[covariance_type]
    return dict(weights_init=weights, means_init=means, precisions_init=prec)


def fit_quietly(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, **kw)


def covariance_condition(gm):
    """Largest condition number of the fitted covariances (1 for diag/spherical)."""
    if gm.covariance_type in ("full", "tied"):
        return float(np.max(np.linalg.cond(gm.covariances_)))
    return 1.0


def assert_same_params(ours, ref, rtol, what="", precisions_by_condition=False):
    """All fitted parameters within ``rtol``; with ``precisions_by_condition`` the precision
    tolerance is scaled by the covariance condition number (a component that collapsed onto
    a few points has covariance ~ reg_covar in some directions, whose inverse amplifies the
    last-digit differences of a different summation order)."""
    for name in ("weights_", "means_", "covariances_"):
        assert_rel(getattr(ours, name), getattr(ref, name), rtol, what + name)
    prec_rtol = rtol * covariance_condition(ref) if precisions_by_condition else rtol
    for name in ("precisions_", "precisions_cholesky_"):
        assert_rel(getattr(ours, name), getattr(ref, name), prec_rtol, what + name)


# -- 2. against scikit-learn --------------------------------------------------------------------
SKLEARN_CASES = (
    [("iris", ct, 3, 1e-6) for ct in COVARIANCE_TYPES]
    + [("blobs", ct, 3, 1e-6) for ct in COVARIANCE_TYPES]
    # digits has constant (all-zero) pixels: every type needs a visible reg_covar
    + [("digits", ct, 4, 1e-2) for ct in COVARIANCE_TYPES]
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,covariance_type,k,reg_covar", SKLEARN_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in SKLEARN_CASES])
def test_matches_sklearn_fixed_iterations(name, covariance_type, k, reg_covar, dtype):
    X64 = dataset(name)
    X = X64.astype(dtype)
    init = sklearn_init(X64, k, covariance_type, reg_covar)
    kw = dict(covariance_type=covariance_type, reg_covar=reg_covar, tol=0.0, max_iter=15, **init)
    ours = fit_quietly(GaussianMixture(k, **kw), X)
    ref = fit_quietly(SkGaussianMixture(k, **kw), X)
    assert ours.n_iter_ == ref.n_iter_ == 15
    assert ours.converged_ is False and ref.converged_ is False
    assert len(ours.lower_bounds_) == ours.n_iter_
    for p in (ours.weights_, ours.means_, ours.covariances_, ours.precisions_):
        assert p.dtype == np.float64
    if dtype == np.float64:
        rtol, proba_atol = 1e-10, 1e-8
        exact = ref
    else:
        # scikit-learn keeps parts of its float32 computation in float32: loose comparison...
        rtol, proba_atol = 1e-4, 1e-3
        assert_rel(ours.lower_bounds_, ref.lower_bounds_, 1e-5, "lower_bounds_ (sklearn f32)")
        # ... and a tight one with scikit-learn in float64 on the same float32 values, since
        # fastem forms x - mu and accumulates in float64 without copying X
        exact = fit_quietly(SkGaussianMixture(k, **kw), X.astype(np.float64))
        assert_same_params(ours, exact, 1e-10, "vs sklearn f64 of f32 data: ")
        assert_rel(ours.lower_bounds_, exact.lower_bounds_, 1e-10, "lower_bounds_")
    assert_rel(ours.lower_bound_, ref.lower_bound_, min(rtol, 1e-5), "lower_bound_")
    assert_rel(ours.lower_bounds_, exact.lower_bounds_, rtol, "lower_bounds_")
    assert_same_params(ours, ref, rtol)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0,
                               atol=proba_atol)
    assert_rel(ours.score_samples(X), ref.score_samples(X), rtol, "score_samples")
    assert_rel(ours.score(X), ref.score(X), rtol, "score")
    assert_rel(ours.bic(X), ref.bic(X), rtol, "bic")
    assert_rel(ours.aic(X), ref.aic(X), rtol, "aic")
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_sklearn_with_convergence(covariance_type):
    X = dataset("blobs")
    init = sklearn_init(X, 3, covariance_type, seed=3)
    for tol, max_iter in [(1e-3, 100), (1e-6, 200), (0.0, 3)]:
        kw = dict(covariance_type=covariance_type, tol=tol, max_iter=max_iter, **init)
        ours = fit_quietly(GaussianMixture(3, **kw), X)
        ref = fit_quietly(SkGaussianMixture(3, **kw), X)
        assert ours.n_iter_ == ref.n_iter_, (tol, max_iter)
        assert ours.converged_ == ref.converged_, (tol, max_iter)
        assert ours.converged_ is (tol > 0)
        np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-10)
        assert_same_params(ours, ref, 1e-8)


def test_default_kmeans_init_reaches_sklearn_optimum():
    """Not the same k-means, but on well-separated blobs both find the same optimum."""
    X = dataset("blobs")
    ours = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    ref = SkGaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    order_o, order_r = np.argsort(ours.means_[:, 0]), np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-6)
    np.testing.assert_allclose(ours.means_[order_o], ref.means_[order_r], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.weights_[order_o], ref.weights_[order_r], atol=1e-4)


# -- 3. sample_weight ----------------------------------------------------------------------------
def _integer_weights(n, seed):
    rng = np.random.RandomState(seed)
    w = rng.randint(0, 4, size=n)
    w[:3] = [1, 2, 3]
    return w


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type):
    X = anisotropic_blobs(n_per=40, seed=1)
    w = _integer_weights(len(X), seed=2)
    init = random_init(X, 3, covariance_type, seed=4)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=25, **init)
    weighted = fit_quietly(GaussianMixture(3, **kw), X, sample_weight=w)
    repeated = fit_quietly(GaussianMixture(3, **kw), np.repeat(X, w, axis=0))
    assert_rel(weighted.lower_bounds_, repeated.lower_bounds_, 1e-10, "lower_bounds_")
    assert_same_params(weighted, repeated, 1e-10)
    # and float weights scale-free: multiplying all weights by a constant changes nothing
    scaled = fit_quietly(GaussianMixture(3, **kw), X, sample_weight=w * 0.37)
    assert_same_params(scaled, weighted, 1e-10)
    assert_rel(scaled.lower_bounds_, weighted.lower_bounds_, 1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_weights_apply_to_kmeans_initialisation(covariance_type):
    """init_params='kmeans' (weighted k-means++ and Lloyd): weighted fit == repeated rows."""
    X = anisotropic_blobs(n_per=30, seed=5)
    w = _integer_weights(len(X), seed=6)
    kw = dict(covariance_type=covariance_type, init_params="kmeans", max_iter=3, tol=0.0)
    for seed in range(3):
        weighted = fit_quietly(GaussianMixture(3, random_state=seed, **kw), X, sample_weight=w)
        repeated = fit_quietly(GaussianMixture(3, random_state=seed, **kw),
                               np.repeat(X, w, axis=0))
        assert_rel(weighted.lower_bounds_, repeated.lower_bounds_, 1e-9, "lower_bounds_")
        assert_same_params(weighted, repeated, 1e-9)
    # the weights really reach the initialisation: unweighted k-means starts elsewhere
    unweighted = fit_quietly(GaussianMixture(3, random_state=0, **kw), X)
    assert abs(unweighted.lower_bounds_[0] - weighted.lower_bounds_[0]) > 1e-6


# -- 4. the independent weighted NumPy EM ---------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_trajectory_matches_numpy_em(covariance_type, dtype):
    X = anisotropic_blobs(n_per=60, d=4, seed=7).astype(dtype)
    rng = np.random.RandomState(8)
    w = rng.uniform(0.1, 3.0, size=len(X))
    w[::11] = 0.0
    init = random_init(X.astype(np.float64), 3, covariance_type, seed=9)
    n_iter, reg = 20, 1e-4
    ours = fit_quietly(GaussianMixture(3, covariance_type=covariance_type, reg_covar=reg,
                                       tol=0.0, max_iter=n_iter, **init), X, sample_weight=w)
    bounds, (weights, means, cov) = ng.em(X, w, init["weights_init"], init["means_init"],
                                          init["precisions_init"], covariance_type, reg, n_iter)
    assert_rel(ours.lower_bounds_, bounds, 1e-11, "lower_bounds_")
    assert ours.lower_bound_ == ours.lower_bounds_[-1]
    assert_rel(ours.weights_, weights, 1e-10, "weights_")
    assert_rel(ours.means_, means, 1e-10, "means_")
    assert_rel(ours.covariances_, cov, 1e-10, "covariances_")
    assert_rel(ours.precisions_, ng.precisions_from_covariances(cov, covariance_type), 1e-9,
               "precisions_")
    # the fitted model's densities and responsibilities are the reference's
    resp, log_norm = ng.e_step(X, weights, means, cov, covariance_type)
    assert_rel(ours.score_samples(X), log_norm, 1e-10, "score_samples")
    np.testing.assert_allclose(ours.predict_proba(X), resp, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.score(X, sample_weight=w), w @ log_norm / w.sum(),
                               rtol=1e-10)


# -- 5. hypothesis properties --------------------------------------------------------------------
def _random_problem(seed, n, d, k):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    X = centres[rng.randint(k, size=n)] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, d)
    return X


problems = st.tuples(st.integers(0, 2**31 - 1), st.integers(30, 90), st.integers(1, 3),
                     st.integers(1, 3))


@HYPOTHESIS
@given(problem=problems, covariance_type=st.sampled_from(COVARIANCE_TYPES),
       init_params=st.sampled_from(INIT_PARAMS))
def test_lower_bound_never_decreases(problem, covariance_type, init_params):
    seed, n, d, k = problem
    X = _random_problem(seed, n, d, k)
    gm = fit_quietly(GaussianMixture(k, covariance_type=covariance_type, init_params=init_params,
                                     tol=0.0, max_iter=40, random_state=seed), X)
    lb = np.asarray(gm.lower_bounds_)
    assert len(lb) == gm.n_iter_ == 40 and np.isfinite(lb).all()
    drops = lb[:-1] - lb[1:]
    assert (drops <= 1e-9 * np.maximum(np.abs(lb[1:]), 1.0)).all(), drops.max()


@HYPOTHESIS
@given(problem=problems, covariance_type=st.sampled_from(COVARIANCE_TYPES),
       perm_seed=st.integers(0, 1000))
def test_row_order_does_not_matter(problem, covariance_type, perm_seed):
    seed, n, d, k = problem
    X = _random_problem(seed, n, d, k)
    init = random_init(X, k, covariance_type, seed)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, **init)
    perm = np.random.RandomState(perm_seed).permutation(n)
    a = fit_quietly(GaussianMixture(k, **kw), X)
    b = fit_quietly(GaussianMixture(k, **kw), X[perm])
    assert_rel(b.lower_bounds_, a.lower_bounds_, 1e-9, "lower_bounds_")
    assert_same_params(b, a, 1e-9, precisions_by_condition=True)


@HYPOTHESIS
@given(problem=problems, covariance_type=st.sampled_from(COVARIANCE_TYPES),
       weight_seed=st.integers(0, 1000))
def test_integer_weights_are_repetitions(problem, covariance_type, weight_seed):
    seed, n, d, k = problem
    X = _random_problem(seed, n, d, k)
    w = np.random.RandomState(weight_seed).randint(1, 4, size=n)
    init = random_init(X, k, covariance_type, seed)
    kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, **init)
    a = fit_quietly(GaussianMixture(k, **kw), X, sample_weight=w)
    b = fit_quietly(GaussianMixture(k, **kw), np.repeat(X, w, axis=0))
    assert_rel(a.lower_bounds_, b.lower_bounds_, 1e-9, "lower_bounds_")
    assert_same_params(a, b, 1e-9, precisions_by_condition=True)


# -- 6. estimator behaviour ----------------------------------------------------------------------
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_every_init_method_gives_finite_parameters(init_params):
    X = anisotropic_blobs(n_per=50, seed=10)
    for ct in COVARIANCE_TYPES:
        gm = fit_quietly(GaussianMixture(3, covariance_type=ct, init_params=init_params,
                                         random_state=0), X)
        for name in ("weights_", "means_", "covariances_", "precisions_",
                     "precisions_cholesky_"):
            assert np.isfinite(getattr(gm, name)).all(), (ct, name)
        np.testing.assert_allclose(gm.weights_.sum(), 1.0)
        assert np.isfinite(gm.lower_bound_) and 1 <= gm.n_iter_ <= 100
        assert len(gm.lower_bounds_) == gm.n_iter_
        assert gm.lower_bound_ == gm.lower_bounds_[-1]
        # reproducible with the same random_state
        again = fit_quietly(GaussianMixture(3, covariance_type=ct, init_params=init_params,
                                            random_state=0), X)
        np.testing.assert_array_equal(again.means_, gm.means_)


def test_random_init_matches_sklearn_initialisation():
    """'random' draws scikit-learn's responsibilities from the seed: the same whole fit."""
    X = dataset("iris")
    for ct in COVARIANCE_TYPES:
        kw = dict(covariance_type=ct, init_params="random", random_state=3, max_iter=5, tol=0.0)
        ours = fit_quietly(GaussianMixture(3, **kw), X)
        ref = fit_quietly(SkGaussianMixture(3, **kw), X)
        assert_rel(ours.lower_bounds_, ref.lower_bounds_, 1e-10, ct)
        assert_same_params(ours, ref, 1e-9, f"{ct} ")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_random_from_data_init_matches_numpy_em(covariance_type):
    """'random_from_data': k rows drawn like scikit-learn, one-hot responsibilities, M-step.

    (scikit-learn itself differs here: it leaves its initial weights summing to k/n instead
    of 1, and its tied covariance shortcut X^T X - sum N_j mu_j mu_j^T assumes that every row's
    responsibilities sum to 1, which is not the case for this initialisation.)
    """
    X = dataset("iris")
    reg = 1e-3
    ours = fit_quietly(GaussianMixture(3, covariance_type=covariance_type, reg_covar=reg,
                                       init_params="random_from_data", random_state=3,
                                       max_iter=6, tol=0.0), X)
    rows = np.random.RandomState(3).choice(len(X), size=3, replace=False)
    resp = np.zeros((len(X), 3))
    resp[rows, np.arange(3)] = 1.0
    w = np.ones(len(X))
    weights, means, cov = ng.m_step(X, w, resp, covariance_type, reg)
    bounds, (weights, means, cov) = ng.em(
        X, w, weights, means, ng.precisions_from_covariances(cov, covariance_type),
        covariance_type, reg, 6)
    assert_rel(ours.lower_bounds_, bounds, 1e-9, "lower_bounds_")
    assert_rel(ours.means_, means, 1e-9, "means_")
    assert_rel(ours.covariances_, cov, 1e-9, "covariances_")
    if covariance_type != "tied":
        ref = fit_quietly(SkGaussianMixture(3, covariance_type=covariance_type, reg_covar=reg,
                                            init_params="random_from_data", random_state=3,
                                            max_iter=6, tol=0.0), X)
        assert_rel(ours.lower_bounds_[1:], ref.lower_bounds_[1:], 1e-9, "sklearn")
        assert_same_params(ours, ref, 1e-9)


def test_warm_start_continues_from_previous_parameters():
    X = dataset("iris")
    init = sklearn_init(X, 3, "full")
    cold = fit_quietly(GaussianMixture(3, tol=0.0, max_iter=6, **init), X)
    warm = fit_quietly(GaussianMixture(3, tol=0.0, max_iter=5, warm_start=True, **init), X)
    first_bound = warm.lower_bound_
    warm.set_params(max_iter=1)
    fit_quietly(warm, X)
    assert warm.n_iter_ == 1 and len(warm.lower_bounds_) == 1
    # the one new iteration starts where the previous fit stopped
    assert warm.lower_bounds_[0] >= first_bound
    np.testing.assert_allclose(warm.lower_bounds_[0], cold.lower_bounds_[5], rtol=1e-12)
    assert_same_params(warm, cold, 1e-12)
    # without warm_start the second fit starts again from the initial parameters
    fresh = fit_quietly(GaussianMixture(3, tol=0.0, max_iter=1, **init), X)
    np.testing.assert_allclose(fresh.lower_bounds_[0], cold.lower_bounds_[0], rtol=1e-12)


def test_warm_start_convergence_like_sklearn():
    """A warm fit measures its first change against the previous lower bound (sklearn's rule)."""
    X = dataset("iris")
    init = sklearn_init(X, 3, "diag")
    kw = dict(covariance_type="diag", tol=1e-3, max_iter=200, warm_start=True, **init)
    ours = fit_quietly(GaussianMixture(3, **kw), X)
    ref = fit_quietly(SkGaussianMixture(3, **kw), X)
    assert ours.converged_ and ref.converged_
    for est in (ours, ref):
        est.set_params(max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours.fit(X)
        ref.fit(X)
    assert ours.converged_ == ref.converged_ is True
    assert ours.n_iter_ == ref.n_iter_ == 1
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-10)


def test_convergence_warning_when_max_iter_is_hit():
    X = dataset("iris")
    with pytest.warns(ConvergenceWarning):
        gm = GaussianMixture(3, max_iter=2, random_state=0).fit(X)
    assert not gm.converged_ and gm.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gm = GaussianMixture(3, max_iter=500, random_state=0).fit(X)
    assert gm.converged_ and gm.n_iter_ < 500


def test_verbose_output(capsys):
    X = dataset("iris")
    gm = fit_quietly(GaussianMixture(2, verbose=2, verbose_interval=1, random_state=0,
                                     n_init=2, max_iter=20), X)
    out = capsys.readouterr().out
    iter_lines = [line for line in out.splitlines() if re.search(r"\biter\b", line)]
    init_lines = [line for line in out.splitlines() if "Initialization" in line]
    assert len(init_lines) == 2
    assert len(iter_lines) >= gm.n_iter_ and len(iter_lines) >= 2
    bounds = [float(m.group(1)) for m in
              (re.search(r"lower bound\s+(\S+)", line) for line in iter_lines) if m]
    assert len(bounds) == len(iter_lines)
    assert any(np.isclose(b, gm.lower_bound_, rtol=1e-6) for b in bounds)
    fit_quietly(GaussianMixture(2, verbose=0, random_state=0), X)
    assert capsys.readouterr().out == ""


def test_sample():
    X = anisotropic_blobs(n_per=100, seed=11)
    for ct in COVARIANCE_TYPES:
        gm = fit_quietly(GaussianMixture(3, covariance_type=ct, random_state=0), X)
        n = 30000
        S, labels = gm.sample(n)
        assert S.shape == (n, 3) and labels.shape == (n,)
        assert set(np.unique(labels)) <= {0, 1, 2}
        counts = np.bincount(labels, minlength=3)
        np.testing.assert_allclose(counts / n, gm.weights_, atol=0.015)
        for j in range(3):
            sj = S[labels == j]
            cov = ng.full_covariances(gm.covariances_, ct, 3, 3)[j]
            se = np.sqrt(np.diag(cov) / len(sj))
            assert (np.abs(sj.mean(axis=0) - gm.means_[j]) < 5 * se).all(), (ct, j)
            np.testing.assert_allclose(np.cov(sj.T), cov, rtol=0.1, atol=0.1 * np.abs(cov).max())
        S1, l1 = gm.sample(1)
        assert S1.shape == (1, 3) and l1.shape == (1,)
    with pytest.raises((ValueError, TypeError)):
        gm.sample(0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_aic_parameter_count(covariance_type):
    X = anisotropic_blobs(n_per=30, d=4, seed=12)
    n, d, k = X.shape[0], X.shape[1], 3
    gm = fit_quietly(GaussianMixture(k, covariance_type=covariance_type, random_state=0), X)
    p = ng.n_parameters(k, d, covariance_type)
    loglik = gm.score(X) * n
    np.testing.assert_allclose(gm.score(X), ng.logsumexp_rows(
        ng.weighted_log_prob(X, gm.weights_, gm.means_, gm.covariances_, covariance_type)).mean(),
        rtol=1e-10)
    np.testing.assert_allclose(gm.bic(X), -2 * loglik + p * np.log(n), rtol=1e-12)
    np.testing.assert_allclose(gm.aic(X), -2 * loglik + 2 * p, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_singular_covariance_raises(covariance_type):
    # two tight groups of exactly duplicated points: their covariances are exactly zero
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 20, axis=0)
    with pytest.raises(ValueError, match="reg_covar"):
        fit_quietly(GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0,
                                    random_state=0), X)
    # with the default reg_covar it fits, with finite parameters
    gm = fit_quietly(GaussianMixture(2, covariance_type=covariance_type, random_state=0), X)
    assert np.isfinite(gm.covariances_).all() and np.isfinite(gm.precisions_).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_cholesky_names_the_first_singular_component(threads, monkeypatch):
    """The M-step splits the components between threads when k d^3 is large: factors equal
    NumPy's, and the error names the first singular component whichever thread found it."""
    from fastem.kernels import _jit
    from fastem.kernels._target import PARALLEL_MIN_CHOLESKY_FLOPS
    from fastem.models.gaussian import precision_cholesky

    monkeypatch.setattr(_jit, "n_threads", lambda: threads)
    rng = np.random.default_rng(5)
    k, d = 6, 64
    assert k * d ** 3 >= PARALLEL_MIN_CHOLESKY_FLOPS
    A = rng.standard_normal((k, d, 2 * d))
    covs = A @ A.transpose(0, 2, 1) / (2 * d)
    factors = precision_cholesky(covs, "full")
    for c, u in zip(covs, factors):   # U = (L^-1)^T with L L^T = C
        np.testing.assert_allclose(u, np.linalg.inv(np.linalg.cholesky(c)).T, rtol=1e-9,
                                   atol=1e-12)
    for bad in ([5], [4, 5], [1, 4], [0, 5]):
        broken = covs.copy()
        broken[bad] = 0.0
        with pytest.raises(ValueError, match=f"component {bad[0]} is singular"):
            precision_cholesky(broken, "full")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_near_degenerate_data_never_gives_nan(covariance_type):
    rng = np.random.RandomState(13)
    X = np.vstack([rng.normal(size=(40, 3)), np.repeat([[3.0, 3.0, 3.0]], 6, axis=0),
                   [[3.0, 3.0, 3.0 + 1e-12]]])
    for seed in range(4):
        try:
            gm = fit_quietly(GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0,
                                             random_state=seed, init_params="random"), X)
        except ValueError as exc:
            assert "reg_covar" in str(exc)
            continue
        for name in ("weights_", "means_", "covariances_", "precisions_"):
            assert not np.isnan(getattr(gm, name)).any(), name
        assert not np.isnan(gm.lower_bounds_).any()


def _bad_params(X):
    d = X.shape[1]
    good_prec = {"full": np.array([np.eye(d)] * 2), "tied": np.eye(d),
                 "diag": np.ones((2, d)), "spherical": np.ones(2)}
    not_pd = np.array([np.eye(d), -np.eye(d)])
    return [
        dict(covariance_type="foo"),
        dict(init_params="foo"),
        dict(reg_covar=-1.0),
        dict(tol=-1.0),
        dict(max_iter=0),
        dict(n_init=0),
        dict(n_components=0),
        dict(means_init=np.zeros((3, d))),
        dict(means_init=np.zeros((2, d + 1))),
        dict(weights_init=[0.5, 0.6]),
        dict(weights_init=[0.2, 0.2, 0.6]),
        dict(weights_init=[1.5, -0.5]),
        dict(covariance_type="full", precisions_init=good_prec["diag"]),
        dict(covariance_type="tied", precisions_init=good_prec["full"]),
        dict(covariance_type="diag", precisions_init=good_prec["spherical"]),
        dict(covariance_type="spherical", precisions_init=good_prec["tied"]),
        dict(covariance_type="full", precisions_init=not_pd),
        dict(covariance_type="full", precisions_init=np.array([[[1.0, 2.0], [0.0, 1.0]]] * 2)),
        dict(covariance_type="tied", precisions_init=-np.eye(d)),
        dict(covariance_type="diag", precisions_init=-np.ones((2, d))),
        dict(covariance_type="spherical", precisions_init=np.array([1.0, 0.0])),
    ]


def test_bad_parameters_raise_in_fit():
    X = anisotropic_blobs(n_per=10, d=2, seed=14)
    for params in _bad_params(X):
        gm = GaussianMixture(**{"n_components": 2, **params})
        with pytest.raises((ValueError, TypeError)):
            gm.fit(X)
        assert not hasattr(gm, "weights_"), params
    with pytest.raises(ValueError):
        GaussianMixture(50).fit(X[:10])                 # more components than samples


def test_valid_user_init_is_used_as_given():
    X = anisotropic_blobs(n_per=10, d=2, seed=14)
    for ct in COVARIANCE_TYPES:
        init = random_init(X, 2, ct, seed=15)
        gm = fit_quietly(GaussianMixture(2, covariance_type=ct, max_iter=1, **init), X)
        bounds, _ = ng.em(X, np.ones(len(X)), init["weights_init"], init["means_init"],
                          init["precisions_init"], ct, 1e-6, 1)
        np.testing.assert_allclose(gm.lower_bounds_[0], bounds[0], rtol=1e-12)


def test_not_fitted():
    gm = GaussianMixture(2)
    X = anisotropic_blobs(n_per=10, d=2, seed=16)
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(NotFittedError):
            getattr(gm, method)(X)
    with pytest.raises(NotFittedError):
        gm.sample(3)


def test_float32_read_only_input_is_not_copied(monkeypatch):
    import fastem.models.gaussian as model_module

    X = np.ascontiguousarray(anisotropic_blobs(n_per=40, seed=17), dtype=np.float32)
    X.flags.writeable = False
    seen = []
    real = model_module.gaussian_estep_diag

    def spy(Xk, *args):
        seen.append(Xk)
        return real(Xk, *args)

    monkeypatch.setattr(model_module, "gaussian_estep_diag", spy)
    init = sklearn_init(X.astype(np.float64), 3, "diag")
    gm = fit_quietly(GaussianMixture(3, covariance_type="diag", tol=0.0, max_iter=4, **init), X)
    assert len(seen) == 4
    for Xk in seen:
        assert Xk.dtype == np.float32 and np.shares_memory(Xk, X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == np.float64
    ref = fit_quietly(GaussianMixture(3, covariance_type="diag", tol=0.0, max_iter=4, **init),
                      X.astype(np.float64))
    assert_same_params(gm, ref, 1e-12)
    assert gm.predict_proba(X).dtype == np.float64
    assert not X.flags.writeable


def test_fit_predict_and_predict_agree():
    X = dataset("iris")
    gm = GaussianMixture(3, random_state=0, max_iter=3)
    with pytest.warns(ConvergenceWarning):
        labels = gm.fit_predict(X)
    np.testing.assert_array_equal(labels, gm.predict(X))
    np.testing.assert_array_equal(labels, gm.predict_proba(X).argmax(axis=1))
    with pytest.raises(ValueError):
        gm.predict(X[:, :3])


def test_n_init_keeps_the_best_restart():
    X = anisotropic_blobs(n_per=40, seed=18)
    kw = dict(init_params="random_from_data", max_iter=5, tol=0.0)
    rng = np.random.RandomState(0)     # one stream: restart i continues where i - 1 stopped
    single = [fit_quietly(GaussianMixture(3, random_state=rng, **kw), X) for _ in range(3)]
    best = fit_quietly(GaussianMixture(3, n_init=3, random_state=0, **kw), X)
    bounds = [s.lower_bound_ for s in single]
    assert len(set(bounds)) > 1                          # the restarts differ
    winner = single[int(np.argmax(bounds))]
    assert best.lower_bound_ == max(bounds)
    assert_same_params(best, winner, 0.0)
    assert best.lower_bounds_ == winner.lower_bounds_


# -- 7. scikit-learn compatibility ---------------------------------------------------------------
def test_clone_get_set_params():
    gm = GaussianMixture(3, covariance_type="diag", reg_covar=1e-3, random_state=7)
    params = gm.get_params()
    assert params["n_components"] == 3 and params["covariance_type"] == "diag"
    assert set(params) == {"n_components", "covariance_type", "tol", "reg_covar", "max_iter",
                           "n_init", "init_params", "weights_init", "means_init",
                           "precisions_init", "random_state", "warm_start", "verbose",
                           "verbose_interval", "learning_decay", "learning_offset"}
    c = clone(gm)
    assert c is not gm and c.get_params() == params
    assert gm.set_params(tol=1e-5, max_iter=7) is gm
    assert gm.tol == 1e-5 and gm.max_iter == 7
    with pytest.raises(ValueError):
        gm.set_params(not_a_param=1)
    X = dataset("iris")
    fitted = fit_quietly(clone(gm), X)
    assert fitted.get_params() == gm.get_params()      # fit never changes a parameter
    assert not hasattr(clone(fitted), "weights_")


EXPECTED_FAILED_CHECKS = {
    # The check shuffles the weighted rows but not the repeated ones; the random
    # initialisation (k-means++ seeding) depends on row order, so a different local optimum
    # (here with swapped labels) is found. Weighted == repeated with the same row order is
    # tested in test_integer_weights_equal_repeated_rows / test_weights_apply_to_kmeans_...
    "check_sample_weight_equivalence_on_dense_data":
        "random initialisation depends on the row order, which the check shuffles",
}


def test_sklearn_check_estimator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(GaussianMixture(n_components=2, n_init=2, max_iter=5),
                        expected_failed_checks=EXPECTED_FAILED_CHECKS)
