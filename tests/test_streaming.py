"""Out-of-core fits: memory-mapped arrays and ChunkedArray sources give the in-memory result.

The reference is the same estimator on the concatenated in-memory array (whose kernels are
checked against NumPy and scikit-learn elsewhere); chunking may change only the rounding of
the float64 statistic sums.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastem.sources as sources_module
from fastem import BernoulliMixture, ChunkedArray, GaussianMixture, KMeans

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
RTOL = 1e-10


def blobs(n=3000, d=5, k=4, dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    X = centers[rng.randint(k, size=n)] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2, d)
    return np.ascontiguousarray(X, dtype=dtype)


def binary(n=3000, d=12, seed=0):
    rng = np.random.RandomState(seed)
    theta = rng.uniform(0.05, 0.95, size=(3, d))
    return (rng.uniform(size=(n, d)) < theta[rng.randint(3, size=n)]).astype(np.uint8)


def uneven_chunks(X, n_chunks=7, seed=1):
    """``n_chunks`` consecutive pieces of X with random (uneven, non-empty) sizes."""
    rng = np.random.RandomState(seed)
    cuts = np.sort(rng.choice(np.arange(1, X.shape[0]), size=n_chunks - 1, replace=False))
    return [X[a:b] for a, b in zip(np.r_[0, cuts], np.r_[cuts, X.shape[0]])]


def fit_quietly(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, **kw)


def assert_close(a, b, what, rtol=RTOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 1.0
    err = np.max(np.abs(a - b)) / scale if b.size else 0.0
    assert err <= rtol, f"{what}: relative difference {err:.3g} > {rtol:g}"


def assert_same_fit(ours, ref, names):
    assert ours.n_iter_ == ref.n_iter_
    for name in names:
        assert_close(getattr(ours, name), getattr(ref, name), name)


MIXTURE_ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_kmeans_chunks_equal_one_array(dtype, init):
    X = blobs(dtype=dtype)
    w = np.random.RandomState(5).uniform(0.5, 2.0, size=len(X))
    for kw in ({}, {"sample_weight": w}):
        ref = fit_quietly(KMeans(4, init=init, random_state=3), X, **kw)
        ours = fit_quietly(KMeans(4, init=init, random_state=3), ChunkedArray(uneven_chunks(X)),
                           **kw)
        assert_same_fit(ours, ref, ["cluster_centers_", "inertia_"])
        np.testing.assert_array_equal(ours.labels_, ref.labels_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_mixture_chunks_equal_one_array(dtype, covariance_type):
    X = blobs(dtype=dtype)
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        kw = dict(covariance_type=covariance_type, init_params=init, random_state=2,
                  max_iter=20, tol=1e-8)
        ref = fit_quietly(GaussianMixture(4, **kw), X)
        ours = fit_quietly(GaussianMixture(4, **kw), ChunkedArray(uneven_chunks(X)))
        assert_same_fit(ours, ref, MIXTURE_ATTRS)


@pytest.mark.parametrize("form", ["dense", "csr", "bool"])
def test_bernoulli_mixture_chunks_equal_one_array(form):
    B = binary()
    convert = {"dense": lambda a: a, "csr": sp.csr_matrix, "bool": lambda a: a.astype(bool)}[form]
    w = np.random.RandomState(5).uniform(0.5, 2.0, size=len(B))
    for init in ("kmeans", "random", "random_from_data"):
        for kw in ({}, {"sample_weight": w}):
            est = dict(init_params=init, random_state=4, max_iter=20, tol=1e-8)
            ref = fit_quietly(BernoulliMixture(3, **est), convert(B), **kw)
            chunks = ChunkedArray([convert(c) for c in uneven_chunks(B)])
            ours = fit_quietly(BernoulliMixture(3, **est), chunks, **kw)
            assert_same_fit(ours, ref, ["weights_", "means_", "lower_bound_"])


def test_float32_chunks_are_used_without_conversion(monkeypatch):
    """Chunks already in a kernel dtype reach the kernels as they are (no copy)."""
    X = blobs(dtype=np.float32)
    pieces = uneven_chunks(X)
    seen = []
    real = sources_module.StreamSource.chunks

    def spy(self):
        for rows, Xc, w in real(self):
            seen.append(Xc)
            yield rows, Xc, w

    monkeypatch.setattr(sources_module.StreamSource, "chunks", spy)
    KMeans(4, random_state=0, max_iter=3).fit(ChunkedArray(pieces))
    assert seen and all(Xc.dtype == np.float32 for Xc in seen)
    assert all(any(np.shares_memory(Xc, p) for p in pieces) for Xc in seen)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_in_many_chunks_equals_in_memory(tmp_path, monkeypatch, dtype):
    """A memory-mapped .npy file is streamed in chunks (here made small) with the same result."""
    X = blobs(n=5000, dtype=dtype)
    np.save(tmp_path / "X.npy", X)
    monkeypatch.setattr(sources_module, "STREAM_CHUNK_BYTES", 700 * X.shape[1] * X.itemsize)
    M = np.load(tmp_path / "X.npy", mmap_mode="r")
    ref = fit_quietly(KMeans(5, random_state=0), X)
    ours = fit_quietly(KMeans(5, random_state=0), M)
    assert_same_fit(ours, ref, ["cluster_centers_", "inertia_"])
    np.testing.assert_array_equal(ours.predict(M), ref.predict(X))
    np.testing.assert_allclose(ours.transform(M), ref.transform(X), rtol=1e-6)
    for ct in COVARIANCE_TYPES:
        ref = fit_quietly(GaussianMixture(3, covariance_type=ct, random_state=0), X)
        ours = fit_quietly(GaussianMixture(3, covariance_type=ct, random_state=0), M)
        assert_same_fit(ours, ref, MIXTURE_ATTRS)
        np.testing.assert_array_equal(ours.predict(M), ref.predict(X))
        assert_close(ours.predict_proba(M), ref.predict_proba(X), "predict_proba", 1e-9)
        assert_close(ours.score_samples(M), ref.score_samples(X), "score_samples", 1e-9)
        assert ours.bic(M) == pytest.approx(ref.bic(X), rel=1e-10)


def test_memmap_of_integers_is_converted_chunk_by_chunk(tmp_path, monkeypatch):
    X = np.random.RandomState(0).randint(-50, 50, size=(4000, 3)).astype(np.int16)
    np.save(tmp_path / "X.npy", X)
    monkeypatch.setattr(sources_module, "STREAM_CHUNK_BYTES", 512 * 3 * 2)
    ref = fit_quietly(KMeans(3, random_state=0), X.astype(np.float64))
    ours = fit_quietly(KMeans(3, random_state=0), np.load(tmp_path / "X.npy", mmap_mode="r"))
    assert ours.cluster_centers_.dtype == np.float64
    assert_same_fit(ours, ref, ["cluster_centers_", "inertia_"])


def test_npy_paths_and_callables_are_chunk_sources(tmp_path):
    X = blobs(dtype=np.float32)
    pieces = uneven_chunks(X)
    paths = []
    for i, p in enumerate(pieces):
        paths.append(tmp_path / f"part{i}.npy")
        np.save(paths[-1], p)
    ref = fit_quietly(GaussianMixture(4, covariance_type="diag", random_state=0), X)
    for data in (ChunkedArray(paths), ChunkedArray(lambda: (np.load(p) for p in paths))):
        ours = fit_quietly(GaussianMixture(4, covariance_type="diag", random_state=0), data)
        assert_same_fit(ours, ref, MIXTURE_ATTRS)
        assert_close(ours.score_samples(data), ref.score_samples(X), "score_samples", 1e-9)
        assert ours.score(data) == pytest.approx(ref.score(X), rel=1e-10)


def test_chunk_source_errors_are_clear():
    X = blobs()
    bad = X[:100].copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"X \(chunk 1\) contains NaN"):
        KMeans(3).fit(ChunkedArray([X[:100], bad]))
    with pytest.raises(ValueError, match="Chunk 1 has 4 columns"):
        KMeans(3).fit(ChunkedArray([X[:100], X[:100, :4]]))
    with pytest.raises(ValueError, match="one dtype"):
        KMeans(3).fit(ChunkedArray([X[:100], X[:100].astype(np.float32)]))
    with pytest.raises(ValueError, match="needs binary data"):
        BernoulliMixture(2).fit(ChunkedArray([binary()[:50], np.full((5, 12), 2)]))
    with pytest.raises(ValueError, match="at least one chunk"):
        ChunkedArray([])
    with pytest.raises(TypeError, match="sequence of arrays"):
        ChunkedArray("data.npy")
    calls = []

    def shrinking():
        calls.append(1)
        return iter([X[:100], X[100:200]] if len(calls) == 1 else [X[:100], X[100:150]])

    with pytest.raises(ValueError, match="changed between passes"):
        KMeans(3, random_state=0).fit(ChunkedArray(shrinking))
    with pytest.raises(ValueError, match="no chunks"):
        KMeans(3).fit(ChunkedArray(lambda: iter([])))


def test_chunks_are_never_written(tmp_path):
    X = blobs()
    pieces = [p.copy() for p in uneven_chunks(X)]
    before = [p.copy() for p in pieces]
    fit_quietly(GaussianMixture(3, random_state=0), ChunkedArray(pieces))
    fit_quietly(KMeans(3, random_state=0), ChunkedArray(pieces))
    for p, b in zip(pieces, before):
        np.testing.assert_array_equal(p, b)
