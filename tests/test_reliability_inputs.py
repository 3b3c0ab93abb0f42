"""Reliability (issue 5): every bad input gives a clear ValueError/TypeError (or NotFittedError)
and leaves the user's arrays untouched, for every estimator and method; a hypothesis fuzz test
over shapes, dtypes, values and weights allows only a finite fitted model or such an error.
"""
import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from fastem import BernoulliMixture, GaussianMixture, KMeans

K = 2


def _continuous():
    rng = np.random.RandomState(0)
    return np.ascontiguousarray(np.vstack([rng.normal(-3.0, 1.0, (15, 4)),
                                           rng.normal(3.0, 1.0, (15, 4))]))


def _binary():
    return (_continuous() > 0).astype(np.float64)


MAKERS = {
    "KMeans": (lambda **kw: KMeans(**{"n_clusters": K, "random_state": 0, **kw}), _continuous),
    "GaussianMixture": (lambda **kw: GaussianMixture(**{"n_components": K, "random_state": 0,
                                                        **kw}), _continuous),
    "BernoulliMixture": (lambda **kw: BernoulliMixture(**{"n_components": K, "random_state": 0,
                                                          **kw}), _binary),
}
METHODS = {
    "KMeans": ["predict", "transform", "score"],
    "GaussianMixture": ["predict", "predict_proba", "score", "score_samples"],
    "BernoulliMixture": ["predict", "predict_proba", "score", "score_samples"],
}
FITTED_ATTR = {"KMeans": "cluster_centers_", "GaussianMixture": "weights_",
               "BernoulliMixture": "weights_"}


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: make().fit(data()) for name, (make, data) in MAKERS.items()}


def _put(X, value, dtype=None):
    out = np.array(X, dtype=dtype)
    out[3, 1] = value
    return out


# name -> (make(X), error, match); ``match`` may be a dict per estimator
BAD_X = {
    "nan": (lambda X: _put(X, np.nan), ValueError, "NaN"),
    "nan-float32": (lambda X: _put(X, np.nan, np.float32), ValueError, "NaN"),
    "nan-float16": (lambda X: _put(X, np.nan, np.float16), ValueError, "NaN"),
    "nan-longdouble": (lambda X: _put(X, np.nan, np.longdouble), ValueError, "NaN"),
    "+inf": (lambda X: _put(X, np.inf), ValueError, "inf"),
    "-inf": (lambda X: _put(X, -np.inf), ValueError, "inf"),
    "inf-float32": (lambda X: _put(X, np.inf, np.float32), ValueError, "inf"),
    "all-nan": (lambda X: np.full_like(X, np.nan), ValueError, "NaN"),
    "none-in-object": (lambda X: _put(X.astype(object), None), ValueError, "NaN"),
    "0d": (lambda X: np.float64(1.0), ValueError, "2D"),
    "none": (lambda X: None, ValueError, "2D"),
    "1d": (lambda X: X[:, 0].copy(), ValueError, "2D"),
    "1d-list": (lambda X: X[:, 0].tolist(), ValueError, "2D"),
    "3d": (lambda X: X.reshape(X.shape[0], 2, 2), ValueError, "2D"),
    "4d": (lambda X: X.reshape(X.shape[0], 2, 2, 1), ValueError, "2D"),
    "empty-list": (lambda X: [], ValueError, "2D"),
    "zero-rows": (lambda X: X[:0], ValueError, "0 sample"),
    "zero-columns": (lambda X: X[:, :0], ValueError, "0 feature"),
    "zero-by-zero": (lambda X: np.empty((0, 0)), ValueError, "0 sample"),
    "list-of-empty": (lambda X: [[]], ValueError, "0 feature"),
    "str": (lambda X: X.astype(str), TypeError, "numeric"),
    "bytes": (lambda X: X.astype(bytes), TypeError, "numeric"),
    "object-str": (lambda X: np.full(X.shape, "a", dtype=object), ValueError, "numeric.*string"),
    "object-mixed": (lambda X: _put(X.astype(object), "x"), ValueError, "numeric.*string"),
    "object-dict": (lambda X: _put(X.astype(object), {"a": 1}), TypeError, "numeric.*dict"),
    "ragged": (lambda X: [[1.0, 0.0], [1.0]], ValueError, "inhomogeneous"),
    "complex": (lambda X: X + 1j, ValueError, "Complex"),
    "complex-zero-imag": (lambda X: X.astype(np.complex64), ValueError, "Complex"),
    "complex-object": (lambda X: _put(X.astype(object), 1 + 2j), TypeError, "numeric.*complex"),
    "datetime": (lambda X: np.zeros(X.shape, dtype="datetime64[s]"), TypeError, "numeric"),
    "timedelta": (lambda X: np.zeros(X.shape, dtype="timedelta64[s]"), TypeError, "numeric"),
    "structured": (lambda X: np.zeros(X.shape, dtype=[("a", "f8")]), TypeError, "numeric"),
}
# binary-only problems (valid for the continuous models)
BAD_BINARY = {
    "value-2": (lambda X: _put(X, 2.0), ValueError, "binary.*value 2"),
    "value-0.5": (lambda X: _put(X, 0.5), ValueError, "binary.*value 0.5"),
    "value--1-int8": (lambda X: _put(X, -1, np.int8), ValueError, "binary.*value -1"),
    "value-255-uint8": (lambda X: _put(X, 255, np.uint8), ValueError, "binary.*value 255"),
}
FIT_ONLY = {  # bad for fit (too few samples), fine for predict
    "fewer-samples-than-components": (lambda X: X[:K - 1], ValueError, "n_samples=1"),
}


