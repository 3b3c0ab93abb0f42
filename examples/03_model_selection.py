"""Choosing the number of components and the covariance type by BIC and AIC, on a synthetic
2-D mixture of three Gaussians.

    python examples/03_model_selection.py [--out DIR] [--small]
"""
import numpy as np

from _common import options, save


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv)
    import matplotlib.pyplot as plt

    from fastem import select_model
    from fastem.plotting import plot_clusters, plot_selection

    rng = np.random.RandomState(7)
    n = 600 if args.small else 3000
    means = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 5.0]])
    covariances = [np.array([[2.0, 1.2], [1.2, 1.0]]), np.array([[0.5, 0.0], [0.0, 1.5]]),
                   np.array([[1.0, -0.6], [-0.6, 0.8]])]
    truth = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    X = np.vstack([rng.multivariate_normal(means[c], covariances[c]) for c in truth])

    result = select_model(X, "gmm", n_components=range(1, 9),
                          covariance_types=["full", "tied", "diag", "spherical"],
                          criterion="bic", random_state=0)
    print(result)
    by_aic = min(range(len(result.table)), key=lambda i: result.table[i]["aic"])
    print(f"BIC chooses {result.best_params}; AIC would choose "
          f"K={result.table[by_aic]['n_components']}, "
          f"{result.table[by_aic]['covariance_type']}")

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    plot_selection(result, ax=axes[0])
    plot_selection(result, ax=axes[1], criterion="aic")
    axes[1].set_title("the same fits by AIC (chosen point: BIC's)")
    plot_clusters(result.best_estimator, X, ax=axes[2])
    axes[2].set_title(f"BIC's choice: {result.best_params['n_components']} components, "
                      f"{result.best_params['covariance_type']}")
    path = save(fig, args.out, "03_model_selection.png")
    print(f"picture: {path}")
    return {"result": result, "aic_choice": result.table[by_aic], "picture": path}


if __name__ == "__main__":
    main()
