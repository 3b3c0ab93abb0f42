"""k-means (hard EM with equal spherical clusters) against a full-covariance Gaussian
mixture on elongated clusters: the labels, the 1/2/3-sigma ellipses, and the adjusted Rand
index of both against the true clusters.

    python examples/01_kmeans_vs_gmm.py [--out DIR] [--small]
"""
import numpy as np

from _common import adjusted_rand_index, options, save


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv)
    import matplotlib.pyplot as plt

    from fastem import GaussianMixture, KMeans
    from fastem.plotting import plot_clusters

    rng = np.random.RandomState(170)
    n = 300 if args.small else 1500
    truth = rng.randint(0, 3, n)
    # three long, thin, parallel clusters (sd 4 along them, 0.5 across, 3 apart), turned
    # by 30 degrees: k-means' picture of equal round clusters cuts across them
    along, across = 4.0 * rng.randn(n), 0.5 * rng.randn(n) + 3.0 * (truth - 1)
    turn = np.radians(30)
    rotation = np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]])
    X = np.column_stack([along, across]) @ rotation

    kmeans = KMeans(3, random_state=0).fit(X)
    # EM climbs to a local optimum from its k-means start: keep the best of 5 starts
    gmm = GaussianMixture(3, covariance_type="full", n_init=5, random_state=0).fit(X)
    ari = {"KMeans": adjusted_rand_index(truth, kmeans.labels_),
           "GaussianMixture (full)": adjusted_rand_index(truth, gmm.predict(X))}
    for name, value in ari.items():
        print(f"{name:<24} adjusted Rand index {value:.3f}")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    plot_clusters(kmeans, X, ax=axes[0])
    plot_clusters(gmm, X, ax=axes[1])
    for ax, (name, value) in zip(axes, ari.items()):
        ax.set_title(f"{name}: ARI {value:.2f}")
        ax.set_aspect("equal", adjustable="datalim")
    path = save(fig, args.out, "01_kmeans_vs_gmm.png")
    print(f"picture: {path}")
    return {"ari": ari, "picture": path}


if __name__ == "__main__":
    main()