def _cases(name, table):
    return [(name, case) for case in sorted(table)]


ALL_X_CASES = ([(est, case) for est in MAKERS for case in sorted(BAD_X)]
               + _cases("BernoulliMixture", BAD_BINARY))


def _copy(obj):
    return copy.deepcopy(obj)


def _assert_unchanged(before, after):
    if isinstance(before, np.ndarray):
        assert before.dtype == after.dtype and before.shape == after.shape
        if before.dtype.kind in "fc":
            np.testing.assert_array_equal(before, after)
        else:
            assert (before == after).all() if before.size else True
    else:
        np.testing.assert_equal(after, before)


def _table(case):
    return {**BAD_X, **BAD_BINARY, **FIT_ONLY}[case]


@pytest.mark.parametrize("est,case", ALL_X_CASES + [(e, c) for e in MAKERS for c in FIT_ONLY])
def test_bad_X_in_fit(est, case):
    make, data = MAKERS[est]
    build, error, match = _table(case)
    bad = build(data())
    before = _copy(bad)
    model = make()
    params_before = model.get_params()
    with pytest.raises(error, match=match):
        model.fit(bad)
    _assert_unchanged(before, bad)
    assert not hasattr(model, FITTED_ATTR[est])
    assert repr(model.get_params()) == repr(params_before)


@pytest.mark.parametrize("est,case", ALL_X_CASES)
def test_bad_X_after_fit(est, case, fitted):
    _, data = MAKERS[est]
    build, error, match = _table(case)
    for method in METHODS[est]:
        bad = build(data())
        before = _copy(bad)
        with pytest.raises(error, match=match):
            getattr(fitted[est], method)(bad)
        _assert_unchanged(before, bad)


@pytest.mark.parametrize("est", list(MAKERS))
def test_wrong_n_features_and_not_fitted(est, fitted):
    make, data = MAKERS[est]
    X = data()
    for method in METHODS[est]:
        for bad in (X[:, :3].copy(), np.hstack([X, X[:, :1]])):
            with pytest.raises(ValueError, match=r"X has \d+ features, but .* expecting 4"):
                getattr(fitted[est], method)(bad)
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(make(), method)(X)
    if est != "KMeans":
        with pytest.raises(NotFittedError, match="not fitted"):
            make().sample(3)
        for method in ("bic", "aic"):
            with pytest.raises(NotFittedError, match="not fitted"):
                getattr(make(), method)(X)


