"""The model file: ``estimator.save(path)`` / ``fastem.load(path)``.

Round trips must give bitwise-identical predictions; the file must never execute code; a
modified, truncated or foreign file must give a clear ValueError (never a wrong model)."""
import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import fastem
from fastem import (BernoulliMixture, GaussianMixture, InconsistentVersionWarning, KMeans,
                    MiniBatchKMeans)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(150, 3) + c for c in ([0, 0, 0], [5, 0, 2], [0, 6, -3])])
    B = (rng.rand(400, 12) < np.where(np.arange(12) < 6, 0.8, 0.1)[None] *
         (1 - (np.arange(400) % 2)[:, None]) + 0.05).astype(np.uint8)
    return X, B


def _fitted_models(X, B):
    yield KMeans(3, random_state=0).fit(X), X
    yield KMeans(3, random_state=0).fit(X.astype(np.float32)), X.astype(np.float32)
    yield KMeans(3, random_state=0).fit(sp.csr_matrix(X)), sp.csr_matrix(X)
    yield MiniBatchKMeans(3, random_state=0, batch_size=64).fit(X), X
    for ct in ("full", "tied", "diag", "spherical"):
        yield GaussianMixture(3, covariance_type=ct, random_state=0).fit(X), X
    yield GaussianMixture(2, random_state=0).fit(X.astype(np.float32)), X.astype(np.float32)
    yield BernoulliMixture(2, random_state=0).fit(B), B
    yield BernoulliMixture(2, random_state=0).fit(sp.csr_matrix(B)), sp.csr_matrix(B)


def _outputs(model, X):
    out = {"predict": model.predict(X)}
    for name in ("predict_proba", "score_samples", "transform"):
        if hasattr(model, name):
            out[name] = getattr(model, name)(X)
    out["score"] = model.score(X)
    if hasattr(model, "bic"):
        out["bic"] = model.bic(X)
    return out


def test_round_trip_predictions_are_bitwise_identical(data, tmp_path):
    X, B = data
    path = tmp_path / "model.fastem"
    for model, Xm in _fitted_models(X, B):
        model.save(path)
        loaded = fastem.load(path)
        assert type(loaded) is type(model)
        assert loaded.get_params().keys() == model.get_params().keys()
        assert repr(loaded) == repr(model)
        before, after = _outputs(model, Xm), _outputs(loaded, Xm)
        for name in before:
            assert np.array_equal(before[name], after[name]), (model, name)
        for name in model._saved_attributes:
            if hasattr(model, name):
                a, b = getattr(model, name), getattr(loaded, name)
                assert type(a) is type(b) or isinstance(a, np.ndarray), name
                assert np.array_equal(a, b), name
                if isinstance(a, np.ndarray):
                    assert a.dtype == b.dtype


def test_file_is_an_npz_without_pickles(data, tmp_path):
    X, _ = data
    path = tmp_path / "m.npz"
    GaussianMixture(2, random_state=0).fit(X).save(path)
    with np.load(path, allow_pickle=False) as f:   # readable without pickle
        meta = json.loads(f["__fastem__"].tobytes())
        assert meta["estimator"] == "GaussianMixture"
        assert meta["fastem_version"] == fastem.__version__
        assert meta["params"]["n_components"] == 2
        assert np.array_equal(f["fitted.means_"], fastem.load(path).means_)


def test_mini_batch_stream_continues_after_loading(data, tmp_path):
    X, _ = data
    a = MiniBatchKMeans(3, random_state=0, batch_size=64).fit(X)
    a.save(tmp_path / "mb")
    b = fastem.load(tmp_path / "mb")
    for chunk in (X[:100], X[100:300], X[300:]):
        a.partial_fit(chunk)
        b.partial_fit(chunk)
        assert np.array_equal(a.cluster_centers_, b.cluster_centers_)


def test_mixture_warm_start_after_loading_equals_the_original(data, tmp_path):
    X, _ = data
    a = GaussianMixture(3, random_state=0, max_iter=1, warm_start=True)
    with pytest.warns(Warning, match="did not converge"):
        a.fit(X)
    a.save(tmp_path / "g")
    b = fastem.load(tmp_path / "g")
    a.set_params(max_iter=50).fit(X)
    b.set_params(max_iter=50).fit(X)
    assert a.n_iter_ == b.n_iter_ and np.array_equal(a.means_, b.means_)


def test_parameters_round_trip(tmp_path):
    means = np.arange(6.0).reshape(3, 2)
    rs = np.random.RandomState(7)
    rs.rand(3)
    model = GaussianMixture(3, means_init=means, random_state=rs, tol=1e-5,
                            covariance_type="diag")
    model.save(tmp_path / "u")
    loaded = fastem.load(tmp_path / "u")
    assert not hasattr(loaded, "weights_")
    assert np.array_equal(loaded.means_init, means)
    assert loaded.tol == 1e-5 and loaded.covariance_type == "diag"
    assert np.array_equal(loaded.random_state.rand(5), rs.rand(5))


