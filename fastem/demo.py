"""``python -m fastem`` / ``fastem demo``: the main job on built-in data, side by side with
scikit-learn.

Fits KMeans and GaussianMixture on one million generated blob rows (fixed seed) and on the iris
and Old Faithful data shipped in the package, and BernoulliMixture on binarised digits, and prints the fitted model, iterations and time
per iteration - next to scikit-learn from the same initial parameters when it is installed.
Options: ``--n-samples N`` (default 1_000_000), ``--quick`` (100_000 rows).
"""
import time
import warnings

import numpy as np

from . import BernoulliMixture, GaussianMixture, KMeans, __version__
from .datasets import load_digits_binary, load_faithful, load_iris, make_blobs
from .models.kmeans import kmeans_plusplus

# scikit-learn, for the side-by-side comparison; imported by main() (never by warmup)
SklearnKMeans = SklearnGaussianMixture = None


def _import_sklearn():
    global SklearnKMeans, SklearnGaussianMixture
    try:
        from sklearn.cluster import KMeans as SklearnKMeans
        from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
    except ImportError:  # the demo runs without scikit-learn, just without the comparison
        SklearnKMeans = SklearnGaussianMixture = None


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _compare_fit(X, n_clusters, title):
    """Fit both libraries from the same k-means++ centres and print one row each."""
    init, _ = kmeans_plusplus(X, np.ones(len(X)), n_clusters, np.random.RandomState(0))
    ours, t_ours = _timed(lambda: KMeans(n_clusters, init=init, random_state=0).fit(X))
    print(f"\n{title}: n={X.shape[0]:,} d={X.shape[1]} k={n_clusters} {X.dtype}")
    print(f"  {'library':<14}{'iterations':>11}{'inertia':>18}{'fit s':>9}{'ms/iter':>9}")
    rows = [("fastem", ours.n_iter_, ours.inertia_, t_ours)]
    if SklearnKMeans is not None:
        theirs, t_theirs = _timed(lambda: SklearnKMeans(n_clusters, init=init, n_init=1,
                                                        algorithm="lloyd").fit(X))
        rows.append(("scikit-learn", theirs.n_iter_, theirs.inertia_, t_theirs))
    for name, n_iter, inertia, seconds in rows:
        print(f"  {name:<14}{n_iter:>11}{inertia:>18.6g}{seconds:>9.3f}{1e3 * seconds / n_iter:>9.2f}")
    if SklearnKMeans is not None:
        same = np.array_equal(ours.labels_, theirs.labels_)
        print(f"  same labels: {same}; speed-up {t_theirs / t_ours:.2f}x (same initial centres)")
    return ours


def _default_fit(X, n_clusters):
    """Each library's default fit (its own k-means++ seeding + Lloyd)."""
    ours, t_ours = _timed(lambda: KMeans(n_clusters, random_state=0).fit(X))
    line = f"  default fit (k-means++ seeding + Lloyd): fastem {t_ours:.3f} s"
    if SklearnKMeans is not None:
        _, t_theirs = _timed(lambda: SklearnKMeans(n_clusters, random_state=0, n_init=1,
                                                   algorithm="lloyd").fit(X))
        line += f", scikit-learn {t_theirs:.3f} s ({t_theirs / t_ours:.2f}x)"
    print(line)


def _compare_gmm(X, n_components, covariance_type, title, max_iter=100):
    """GaussianMixture in both libraries from the same initial parameters."""
    start = GaussianMixture(n_components, covariance_type=covariance_type, max_iter=1,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type=covariance_type,
                max_iter=max_iter)
    print(f"\n{title}: GaussianMixture({n_components}, covariance_type={covariance_type!r}), "
          f"n={X.shape[0]:,} d={X.shape[1]} {X.dtype}")
    print(f"  {'library':<14}{'iterations':>11}{'lower bound':>14}{'fit s':>9}{'ms/iter':>9}")
    fits = [("fastem", GaussianMixture)]
    if SklearnGaussianMixture is not None:
        fits.append(("scikit-learn", SklearnGaussianMixture))
    results = []
    for name, cls in fits:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, seconds = _timed(lambda: cls(n_components, **init).fit(X))
        results.append((model, seconds))
        print(f"  {name:<14}{model.n_iter_:>11}{model.lower_bound_:>14.6f}{seconds:>9.3f}"
              f"{1e3 * seconds / model.n_iter_:>9.2f}")
    if len(results) == 2:
        (ours, t_ours), (theirs, t_theirs) = results
        print(f"  max |means difference| {np.abs(ours.means_ - theirs.means_).max():.2e}; "
              f"speed-up {t_theirs / t_ours:.2f}x (same initial parameters)")
    return results[0][0]


