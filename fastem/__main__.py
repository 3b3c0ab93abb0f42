"""``python -m fastem``: the main job on built-in data, side by side with scikit-learn.

Fits KMeans on one million generated blob rows (fixed seed) and on the iris and Old Faithful
data shipped in the package, and prints the fitted model, iterations and time per iteration
- next to scikit-learn's KMeans from the same initial centres when scikit-learn is installed.
Options: ``--n-samples N`` (default 1_000_000), ``--quick`` (100_000 rows).
"""
import argparse
import time

import numpy as np

from . import KMeans, __version__
from .datasets import load_faithful, load_iris, make_blobs
from .models.kmeans import kmeans_plusplus

try:
    from sklearn.cluster import KMeans as SklearnKMeans
except ImportError:  # the demo runs without scikit-learn, just without the comparison
    SklearnKMeans = None


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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastem", description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="use 100,000 generated rows")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.n_samples

    print(f"fastem {__version__} - EM clustering on Numba kernels")
    if SklearnKMeans is None:
        print("(scikit-learn not installed: showing fastem only)")
    warm = np.random.RandomState(0).rand(64, 2)
    for dtype in (np.float64, np.float32):
        w = warm.astype(dtype)
        _, t_warm = _timed(lambda: KMeans(2, random_state=0, max_iter=1).fit(w).predict(w))
        print(f"first {np.dtype(dtype).name} fit in this process (loads or compiles kernels): "
              f"{t_warm:.2f} s")

    X, _, _ = make_blobs(n, 8, 8, std=3.0, random_state=0)
    model = _compare_fit(X, 8, "Generated blobs (float64)")
    _default_fit(X, 8)
    print("  centres (first 3 features):")
    for c in model.cluster_centers_:
        print("   ", np.array2string(c[:3], precision=2, suppress_small=True))
    _compare_fit(X.astype(np.float32), 8, "Generated blobs (float32)")

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


if __name__ == "__main__":
    main()