# ------------------------------------------------------------------------------ sample_weight

BAD_WEIGHTS = {
    "negative": (lambda n: np.r_[-1.0, np.ones(n - 1)], ValueError, "Negative"),
    "negative-tiny": (lambda n: np.r_[-1e-300, np.ones(n - 1)], ValueError, "Negative"),
    "negative-scalar": (lambda n: -1.0, ValueError, "Negative"),
    "nan": (lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "NaN"),
    "nan-scalar": (lambda n: np.nan, ValueError, "NaN"),
    "inf": (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, "infinity"),
    "-inf": (lambda n: np.r_[-np.inf, np.ones(n - 1)], ValueError, "infinity"),
    "sum-overflows": (lambda n: np.full(n, 1e308), ValueError, "overflows"),
    "too-short": (lambda n: np.ones(n - 1), ValueError, "shape"),
    "too-long": (lambda n: np.ones(n + 1), ValueError, "shape"),
    "empty": (lambda n: np.ones(0), ValueError, "shape"),
    "2d": (lambda n: np.ones((n, 1)), ValueError, "shape"),
    "all-zero": (lambda n: np.zeros(n), ValueError, "zero"),
    "zero-scalar": (lambda n: 0.0, ValueError, "zero"),
    "strings": (lambda n: np.array(["1"] * n), TypeError, "numeric"),
    "complex": (lambda n: np.ones(n, dtype=complex), TypeError, "numeric"),
}


@pytest.mark.parametrize("est,case", [(e, c) for e in MAKERS for c in sorted(BAD_WEIGHTS)])
def test_bad_sample_weight(est, case, fitted):
    make, data = MAKERS[est]
    X = data()
    build, error, match = BAD_WEIGHTS[case]
    w = build(len(X))
    w_before, X_before = _copy(w), X.copy()
    model = make()
    with pytest.raises(error, match=match):
        model.fit(X, sample_weight=w)
    assert not hasattr(model, FITTED_ATTR[est])
    with pytest.raises(error, match=match):
        fitted[est].score(X, sample_weight=w)
    _assert_unchanged(w_before, w)
    np.testing.assert_array_equal(X, X_before)


# ------------------------------------------------------------------------------ hyper-parameters

def _prec(kind, k=K, d=4, value=1.0):
    return {"full": np.array([np.eye(d)] * k) * value, "tied": np.eye(d) * value,
            "diag": np.full((k, d), value), "spherical": np.full(k, value)}[kind]


