"""fastem.plotting with the Agg backend: every plot renders for every estimator and
covariance type it applies to, shows something (not a blank image), differs between
different models, and draws what the model says (ellipse axes from the covariance
eigenvalues computed here, image tiles equal to the means, lines equal to the history)."""
import io

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

import fastem  # noqa: E402
from fastem import datasets  # noqa: E402
from fastem import plotting  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return np.vstack([rng.multivariate_normal(m, c, 150) for m, c in (
        ([0, 0, 0], [[2, 1, 0], [1, 1, 0], [0, 0, 1]]),
        ([6, 1, 3], [[1, -0.5, 0.2], [-0.5, 1, 0], [0.2, 0, 0.5]]),
        ([1, 6, -2], np.eye(3)))])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def pixels(ax):
    """The figure of ``ax`` rendered to PNG and read back as an RGB array."""
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=50)
    buffer.seek(0)
    return plt.imread(buffer)[..., :3]


def assert_not_blank(image):
    assert image.std() > 0.01
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20


def test_clusters_for_every_estimator_and_covariance_type(X):
    models = [fastem.KMeans(3, random_state=0).fit(X),
              fastem.MiniBatchKMeans(3, random_state=0, batch_size=100).fit(X)]
    models += [fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
               for ct in COVARIANCE_TYPES]
    models.append(fastem.BernoulliMixture(3, random_state=0).fit(X > 0))
    images = []
    for model in models:
        data = (X > 0) if isinstance(model, fastem.BernoulliMixture) else X
        ax = plotting.plot_clusters(model, data, dims=(0, 2))
        image = pixels(ax)
        assert_not_blank(image)
        images.append(image)
        n_ellipses = sum(isinstance(p, Ellipse) for p in ax.patches)
        assert n_ellipses == (9 if hasattr(model, "covariances_") else 0)
    for a, b in zip(images, images[1:]):
        assert a.shape != b.shape or not np.array_equal(a, b)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_ellipse_axes_are_the_projected_covariance_eigenvalues(X, covariance_type):
    model = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    dims = (2, 0)
    ax = plotting.plot_clusters(model, X, dims=dims, sigmas=(1, 2, 3))
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    d = X.shape[1]
    for j in range(3):
        # the component's covariance in data units, from covariances_ and its storage rule
        cov = model.covariances_
        full = {"full": lambda: cov[j], "tied": lambda: cov,
                "diag": lambda: np.diag(cov[j]),
                "spherical": lambda: cov[j] * np.eye(d)}[covariance_type]()
        sub = full[np.ix_(dims, dims)]
        small, large = np.sqrt(np.linalg.eigvalsh(sub))
        direction = np.linalg.eigh(sub)[1][:, 1]
        for s, ellipse in zip((1, 2, 3), ellipses[3 * j:3 * j + 3]):
            assert ellipse.center == pytest.approx(model.means_[j][list(dims)])
            assert ellipse.width == pytest.approx(2 * s * large, rel=1e-9)
            assert ellipse.height == pytest.approx(2 * s * small, rel=1e-9)
            angle = np.radians(ellipse.angle)
            # the width axis points along the largest eigenvector (up to sign)
            assert abs(np.dot([np.cos(angle), np.sin(angle)], direction)) == \
                pytest.approx(1.0, abs=1e-9)


def test_density_contours(X):
    images = []
    for ct in COVARIANCE_TYPES:
        model = fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
        images.append(pixels(plotting.plot_density(model, X, grid=60)))
        assert_not_blank(images[-1])
    for a, b in zip(images, images[1:]):
        assert not np.array_equal(a, b)
    a = fastem.GaussianMixture(3, random_state=0).fit(X)
    faithful, _ = datasets.load_faithful()
    g = fastem.GaussianMixture(2, random_state=0).fit(faithful)
    ax = plotting.plot_density(g, faithful, grid=40)
    contour = [c for c in ax.collections if hasattr(c, "levels")][0]
    # the highest level lies below the density's maximum, the lowest above the tails
    top = g.score_samples(g.means_).max()
    assert contour.levels.max() <= top
    assert contour.levels.min() >= np.percentile(g.score_samples(faithful), 1) - 1e-9
    with pytest.raises(TypeError, match="Gaussian mixtures"):
        plotting.plot_density(fastem.KMeans(2, random_state=0).fit(X), X)
    with pytest.raises(ValueError, match="at must have shape"):
        plotting.plot_density(a, X, at=[0, 0])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities(X, covariance_type):
    model = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ax = plotting.plot_responsibilities(model, X, 1)
    points = ax.collections[0]
    assert np.array_equal(points.get_array(), model.predict_proba(X)[:, 1])
    first, second = pixels(ax), pixels(plotting.plot_responsibilities(model, X, 2))
    assert_not_blank(first)
    assert not np.array_equal(first, second)
    B, _ = datasets.load_digits_binary()
    bmm = fastem.BernoulliMixture(4, random_state=0).fit(B)
    assert_not_blank(pixels(plotting.plot_responsibilities(bmm, B, 0, dims=(20, 44))))
    with pytest.raises(ValueError, match="component"):
        plotting.plot_responsibilities(model, X, 3)
    with pytest.raises(TypeError, match="hard labels"):
        plotting.plot_responsibilities(fastem.KMeans(2).fit(X), X, 0)