def test_callable_init_is_not_loaded(data, tmp_path):
    X, _ = data

    def first_rows(X, n_clusters, random_state):
        return X[:n_clusters]

    model = KMeans(3, init=first_rows).fit(X)
    model.save(tmp_path / "c")
    with pytest.warns(UserWarning, match="callables are not loaded"):
        loaded = fastem.load(tmp_path / "c")
    assert loaded.init == "k-means++"
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_other_version_warns(data, tmp_path):
    X, _ = data
    path = tmp_path / "v"
    KMeans(2, random_state=0).fit(X).save(path)
    _rewrite(path, lambda meta, arrays: meta.update(fastem_version="0.0.1"))
    with pytest.warns(InconsistentVersionWarning, match=r"fastem 0\.0\.1"):
        loaded = fastem.load(path)
    assert loaded.cluster_centers_.shape == (2, 3)


# ------------------------------------------------------------------------ bad files
def _rewrite(path, change, rehash=True):
    """Apply ``change(meta, arrays)`` to a model file; with ``rehash`` the checksums are
    recomputed (a deliberate edit that keeps the file self-consistent)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("__fastem__").tobytes())
    change(meta, arrays)
    if rehash:
        meta["arrays"] = {k: {"sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes())
                              .hexdigest(), "dtype": a.dtype.str, "shape": list(a.shape)}
                          for k, a in arrays.items()}
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, __fastem__=blob, **arrays)


@pytest.fixture
def saved_gmm(data, tmp_path):
    X, _ = data
    path = tmp_path / "g.npz"
    GaussianMixture(3, random_state=0).fit(X).save(path)
    return path


def _scale_means(meta, arrays):
    arrays["fitted.means_"] = arrays["fitted.means_"] * 2


@pytest.mark.parametrize("change, rehash, message", [
    (_scale_means, False, "does not match its checksum"),
    (lambda m, a: m.update(estimator="os.system"), True, "unknown estimator"),
    (lambda m, a: m.update(format="something-else"), True, "not a fastem model file"),
    (lambda m, a: m.update(format_version=99), True, "newer"),
    (lambda m, a: m["params"].update(evil=1), True, "not a parameter"),
    (lambda m, a: m.pop("fitted"), True, "no 'fitted' entry"),
    (lambda m, a: a.update({"fitted.means_": a["fitted.means_"][:2]}), True, "means_"),
    (lambda m, a: a.update({"fitted.weights_": a["fitted.weights_"] * 3}), True, "sum to 1"),
    (lambda m, a: a.update({"fitted.precisions_cholesky_": -a["fitted.precisions_cholesky_"]}),
     True, "positive diagonal"),
    (lambda m, a: a.update({"fitted.means_": np.full_like(a["fitted.means_"], np.nan)}), True,
     "non-finite"),
    (lambda m, a: m["fitted"].update(n_iter_="many"), True, "n_iter_"),
    (lambda m, a: m["fitted"].update(lower_bound_={"array": "nowhere"}), True, "missing array"),
    (lambda m, a: m["params"].update(covariance_type="bogus"), True, "covariance_type"),
    (lambda m, a: a.update(extra=np.zeros(3)), False, "differ from those its metadata lists"),
])
def test_modified_files_are_refused(saved_gmm, change, rehash, message):
    _rewrite(saved_gmm, change, rehash)
    with pytest.raises(ValueError, match=message):
        fastem.load(saved_gmm)


def test_truncated_and_foreign_files_are_refused(saved_gmm, tmp_path):
    raw = saved_gmm.read_bytes()
    for size in (0, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        bad = tmp_path / f"cut{size}"
        bad.write_bytes(raw[:size])
        with pytest.raises(ValueError):
            fastem.load(bad)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF   # inside a member: the zip CRC or the checksum catches it
    (tmp_path / "flip").write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        fastem.load(tmp_path / "flip")
    (tmp_path / "text.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a fastem model file"):
        fastem.load(tmp_path / "text.csv")
    np.savez(tmp_path / "plain.npz", X=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no metadata"):
        fastem.load(tmp_path / "plain.npz")
    with pytest.raises(OSError):
        fastem.load(tmp_path / "missing")


class _Bomb:
    ran = False

    def __reduce__(self):
        return (_Bomb._explode, ())

    @staticmethod
    def _explode():
        _Bomb.ran = True
        return 0


def test_loading_never_unpickles(saved_gmm, tmp_path):
    with zipfile.ZipFile(saved_gmm) as z:
        members = {n: z.read(n) for n in z.namelist()}
    payload = io.BytesIO()
    np.save(payload, np.array([_Bomb()], dtype=object), allow_pickle=True)
    members["fitted.means_.npy"] = payload.getvalue()
    evil = tmp_path / "evil.npz"
    with zipfile.ZipFile(evil, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    with pytest.raises(ValueError):
        fastem.load(evil)
    assert not _Bomb.ran


def test_save_refuses_foreign_values(tmp_path):
    model = KMeans(2, init=np.array([["a", "b"], ["c", "d"]], dtype=object))
    with pytest.raises(TypeError, match="dtype object"):
        model.save(tmp_path / "x")


def test_pickle_still_works(data):
    X, _ = data
    model = GaussianMixture(2, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
