"""MiniBatchKMeans: the update rule against NumPy written from the math, scikit-learn's
behaviour (parameters, early stopping, quality), determinism and input handling."""
import warnings

import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import make_blobs

from fastem import ChunkedArray, MiniBatchKMeans

from . import naive


def blobs(n=6000, d=6, k=8, seed=0, dtype=np.float64):
    X, _ = make_blobs(n_samples=n, n_features=d, centers=k, random_state=seed)
    return X.astype(dtype)


def reference_step(X, w, centers, counts):
    """counts_j += W_j; c_j = (old count c_j + sum_i w_i x_i) / new count, from the labels of
    the centres before the step."""
    labels, _ = naive.nearest_centers(X, centers)
    new, counts = centers.copy(), counts.copy()
    for j in range(len(centers)):
        mine = labels == j
        wj = w[mine].sum()
        if wj > 0:
            new[j] = (centers[j] * counts[j] + w[mine] @ X[mine]) / (counts[j] + wj)
            counts[j] += wj
    return new, counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_partial_fit_steps_match_the_update_rule(dtype):
    X = blobs(dtype=dtype)
    rng = np.random.RandomState(0)
    init = X[rng.choice(len(X), 8, replace=False)].astype(np.float64)
    est = MiniBatchKMeans(8, init=init, reassignment_ratio=0.0)
    centers, counts = init.copy(), np.zeros(8)
    for chunk in np.array_split(np.arange(len(X)), 7):
        w = rng.uniform(0.5, 2.0, size=len(chunk))
        est.partial_fit(X[chunk], sample_weight=w)
        centers, counts = reference_step(X[chunk].astype(np.float64), w, centers, counts)
        # the centres the kernels search are in X's dtype; the accumulators are float64
        np.testing.assert_allclose(est.cluster_centers_, centers.astype(dtype),
                                   rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert est.n_steps_ == 7
    assert est.cluster_centers_.dtype == dtype
    labels, sqdist = naive.nearest_centers(X[chunk], est.cluster_centers_)
    np.testing.assert_array_equal(est.labels_, labels)
    assert est.inertia_ == pytest.approx(float(w @ sqdist), rel=1e-6)


def test_starved_centres_are_reassigned_to_batch_points():
    X = blobs(n=2000, k=3)
    init = np.vstack([X[:2], np.full((1, X.shape[1]), 1e3)])   # centre 2 never wins
    est = MiniBatchKMeans(3, init=init, reassignment_ratio=0.01, random_state=0)
    est.partial_fit(X[:500])
    # centre 2 got no points (count 0): it now sits on a row of the batch
    assert np.isclose(est.cluster_centers_[2], X[:500]).all(axis=1).any()
    no = MiniBatchKMeans(3, init=init, reassignment_ratio=0.0).partial_fit(X[:500])
    np.testing.assert_array_equal(no.cluster_centers_[2], init[2])


def test_fit_is_deterministic_and_stops_early():
    X = blobs(n=20000)
    a = MiniBatchKMeans(8, random_state=3).fit(X)
    b = MiniBatchKMeans(8, random_state=3).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.n_steps_ < 100 * 20000 // 1024          # the no-improvement rule stopped it
    assert a.n_iter_ == int(np.ceil(a.n_steps_ * 1024 / 20000))
    c = MiniBatchKMeans(8, random_state=3, max_no_improvement=None, max_iter=2).fit(X)
    assert c.n_steps_ == 2 * 20000 // 1024
    d = MiniBatchKMeans(8, random_state=3, compute_labels=False).fit(X)
    assert not hasattr(d, "labels_") and d.inertia_ > 0


def test_quality_matches_scikit_learn():
    """Median final inertia over 5 seeds within 1 % of scikit-learn's (same batch size and
    max_iter); both evaluated on all of X."""
    X = blobs(n=30000, d=8, k=16, seed=1)
    ours = np.median([MiniBatchKMeans(16, random_state=s).fit(X).inertia_ for s in range(5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = np.median([SkMiniBatchKMeans(16, random_state=s, n_init=1).fit(X).inertia_
                            for s in range(5)])
    assert ours <= 1.01 * theirs, (ours, theirs)


def test_memmap_chunked_and_float32_inputs(tmp_path):
    X = blobs(dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    M = np.load(tmp_path / "X.npy", mmap_mode="r")
    a = MiniBatchKMeans(8, random_state=0).fit(X)
    b = MiniBatchKMeans(8, random_state=0).fit(M)
    c = MiniBatchKMeans(8, random_state=0).fit(ChunkedArray(np.array_split(X, 5)))
    assert a.cluster_centers_.dtype == np.float32
    for other in (b, c):
        np.testing.assert_array_equal(a.cluster_centers_, other.cluster_centers_)
        np.testing.assert_array_equal(a.labels_, other.labels_)
    np.testing.assert_array_equal(a.predict(M), a.labels_)


@pytest.mark.parametrize("params, match", [
    ({"batch_size": 0}, "batch_size"), ({"reassignment_ratio": -1.0}, "reassignment_ratio"),
    ({"init_size": 0}, "init_size"), ({"max_no_improvement": -1}, "max_no_improvement"),
    ({"tol": -1.0}, "tol"), ({"n_init": "always"}, "n_init")])
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        MiniBatchKMeans(3, **params).fit(blobs(n=200))


def test_partial_fit_checks_features():
    X = blobs(n=300)
    est = MiniBatchKMeans(3, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :2])


def test_scikit_learn_protocol():
    from sklearn.base import clone
    from sklearn.utils.estimator_checks import check_estimator
    est = MiniBatchKMeans(3, batch_size=64, random_state=0)
    assert clone(est).get_params() == est.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # as for scikit-learn's own MiniBatchKMeans: weighted rows and repeated rows are
        # different data sets to draw random batches from, so the fits differ
        check_estimator(MiniBatchKMeans(3, random_state=0, batch_size=32),
                        expected_failed_checks={
                            "check_sample_weight_equivalence_on_dense_data":
                                "random batches differ between weighted and repeated rows",
                            "check_sample_weight_equivalence_on_sparse_data":
                                "random batches differ between weighted and repeated rows"})