COMMON_PARAMS = {  # mixtures
    "n_components=0": (dict(n_components=0), ValueError, "n_components must be >= 1"),
    "n_components=-1": (dict(n_components=-1), ValueError, "n_components must be >= 1"),
    "n_components=2.0": (dict(n_components=2.0), TypeError, "n_components must be an int"),
    "n_components=True": (dict(n_components=True), TypeError, "n_components must be an int"),
    "n_components>n": (dict(n_components=31), ValueError, "n_samples=30 should be >= "),
    "max_iter=0": (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    "max_iter=-5": (dict(max_iter=-5), ValueError, "max_iter must be >= 1"),
    "max_iter=None": (dict(max_iter=None), TypeError, "max_iter"),
    "tol=-1": (dict(tol=-1.0), ValueError, "tol must be >= 0"),
    "tol=nan": (dict(tol=np.nan), TypeError, "tol must be a finite"),
    "tol=inf": (dict(tol=np.inf), TypeError, "tol must be a finite"),
    "n_init=0": (dict(n_init=0), ValueError, "n_init must be >= 1"),
    "verbose=-1": (dict(verbose=-1), ValueError, "verbose must be >= 0"),
    "verbose_interval=0": (dict(verbose_interval=0), ValueError, "verbose_interval"),
    "random_state='x'": (dict(random_state="x"), ValueError, "random_state"),
    "weights_init-sum": (dict(weights_init=[0.5, 0.6]), ValueError, "sum to 1"),
    "weights_init-negative": (dict(weights_init=[1.5, -0.5]), ValueError, "non-negative"),
    "weights_init-length": (dict(weights_init=[0.2, 0.2, 0.6]), ValueError, "weights_init has "
                                                                            "shape"),
    "weights_init-nan": (dict(weights_init=[np.nan, 0.5]), ValueError, "weights_init contains "
                                                                       "NaN"),
    "means_init-rows": (dict(means_init=np.full((3, 4), 0.5)), ValueError, r"means_init has "
                                                                             r"shape \(3, 4\)"),
    "means_init-cols": (dict(means_init=np.full((2, 5), 0.5)), ValueError, "means_init has shape"),
    "means_init-1d": (dict(means_init=np.full(4, 0.5)), ValueError, "means_init has shape"),
    "means_init-nan": (dict(means_init=np.full((2, 4), np.nan)), ValueError, "means_init "
                                                                             "contains NaN"),
    "means_init-str": (dict(means_init=[["a"] * 4] * 2), ValueError, "could not convert"),
}
GAUSSIAN_PARAMS = {
    "covariance_type='foo'": (dict(covariance_type="foo"), ValueError, "covariance_type"),
    "covariance_type=None": (dict(covariance_type=None), ValueError, "covariance_type"),
    "init_params='foo'": (dict(init_params="foo"), ValueError, "init_params"),
    "reg_covar=-1": (dict(reg_covar=-1e-6), ValueError, "reg_covar must be >= 0"),
    "reg_covar=nan": (dict(reg_covar=np.nan), TypeError, "reg_covar"),
    "reg_covar='a'": (dict(reg_covar="a"), TypeError, "reg_covar"),
    **{f"precisions_init-shape-{ct}": (dict(covariance_type=ct, precisions_init=_prec(other)),
                                       ValueError, "precisions_init has shape")
       for ct, other in [("full", "diag"), ("tied", "full"), ("diag", "spherical"),
                         ("spherical", "tied")]},
    **{f"precisions_init-zero-{ct}": (dict(covariance_type=ct, precisions_init=_prec(ct, value=0)),
                                      ValueError, "positive")
       for ct in ("full", "tied", "diag", "spherical")},
    **{f"precisions_init-negative-{ct}": (dict(covariance_type=ct,
                                               precisions_init=_prec(ct, value=-1)),
                                          ValueError, "positive")
       for ct in ("full", "tied", "diag", "spherical")},
    **{f"precisions_init-nan-{ct}": (dict(covariance_type=ct,
                                          precisions_init=_prec(ct, value=np.nan)),
                                     ValueError, "contains NaN")
       for ct in ("full", "tied", "diag", "spherical")},
    "precisions_init-indefinite": (dict(precisions_init=np.array(
        [np.diag([1.0, 1.0, 1.0, -1.0])] * 2)), ValueError, r"precisions_init\[0\] is not "
                                                             "positive definite"),
    "precisions_init-asymmetric": (dict(precisions_init=np.array(
        [np.eye(4) + np.triu(np.ones((4, 4)), 1)] * 2)), ValueError, "not symmetric"),
}
BERNOULLI_PARAMS = {
    "init_params='k-means++'": (dict(init_params="k-means++"), ValueError, "init_params"),
    "alpha=-1": (dict(alpha=-1.0), ValueError, "alpha must be >= 0"),
    "alpha=nan": (dict(alpha=np.nan), TypeError, "alpha"),
    "alpha=inf": (dict(alpha=np.inf), TypeError, "alpha"),
    "theta>1": (dict(means_init=np.full((2, 4), 1.5)), ValueError, r"\[0, 1\]"),
    "theta<0": (dict(means_init=np.full((2, 4), -1e-9)), ValueError, r"\[0, 1\]"),
}
KMEANS_PARAMS = {
    "n_clusters=0": (dict(n_clusters=0), ValueError, "n_clusters must be >= 1"),
    "n_clusters=-3": (dict(n_clusters=-3), ValueError, "n_clusters must be >= 1"),
    "n_clusters=2.5": (dict(n_clusters=2.5), TypeError, "n_clusters must be an int"),
    "n_clusters>n": (dict(n_clusters=31), ValueError, "n_samples=30 should be >= n_clusters"),
    "max_iter=0": (dict(max_iter=0), ValueError, "max_iter must be >= 1"),
    "tol=-1": (dict(tol=-1e-4), ValueError, "tol must be >= 0"),
    "tol=nan": (dict(tol=np.nan), TypeError, "tol must be a finite"),
    "init='kmeans'": (dict(init="kmeans"), ValueError, "init must be"),
    "init=callable-rows": (dict(init=lambda X, k, random_state: X[:k + 1]), ValueError,
                           "returned by init has shape"),
    "init=callable-nan": (dict(init=lambda X, k, random_state: np.full((k, 4), np.nan)),
                          ValueError, "NaN"),
    "algorithm='full'": (dict(algorithm="full"), ValueError, "algorithm must be one of"),
    "init-rows": (dict(init=np.zeros((3, 4))), ValueError, "init has shape"),
    "init-cols": (dict(init=np.zeros((2, 3))), ValueError, "init has shape"),
    "init-1d": (dict(init=np.zeros(4)), ValueError, "2D"),
    "init-nan": (dict(init=np.full((2, 4), np.nan)), ValueError, "NaN"),
    "init-complex": (dict(init=np.zeros((2, 4), complex)), ValueError, "Complex"),
    "n_init=0": (dict(n_init=0), ValueError, "n_init must be >= 1"),
    "n_init='x'": (dict(n_init="x"), ValueError, "n_init must be 'auto'"),
    "verbose=-1": (dict(verbose=-1), ValueError, "verbose must be >= 0"),
    "random_state='x'": (dict(random_state="x"), ValueError, "random_state"),
}
PARAM_CASES = ([("KMeans", c) for c in sorted(KMEANS_PARAMS)]
               + [("GaussianMixture", c) for c in sorted({**COMMON_PARAMS, **GAUSSIAN_PARAMS})]
               + [("BernoulliMixture", c) for c in sorted({**COMMON_PARAMS, **BERNOULLI_PARAMS})])


@pytest.mark.parametrize("est,case", PARAM_CASES)
def test_bad_hyper_parameters(est, case):
    table = {"KMeans": KMEANS_PARAMS, "GaussianMixture": {**COMMON_PARAMS, **GAUSSIAN_PARAMS},
             "BernoulliMixture": {**COMMON_PARAMS, **BERNOULLI_PARAMS}}[est]
    params, error, match = table[case]
    make, data = MAKERS[est]
    X = data()
    X_before, params_before = X.copy(), _copy(params)
    model = make(**params)  # the constructor stores, never validates
    with pytest.raises(error, match=match):
        model.fit(X)
    assert not hasattr(model, FITTED_ATTR[est])
    np.testing.assert_array_equal(X, X_before)
    for name, value in params_before.items():  # user arrays (means_init, init, ...) untouched
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(model, name), value)


