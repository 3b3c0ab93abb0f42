"""select_model: the right K on data drawn from a known mixture, and a table equal to fits
made one by one (the criteria recomputed here from their formulas)."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastem
from fastem import BernoulliMixture, GaussianMixture, KMeans, select_model
from fastem.selection import elbow_index, silhouette


@pytest.fixture(scope="module")
def four_blobs():
    rng = np.random.RandomState(3)
    centres = np.array([[0, 0], [7, 0], [0, 7], [7, 7]], dtype=float)
    covs = [np.array([[1.0, 0.5], [0.5, 1.0]]), np.eye(2) * 0.6,
            np.array([[1.5, -0.4], [-0.4, 0.5]]), np.eye(2)]
    X = np.vstack([rng.multivariate_normal(c, s, 250) for c, s in zip(centres, covs)])
    return X[rng.permutation(len(X))]


def _log_likelihood(model, X):
    """log L from the fitted parameters, written from the mixture density (full covariances)."""
    dens = np.zeros(len(X))
    for w, m, c in zip(model.weights_, model.means_, model.covariances_):
        diff = X - m
        quad = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(c), diff)
        dens += w * np.exp(-0.5 * quad) / np.sqrt(np.linalg.det(2 * np.pi * c))
    return np.log(dens).sum()


def test_bic_picks_four_and_rows_equal_single_fits(four_blobs):
    X = four_blobs
    result = select_model(X, "gmm", n_components=range(1, 8), random_state=0)
    assert result.best_params == {"n_components": 4, "covariance_type": "full"}
    assert result.best_estimator is result.estimators[result.best_index]
    n, d = X.shape
    for row, model in zip(result.table, result.estimators):
        k = row["n_components"]
        alone = GaussianMixture(k, random_state=0).fit(X)
        assert row["bic"] == alone.bic(X) and row["aic"] == alone.aic(X)
        assert row["n_iter"] == alone.n_iter_ and row["converged"] == alone.converged_
        assert np.array_equal(model.means_, alone.means_)
        p = k * d * (d + 1) / 2 + k * d + k - 1
        assert row["n_parameters"] == p
        log_l = _log_likelihood(alone, X)
        assert row["log_likelihood"] == pytest.approx(log_l, rel=1e-10)
        assert row["bic"] == pytest.approx(-2 * log_l + p * np.log(n), rel=1e-10)
        assert row["aic"] == pytest.approx(-2 * log_l + 2 * p, rel=1e-10)


def test_covariance_types_and_thread_counts_do_not_change_the_table(four_blobs):
    X = four_blobs[:400]
    kwargs = dict(n_components=[1, 3, 4], covariance_types=["full", "tied", "diag",
                                                             "spherical"], random_state=5)
    one = select_model(X, GaussianMixture(tol=1e-4), n_jobs=1, **kwargs)
    many = select_model(X, GaussianMixture(tol=1e-4), n_jobs=3, **kwargs)
    assert [(r["covariance_type"], r["n_components"]) for r in one.table] == \
        [(ct, k) for ct in ("full", "tied", "diag", "spherical") for k in (1, 3, 4)]
    strip = [{k: v for k, v in r.items() if k != "fit_time"} for r in one.table]
    assert strip == [{k: v for k, v in r.items() if k != "fit_time"} for r in many.table]
    assert all(m.tol == 1e-4 for m in one.estimators)   # the template's parameters are kept
    best = np.argmin([r["bic"] for r in one.table])
    assert one.best_index == best
    assert "<- best" in str(one).splitlines()[best + 1]


def test_aic_and_weighted_criteria(four_blobs):
    X = four_blobs[:300]
    w = np.random.RandomState(0).randint(1, 4, len(X)).astype(float)
    result = select_model(X, "gmm", [2, 4], criterion="aic", sample_weight=w, random_state=1)
    for row, model in zip(result.table, result.estimators):
        alone = GaussianMixture(row["n_components"], random_state=1).fit(X, sample_weight=w)
        assert np.array_equal(model.means_, alone.means_)
        log_l = float(w @ alone.score_samples(X))
        p = row["n_parameters"]
        assert row["log_likelihood"] == pytest.approx(log_l, rel=1e-12)
        assert row["bic"] == pytest.approx(-2 * log_l + p * np.log(w.sum()), rel=1e-12)
        assert row["aic"] == pytest.approx(-2 * log_l + 2 * p, rel=1e-12)
    assert result.best_index == int(np.argmin([r["aic"] for r in result.table]))


def test_cross_validated_log_likelihood_equals_manual_folds(four_blobs):
    X = four_blobs[:400]
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))
    folds = [(np.setdiff1d(np.arange(len(X)), part), part) for part in np.array_split(order, 3)]
    result = select_model(X, "gmm", [1, 4, 6], criterion="cv", cv=folds, random_state=2)
    for row in result.table:
        scores = [GaussianMixture(row["n_components"], random_state=2).fit(X[train])
                  .score(X[test]) for train, test in folds]
        assert row["cv_log_likelihood"] == pytest.approx(np.mean(scores), rel=1e-12)
    assert result.best_params["n_components"] == 4
    shuffled = select_model(X, "gmm", [1, 4], cv=4, random_state=2)   # int folds
    assert all(np.isfinite(r["cv_log_likelihood"]) for r in shuffled.table)


def test_bernoulli_mixture_bic_picks_three():
    rng = np.random.RandomState(1)
    patterns = np.array([[0.9] * 8 + [0.1] * 8, [0.1] * 8 + [0.9] * 8,
                         [0.9, 0.1] * 8])
    z = rng.randint(0, 3, 900)
    B = (rng.rand(900, 16) < patterns[z]).astype(np.uint8)
    result = select_model(B, "bmm", range(1, 7), random_state=0)
    assert result.best_params["n_components"] == 3
    for row in result.table:
        alone = BernoulliMixture(row["n_components"], random_state=0).fit(B)
        assert row["bic"] == alone.bic(B)
    sparse = select_model(sp.csr_matrix(B), BernoulliMixture, [2, 3], random_state=0)
    assert [r["bic"] for r in sparse.table] == pytest.approx(
        [r["bic"] for r in result.table[1:3]], rel=1e-9)


def test_kmeans_elbow_and_silhouette(four_blobs):
    from sklearn.metrics import silhouette_score
    X = four_blobs
    result = select_model(X, "kmeans", range(1, 9), random_state=0)
    assert result.criterion == "elbow" and result.best_params["n_components"] == 4
    for row in result.table:
        alone = KMeans(row["n_components"], random_state=0).fit(X)
        assert row["inertia"] == alone.inertia_
    sil = select_model(X, KMeans(), range(1, 7), criterion="silhouette", random_state=0,
                       silhouette_samples=500)
    assert sil.best_params["n_components"] == 4
    assert np.isnan(sil.table[0]["silhouette"])
    rows = np.sort(np.random.RandomState(0).choice(len(X), 500, replace=False))
    for row, model in zip(sil.table[1:], sil.estimators[1:]):
        labels = model.predict(X[rows])
        assert row["silhouette"] == pytest.approx(silhouette_score(X[rows], labels), rel=1e-9)


def test_silhouette_matches_scikit_learn():
    from sklearn.metrics import silhouette_score
    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    labels = rng.randint(0, 5, 120)
    labels[0] = 7   # a singleton cluster scores 0
    assert silhouette(X, labels) == pytest.approx(silhouette_score(X, labels), rel=1e-10)
    assert np.isnan(silhouette(X, np.zeros(120)))


def test_elbow_index_from_the_geometry():
    ks = [1, 2, 3, 4, 5, 6]
    assert elbow_index(ks, [100, 60, 20, 18, 16, 14]) == 2   # knee at K=3
    assert elbow_index(ks[::-1], [14, 16, 18, 20, 60, 100]) == 3   # order does not matter
    assert elbow_index(ks, [6, 5, 4, 3, 2, 1]) == 0          # a straight line: no knee
    assert elbow_index([1, 2], [5, 1]) == 0


def test_bad_arguments(four_blobs):
    X = four_blobs[:100]
    with pytest.raises(ValueError, match="criterion"):
        select_model(X, "gmm", [1, 2], criterion="elbow")
    with pytest.raises(ValueError, match="needs cv"):
        select_model(X, "gmm", [1, 2], criterion="cv")
    with pytest.raises(ValueError, match="covariance_types applies"):
        select_model(X, "kmeans", [1, 2], covariance_types=["full"])
    with pytest.raises(ValueError, match="empty"):
        select_model(X, "gmm", [])
    with pytest.raises(ValueError, match="n_components"):
        select_model(X, "gmm", [0, 2])
    with pytest.raises(ValueError, match="estimator must be"):
        select_model(X, "svm")
    with pytest.raises(TypeError, match="estimator must be"):
        select_model(X, object())
    with pytest.raises(ValueError, match="covariance_type"):
        select_model(X, "gmm", [1], covariance_types=["bogus"])


def test_a_failing_fit_is_named():
    X = np.repeat([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], 10, axis=0)   # 3 distinct points
    with pytest.raises(ValueError, match=r"GaussianMixture\(n_components=5, covariance_type="
                                         r"'full'\): The covariance of component"):
        select_model(X, GaussianMixture(reg_covar=0.0), [1, 5], random_state=0)


def test_dask_input_is_refused():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="Dask"):
        select_model(da.zeros((10, 2), chunks=5), "gmm", [1])


def test_result_helpers(four_blobs):
    result = select_model(four_blobs[:200], "gmm", [1, 2], random_state=0)
    frame = result.to_pandas()
    assert list(frame.columns) == result.columns and len(frame) == 2
    assert np.array_equal(result.column("n_components"), [1, 2])
    assert "SelectionResult" in repr(result)
    assert fastem.SelectionResult is type(result)
