"""Initialisation matters: EM climbs to a local optimum of the likelihood from wherever it
starts. Twenty single starts of each initialisation (random responsibilities, k-means++
centres, a full k-means fit, random data points) on the same data, and the spread of the
final log-likelihoods; then a singular covariance (a constant feature and duplicated points)
that ``reg_covar`` keeps invertible, and the clear error when it is set to 0.

    python examples/06_initialisation.py [--out DIR] [--small]
"""
import warnings

import numpy as np

from _common import options, save

INITS = ("random", "random_from_data", "k-means++", "kmeans")


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv)
    import matplotlib.pyplot as plt

    from fastem import GaussianMixture

    rng = np.random.RandomState(2)
    n_per, n_starts = (60, 8) if args.small else (300, 20)
    grid = np.array([(x, y) for x in range(3) for y in range(3)], dtype=float) * 4.0
    X = np.vstack([rng.randn(n_per, 2) * rng.uniform(0.5, 1.3) + g for g in grid])

    finals = {}
    for init in INITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # a few random starts hit max_iter
            finals[init] = np.array([
                GaussianMixture(9, init_params=init, random_state=seed, max_iter=300)
                .fit(X).lower_bound_ for seed in range(n_starts)])
    best = max(f.max() for f in finals.values())
    print(f"final mean log-likelihood of {n_starts} single starts (best seen {best:.4f}):")
    for init, f in finals.items():
        print(f"  {init:<17} median {np.median(f):.4f}  worst {f.min():.4f}  "
              f"starts within 1e-3 of the best: {np.mean(f > best - 1e-3):.0%}")

    print("  ('random' responsibilities start every component near the mean of all the data; "
          "the first\n   change of the log-likelihood is below tol, so EM stops there - as "
          "scikit-learn's does)")

    # a constant feature and duplicated rows: the third feature's variance is exactly 0
    Y = np.column_stack([X[:90], np.full(90, 2.5)])
    Y = np.vstack([Y, np.repeat(Y[:3], 20, axis=0)])
    fitted = GaussianMixture(3, reg_covar=1e-6, random_state=0).fit(Y)
    print(f"constant feature, reg_covar=1e-6: fitted, its variance in component 0 is "
          f"{fitted.covariances_[0][2, 2]:.1e} (= reg_covar)")
    try:
        GaussianMixture(3, reg_covar=0.0, random_state=0).fit(Y)
        error = None
    except ValueError as e:
        error = str(e)
        print(f"reg_covar=0: ValueError: {error}")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (init, f) in enumerate(finals.items()):
        jitter = np.random.RandomState(i).uniform(-0.12, 0.12, len(f))
        ax.scatter(np.full(len(f), i) + jitter, f, alpha=0.7)
        ax.plot([i - 0.25, i + 0.25], [np.median(f)] * 2, color="black")
    ax.set_xticks(range(len(finals)), [f"init_params=\n'{k}'" for k in finals])
    ax.set_ylabel("final mean log-likelihood")
    ax.set_title(f"GaussianMixture(9) on 9 overlapping blobs: {n_starts} single starts each "
                 "(line: median)")
    path = save(fig, args.out, "06_initialisation.png")
    print(f"picture: {path}")
    return {"finals": finals, "error": error, "reg_fit": fitted, "picture": path}


if __name__ == "__main__":
    main()