def test_number_of_bad_inputs():
    """The distinct bad inputs tried in this file (reported in issue 5)."""
    n_x = sum(len(METHODS[e]) + 1 for e, _ in ALL_X_CASES) + len(MAKERS) * len(FIT_ONLY)
    n_features = sum(2 * len(METHODS[e]) for e in MAKERS)
    n_weights = len(MAKERS) * len(BAD_WEIGHTS) * 2
    total = n_x + n_features + n_weights + len(PARAM_CASES)
    print(f"bad inputs: X {n_x}, n_features {n_features}, sample_weight {n_weights}, "
          f"parameters {len(PARAM_CASES)}; total {total}")
    assert total > 500


# ------------------------------------------------------------------------------ fuzzing

DTYPES = ["bool", "int8", "uint8", "int64", "float16", "float32", "float64", "complex128",
          "object", "str"]
SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e154, 1e-300, 5e-324, 0.0, 1.0]


@st.composite
def fuzz_inputs(draw, binary):
    n = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12]))
    d = draw(st.sampled_from([0, 1, 1, 2, 2, 3, 3]))
    dtype = draw(st.sampled_from(DTYPES + ["float32", "float64"] * 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.RandomState(seed)
    if binary and draw(st.booleans()):
        X = rng.randint(0, 2, size=(n, d)).astype(np.float64)
    else:
        X = rng.normal(scale=draw(st.sampled_from([1e-300, 1e-150, 1.0, 1e6, 1e150])),
                       size=(n, d))
        if draw(st.booleans()):
            X = np.repeat(X[:1], n, axis=0)  # all rows identical
    if X.size and draw(st.integers(0, 2)) == 0:
        X.flat[draw(st.integers(0, X.size - 1))] = draw(st.sampled_from(SPECIAL))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = X.astype(dtype) if dtype != "object" else X.astype(object)
    weight_kind = draw(st.sampled_from(["none", "none", "uniform", "uniform", "zeros-some",
                                        "special", "scalar"]))
    if weight_kind == "none":
        w = None
    elif weight_kind == "scalar":
        w = draw(st.sampled_from([0.5, 0.0, -1.0, 1e300]))
    else:
        w = rng.uniform(0.0, 3.0, size=max(0, n + draw(st.sampled_from([0, 0, 0, 1, -1]))))
        if weight_kind == "zeros-some" and w.size:
            w[rng.rand(w.size) < 0.5] = 0.0
        if weight_kind == "special" and w.size:
            w[0] = draw(st.sampled_from(SPECIAL + [-1.0]))
    k = draw(st.integers(1, 4))
    return X, w, k, draw(st.integers(0, 3)), seed


def _check_fitted_finite(est, model, X):
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            assert not np.isnan(arr).any(), name
            if est == "BernoulliMixture" and name == "lower_bounds_" and model.alpha == 0:
                assert np.isfinite(arr[1:]).all(), name  # documented: the first may be -inf
            else:
                assert np.isfinite(arr).all(), name
    labels = model.predict(X)
    assert labels.min() >= 0 and labels.max() < (model.n_clusters if est == "KMeans"
                                                  else model.n_components)
    assert np.isfinite(model.score(X))


def _fuzz(est, inputs):
    X, w, k, variant, seed = inputs
    make, _ = MAKERS[est]
    options = {
        "KMeans": [{}, {"init": "random"}, {"n_init": 2, "max_iter": 5}, {"max_iter": 1}],
        "GaussianMixture": [{"covariance_type": ct} for ct in ("full", "tied", "diag",
                                                                "spherical")],
        "BernoulliMixture": [{}, {"alpha": 0.0}, {"init_params": "random"},
                             {"init_params": "random_from_data", "alpha": 0.0}],
    }[est][variant]
    options = {**options, ("n_clusters" if est == "KMeans" else "n_components"): k,
               "random_state": seed % 1000}
    if est != "KMeans":
        options["max_iter"] = 20
    X_before, w_before = _copy(X), _copy(w)
    model = make(**options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, sample_weight=w)
    except (ValueError, TypeError) as exc:
        event(f"{type(exc).__name__}: {str(exc)[:40]}")
        assert str(exc), "an error without a message"
        assert not hasattr(model, FITTED_ATTR[est])
    else:
        event("fitted")
        _check_fitted_finite(est, model, X)
    _assert_unchanged(X_before, X)
    if isinstance(w, np.ndarray):
        np.testing.assert_array_equal(w, w_before)


FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(inputs=fuzz_inputs(binary=False))
def test_fuzz_kmeans(inputs):
    _fuzz("KMeans", inputs)


@FUZZ
@given(inputs=fuzz_inputs(binary=False))
def test_fuzz_gaussian_mixture(inputs):
    _fuzz("GaussianMixture", inputs)


@FUZZ
@given(inputs=fuzz_inputs(binary=True))
def test_fuzz_bernoulli_mixture(inputs):
    _fuzz("BernoulliMixture", inputs)
