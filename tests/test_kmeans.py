"""fastem.KMeans against scikit-learn's Lloyd k-means and the reference loop in tests/naive.py."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from fastem import KMeans

from . import naive

DTYPES = [np.float32, np.float64]


def _overlapping_blobs():
    X, _ = make_blobs(n_samples=1500, centers=6, n_features=3, cluster_std=3.0, random_state=0)
    return X


DATASETS = {
    "iris": (lambda: load_iris().data, 3),
    "digits": (lambda: load_digits().data, 10),
    "blobs": (_overlapping_blobs, 6),
}


def _perturbed_rows(X, k, seed=0):
    """k random rows of X, nudged so no point is exactly equidistant from two centres."""
    rng = np.random.RandomState(seed)
    rows = X[rng.choice(len(X), k, replace=False)]
    return rows + rng.normal(scale=1e-3, size=rows.shape)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=400, centers=4, n_features=3, cluster_std=1.5, random_state=1)
    return X


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_matches_sklearn_lloyd(name, dtype):
    load, k = DATASETS[name]
    X = np.ascontiguousarray(load(), dtype=dtype)
    init = _perturbed_rows(X.astype(np.float64), k).astype(dtype)
    ours = KMeans(n_clusters=k, init=init, n_init=1, tol=0).fit(X)
    ref = SKKMeans(n_clusters=k, init=init, n_init=1, tol=0, algorithm="lloyd").fit(X)
    assert ours.cluster_centers_.dtype == X.dtype
    assert ours.cluster_centers_.shape == (k, X.shape[1])
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    if dtype == np.float64:
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_,
                                   rtol=1e-9, atol=1e-9)
    else:
        # scikit-learn sums its float32 inertia in float32; evaluate its solution exactly
        exact = float(((X.astype(np.float64)
                        - ref.cluster_centers_.astype(np.float64)[ref.labels_]) ** 2).sum())
        assert ours.inertia_ == pytest.approx(exact, rel=1e-6)
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)
        scale = np.abs(X).max()
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_,
                                   rtol=1e-5, atol=1e-5 * scale)
    # and the model is a fixed point of the reference Lloyd loop from the same start
    centers, labels, inertia, n_iter = naive.lloyd(X, init, max_iter=300, tol=0)
    np.testing.assert_array_equal(ours.labels_, labels)
    assert ours.n_iter_ == n_iter
    assert ours.inertia_ == pytest.approx(inertia, rel=1e-6)


def test_matches_sklearn_with_sample_weight(blobs):
    X = blobs
    rng = np.random.RandomState(0)
    w = rng.uniform(0.2, 5.0, size=len(X))
    init = _perturbed_rows(X, 4, seed=3)
    ours = KMeans(4, init=init, n_init=1, tol=0).fit(X, sample_weight=w)
    ref = SKKMeans(4, init=init, n_init=1, tol=0, algorithm="lloyd").fit(X, sample_weight=w)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)


def test_integer_sample_weight_equals_repeated_rows(blobs):
    X = blobs
    rng = np.random.RandomState(5)
    w = rng.randint(0, 4, size=len(X))
    w[:4] = 1  # the init rows are kept
    init = X[:4] + 0.01
    weighted = KMeans(4, init=init, n_init=1, tol=0).fit(X, sample_weight=w)
    repeated = KMeans(4, init=init, n_init=1, tol=0).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    assert weighted.n_iter_ == repeated.n_iter_
    np.testing.assert_array_equal(np.repeat(weighted.labels_, w), repeated.labels_)


def test_integer_sample_weight_equals_repeated_rows_kmeanspp(blobs):
    # k-means++ draws rows with probability proportional to w * D^2, so with the rows in the
    # same order a weight of m is the same as m copies, random seeding included. (Not so for
    # 'random', which draws distinct *rows*: two copies of one point can both be drawn.)
    init = "k-means++"
    rng = np.random.RandomState(6)
    w = rng.randint(0, 4, size=len(blobs))
    weighted = KMeans(4, init=init, n_init=3, random_state=0).fit(blobs, sample_weight=w)
    repeated = KMeans(4, init=init, n_init=3, random_state=0).fit(np.repeat(blobs, w, axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    np.testing.assert_array_equal(weighted.predict(blobs), repeated.predict(blobs))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeanspp_n_init_10_as_good_as_sklearn(dtype):
    X, _ = make_blobs(n_samples=3000, centers=20, cluster_std=2.5, random_state=0)
    X = X.astype(dtype)
    ours = KMeans(20, init="k-means++", n_init=10, random_state=0).fit(X)
    ref = SKKMeans(20, init="k-means++", n_init=10, random_state=0).fit(X)
    assert ours.inertia_ <= 1.01 * ref.inertia_
    assert len(np.unique(ours.labels_)) == 20
    # the reported inertia is the inertia of the reported centres and labels
    exact = naive.inertia(X, ours.cluster_centers_)
    assert ours.inertia_ == pytest.approx(exact, rel=1e-6)
    labels, _ = naive.nearest_centers(X, ours.cluster_centers_)
    agree = np.mean(labels == ours.labels_)
    assert agree > 0.999 if dtype == np.float32 else agree == 1.0


@pytest.mark.parametrize("tol", [1e-4, 1e-2, 0.3, 1e3])
def test_tol_semantics_match_sklearn(tol):
    X = _overlapping_blobs()
    init = _perturbed_rows(X, 6, seed=2)
    ours = KMeans(6, init=init, n_init=1, tol=tol).fit(X)
    ref = SKKMeans(6, init=init, n_init=1, tol=tol, algorithm="lloyd").fit(X)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    full = KMeans(6, init=init, n_init=1, tol=0).fit(X)
    if tol >= 1e3:
        assert ours.n_iter_ == 1
    assert ours.n_iter_ <= full.n_iter_
    # labels are always those of the returned centres
    np.testing.assert_array_equal(ours.labels_,
                                  naive.nearest_centers(X, ours.cluster_centers_)[0])


def test_max_iter_limits_iterations(blobs):
    init = blobs[:4] + 0.5
    ours = KMeans(4, init=init, n_init=1, tol=0, max_iter=2).fit(blobs)
    ref = SKKMeans(4, init=init, n_init=1, tol=0, max_iter=2, algorithm="lloyd").fit(blobs)
    assert ours.n_iter_ == 2 == ref.n_iter_
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_transform_score(blobs, dtype):
    X = blobs.astype(dtype)
    rng = np.random.RandomState(1)
    w = rng.uniform(0.5, 2.0, size=len(X))
    km = KMeans(4, random_state=0).fit(X, sample_weight=w)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert km.predict(X).shape == (len(X),)
    new = (rng.normal(size=(57, 3)) * 5).astype(dtype)
    _label_check = naive.nearest_centers(new, km.cluster_centers_)[0]
    np.testing.assert_array_equal(km.predict(new), _label_check)
    D = km.transform(new)
    assert D.shape == (57, 4) and D.dtype == X.dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(D, cdist(new.astype(np.float64),
                                        km.cluster_centers_.astype(np.float64)), rtol=rtol)
    assert km.score(X, sample_weight=w) == pytest.approx(-km.inertia_, rel=1e-10)
    assert km.score(new) == pytest.approx(-naive.inertia(new, km.cluster_centers_), rel=1e-10)
    # fit_predict / fit_transform agree with fit followed by labels_ / transform
    np.testing.assert_array_equal(KMeans(4, random_state=0).fit_predict(X, sample_weight=w),
                                  km.labels_)
    ft = KMeans(4, random_state=0).fit_transform(X, sample_weight=w)
    np.testing.assert_allclose(ft, km.transform(X), rtol=rtol)


def _empty_cluster_check(X, init):
    km = KMeans(len(init), init=init, n_init=1, tol=0).fit(X)
    assert np.isfinite(km.cluster_centers_).all()
    assert np.isfinite(km.inertia_)
    np.testing.assert_array_equal(np.bincount(km.labels_, minlength=len(init)) > 0, True)
    centers, labels, inertia, n_iter = naive.lloyd(X, init, tol=0)
    np.testing.assert_allclose(km.cluster_centers_, centers, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(km.labels_, labels)
    assert km.inertia_ == pytest.approx(inertia, rel=1e-9)
    assert km.n_iter_ == n_iter
    return km


def test_empty_clusters_all_centres_equal(blobs):
    X = blobs[:60]
    init = np.repeat(X[7:8], 5, axis=0)
    _empty_cluster_check(X, init)


def test_empty_clusters_centre_far_away(blobs):
    X = blobs[:60]
    init = np.vstack([X[:3] + 0.01, np.full((1, 3), 1e4)])
    _empty_cluster_check(X, init)


def test_empty_clusters_with_duplicated_points():
    # relocation first hands two copies of one point to two empty clusters; the tie then
    # empties one of them again, and it must be re-seeded elsewhere
    X = np.array([[0.0], [0.0], [3.0], [3.0], [1.0], [-0.5], [3.2]])
    km = _empty_cluster_check(X, np.zeros((4, 1)))
    assert len(np.unique(km.cluster_centers_)) == 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_cluster_relocation_does_not_depend_on_row_order(dtype):
    # 10 and 10.5 are exactly equally far (0.25**2) from their centre 10.25 and are the
    # farthest points when centre 2 (far away) comes back empty: the choice between them
    # must not depend on where the rows happen to sit.
    X = np.array([[0.0], [0.2], [10.0], [10.5]], dtype=dtype)
    init = np.array([[0.1], [10.25], [100.0]], dtype=dtype)
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        km = KMeans(3, init=init, n_init=1, tol=0).fit(X[perm])
        centers, labels, _, _ = naive.lloyd(X[perm], init, tol=0)
        np.testing.assert_array_equal(km.cluster_centers_, centers.astype(dtype))
        np.testing.assert_array_equal(km.labels_, labels)
        np.testing.assert_allclose(km.cluster_centers_.ravel(), [0.1, 10.5, 10.0], rtol=1e-6)


def test_as_many_clusters_as_distinct_points():
    rng = np.random.RandomState(2)
    X = rng.normal(size=(6, 2))
    km = KMeans(6, init=np.zeros((6, 2)), n_init=1).fit(X)
    assert sorted(km.labels_) == list(range(6))
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_random_state_reproducible(blobs, init):
    a = KMeans(4, init=init, random_state=7).fit(blobs)
    b = KMeans(4, init=init, random_state=7).fit(blobs)
    c = KMeans(4, init=init, random_state=np.random.RandomState(7)).fit(blobs)
    for other in (b, c):
        np.testing.assert_array_equal(a.cluster_centers_, other.cluster_centers_)
        np.testing.assert_array_equal(a.labels_, other.labels_)
        assert a.inertia_ == other.inertia_
    # the result really comes from a seeded random init: seeds give different starts
    starts = {KMeans(4, init=init, random_state=s, max_iter=1, n_init=1).fit(blobs)
              .cluster_centers_.tobytes() for s in range(5)}
    assert len(starts) > 1


def test_random_init_auto_runs_10_inits(blobs, capsys):
    KMeans(4, init="random", n_init="auto", random_state=0, verbose=1).fit(blobs)
    out = capsys.readouterr().out
    assert sum(line.startswith("Initialization") for line in out.splitlines()) == 10
    KMeans(4, init="k-means++", n_init="auto", random_state=0, verbose=1).fit(blobs)
    out = capsys.readouterr().out
    assert sum(line.startswith("Initialization") for line in out.splitlines()) == 1
    KMeans(4, init="k-means++", n_init=3, random_state=0, verbose=1).fit(blobs)
    out = capsys.readouterr().out
    assert sum(line.startswith("Initialization") for line in out.splitlines()) == 3


def test_verbose_2_prints_every_iteration(blobs, capsys):
    init = _perturbed_rows(blobs, 4, seed=4)
    km = KMeans(4, init=init, n_init=1, tol=0, verbose=2).fit(blobs)
    lines = capsys.readouterr().out.splitlines()
    iteration_lines = [line for line in lines if "iter" in line and "Initialization" not in line]
    assert km.n_iter_ > 1
    assert len(iteration_lines) == km.n_iter_
    KMeans(4, init=init, n_init=1, tol=0, verbose=0).fit(blobs)
    assert capsys.readouterr().out == ""


def test_best_of_n_init_is_kept(blobs, capsys):
    first = KMeans(4, init="random", n_init=1, random_state=0).fit(blobs)
    capsys.readouterr()
    best = KMeans(4, init="random", n_init=10, random_state=0, verbose=1).fit(blobs)
    reported = [-float(line.split("-inertia")[1].split(",")[0])
                for line in capsys.readouterr().out.splitlines()
                if line.startswith("Initialization")]
    assert len(reported) == 10
    assert reported[0] == pytest.approx(first.inertia_, rel=1e-7)  # same seed, same first run
    assert best.inertia_ <= first.inertia_
    assert best.inertia_ == pytest.approx(min(reported), rel=1e-7)
    assert best.inertia_ == pytest.approx(naive.inertia(blobs, best.cluster_centers_), rel=1e-9)


# ----------------------------------------------------------------------------------------
# scikit-learn compatibility


def test_clone_and_params(blobs):
    km = KMeans(n_clusters=3, init="random", n_init=4, max_iter=50, tol=1e-3, verbose=0,
                random_state=3)
    params = km.get_params()
    assert params == dict(n_clusters=3, init="random", n_init=4, max_iter=50, tol=1e-3,
                          verbose=0, random_state=3, copy_x=True, algorithm="auto")
    cloned = clone(km)
    assert cloned is not km and cloned.get_params() == params
    assert km.set_params(n_clusters=5, tol=0.0) is km
    assert km.n_clusters == 5 and km.tol == 0.0
    with pytest.raises(ValueError):
        km.set_params(not_a_parameter=1)
    km.fit(blobs)
    assert km.get_params()["n_clusters"] == 5  # fit does not change parameters
    assert not hasattr(clone(km), "cluster_centers_")


def test_pipeline(blobs):
    pipe = Pipeline([("scale", StandardScaler()), ("km", KMeans(4, random_state=0))])
    labels = pipe.fit_predict(blobs)
    Z = StandardScaler().fit_transform(blobs)
    direct = KMeans(4, random_state=0).fit(Z)
    np.testing.assert_array_equal(labels, direct.labels_)
    np.testing.assert_array_equal(pipe.predict(blobs), direct.labels_)
    np.testing.assert_allclose(pipe.transform(blobs), direct.transform(Z))


def test_grid_search_over_n_clusters(blobs):
    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [2, 3, 4]}, cv=3)
    search.fit(blobs)
    assert search.best_params_["n_clusters"] == 4  # score = -inertia favours more clusters
    assert isinstance(search.best_estimator_, KMeans)
    assert search.best_estimator_.n_clusters == 4


def test_sklearn_check_estimator():
    # The same instance scikit-learn tests its own KMeans with. Its expected failures (dense
    # and, now that KMeans takes CSR, sparse) are also expected for scikit-learn's KMeans
    # (sklearn/utils/_test_common/instance_generator.py).
    reason = ("the check shuffles the rows of the weighted data set, so the random init picks "
              "different rows; weights are equivalent to repetitions for a fixed init "
              "(test_integer_sample_weight_equals_repeated_rows)")
    check_estimator(
        KMeans(n_clusters=2, n_init=2, max_iter=5),
        expected_failed_checks={"check_sample_weight_equivalence_on_dense_data": reason,
                                "check_sample_weight_equivalence_on_sparse_data": reason},
    )