def test_convergence_lines_are_the_history(X):
    gmm = fastem.GaussianMixture(3, random_state=0, tol=1e-8).fit(X)
    km = fastem.KMeans(3, random_state=0, init="random", n_init=1).fit(X)
    bmm = fastem.BernoulliMixture(3, random_state=0).fit(X > 0)
    for model, history in ((gmm, gmm.lower_bounds_), (km, km.inertias_),
                           (bmm, bmm.lower_bounds_)):
        ax = plotting.plot_convergence(model)
        x, y = ax.lines[0].get_data()
        assert np.array_equal(y, history) and np.array_equal(x, np.arange(1, len(history) + 1))
        assert_not_blank(pixels(ax))
    assert len(km.inertias_) == km.n_iter_
    assert np.all(np.diff(km.inertias_) <= 1e-9 * km.inertias_[0])   # Lloyd never increases
    assert km.inertias_[-1] == pytest.approx(km.inertia_, rel=1e-12)
    with pytest.raises(ValueError, match="no per-iteration history"):
        plotting.plot_convergence(fastem.MiniBatchKMeans(2, random_state=0).fit(X))


def test_selection_plot_marks_the_choice(X):
    result = fastem.select_model(X, "gmm", range(1, 6), covariance_types=["full", "diag"],
                                 random_state=0)
    ax = plotting.plot_selection(result)
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) >= {"full", "diag"}
    chosen = [line for label, line in lines.items() if label.startswith("chosen")][0]
    best = result.table[result.best_index]
    assert chosen.get_xdata()[0] == best["n_components"]
    assert chosen.get_ydata()[0] == best["bic"]
    assert np.array_equal(lines["diag"].get_ydata(),
                          [r["bic"] for r in result.table if r["covariance_type"] == "diag"])
    assert_not_blank(pixels(ax))
    km = fastem.select_model(X, "kmeans", range(1, 6), random_state=0)
    ax = plotting.plot_selection(km)
    assert ax.get_ylabel() == "inertia"
    with pytest.raises(ValueError, match="no column"):
        plotting.plot_selection(km, criterion="bic")


def test_components_tiles_are_the_means():
    B, _ = datasets.load_digits_binary()
    model = fastem.BernoulliMixture(5, random_state=0).fit(B)
    ax = plotting.plot_components(model, (8, 8), n_cols=3)
    mosaic = ax.images[0].get_array()
    for c in range(5):
        r0, c0 = 1 + (c // 3) * 9, 1 + (c % 3) * 9
        assert np.array_equal(mosaic[r0:r0 + 8, c0:c0 + 8], model.means_[c].reshape(8, 8))
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"{w:.2f}" for w in model.weights_]
    other = fastem.BernoulliMixture(3, random_state=1).fit(B)
    first, second = pixels(ax), pixels(plotting.plot_components(other, (8, 8), n_cols=3))
    assert_not_blank(first)
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError, match="pixels"):
        plotting.plot_components(model, (8, 7))


def test_given_axes_are_used_and_bad_arguments(X):
    model = fastem.KMeans(3, random_state=0).fit(X)
    fig, ax = plt.subplots()
    assert plotting.plot_clusters(model, X, ax=ax) is ax
    with pytest.raises(ValueError, match="dims"):
        plotting.plot_clusters(model, X, dims=(0, 0))
    with pytest.raises(ValueError, match="dims"):
        plotting.plot_clusters(model, X, dims=(0, 3))
    with pytest.raises(ValueError, match="not fitted"):
        plotting.plot_clusters(fastem.KMeans(3), X)


def test_large_data_is_thinned(X):
    big = np.repeat(X, 50, axis=0)
    model = fastem.KMeans(3, random_state=0).fit(X)
    ax = plotting.plot_clusters(model, big)
    assert len(ax.collections[0].get_offsets()) == plotting.MAX_POINTS


def test_without_matplotlib_fastem_works_and_plotting_says_what_to_install():
    import json
    import subprocess
    import sys
    code = """
import json, sys
class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib' (blocked)")
sys.meta_path.insert(0, NoMatplotlib())
import numpy as np, fastem
model = fastem.KMeans(2, random_state=0).fit(np.arange(20.0).reshape(10, 2))
try:
    import fastem.plotting
    message = None
except ImportError as e:
    message = str(e)
print(json.dumps({"fitted": int(model.n_iter_ > 0), "message": message}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["fitted"] == 1
    assert "pip install 'fastem[plot]'" in out["message"]
