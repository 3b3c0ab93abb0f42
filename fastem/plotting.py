"""Plots of fitted models (matplotlib: ``pip install fastem[plot]``).

Every function takes a fitted estimator (and data where needed), draws on the given
matplotlib ``Axes`` or a new one, and returns the ``Axes``. ``import fastem`` never imports
this module or matplotlib.

* :func:`plot_clusters` - points coloured by label, centres, and for Gaussian mixtures the
  1/2/3-sigma ellipses of every component projected on two features;
* :func:`plot_density` - contours of ``log p(x)`` (a 2-D slice for more features);
* :func:`plot_responsibilities` - one component's soft assignment;
* :func:`plot_convergence` - the objective per iteration;
* :func:`plot_selection` - a :func:`fastem.select_model` result against K;
* :func:`plot_components` - component means (Bernoulli success probabilities) as images
  (:func:`plot_images` draws any rows as images).
"""
import numpy as np

try:
    import matplotlib
except ImportError as e:  # pragma: no cover - exercised only without matplotlib
    raise ImportError("fastem.plotting needs matplotlib: pip install 'fastem[plot]'") from e

#: Points drawn at most by the scatter plots (an evenly spaced subset of larger data).
MAX_POINTS = 20_000


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    return plt.subplots()[1]


def _fitted(model, *names):
    for name in names:
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError(f"{type(model).__name__} is not fitted (no {' or '.join(names)}); call "
                     "fit first.")


def _centers(model):
    return np.asarray(_fitted(model, "cluster_centers_", "means_"), dtype=np.float64)


def _is_gaussian(model):
    return hasattr(model, "covariance_type")


def _dims(dims, n_features):
    dims = tuple(int(j) for j in dims)
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= j < n_features for j in dims):
        raise ValueError(f"dims must be two different features in [0, {n_features}), "
                         f"got {dims}.")
    return dims


def _shown_rows(X):
    """Rows to draw, dense: all of them, or an evenly spaced subset of MAX_POINTS."""
    n = X.shape[0]
    rows = np.arange(n) if n <= MAX_POINTS else np.linspace(0, n - 1, MAX_POINTS).astype(int)
    shown = X[rows]
    return shown.toarray() if hasattr(shown, "toarray") else np.asarray(shown)


def _label_colors(n_components):
    cmap = matplotlib.colormaps["tab10" if n_components <= 10 else "tab20"]
    return [cmap(j % cmap.N) for j in range(n_components)]


def projected_covariances(model, dims=(0, 1)):
    """The (k, 2, 2) covariances of a fitted GaussianMixture's components on two features,
    for any covariance type."""
    _fitted(model, "covariances_")
    k, d = model.means_.shape
    i, j = _dims(dims, d)
    cov, ct = np.asarray(model.covariances_, dtype=np.float64), model.covariance_type
    if ct == "full":
        full = cov
    elif ct == "tied":
        full = np.broadcast_to(cov, (k, d, d))
    elif ct == "diag":
        full = np.zeros((k, d, d))
        full[:, np.arange(d), np.arange(d)] = cov
    else:
        full = cov[:, None, None] * np.eye(d)
    return full[:, [i, j]][:, :, [i, j]]


def sigma_ellipse(mean2, cov2, n_sigma):
    """``(centre, width, height, angle in degrees)`` of the ``n_sigma`` ellipse of a 2-D
    Gaussian: axes ``2 n_sigma sqrt(eigenvalue)`` along the covariance's eigenvectors."""
    values, vectors = np.linalg.eigh(cov2)
    values = np.maximum(values, 0.0)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))   # largest eigenvector
    return (tuple(mean2), 2 * n_sigma * np.sqrt(values[1]), 2 * n_sigma * np.sqrt(values[0]),
            float(angle))


