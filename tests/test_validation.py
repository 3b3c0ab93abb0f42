"""Input and parameter validation of KMeans: clear errors, no surprises with the user's data."""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

import fastem.estimators.kmeans as kmeans_module
from fastem import KMeans

from . import naive


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return np.ascontiguousarray(
        np.vstack([rng.normal(loc, 1.0, size=(30, 4)) for loc in (-4.0, 0.0, 4.0)]))


@pytest.fixture(scope="module")
def fitted(X):
    return KMeans(3, random_state=0).fit(X)


def _same_fit(a, b):
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    assert a.n_iter_ == b.n_iter_


# ---------------------------------------------------------------------------- bad X in fit

BAD_X = {
    "nan": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 17, np.nan, X),
            ValueError, "NaN"),
    "inf": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 17, np.inf, X),
            ValueError, "infinity"),
    "-inf": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 17, -np.inf, X),
             ValueError, "infinity"),
    "nan-float32": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan,
                                       X).astype(np.float32), ValueError, "NaN"),
    "1d": (lambda X: X[:, 0].copy(), ValueError, "2D"),
    "3d": (lambda X: X.reshape(X.shape[0], 2, 2), ValueError, "2D"),
    "0d": (lambda X: np.float64(1.0), ValueError, "2D"),
    "no-samples": (lambda X: X[:0], ValueError, "0 sample"),
    "no-features": (lambda X: X[:, :0], ValueError, "0 feature"),
    "too-few-samples": (lambda X: X[:2], ValueError, "n_clusters"),
    "strings": (lambda X: X.astype(str), TypeError, "numeric"),
    "object-strings": (lambda X: np.array([["a", "b"]] * 5, dtype=object), ValueError, "string"),
    "complex": (lambda X: X + 1j, ValueError, "Complex"),
    "sparse-nan": (lambda X: sp.csr_matrix(np.where(np.arange(X.size).reshape(X.shape) == 5,
                                                    np.nan, X)), ValueError, "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_X))
def test_bad_X_in_fit(X, case):
    make, error, match = BAD_X[case]
    km = KMeans(3, random_state=0)
    with pytest.raises(error, match=match):
        km.fit(make(X))
    assert not hasattr(km, "cluster_centers_")


@pytest.mark.parametrize("case", ["nan", "inf", "1d", "3d", "no-samples", "strings", "complex"])
@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_bad_X_after_fit(X, fitted, case, method):
    make, error, match = BAD_X[case]
    with pytest.raises(error, match=match):
        getattr(fitted, method)(make(X))


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_wrong_n_features(X, fitted, method):
    with pytest.raises(ValueError, match="features"):
        getattr(fitted, method)(X[:, :3].copy())
    with pytest.raises(ValueError, match="features"):
        getattr(fitted, method)(np.hstack([X, X[:, :1]]))


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_not_fitted(X, method):
    with pytest.raises(NotFittedError):
        getattr(KMeans(3), method)(X)


# ---------------------------------------------------------------------------- sample_weight

BAD_WEIGHTS = {
    "negative": (lambda n: np.r_[-1.0, np.ones(n - 1)], ValueError, "Negative"),
    "negative-scalar": (lambda n: -1.0, ValueError, "Negative"),
    "nan": (lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "NaN"),
    "nan-scalar": (lambda n: np.nan, ValueError, "NaN"),
    "inf": (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, "infinity"),
    "too-short": (lambda n: np.ones(n - 1), ValueError, "shape"),
    "too-long": (lambda n: np.ones(n + 1), ValueError, "shape"),
    "2d": (lambda n: np.ones((n, 1)), ValueError, "shape"),
    "all-zero": (lambda n: np.zeros(n), ValueError, "zero"),
    "zero-scalar": (lambda n: 0.0, ValueError, "zero"),
    "strings": (lambda n: np.array(["1"] * n), TypeError, "numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_sample_weight(X, fitted, case):
    make, error, match = BAD_WEIGHTS[case]
    with pytest.raises(error, match=match):
        KMeans(3, random_state=0).fit(X, sample_weight=make(len(X)))
    with pytest.raises(error, match=match):
        fitted.score(X, sample_weight=make(len(X)))


def test_scalar_and_list_sample_weight(X):
    unit = KMeans(3, random_state=0).fit(X)
    scaled = KMeans(3, random_state=0).fit(X, sample_weight=2.5)
    listed = KMeans(3, random_state=0).fit(X, sample_weight=[1] * len(X))
    np.testing.assert_array_equal(scaled.labels_, unit.labels_)
    np.testing.assert_allclose(scaled.cluster_centers_, unit.cluster_centers_, rtol=1e-12)
    assert scaled.inertia_ == pytest.approx(2.5 * unit.inertia_, rel=1e-12)
    _same_fit(listed, unit)


# ---------------------------------------------------------------------------- parameters

BAD_PARAMS = {
    "n_clusters=0": (dict(n_clusters=0), ValueError),
    "n_clusters=-1": (dict(n_clusters=-1), ValueError),
    "n_clusters=2.5": (dict(n_clusters=2.5), TypeError),
    "n_clusters=None": (dict(n_clusters=None), TypeError),
    "max_iter=0": (dict(max_iter=0), ValueError),
    "max_iter=1.5": (dict(max_iter=1.5), TypeError),
    "tol=-1": (dict(tol=-1), ValueError),
    "tol=nan": (dict(tol=float("nan")), TypeError),
    "tol='a'": (dict(tol="a"), TypeError),
    "init='kmeans'": (dict(init="kmeans"), ValueError),
    "init-wrong-k": (dict(init=np.zeros((2, 4))), ValueError),
    "init-wrong-d": (dict(init=np.zeros((3, 3))), ValueError),
    "init-1d": (dict(init=np.zeros(4)), ValueError),
    "init-nan": (dict(init=np.full((3, 4), np.nan)), ValueError),
    "n_init=0": (dict(n_init=0), ValueError),
    "n_init='x'": (dict(n_init="x"), ValueError),
    "verbose=-1": (dict(verbose=-1), ValueError),
    "random_state='x'": (dict(random_state="x"), ValueError),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_params_raise_in_fit_not_init(X, case):
    params, error = BAD_PARAMS[case]
    params = {"n_clusters": 3, **params}
    km = KMeans(**params)  # the constructor only stores
    for name, value in params.items():
        assert getattr(km, name) is value
    with pytest.raises(error):
        km.fit(X)
    with pytest.raises(error):
        KMeans(3).set_params(**params).fit(X)


# ---------------------------------------------------------------------------- user data untouched


def test_inputs_never_modified(X):
    rng = np.random.RandomState(1)
    w = rng.uniform(0.5, 2.0, size=len(X))
    init = X[[0, 40, 80]] + 0.1
    X_before, w_before, init_before = X.copy(), w.copy(), init.copy()
    km = KMeans(3, init=init, n_init=1).fit(X, sample_weight=w)
    km.predict(X)
    km.transform(X)
    km.score(X, sample_weight=w)
    km.fit_predict(X, sample_weight=w)
    km.fit_transform(X, sample_weight=w)
    KMeans(3, random_state=0).fit(X, sample_weight=w)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(w, w_before)
    np.testing.assert_array_equal(init, init_before)
    assert km.init is init
    # the fitted attributes do not alias the user's arrays
    assert not np.shares_memory(km.cluster_centers_, init)
    assert not np.shares_memory(km.labels_, X)
    km.cluster_centers_[:] = 0.0
    np.testing.assert_array_equal(init, init_before)


# ---------------------------------------------------------------------------- conversions


def _reference_fit(data, dtype=np.float64):
    return KMeans(3, random_state=0).fit(np.ascontiguousarray(data, dtype=dtype))


@pytest.mark.parametrize("layout", ["fortran", "strided", "int64", "int8", "uint8", "bool",
                                    "list", "float16"])
def test_other_layouts_and_dtypes_match_float64_c(X, layout):
    if layout == "fortran":
        data = np.asfortranarray(X)
    elif layout == "strided":
        wide = np.repeat(X, 2, axis=1)
        wide[:, 1::2] = -999.0
        data = wide[:, ::2]
        assert not data.flags.c_contiguous
    elif layout in ("int64", "int8", "uint8"):
        data = np.round(X * 3 + 20).astype(layout)
    elif layout == "bool":
        data = X > 0.5
    elif layout == "list":
        data = X.tolist()
    else:
        data = X.astype(np.float16)
    km = KMeans(3, random_state=0).fit(data)
    expected_dtype = np.float32 if layout == "float16" else np.float64
    ref = _reference_fit(data, expected_dtype)
    assert km.cluster_centers_.dtype == expected_dtype
    _same_fit(km, ref)
    np.testing.assert_array_equal(km.predict(data), ref.labels_)
    np.testing.assert_array_equal(km.transform(data), ref.transform(np.asarray(
        data, dtype=expected_dtype)))


def test_exotic_float_dtypes(X):
    ref = _reference_fit(X)
    big_endian = X.astype(">f8")
    _same_fit(KMeans(3, random_state=0).fit(big_endian), ref)
    np.testing.assert_array_equal(ref.predict(big_endian), ref.labels_)
    longdouble = X.astype(np.longdouble)
    _same_fit(KMeans(3, random_state=0).fit(longdouble), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_c_input_is_not_copied(X, dtype, monkeypatch):
    data = np.ascontiguousarray(X, dtype=dtype)
    seen = []
    real_fit_em = kmeans_module.fit_em
    real_nearest = kmeans_module.assign_nearest
    real_sqdist = kmeans_module.all_sqdist

    def spy_fit_em(model, source, *args, **kwargs):
        seen.extend(X_ for _, X_, _ in source.chunks())
        return real_fit_em(model, source, *args, **kwargs)

    def spy_nearest(X_, *args):
        seen.append(X_)
        return real_nearest(X_, *args)

    def spy_sqdist(X_, *args):
        seen.append(X_)
        return real_sqdist(X_, *args)

    monkeypatch.setattr(kmeans_module, "fit_em", spy_fit_em)
    monkeypatch.setattr(kmeans_module, "assign_nearest", spy_nearest)
    monkeypatch.setattr(kmeans_module, "all_sqdist", spy_sqdist)
    km = KMeans(3, random_state=0).fit(data)
    km.predict(data)
    km.transform(data)
    km.score(data)
    assert len(seen) == 4
    for arr in seen:
        assert arr is data or (np.shares_memory(arr, data) and arr.dtype == data.dtype)
    assert km.cluster_centers_.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_input(X, dtype, tmp_path):
    data = np.ascontiguousarray(X, dtype=dtype)
    ref = KMeans(3, random_state=0).fit(data)
    frozen = data.copy()
    frozen.setflags(write=False)
    _same_fit(KMeans(3, random_state=0).fit(frozen), ref)
    path = tmp_path / "X.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    km = KMeans(3, random_state=0).fit(mapped)
    _same_fit(km, ref)
    np.testing.assert_array_equal(km.predict(mapped), ref.labels_)
    np.testing.assert_array_equal(km.labels_, naive.nearest_centers(data, km.cluster_centers_)[0])


def test_random_state_for_fit_gives_the_stream_of_a_new_random_state():
    from fastem.validation import random_state_for_fit
    # the lent object was left mid-stream by an earlier fit, a cached Gaussian included
    with random_state_for_fit(5) as rng:
        rng.uniform(size=7)
        rng.standard_normal(3)
        used = rng
    for seed in (5, 0, 2**32 - 1):
        with random_state_for_fit(seed) as rng:
            assert rng is used   # reseeded, not rebuilt
            ours = (rng.uniform(size=4), rng.standard_normal(3), rng.randint(0, 100, 5))
        fresh = np.random.RandomState(seed)
        ref = (fresh.uniform(size=4), fresh.standard_normal(3), fresh.randint(0, 100, 5))
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a, b)


def test_random_state_for_fit_nested_and_other_seeds():
    from fastem.validation import random_state_for_fit
    with random_state_for_fit(1) as outer:
        state = outer.get_state()[1].copy()
        with random_state_for_fit(1) as inner:
            assert inner is not outer   # a nested fit must not reseed the outer one
            inner.uniform(size=10)
        np.testing.assert_array_equal(outer.get_state()[1], state)
    given = np.random.RandomState(3)
    with random_state_for_fit(given) as rng:
        assert rng is given
    with random_state_for_fit(None) as rng:
        assert rng is np.random.mtrand._rand
    with pytest.raises(ValueError):
        with random_state_for_fit(-1):
            pass
    with pytest.raises(ValueError, match="random_state"):
        with random_state_for_fit("seed"):
            pass
