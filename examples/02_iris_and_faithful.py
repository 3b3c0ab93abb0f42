"""Gaussian mixtures on two classic data sets: iris (initialised by k-means++; a table of
species against components) and Old Faithful (density contours).

    python examples/02_iris_and_faithful.py [--out DIR] [--small]
"""
import numpy as np

from _common import options, save


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv)
    import matplotlib.pyplot as plt

    from fastem import GaussianMixture
    from fastem.datasets import load_faithful, load_iris
    from fastem.plotting import plot_clusters, plot_density

    iris, species, features, species_names = load_iris()
    gmm = GaussianMixture(3, covariance_type="full", init_params="k-means++", n_init=5,
                          random_state=0).fit(iris)
    components = gmm.predict(iris)
    table = np.zeros((3, 3), dtype=int)
    np.add.at(table, (species, components), 1)
    print("iris: species x component counts (GaussianMixture(3, full), k-means++ init)")
    print(f"  {'':<12}" + "".join(f"{'comp ' + str(j):>8}" for j in range(3)))
    for name, row in zip(species_names, table):
        print(f"  {name:<12}" + "".join(f"{c:>8}" for c in row))
    # each component named after its most common species; agreement with the species
    agreement = table.max(axis=0).sum() / table.sum()
    print(f"  rows in their component's majority species: {agreement:.1%}")

    faithful, columns = load_faithful()
    old_faithful = GaussianMixture(2, covariance_type="full", random_state=0).fit(faithful)
    for j in range(2):
        sd = np.sqrt(np.diag(old_faithful.covariances_[j]))
        print(f"Old Faithful component {j}: weight {old_faithful.weights_[j]:.2f}, "
              f"{columns[0]} {old_faithful.means_[j, 0]:.2f} +- {sd[0]:.2f} min, "
              f"{columns[1]} {old_faithful.means_[j, 1]:.1f} +- {sd[1]:.1f} min")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    plot_clusters(gmm, iris, ax=axes[0], dims=(2, 3))
    axes[0].set_xlabel(features[2])
    axes[0].set_ylabel(features[3])
    axes[0].set_title(f"iris, GaussianMixture(3): {agreement:.0%} agree with the species")
    plot_density(old_faithful, faithful, ax=axes[1], grid=60 if args.small else 200)
    axes[1].set_xlabel(f"{columns[0]} (min)")
    axes[1].set_ylabel(f"{columns[1]} (min)")
    axes[1].set_title("Old Faithful: log density of GaussianMixture(2)")
    path = save(fig, args.out, "02_iris_and_faithful.png")
    print(f"picture: {path}")
    return {"table": table, "agreement": agreement, "faithful": old_faithful,
            "picture": path}


if __name__ == "__main__":
    main()