def _bernoulli_digits():
    """BernoulliMixture on the binarised digits; components printed as 8x8 text images."""
    B, digit = load_digits_binary()
    model, seconds = _timed(lambda: BernoulliMixture(10, n_init=3, random_state=0).fit(B))
    print(f"\nBinarised digits (1797 x 64 uint8): BernoulliMixture(10), "
          f"{model.n_iter_} iterations, lower bound {model.lower_bound_:.3f}, "
          f"{seconds:.3f} s")
    labels = model.predict(B)
    shades = " .:+#"
    images = [[("".join(shades[min(4, int(t * 5))] for t in row)) for row in theta.reshape(8, 8)]
              for theta in model.means_]
    majority = [np.bincount(digit[labels == j], minlength=10).argmax() if (labels == j).any()
                else -1 for j in range(10)]
    print("  components (theta: ' ' < 0.2 <= '.' < 0.4 <= ':' < 0.6 <= '+' < 0.8 <= '#'), "
          "with weight and most common digit:")
    for first in (0, 5):
        cols = range(first, first + 5)
        print("  " + "  ".join(f"{model.weights_[j]:.2f} d={majority[j]}" for j in cols))
        for r in range(8):
            print("  " + "  ".join(f"{images[j][r]:<8}" for j in cols))


def add_arguments(parser):
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="use 100,000 generated rows")


def main(args):
    """Run the demo with the parsed options of :func:`add_arguments`."""
    n = 100_000 if args.quick else args.n_samples

    _import_sklearn()
    print(f"fastem {__version__} - EM clustering on Numba kernels")
    if SklearnKMeans is None:
        print("(scikit-learn not installed: showing fastem only)")
    warm = np.random.RandomState(0).rand(64, 2)
    for dtype in (np.float64, np.float32):
        w = warm.astype(dtype)
        _, t_warm = _timed(lambda: (KMeans(2, random_state=0, max_iter=1).fit(w).predict(w),
                                    [GaussianMixture(2, covariance_type=ct, random_state=0)
                                     .fit(w).predict_proba(w) for ct in ("full", "diag")]))
        print(f"first {np.dtype(dtype).name} fit in this process (loads or compiles kernels): "
              f"{t_warm:.2f} s")

    X, _, _ = make_blobs(n, 8, 8, std=3.0, random_state=0)
    model = _compare_fit(X, 8, "Generated blobs (float64)")
    _default_fit(X, 8)
    print("  centres (first 3 features):")
    for c in model.cluster_centers_:
        print("   ", np.array2string(c[:3], precision=2, suppress_small=True))
    _compare_fit(X.astype(np.float32), 8, "Generated blobs (float32)")
    _compare_gmm(X, 8, "full", "Generated blobs", max_iter=10)
    _compare_gmm(X, 8, "diag", "Generated blobs", max_iter=10)

    iris, species, _, names = load_iris()
    model = _compare_fit(iris, 3, "Iris (Fisher 1936)")
    table = np.zeros((3, 3), dtype=int)
    np.add.at(table, (species, model.labels_), 1)
    print("  species x cluster counts:")
    for name, row in zip(names, table):
        print(f"    {name:<12}{row}")

    faithful, cols = load_faithful()
    model = _compare_fit(faithful, 2, "Old Faithful geyser")
    for j, c in enumerate(model.cluster_centers_):
        print(f"    cluster {j}: {cols[0]} {c[0]:.2f} min, {cols[1]} {c[1]:.1f} min, "
              f"{np.count_nonzero(model.labels_ == j)} eruptions")
    gmm = _compare_gmm(faithful, 2, "full", "Old Faithful geyser")
    for j in range(2):
        sd = np.sqrt(np.diag(gmm.covariances_[j]))
        print(f"    component {j}: weight {gmm.weights_[j]:.2f}, {cols[0]} {gmm.means_[j, 0]:.2f} "
              f"+- {sd[0]:.2f} min, {cols[1]} {gmm.means_[j, 1]:.1f} +- {sd[1]:.1f} min")
    print("    BIC by number of components (full): " + ", ".join(
        f"{k}: {GaussianMixture(k, random_state=0).fit(faithful).bic(faithful):.1f}"
        for k in range(1, 5)))
    _bernoulli_digits()

