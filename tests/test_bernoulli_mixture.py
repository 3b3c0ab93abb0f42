"""BernoulliMixture: against an independent NumPy EM, on data with known components, inputs."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from fastem.sources import ArraySource
from fastem import BernoulliMixture
from fastem.datasets import load_digits_binary
from fastem.models import bernoulli as model_module
from fastem.models.bernoulli import BernoulliMixtureModel, penalized_objective

from . import naive_bernoulli as naive

try:
    from sklearn.base import clone
except ImportError:  # pragma: no cover
    clone = None


def _mixture_data(theta, weights, n, seed):
    """n rows drawn from the Bernoulli mixture (theta, weights): (X uint8, labels)."""
    rng = np.random.RandomState(seed)
    labels = rng.choice(len(weights), size=n, p=weights)
    X = (rng.uniform(size=(n, theta.shape[1])) < theta[labels]).astype(np.uint8)
    return X, labels


def _small_problem(seed=0, n=600, d=12, k=3):
    rng = np.random.RandomState(seed)
    theta = rng.uniform(0.05, 0.95, size=(k, d))
    X, _ = _mixture_data(theta, np.full(k, 1.0 / k), n, seed + 1)
    init_theta = np.clip(theta + rng.uniform(-0.2, 0.2, size=theta.shape), 0.01, 0.99)
    return X, init_theta, np.full(k, 1.0 / k)


def _match(est_theta, true_theta):
    """Permutation of the estimated components that best matches the true ones."""
    cost = np.abs(est_theta[:, None, :] - true_theta[None, :, :]).mean(axis=2)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(cols), dtype=int)
    order[cols] = rows
    return order, cost[rows, cols]


# ---------------------------------------------------------------- the EM itself

@pytest.mark.parametrize("alpha", [0.0, 0.01, 1.0])
def test_trajectory_matches_numpy_em(alpha):
    X, theta0, w0 = _small_problem()
    sw = np.random.RandomState(5).uniform(0.2, 2.0, size=len(X))
    n_iter = 6
    bm = BernoulliMixture(3, alpha=alpha, weights_init=w0, means_init=theta0, max_iter=n_iter,
                          tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm.fit(X, sample_weight=sw)
    ref = naive.em(X, sw, w0, theta0, alpha, n_iter)
    assert bm.n_iter_ == n_iter
    np.testing.assert_allclose(bm.lower_bounds_, [r[2] for r in ref], rtol=1e-12)
    np.testing.assert_allclose(bm.weights_, ref[-1][0], rtol=1e-10)
    np.testing.assert_allclose(bm.means_, ref[-1][1], rtol=1e-10, atol=1e-13)
    assert bm.lower_bound_ == bm.lower_bounds_[-1]


def test_alpha_zero_handles_exact_zero_and_one():
    # feature 0 is always 1 and feature 1 always 0 -> ML theta hits exactly 1 and 0
    X, theta0, w0 = _small_problem(seed=2, d=6)
    X[:, 0], X[:, 1] = 1, 0
    theta0[:, 0], theta0[:, 1] = 1.0, 0.0
    bm = BernoulliMixture(3, alpha=0.0, weights_init=w0, means_init=theta0, max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm.fit(X)
    ref = naive.em(X, np.ones(len(X)), w0, theta0, 0.0, 5)
    assert np.isfinite(bm.lower_bounds_).all()
    np.testing.assert_allclose(bm.lower_bounds_, [r[2] for r in ref], rtol=1e-12)
    np.testing.assert_allclose(bm.means_, ref[-1][1], rtol=1e-10, atol=1e-13)
    assert (bm.means_[:, 0] == 1.0).all() and (bm.means_[:, 1] == 0.0).all()
    assert np.isfinite(bm.score_samples(X)).all()
    Y = X.copy()
    Y[0, 1] = 1                                   # impossible under every component
    scores = bm.score_samples(Y)
    assert scores[0] == -np.inf and not np.isnan(scores).any()
    assert not np.isnan(bm.predict_proba(Y)).any()


def test_integer_weights_equal_repeated_rows():
    X, theta0, w0 = _small_problem(seed=3, n=300)
    counts = np.random.RandomState(0).randint(0, 4, size=len(X))
    kw = dict(weights_init=w0, means_init=theta0, max_iter=20, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = BernoulliMixture(3, **kw).fit(X, sample_weight=counts)
        repeated = BernoulliMixture(3, **kw).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-9)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-9)
    np.testing.assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)


def test_row_order_does_not_matter():
    X, theta0, w0 = _small_problem(seed=8)
    perm = np.random.RandomState(1).permutation(len(X))
    kw = dict(weights_init=w0, means_init=theta0, max_iter=15, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = BernoulliMixture(3, **kw).fit(X)
        b = BernoulliMixture(3, **kw).fit(X[perm])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    np.testing.assert_array_equal(a.predict(X)[perm], b.predict(X[perm]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(5, 60), d=st.integers(1, 9),
       k=st.integers(1, 4), alpha=st.sampled_from([0.0, 0.01, 0.5]),
       init=st.sampled_from(["random", "random_from_data"]))
def test_em_objective_never_decreases(seed, n, d, k, alpha, init):
    """Log-likelihood (alpha = 0) or penalised log-likelihood (alpha > 0) is monotone."""
    rng = np.random.RandomState(seed)
    X = (rng.uniform(size=(n, d)) < rng.uniform(0.1, 0.9, size=d)).astype(np.uint8)
    w = rng.randint(0, 3, size=n).astype(float)
    w[0] = 1.0
    k = min(k, n)
    model = BernoulliMixtureModel(k, alpha, init)
    source = ArraySource(X, w)
    params = model.initialize(source, rng)
    values = []
    for _ in range(15):
        stats = model.e_step(source, params)
        values.append(penalized_objective(stats.objective, params.means, alpha, w.sum()))
        params = model.m_step(source, params, stats)
    values = np.array(values)
    if alpha > 0 or init == "random":       # the first objective can be -inf only for alpha 0
        assert np.isfinite(values[1:]).all()
    finite = values[np.isfinite(values)]
    assert np.all(np.diff(finite) >= -1e-9 * (1 + np.abs(finite[:-1])))


# ---------------------------------------------------------------- known components

def _bars(size=5, low=0.05, high=0.92):
    """The classic bars problem: every horizontal and vertical bar of a size x size image."""
    patterns = []
    for r in range(size):
        img = np.full((size, size), low)
        img[r, :] = high
        patterns.append(img.ravel())
        img = np.full((size, size), low)
        img[:, r] = high
        patterns.append(img.ravel())
    return np.array(patterns)


def test_recovers_noisy_bars():
    theta = _bars()
    k = len(theta)
    weights = np.random.RandomState(0).dirichlet(np.full(k, 20.0))
    X, labels = _mixture_data(theta, weights, 4000, seed=1)
    bm = BernoulliMixture(k, n_init=4, random_state=0).fit(X)
    order, cost = _match(bm.means_, theta)
    assert cost.max() < 0.03
    np.testing.assert_allclose(bm.weights_[order], weights, atol=0.02)
    # hard assignments agree with the generating component for nearly every row
    assert np.mean(order[labels] == bm.predict(X)) > 0.97 or \
        np.mean(np.argsort(order)[bm.predict(X)] == labels) > 0.97


def test_recovers_digit_templates():
    """Data drawn from a mixture whose components are the (smoothed) binarised-digit means."""
    Xd, y = load_digits_binary()
    theta = np.clip(np.array([Xd[y == c].mean(axis=0) for c in range(10)]), 0.03, 0.97)
    X, _ = _mixture_data(theta, np.full(10, 0.1), 5000, seed=2)
    bm = BernoulliMixture(10, n_init=3, random_state=0).fit(sp.csr_matrix(X))
    _, cost = _match(bm.means_, theta)
    assert cost.max() < 0.03


def test_binarised_digits_clusters_follow_the_classes():
    X, y = load_digits_binary()
    bm = BernoulliMixture(10, n_init=3, random_state=0).fit(X)
    labels = bm.predict(X)
    table = np.zeros((10, 10))
    np.add.at(table, (labels, y), 1)
    rows, cols = linear_sum_assignment(-table)
    assert table[rows, cols].sum() / len(y) > 0.6      # chance is 0.1
    class_means = np.array([X[y == c].mean(axis=0) for c in range(10)])
    diff = np.abs(bm.means_[rows] - class_means[cols]).mean(axis=1)
    assert np.sort(diff)[5] < 0.06        # most components are close to a class mean image


# ---------------------------------------------------------------- input types

def test_dense_dtypes_and_csr_give_the_same_fit():
    X, _ = _mixture_data(_bars(4), np.full(8, 1 / 8), 700, seed=3)
    fits = []
    for Xv in (X, X.astype(bool), X.astype(np.float64), X.astype(np.int32), sp.csr_matrix(X),
               sp.coo_matrix(X), sp.csr_array(X.astype(np.float32))):
        fits.append(BernoulliMixture(8, random_state=0, n_init=2).fit(Xv))
    for bm in fits[1:]:
        np.testing.assert_array_equal(bm.means_, fits[0].means_)
        np.testing.assert_array_equal(bm.weights_, fits[0].weights_)
        assert bm.lower_bounds_ == fits[0].lower_bounds_
        np.testing.assert_array_equal(bm.predict(X), fits[0].predict(X))


def test_input_is_used_as_given():
    from fastem.validation import check_binary_array
    X = np.zeros((50, 7), dtype=np.uint8)
    X[::2, 3] = 1
    def used_as_given(A):
        # no copy: a read-only view of A itself (one compiled type for every input), and A
        # stays writable
        out = check_binary_array(A)
        return (out.base is A and out.dtype == A.dtype and not out.flags.writeable
                and A.flags.writeable)

    assert used_as_given(X)
    Xb = X.astype(bool)
    assert used_as_given(Xb)
    Xf = X.astype(np.float32)
    assert used_as_given(Xf)
    R = X.copy()
    R.flags.writeable = False
    assert check_binary_array(R) is R
    F = np.asfortranarray(X)
    out = check_binary_array(F)
    assert out.flags.c_contiguous and out.dtype == np.uint8
    np.testing.assert_array_equal(out, X)
    C = sp.csr_matrix(X)
    assert check_binary_array(C) is C
    assert check_binary_array(sp.csc_matrix(X)).format == "csr"
    assert check_binary_array(X.astype(np.float16)).dtype == np.uint8
    assert check_binary_array(X.astype(">f8")).dtype == np.uint8
    # duplicates are summed once (1 + 1 = 2 is not binary)
    dup = sp.csr_matrix((np.array([1, 1], np.uint8), np.array([2, 2]), np.array([0, 2, 2])),
                        shape=(2, 4))
    with pytest.raises(ValueError, match="binary"):
        check_binary_array(dup)


@pytest.mark.parametrize("bad, match", [(2, "value 2"), (-1, "value -1"), (0.5, "value 0.5"),
                                        (np.nan, "NaN"), (np.inf, "value inf")])
def test_non_binary_input_raises(bad, match):
    X = np.zeros((30, 4))
    X[17, 2] = bad
    with pytest.raises(ValueError, match=match) as info:
        BernoulliMixture(2).fit(X)
    assert "row 17, column 2" in str(info.value)
    if np.isfinite(bad):
        with pytest.raises(ValueError, match="binary"):
            BernoulliMixture(2).fit(X.astype(np.int64) if bad == int(bad) else X)
    C = sp.csr_matrix(np.ones((30, 4)))
    C.data[5] = bad
    with pytest.raises(ValueError, match=match):
        BernoulliMixture(2).fit(C)


def test_non_binary_input_to_predict_raises():
    X, _, _ = _small_problem(n=50)
    bm = BernoulliMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="binary"):
        bm.predict(X * 3)


@pytest.mark.parametrize("X, error", [
    (np.zeros(5), ValueError), (np.zeros((0, 3)), ValueError), (np.zeros((3, 0)), ValueError),
    (np.array([["a", "b"]]), TypeError), (np.ones((3, 2), dtype=complex), ValueError)])
def test_bad_shapes_and_types(X, error):
    with pytest.raises(error):
        BernoulliMixture(1).fit(X)


@pytest.mark.parametrize("params, match", [
    (dict(alpha=-1.0), "alpha"), (dict(init_params="k-means++"), "init_params"),
    (dict(weights_init=[0.5, 0.6]), "sum to 1"), (dict(means_init=np.full((2, 12), 1.5)),
                                                  r"\[0, 1\]"),
    (dict(means_init=np.full((3, 12), 0.5)), "shape"), (dict(n_components=0), "n_components"),
    (dict(n_components=10_000), "n_samples")])
def test_bad_parameters(params, match):
    X, _, _ = _small_problem(n=50)
    with pytest.raises((ValueError, TypeError), match=match):
        BernoulliMixture(**{"n_components": 2, **params}).fit(X)


# ---------------------------------------------------------------- estimator API

def test_predict_score_sample_bic_aic():
    X, theta0, w0 = _small_problem(seed=4)
    bm = BernoulliMixture(3, random_state=0).fit(X)
    assert bm.converged_ and bm.n_iter_ >= 1 and len(bm.lower_bounds_) == bm.n_iter_
    ref = naive.log_pmf(X, bm.means_, np.log(bm.weights_))
    np.testing.assert_allclose(bm.score_samples(X), logsumexp(ref, axis=1), rtol=1e-12)
    np.testing.assert_allclose(bm.predict_proba(X),
                               np.exp(ref - logsumexp(ref, axis=1)[:, None]), atol=1e-12)
    np.testing.assert_array_equal(bm.predict(X), ref.argmax(axis=1))
    np.testing.assert_array_equal(bm.fit_predict(X), bm.predict(X))
    np.testing.assert_array_equal(bm.predict(sp.csr_matrix(X)), bm.predict(X))
    n, p = len(X), 3 * 12 + 2
    assert bm.bic(X) == pytest.approx(-2 * bm.score(X) * n + p * np.log(n))
    assert bm.aic(X) == pytest.approx(-2 * bm.score(X) * n + 2 * p)
    S, labels = bm.sample(500)
    assert S.dtype == np.uint8 and S.shape == (500, 12) and set(np.unique(S)) <= {0, 1}
    assert labels.shape == (500,) and labels.max() < 3
    assert bm.lower_bound_ == pytest.approx(bm.score(X), abs=1e-3)


def test_init_methods_and_warm_start():
    X, _, _ = _small_problem(seed=6)
    for init in ("kmeans", "random", "random_from_data"):
        bm = BernoulliMixture(3, init_params=init, random_state=1).fit(X)
        assert np.isfinite(bm.lower_bound_)
        assert bm.means_.shape == (3, 12) and bm.weights_.sum() == pytest.approx(1.0)
        again = BernoulliMixture(3, init_params=init, random_state=1).fit(X)
        np.testing.assert_array_equal(again.means_, bm.means_)
    warm = BernoulliMixture(3, random_state=0, warm_start=True, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.fit(X)
        first = warm.lower_bounds_[-1]
        warm.fit(X)
    assert warm.lower_bounds_[0] >= first - 1e-12


def test_kmeans_init_on_a_subsample(monkeypatch):
    """Large X: k-means runs on a bounded random subsample (never a float copy of all of X)."""
    X, theta0, _ = _small_problem(seed=7, n=3000)
    seen = []
    monkeypatch.setattr(model_module, "KMEANS_INIT_BYTES", 4 * 12 * 500)
    monkeypatch.setattr(model_module, "KMEANS_INIT_MIN_ROWS", 10)
    original = BernoulliMixture._kmeans_fit

    def spy(self, Xs, w, rng):
        seen.append(Xs.shape)
        assert Xs.dtype == np.float32
        return original(self, Xs, w, rng)

    monkeypatch.setattr(BernoulliMixture, "_kmeans_fit", spy)
    bm = BernoulliMixture(3, random_state=0).fit(X)
    assert seen == [(500, 12)]
    assert np.isfinite(bm.lower_bound_)


@pytest.mark.skipif(clone is None, reason="scikit-learn not installed")
def test_clone_and_params():
    bm = BernoulliMixture(4, alpha=0.5, random_state=3)
    c = clone(bm)
    assert c.get_params() == bm.get_params() and c.alpha == 0.5
    assert BernoulliMixture().alpha == 1e-2
