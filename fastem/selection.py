"""Choosing the number of components (and the covariance type): :func:`select_model`.

Every combination of ``n_components`` and covariance type is fitted from the same seed and
scored; the result holds the table, every fitted model and the best one. Criteria:

* mixtures: ``'bic'`` ``-2 log L + p log n`` and ``'aic'`` ``-2 log L + 2 p`` (lower is
  better; with ``sample_weight``, ``log L = sum_i w_i log p(x_i)`` and ``n = sum_i w_i``), or
  ``'cv'``, the mean held-out log-likelihood per row over ``cv`` folds (higher is better);
* KMeans: ``'elbow'``, the knee of the inertia curve (the K farthest below the straight
  line from the first to the last point once both axes are scaled to [0, 1]: Satopaa et al.
  2011, "Finding a 'kneedle' in a haystack"), or ``'silhouette'``, the mean silhouette
  coefficient (Rousseeuw 1987) on a random subsample of at most ``silhouette_samples`` rows
  (higher is better; undefined for one cluster).

Fits run concurrently on a thread pool (``n_jobs``): fastem's kernels release the GIL and run
on fastem's own threads, safe from several Python threads under any Numba threading layer,
and each fit is capped to its share of the threads. Fits are bitwise identical for any
thread count, so the table does not depend on ``n_jobs``.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .estimators import ESTIMATORS, SHORT_NAMES
from .kernels._jit import n_threads, thread_cap
from .sources import is_dask_array
from .validation import check_int, check_random_state, check_sample_weight

CRITERIA = {"mixture": ("bic", "aic", "cv"), "kmeans": ("elbow", "silhouette")}


def _estimator_class(estimator):
    if isinstance(estimator, str):
        name = SHORT_NAMES.get(estimator.lower(), estimator)
        if name not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {sorted(SHORT_NAMES)}, a fastem "
                             f"estimator class or instance, got {estimator!r}.")
        return ESTIMATORS[name], {}
    if isinstance(estimator, type) and estimator in ESTIMATORS.values():
        return estimator, {}
    if type(estimator) in ESTIMATORS.values():
        return type(estimator), estimator.get_params()
    raise TypeError(f"estimator must be one of {sorted(SHORT_NAMES)}, a fastem estimator "
                    f"class or instance, got {type(estimator).__name__}.")


class SelectionResult:
    """What :func:`select_model` found.

    Attributes
    ----------
    table : list of dict
        One row per fit, in fitting order (covariance types outer, K inner). Keys:
        ``n_components``, ``covariance_type`` (None for KMeans and BernoulliMixture),
        ``n_iter``, ``converged``, ``fit_time`` (s) and, for mixtures, ``log_likelihood``
        (weighted sum over the rows), ``n_parameters``, ``bic``, ``aic``; for KMeans
        ``inertia`` and ``silhouette`` (when computed); with ``cv``, ``cv_log_likelihood``
        (mixtures) or ``cv_inertia`` (KMeans: held-out inertia per row), means over the folds.
    criterion : str
    best_index : int
        The chosen row of ``table``.
    best_estimator : estimator
        The fitted model of that row (fitted on all the data).
    estimators : list
        Every fitted model, in the order of ``table``.
    """

    def __init__(self, table, estimators, criterion, best_index):
        self.table = table
        self.estimators = estimators
        self.criterion = criterion
        self.best_index = best_index
        self.best_estimator = estimators[best_index]

    @property
    def best_params(self):
        """``{'n_components': K, 'covariance_type': ...}`` of the chosen model."""
        row = self.table[self.best_index]
        return {"n_components": row["n_components"], "covariance_type": row["covariance_type"]}

    @property
    def columns(self):
        return list(self.table[0])

    def column(self, name):
        """One column of the table as a float array (None as NaN)."""
        return np.array([np.nan if row[name] is None else row[name] for row in self.table],
                        dtype=float)

    def to_pandas(self):
        """The table as a pandas DataFrame (pandas imported on demand)."""
        import pandas as pd
        return pd.DataFrame(self.table)

    def __str__(self):
        head = [c for c in self.columns if not (c == "covariance_type" and
                                                self.table[0][c] is None)]
        cells = [[_cell(row[c]) for c in head] for row in self.table]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(head)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(head, widths))]
        for i, r in enumerate(cells):
            mark = "  <- best" if i == self.best_index else ""
            lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths)) + mark)
        return "\n".join(lines)

    def __repr__(self):
        return (f"<SelectionResult: {len(self.table)} fits, criterion {self.criterion!r}, "
                f"best {self.best_params}>")


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e4 or not np.isfinite(value) else f"{value:.2f}"
    return str(value)


def select_model(X, estimator="gmm", n_components=range(1, 11), covariance_types=None,
                 criterion=None, cv=None, n_init=None, random_state=None, sample_weight=None,
                 n_jobs=None, silhouette_samples=2000):
    """Fit every combination of ``n_components`` and covariance type; pick the best.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), memmap or scipy.sparse matrix
        (sparse: BernoulliMixture and KMeans).
    estimator : {'gmm', 'bmm', 'kmeans', 'minibatch-kmeans'}, a fastem estimator class, or an
        instance. An instance is a template: its other parameters are kept.
    n_components : iterable of int, default=range(1, 11)
        Numbers of components (clusters for KMeans) to try.
    covariance_types : list of str, default=None
        GaussianMixture only: the covariance types to try (default: the template's, i.e.
        'full' for 'gmm'). Give ``['full', 'tied', 'diag', 'spherical']`` to try them all.
    criterion : str, default=None
        'bic' (the default for mixtures), 'aic' or 'cv' for mixtures; 'elbow' (the default
        for KMeans) or 'silhouette' for KMeans. See the module docstring.
    cv : int or iterable of (train, test) index arrays or a splitter with ``split(X)``, default=None
        Held-out scoring: an int is that many shuffled folds (seeded by ``random_state``).
        Each fold fits on its training rows and scores the test rows.
    n_init : int, default=None
        Restarts per fit (None: the template's, 1 for the defaults).
    random_state : int, RandomState or None, default=None
        Every fit is seeded with the same integer (drawn once from a RandomState or from
        NumPy's global state for None), so a row equals a fit made on its own with
        ``random_state`` set to that integer (``int`` input: that integer).
    sample_weight : array-like of shape (n_samples,), default=None
    n_jobs : int, default=None
        Fits run at once, each on ``max(1, threads // n_jobs)`` of fastem's threads (None:
        the number of threads, i.e. one thread per fit). The results do not depend on it.
    silhouette_samples : int, default=2000
        Rows (drawn without replacement) on which the silhouette is computed.

    Returns
    -------
    SelectionResult
    """
    cls, template = _estimator_class(estimator)
    parameter_names = cls._get_param_names()
    kind = "kmeans" if "n_clusters" in parameter_names else "mixture"
    criterion = criterion or ("elbow" if kind == "kmeans" else "bic")
    if criterion not in CRITERIA[kind]:
        raise ValueError(f"criterion for {cls.__name__} must be one of {CRITERIA[kind]}, got "
                         f"{criterion!r}.")
    if criterion == "cv" and cv is None:
        raise ValueError("criterion='cv' needs cv (a number of folds or the splits).")
    if is_dask_array(X):
        raise TypeError("select_model fits in-memory, memory-mapped or sparse X; for a Dask "
                        "array fit the candidates one by one (each fit runs on the cluster).")
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    ks = [check_int(k, "n_components", low=1) for k in n_components]
    if not ks:
        raise ValueError("n_components is empty.")
    size_name = "n_clusters" if kind == "kmeans" else "n_components"
    types = [None]
    if "covariance_type" in parameter_names:
        types = list(covariance_types) if covariance_types is not None else \
            [template.get("covariance_type", "full")]
    elif covariance_types is not None:
        raise ValueError(f"covariance_types applies to GaussianMixture, not {cls.__name__}.")
    seed = random_state if isinstance(random_state, (int, np.integer)) and \
        not isinstance(random_state, bool) else \
        int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    params = dict(template, random_state=int(seed))
    if n_init is not None:
        params["n_init"] = check_int(n_init, "n_init", low=1)
    weights = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    folds = _folds(cv, X, seed) if cv is not None else []
    combos = [(ct, k) for ct in types for k in ks]

    def fit_one(combo, train=None):
        ct, k = combo
        p = dict(params, **{size_name: k})
        if ct is not None:
            p["covariance_type"] = ct
        Xf, wf = (X, weights) if train is None else \
            (X[train], None if weights is None else weights[train])
        t0 = time.perf_counter()
        try:
            model = cls(**p).fit(Xf, sample_weight=wf)
        except ValueError as e:   # say which fit failed (e.g. a singular covariance at large K)
            what = f"{size_name}={k}" + (f", covariance_type={ct!r}" if ct else "")
            raise ValueError(f"{cls.__name__}({what}): {e}") from e
        return model, time.perf_counter() - t0

    tasks = [(combo, None) for combo in combos] + \
            [(combo, train) for combo in combos for train, _ in folds]
    n_jobs = n_threads() if n_jobs is None else check_int(n_jobs, "n_jobs", low=1)
    n_jobs = min(n_jobs, len(tasks))
    cap = max(1, n_threads() // n_jobs)

    def run(task):
        with thread_cap(cap):
            return fit_one(*task)

    if n_jobs == 1:
        done = [run(task) for task in tasks]
    else:
        with ThreadPoolExecutor(n_jobs) as pool:
            done = list(pool.map(run, tasks))
    models = [model for model, _ in done[:len(combos)]]
    table = []
    for i, ((ct, k), (model, seconds)) in enumerate(zip(combos, done)):
        row = {"n_components": k, "covariance_type": ct, "n_iter": int(model.n_iter_),
               "converged": bool(getattr(model, "converged_", model.n_iter_ < model.max_iter)),
               "fit_time": seconds}
        if kind == "kmeans":
            row["inertia"] = float(model.inertia_)
            if criterion == "silhouette":
                row["silhouette"] = _subsample_silhouette(model, X, silhouette_samples, seed)
        else:
            row.update(_information_criteria(model, X, weights))
        if folds:
            fold_models = [done[len(combos) + i * len(folds) + f][0] for f in range(len(folds))]
            scores = [_held_out(m, X, test, weights, kind)
                      for m, (_, test) in zip(fold_models, folds)]
            row["cv_inertia" if kind == "kmeans" else "cv_log_likelihood"] = \
                float(np.mean(scores))
        table.append(row)
    return SelectionResult(table, models, criterion, _best(table, criterion))


def _information_criteria(model, X, weights):
    p = int(model._n_parameters())
    log_norm = model.score_samples(X)
    # without weights: the arithmetic of the estimator's bic() and aic(), to the last bit
    log_likelihood = float(log_norm.sum()) if weights is None else float(weights @ log_norm)
    n = len(log_norm) if weights is None else weights.sum()
    bic = -2 * log_likelihood + p * np.log(n)
    aic = -2 * log_likelihood + 2 * p
    return {"log_likelihood": float(log_likelihood), "n_parameters": p, "bic": float(bic),
            "aic": float(aic)}


def _held_out(model, X, test, weights, kind):
    w = None if weights is None else weights[test]
    score = model.score(X[test], sample_weight=w)
    if kind == "kmeans":   # score is minus the (weighted) inertia: report inertia per row
        return -score / (len(test) if w is None else w.sum())
    return score


def _best(table, criterion):
    if criterion in ("bic", "aic"):
        return int(np.argmin([row[criterion] for row in table]))
    if criterion == "cv":
        return int(np.argmax([row["cv_log_likelihood"] for row in table]))
    if criterion == "silhouette":
        values = np.array([row["silhouette"] for row in table])
        if np.isnan(values).all():
            raise ValueError("the silhouette needs at least 2 clusters (and a sample with "
                             "two distinct labels) for some n_components.")
        return int(np.nanargmax(values))
    return elbow_index([row["n_components"] for row in table],
                       [row["inertia"] for row in table])


def elbow_index(ks, inertias):
    """Index of the knee of a decreasing curve ``inertia(k)`` (see the module docstring):
    the point farthest below the chord between the end points, both axes scaled to [0, 1];
    0 when the curve has fewer than three points or lies on or above its chord."""
    ks, inertias = np.asarray(ks, dtype=float), np.asarray(inertias, dtype=float)
    order = np.argsort(ks, kind="stable")
    if len(ks) < 3:
        return int(order[0])
    x = (ks[order] - ks[order[0]]) / (ks[order[-1]] - ks[order[0]])
    span = inertias[order[0]] - inertias[order[-1]]
    if not span > 0:
        return int(order[0])
    y = (inertias[order] - inertias[order[-1]]) / span   # 1 at the first K, 0 at the last
    below = (1 - x) - y                                  # distance below the chord (scaled)
    best = int(np.argmax(below))
    return int(order[best]) if below[best] > 0 else int(order[0])


def silhouette(X, labels):
    """Mean silhouette coefficient of in-memory rows ``X`` with ``labels`` (Euclidean;
    ``s_i = (b_i - a_i) / max(a_i, b_i)``, 0 for a row alone in its cluster); NaN when
    fewer than two labels occur."""
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X, dtype=np.float64)
    X = X.astype(np.float64, copy=False)
    labels = np.asarray(labels)
    present, labels = np.unique(labels, return_inverse=True)
    if len(present) < 2:
        return float("nan")
    sq = (X * X).sum(axis=1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0))
    np.fill_diagonal(dist, 0.0)
    counts = np.bincount(labels, minlength=len(present)).astype(float)
    onehot = np.zeros((len(labels), len(present)))
    onehot[np.arange(len(labels)), labels] = 1.0
    sums = dist @ onehot                                  # (n, clusters) distance sums
    own = counts[labels]
    a = sums[np.arange(len(labels)), labels] / np.maximum(own - 1, 1)
    means = sums / counts
    means[np.arange(len(labels)), labels] = np.inf
    b = means.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), np.finfo(float).tiny), 0.0)
    return float(s.mean())


def _subsample_silhouette(model, X, n_samples, seed):
    n = X.shape[0]
    rows = np.sort(np.random.RandomState(seed).choice(n, n_samples, replace=False)) \
        if n > n_samples else np.arange(n)
    Xs = X[rows]
    return silhouette(Xs, model.predict(Xs))


def _folds(cv, X, seed):
    n = X.shape[0]
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        n_splits = check_int(cv, "cv", low=2)
        if n_splits > n:
            raise ValueError(f"cv={n_splits} folds need at least as many rows, got {n}.")
        order = np.random.RandomState(seed).permutation(n)
        parts = np.array_split(order, n_splits)
        return [(np.sort(np.concatenate(parts[:i] + parts[i + 1:])), np.sort(part))
                for i, part in enumerate(parts)]
    splits = cv.split(X) if hasattr(cv, "split") else cv
    folds = [(np.asarray(train), np.asarray(test)) for train, test in splits]
    if not folds:
        raise ValueError("cv gave no splits.")
    return folds