def plot_clusters(model, X, ax=None, dims=(0, 1), sigmas=(1, 2, 3)):
    """Points coloured by their label, the centres, and for a GaussianMixture the
    ``sigmas``-sigma ellipses of every component projected on ``dims``.

    Parameters
    ----------
    model : fitted KMeans, MiniBatchKMeans, GaussianMixture or BernoulliMixture
    X : array-like of shape (n_samples, n_features)
        At most :data:`MAX_POINTS` evenly spaced rows are drawn.
    ax : matplotlib Axes, default=None (a new figure)
    dims : pair of int, default=(0, 1)
        The features on the horizontal and vertical axes.
    sigmas : sequence of float, default=(1, 2, 3)
        Ellipses drawn per Gaussian component (none: ``()``).

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.patches import Ellipse
    centers = _centers(model)
    i, j = _dims(dims, centers.shape[1])
    ax = _axes(ax)
    Xs = _shown_rows(X)
    labels = np.asarray(model.predict(Xs))
    colors = _label_colors(len(centers))
    ax.scatter(Xs[:, i], Xs[:, j], c=[colors[c] for c in labels], s=8, alpha=0.6,
               linewidths=0)
    if _is_gaussian(model):
        covs = projected_covariances(model, (i, j))
        for c, (mean, cov) in enumerate(zip(centers, covs)):
            for s in sigmas:
                centre, width, height, angle = sigma_ellipse(mean[[i, j]], cov, s)
                ax.add_patch(Ellipse(centre, width, height, angle=angle, fill=False,
                                     edgecolor=colors[c], linewidth=1.5,
                                     alpha=max(0.3, 1.0 - 0.25 * (s - 1)),
                                     label=f"{s}-sigma" if c == 0 else None))
    ax.scatter(centers[:, i], centers[:, j], marker="X", s=120, c=colors,
               edgecolors="black", linewidths=1.2, zorder=3, label="centres")
    ax.set_xlabel(f"feature {i}")
    ax.set_ylabel(f"feature {j}")
    ax.set_title(f"{type(model).__name__}: {len(centers)} clusters")
    ax.autoscale_view()
    return ax


def plot_density(model, X, ax=None, dims=(0, 1), grid=150, levels=None, at=None):
    """Contours of ``log p(x)`` of a GaussianMixture over the range of X on ``dims``.

    With more than two features the density is drawn on the plane through ``at`` (default:
    the mean of X) spanned by ``dims``.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
        Drawn as points; its range sets the grid.
    ax : matplotlib Axes, default=None
    dims : pair of int, default=(0, 1)
    grid : int, default=150
        Grid points per axis.
    levels : int or sequence, default=None
        Contour levels (matplotlib's meaning). Default: 12 levels evenly spaced from the
        1st percentile of ``log p`` at the drawn points to the largest value on the grid
        (the far tails would otherwise take most of the levels).
    at : array-like of shape (n_features,), default=None

    Returns
    -------
    matplotlib Axes
    """
    if not _is_gaussian(model):
        raise TypeError(f"plot_density draws Gaussian mixtures, not {type(model).__name__} "
                        "(KMeans has no density; Bernoulli rows are binary).")
    centers = _centers(model)
    d = centers.shape[1]
    i, j = _dims(dims, d)
    ax = _axes(ax)
    Xs = _shown_rows(X).astype(np.float64)
    point = np.asarray(at, dtype=np.float64) if at is not None else Xs.mean(axis=0)
    if point.shape != (d,):
        raise ValueError(f"at must have shape ({d},), got {point.shape}.")
    lo, hi = Xs[:, [i, j]].min(axis=0), Xs[:, [i, j]].max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-12)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], int(grid))
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], int(grid))
    xx, yy = np.meshgrid(gx, gy)
    rows = np.tile(point, (xx.size, 1))
    rows[:, i], rows[:, j] = xx.ravel(), yy.ravel()
    log_p = model.score_samples(rows.astype(model.means_.dtype)).reshape(xx.shape)
    if levels is None:
        low = np.percentile(model.score_samples(Xs), 1) if d == 2 else log_p.min()
        levels = np.linspace(min(low, log_p.max() - 1e-9), log_p.max(), 13)[:-1]
    contours = ax.contour(xx, yy, log_p, levels=levels, cmap="viridis")
    ax.figure.colorbar(contours, ax=ax, label="log p(x)")
    ax.scatter(Xs[:, i], Xs[:, j], s=5, c="0.3", alpha=0.5, linewidths=0)
    ax.set_xlabel(f"feature {i}")
    ax.set_ylabel(f"feature {j}")
    ax.set_title("log density" + (" (2-D slice)" if d > 2 else ""))
    return ax


def plot_responsibilities(model, X, component, ax=None, dims=(0, 1)):
    """Points coloured by the posterior probability of ``component`` (0 to 1).

    Parameters
    ----------
    model : fitted GaussianMixture or BernoulliMixture
    X : array-like of shape (n_samples, n_features)
    component : int
    ax : matplotlib Axes, default=None
    dims : pair of int, default=(0, 1)

    Returns
    -------
    matplotlib Axes
    """
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"{type(model).__name__} has hard labels only; plot_responsibilities "
                        "draws mixtures.")
    centers = _centers(model)
    k = centers.shape[0]
    if not (isinstance(component, (int, np.integer)) and 0 <= component < k):
        raise ValueError(f"component must be an integer in [0, {k}), got {component!r}.")
    i, j = _dims(dims, centers.shape[1])
    ax = _axes(ax)
    Xs = _shown_rows(X)   # dense
    r = model.predict_proba(Xs)[:, component]
    points = ax.scatter(Xs[:, i], Xs[:, j], c=r, cmap="viridis", vmin=0.0, vmax=1.0, s=10,
                        linewidths=0)
    ax.figure.colorbar(points, ax=ax, label=f"P(component {component} | x)")
    ax.set_xlabel(f"feature {i}")
    ax.set_ylabel(f"feature {j}")
    ax.set_title(f"responsibility of component {component}")
    return ax


def plot_convergence(model, ax=None):
    """The objective at every iteration of the fit: ``lower_bounds_`` for mixtures (mean
    log-likelihood), ``inertias_`` for KMeans.

    Returns
    -------
    matplotlib Axes
    """
    if hasattr(model, "lower_bounds_"):
        values, name = model.lower_bounds_, "lower bound (mean log-likelihood)"
    elif hasattr(model, "inertias_"):
        values, name = model.inertias_, "inertia"
    else:
        raise ValueError(f"{type(model).__name__} has no per-iteration history (fit a KMeans, "
                         "GaussianMixture or BernoulliMixture first; MiniBatchKMeans records "
                         "none).")
    ax = _axes(ax)
    iterations = np.arange(1, len(values) + 1)
    ax.plot(iterations, values, marker="o", markersize=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel(name)
    converged = getattr(model, "converged_", None)
    state = "" if converged is None else (" (converged)" if converged else
                                          " (did not converge)")
    ax.set_title(f"{type(model).__name__}: {len(values)} iterations{state}")
    return ax


def plot_selection(result, ax=None, criterion=None):
    """A :class:`fastem.SelectionResult` against the number of components: one line per
    covariance type, the chosen model marked.

    Parameters
    ----------
    result : SelectionResult
    ax : matplotlib Axes, default=None
    criterion : str, default=None
        The column to draw (default: the result's criterion; for 'elbow' the inertia, for
        'cv' the held-out log-likelihood). The chosen point is marked when it is drawn.

    Returns
    -------
    matplotlib Axes
    """
    column = criterion or {"elbow": "inertia", "cv": "cv_log_likelihood"}.get(
        result.criterion, result.criterion)
    if column not in result.columns:
        raise ValueError(f"the table has no column {column!r}; columns: {result.columns}.")
    ax = _axes(ax)
    ks = result.column("n_components")
    values = result.column(column)
    types = [row["covariance_type"] for row in result.table]
    for ct in dict.fromkeys(types):
        mask = np.array([t == ct for t in types])
        ax.plot(ks[mask], values[mask], marker="o", label=ct or column)
    best = result.best_index
    ax.plot([ks[best]], [values[best]], marker="*", markersize=18, color="crimson",
            linestyle="none", label=f"chosen: K={int(ks[best])}"
            + (f", {types[best]}" if types[best] else ""))
    ax.set_xlabel("number of components")
    ax.set_ylabel(column)
    ax.set_title(f"model selection by {result.criterion}")
    ax.legend()
    return ax


def plot_images(images, shape, ax=None, n_cols=None, labels=None, vmin=0.0, vmax=1.0):
    """Rows of ``images`` as ``shape`` images in one grid on one Axes (0 white to 1 black by
    default), each with an optional label above it.

    Parameters
    ----------
    images : array-like of shape (n_images, height * width)
    shape : (height, width)
    ax : matplotlib Axes, default=None
    n_cols : int, default=None
        Images per row (default: about the square root of their number).
    labels : sequence of str, default=None
    vmin, vmax : float or None, default=0, 1
        The grey scale's ends (None: the images' range).

    Returns
    -------
    matplotlib Axes
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2:
        raise ValueError(f"images must be 2-D (n_images, pixels), got shape {images.shape}.")
    k, d = images.shape
    h, w = (int(s) for s in shape)
    if h * w != d:
        raise ValueError(f"shape {tuple(shape)} has {h * w} pixels; the images have {d}.")
    n_cols = int(n_cols) if n_cols else int(np.ceil(np.sqrt(k)))
    n_rows = int(np.ceil(k / n_cols))
    pad = 1
    mosaic = np.full((n_rows * (h + pad) + pad, n_cols * (w + pad) + pad), np.nan)
    for c in range(k):
        r0 = pad + (c // n_cols) * (h + pad)
        c0 = pad + (c % n_cols) * (w + pad)
        mosaic[r0:r0 + h, c0:c0 + w] = images[c].reshape(h, w)
    ax = _axes(ax)
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=np.nanmin(mosaic) if vmin is None else vmin,
              vmax=np.nanmax(mosaic) if vmax is None else vmax, interpolation="nearest")
    for c, label in enumerate(labels if labels is not None else ()):
        ax.text(pad + (c % n_cols) * (w + pad) + w / 2 - 0.5,
                pad + (c // n_cols) * (h + pad) - 0.6, label, ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_components(model, shape, ax=None, n_cols=None):
    """Component means as images in one grid (Bernoulli success probabilities: 0 white to 1
    black), each labelled with its weight.

    Parameters
    ----------
    model : fitted BernoulliMixture (or any model with ``means_`` / ``cluster_centers_``:
        then the grey scale spans the means' range)
    shape : (height, width)
        Image shape; ``height * width`` must equal the number of features.
    ax : matplotlib Axes, default=None
    n_cols : int, default=None
        Images per row (default: about the square root of the number of components).

    Returns
    -------
    matplotlib Axes
    """
    centers = _centers(model)
    weights = getattr(model, "weights_", None)
    labels = [f"{w:.2f}" for w in weights] if weights is not None else \
        [f"#{c}" for c in range(len(centers))]
    binary = hasattr(model, "alpha")
    ax = plot_images(centers, shape, ax, n_cols, labels, *((0.0, 1.0) if binary else
                                                            (None, None)))
    ax.set_title(f"{type(model).__name__}: {len(centers)} components"
                 + (" (weights above)" if weights is not None else ""))
    return ax


__all__ = ["MAX_POINTS", "plot_clusters", "plot_components", "plot_convergence",
           "plot_density", "plot_images", "plot_responsibilities", "plot_selection", "projected_covariances",
           "sigma_ellipse"]
