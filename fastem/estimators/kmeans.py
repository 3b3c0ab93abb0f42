"""The KMeans estimator: validation and attributes only; numerics live in the layers below."""
import warnings
from functools import partial

import numpy as np

from .._warmup import compile_ahead
from ..em import fit_em, fit_minibatch
from ..models.kmeans import (ElkanKMeansModel, HamerlyKMeansModel, KMeansModel,
                             MiniBatchKMeansModel, YinyangKMeansModel,
                             all_sqdist, assign_nearest, choose_algorithm,
                             mean_feature_variance, prunes_seeding,
                             seeding_potentials_kernel)
from ..persistence import restored_array, restored_number
from ..sources import ArraySource, as_source, is_dask_array
from ..validation import (check_array, check_float, check_int, check_is_fitted,
                          check_n_features, check_random_state, check_sample_weight,
                          random_state_for_fit)
from ._base import BaseEstimator, ClusterMixin, TransformerMixin


#: KMeans(algorithm=...) values, and the model each method runs on
ALGORITHMS = ("auto", "lloyd", "hamerly", "yinyang", "elkan")
MODELS = {"lloyd": KMeansModel, "hamerly": HamerlyKMeansModel,
          "yinyang": YinyangKMeansModel, "elkan": ElkanKMeansModel}


def _checked_centers(centers, n_clusters, n_features, name):
    centers = check_array(centers, name=name)
    if centers.shape != (n_clusters, n_features):
        raise ValueError(f"{name} has shape {centers.shape}; expected (n_clusters, n_features)"
                         f" = ({n_clusters}, {n_features}).")
    return centers


def _call_init(init, X, n_clusters, n_features, rng):
    """Centres from a user's ``init(X, n_clusters, random_state)``, checked."""
    return _checked_centers(init(X, n_clusters, random_state=rng), n_clusters, n_features,
                            "the centres returned by init")


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering by Lloyd's algorithm on fused, deterministic Numba kernels.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {'k-means++', 'random'} or array of shape (n_clusters, n_features), default='k-means++'
        'k-means++': greedy k-means++ (``2 + int(log(n_clusters))`` candidates per centre);
        'random': distinct rows drawn with probability proportional to ``sample_weight``;
        an array: the initial centres.
    n_init : 'auto' or int, default='auto'
        Number of restarts; the one with the lowest inertia is kept. 'auto' is 1 for
        'k-means++' or an array and 10 for 'random'.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per restart.
    tol : float, default=1e-4
        Stop when the summed squared centre shift is at most ``tol`` times the mean feature
        variance of X (scikit-learn's meaning). Iteration also stops as soon as no label
        changes.
    verbose : int, default=0
        1: one line per restart; 2: also one line per iteration (inertia and ms/iteration).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation; fixes the result for any number of threads.
    copy_x : bool, default=True
        Accepted for scikit-learn compatibility; fastem never modifies X (nor centres it), so
        both values behave the same.
    algorithm : {'auto', 'lloyd', 'hamerly', 'yinyang', 'elkan'}, default='auto'
        'lloyd': every row searched against every centre each iteration. 'hamerly': Lloyd's
        iterations with Hamerly's bounds (two float32 per row): rows whose bounds prove that
        their label cannot change are not searched; the others go through the same SIMD
        search, so the labels, ``n_iter_`` and centres equal Lloyd's (centres and inertia to
        rounding of the running sums). 'yinyang': one bound per group of nearby centres
        (simplified Yinyang; about ``sqrt(k) / 2`` groups, t + 1 float32 per row, never more
        than a row of X): a row that fails its bounds is scored only against the groups they
        do not rule out, with the same SIMD scores (dense input; with fewer than two groups
        it runs 'hamerly', on CSR input what 'auto' picks there). 'elkan': one bound per
        centre (k + 1 float32 per row), each row scored only against the centres its bounds
        do not rule out (CSR input; on dense input 'elkan' runs 'hamerly'). Every method
        gives Lloyd's iterations. 'auto': 'lloyd' for fewer than 16 clusters or
        ``n_clusters * n_features < 256``, for fewer than 8 rows per cluster, for a Dask
        array and when the bounds would be larger than X (``n_features * itemsize < 8``);
        else for CSR rows 'elkan' when k float32 per row take no more memory than the rows,
        else 'hamerly'; for dense rows 'yinyang' from 64 clusters and 64 KiB of centres
        (``n_clusters * n_features * itemsize``; 16 KiB below the AVX-512 class), else
        'hamerly'.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), X's dtype
    labels_ : ndarray of shape (n_samples,), int32
    inertia_ : float
        Weighted sum of squared distances of the samples to their closest centre.
    inertias_ : list of float
        The inertia of the best restart at every iteration, under the centres that iteration
        started from (the last entry is that of the centres before the final update).
    n_iter_ : int
    n_features_in_ : int

    Notes
    -----
    float32 and float64 C-contiguous input is used without a copy; other layouts and integer
    or boolean input are converted once (to C order, float64). Results are bitwise identical
    for any ``NUMBA_NUM_THREADS``.
    """

    _params_attribute = "cluster_centers_"
    _saved_attributes = ("cluster_centers_", "labels_", "inertia_", "inertias_", "n_iter_",
                         "n_features_in_")

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, verbose=0, random_state=None, copy_x=True, algorithm="auto"):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm

    def _checked_params(self, source, X):
        """Validate hyper-parameters against the data; returns (init, n_init).

        ``init`` is then 'k-means++', 'random', a float array, or for a callable
        ``init(X, n_clusters, random_state)`` a function of the random state returning
        checked centres (X is the validated input: an array, memmap, ChunkedArray or Dask
        array)."""
        n_clusters = check_int(self.n_clusters, "n_clusters", low=1)
        check_int(self.max_iter, "max_iter", low=1)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.verbose, "verbose", low=0)
        init = self.init
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise ValueError(f"init must be 'k-means++', 'random', an array or a callable, "
                                 f"got {init!r}.")
        elif callable(init):
            init = partial(_call_init, init, getattr(source, "X", X), n_clusters,
                           source.n_features)
        else:
            init = _checked_centers(init, n_clusters, source.n_features, "init")
        if isinstance(self.n_init, str):
            if self.n_init != "auto":
                raise ValueError(f"n_init must be 'auto' or a positive integer, got {self.n_init!r}.")
            # scikit-learn's rule: several restarts only for random seedings
            n_init = 1 if isinstance(init, np.ndarray) or init == "k-means++" else 10
        else:
            n_init = check_int(self.n_init, "n_init", low=1)
        if isinstance(init, np.ndarray) and n_init != 1:
            warnings.warn(f"Explicit initial center position passed: performing only one init "
                          f"in {type(self).__name__} instead of n_init={n_init}.",
                          RuntimeWarning, stacklevel=3)
            n_init = 1  # an explicit init is deterministic; restarts would repeat it
        if source.n_rows < n_clusters:
            raise ValueError(f"n_samples={source.n_rows} should be >= n_clusters={n_clusters}.")
        return init, n_init

    def _checked_algorithm(self, source):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, "
                             f"got {self.algorithm!r}.")
        if self.algorithm == "elkan" and self.n_clusters == 1:
            warnings.warn("algorithm='elkan' doesn't make sense for a single cluster. Using "
                          "'lloyd' instead.", RuntimeWarning, stacklevel=3)
            return "lloyd"
        if self.algorithm not in ("lloyd", "auto") and source.distributed:
            raise ValueError(f"algorithm={self.algorithm!r} keeps bounds for every row; on a "
                             "Dask array use 'lloyd' or 'auto'.")
        return choose_algorithm(self.algorithm, self.n_clusters, source)

    def fit(self, X, y=None, sample_weight=None):
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features), memmap, :class:`fastem.ChunkedArray` or dask array
            Sparse input is used as CSR (other formats converted once); a pass costs
            O(nnz k) and the centres are dense.
            A memory-mapped array (``np.load(path, mmap_mode='r')``) or a ChunkedArray is
            streamed in chunks; memory use is then one int32 label per row, plus two float32
            bounds per row for 'hamerly' (one float64 and one int32 per row while k-means++
            seeds), never n x d or n x k. A Dask array stays on its
            workers (each Lloyd pass is one task per block plus a tree sum of the tables;
            'k-means++' is k-means|| there) and ``labels_`` is a lazy Dask array.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights are equivalent to repeating rows.

        Returns
        -------
        self : KMeans
        """
        source = as_source(X, sample_weight, self._validate)
        init, n_init = self._checked_params(source, X)
        model_class = MODELS[self._checked_algorithm(source)]
        helper = None
        if (isinstance(init, str) and init == "k-means++" and not source.sparse
                and source.in_memory is not None):
            # an empty cache: a helper process compiles k-means++ while the model compiles
            # the Lloyd kernel (its tol scale is one Lloyd pass)
            helper = compile_ahead(seeding_potentials_kernel(source, self.n_clusters),
                                   source, "seeding", self.n_clusters,
                                   int(prunes_seeding(source, self.n_clusters)))
        model = model_class(source, self.n_clusters, init)
        if helper is not None:
            helper.wait()
        with random_state_for_fit(self.random_state) as rng:
            result = fit_em(model, source, n_init=n_init, max_iter=self.max_iter,
                            tol=self.tol, rng=rng, verbose=self.verbose,
                            objective_name="-inertia")
        centers, labels = result.params
        self.cluster_centers_ = centers.astype(source.dtype)
        self.inertia_ = -result.objective
        self.inertias_ = [-objective for objective in result.history]
        self.n_iter_ = result.n_iter
        self.n_features_in_ = source.n_features
        # on Dask the labels stay on the cluster: a lazy Dask array (nearest fitted centre)
        # of the user's array (a Dask row source passed in: of its persisted blocks)
        if labels is None:
            labels = self.predict(X if is_dask_array(X) else source.X)
        self.labels_ = labels
        return self

    @classmethod
    def _validate(cls, X, name="X"):
        # a classmethod: Dask workers run it on blocks without a copy of the estimator
        return check_array(X, name=name, estimator_name=cls.__name__, accept_sparse=True)

    def _check_predict_input(self, X):
        """The fitted check and the input as a row source (validated)."""
        check_is_fitted(self, "cluster_centers_")
        source = as_source(X, None, self._validate)
        check_n_features(self, source)
        return source

    def _nearest(self, source):
        labels = np.empty(source.n_rows, dtype=np.int32)
        sqdist = np.empty(source.n_rows)
        centers = self.cluster_centers_.astype(source.dtype)
        for rows, X, _ in source.chunks():
            assign_nearest(X, centers, labels[rows], sqdist[rows])
        return labels, sqdist

    def predict(self, X):
        """Index of the closest centre for each sample (int32 array of shape (n_samples,);
        a lazy Dask array for a Dask array X)."""
        if is_dask_array(X):
            return self._lazy_rows(X, "predict", None, np.int32)
        return self._nearest(self._check_predict_input(X))[0]

    def _min_sqdist(self, X):
        """Squared distance of every row to its closest centre (float64)."""
        return self._nearest(self._check_predict_input(X))[1]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distances to every centre, shape (n_samples, n_clusters), X's dtype
        (a lazy Dask array for a Dask array X)."""
        if is_dask_array(X):
            dtype = self._validate(np.zeros((1, X.shape[1]), dtype=X.dtype)).dtype
            return self._lazy_rows(X, "transform", self.cluster_centers_.shape[0], dtype)
        source = self._check_predict_input(X)
        out = np.empty((source.n_rows, self.cluster_centers_.shape[0]))
        for rows, Xc, _ in source.chunks():
            all_sqdist(Xc, self.cluster_centers_.astype(source.dtype), out[rows])
        return self._wrap_output(np.sqrt(out, out=out).astype(source.dtype, copy=False), X)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit and return ``transform(X)``."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Negative (weighted) inertia of X under the fitted centres."""
        if is_dask_array(X):
            from .._dask import weighted_sum
            return -weighted_sum(self._lazy_rows(X, "_min_sqdist"), sample_weight)[0]
        source = self._check_predict_input(X)
        sample_weight = check_sample_weight(sample_weight, source.n_rows)
        return -float(sample_weight @ self._nearest(source)[1])

    def _check_restored(self):
        k = check_int(self.n_clusters, "n_clusters", low=1)
        d = restored_number(self, "n_features_in_", int, low=1)
        restored_array(self, "cluster_centers_", (k, d))
        restored_number(self, "inertia_", float, low=0)
        restored_number(self, "n_iter_", int, low=0)
        if hasattr(self, "labels_"):
            labels = restored_array(self, "labels_", (None,), "iu")
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(f"labels_ should lie in [0, {k})")
        if hasattr(self, "inertias_") and not isinstance(self.inertias_, list):
            raise ValueError("inertias_ should be a list of numbers")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags



class MiniBatchKMeans(KMeans):
    """Mini-batch k-means: scikit-learn's ``MiniBatchKMeans`` on fastem's kernels.

    Each step draws ``batch_size`` rows uniformly (with replacement), assigns them with the
    fused Lloyd kernel and moves every centre to the running weighted mean of all points it
    has received (learning rate ``1 / count`` per centre; centres and counts in float64).
    X may be in memory, a memmap or a :class:`fastem.ChunkedArray` (batches are then read
    from it; prefer a memmap, whose rows are read directly).

    Parameters
    ----------
    n_clusters : int, default=8
    init : {'k-means++', 'random'} or array of shape (n_clusters, n_features), default='k-means++'
        Seeding (as :class:`KMeans`) on ``init_size`` rows drawn at random.
    max_iter : int, default=100
        Passes over the data: at most ``max_iter * n_samples // batch_size`` steps.
    batch_size : int, default=1024
    verbose : int, default=0
    compute_labels : bool, default=True
        After fitting, compute ``labels_`` and ``inertia_`` on all of X (one more pass).
        Otherwise ``inertia_`` is the smoothed batch inertia times ``n_samples``.
    random_state : int, RandomState instance or None, default=None
    tol : float, default=0.0
        Stop when a step moves the centres by a summed squared distance of at most ``tol``
        times the mean feature variance of X (0 disables this test and the variance pass).
    max_no_improvement : int or None, default=10
        Stop after this many consecutive steps without a new minimum of the smoothed batch
        inertia (exponentially weighted average, alpha = 2 batch_size / (n + 1)).
    init_size : int or None, default=None
        Rows used by the seeding and to choose among ``n_init`` seedings;
        default ``3 * batch_size`` (at least ``3 * n_clusters``).
    n_init : 'auto' or int, default='auto'
        Seedings tried (the best inertia on a validation sample of ``init_size`` rows wins);
        'auto' is 1 for 'k-means++' or an array, 3 for 'random'.
    reassignment_ratio : float, default=0.01
        Centres whose count is below this fraction of the largest count are moved to random
        points of the batch (every ``10 n_clusters`` points, or when a count is 0).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), X's dtype
    labels_ : ndarray of shape (n_samples,), int32
        (of the last batch after ``partial_fit``; only with ``compute_labels``)
    inertia_ : float
    n_iter_ : int
        Passes over the data started (``ceil(n_steps_ * batch_size / n_samples)``).
    n_steps_ : int
        Mini-batch steps done.
    n_features_in_ : int

    Notes
    -----
    Deterministic for a given ``random_state`` and any number of threads. float32 X stays
    float32 (only the batches are gathered); sample weights weight the seeding, the updates and
    the inertia.
    """

    def __init__(self, n_clusters=8, *, init="k-means++", max_iter=100, batch_size=1024,
                 verbose=0, compute_labels=True, random_state=None, tol=0.0,
                 max_no_improvement=10, init_size=None, n_init="auto",
                 reassignment_ratio=0.01):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio

    _saved_attributes = KMeans._saved_attributes + ("n_steps_",)

    def _saved_state(self):
        """Public attributes plus the stream state ``partial_fit`` continues from (centres
        and counts in float64, the reassignment counter, the random stream)."""
        state = super()._saved_state()
        model = getattr(self, "_minibatch", None)
        if model is not None:
            state.update(_stream_centers=model.centers, _stream_counts=model.counts,
                         _stream_since_reassign=model.n_since_reassign,
                         _stream_init_size=model.init_size, _rng=self._rng)
        return state

    def _restore_state(self, state):
        stream = {name: state.pop(name) for name in list(state) if name.startswith("_")}
        super()._restore_state(state)
        if not stream:
            return
        k, d = self.cluster_centers_.shape
        if set(stream) != {"_stream_centers", "_stream_counts", "_stream_since_reassign",
                           "_stream_init_size", "_rng"} \
                or not isinstance(stream["_rng"], np.random.RandomState):
            raise ValueError("the mini-batch stream state is incomplete")
        self.__dict__.update(stream)
        centers = restored_array(self, "_stream_centers", (k, d))
        counts = restored_array(self, "_stream_counts", (k,))
        init = self.init if isinstance(self.init, str) else "k-means++"
        model = MiniBatchKMeansModel(k, init, restored_number(self, "_stream_init_size", int, 1),
                                     float(self.reassignment_ratio))
        model.centers, model.counts = centers.astype(np.float64), counts.astype(np.float64)
        model.n_since_reassign = restored_number(self, "_stream_since_reassign", int, 0)
        for name in stream:
            if name != "_rng":
                delattr(self, name)
        self._minibatch = model

    def _checked_minibatch_params(self, source, X):
        init, n_init = self._checked_params(source, X)
        if isinstance(self.n_init, str) and not isinstance(init, np.ndarray):
            n_init = 1 if isinstance(init, str) and init == "k-means++" else 3
        batch_size = min(check_int(self.batch_size, "batch_size", low=1), source.n_rows)
        check_float(self.reassignment_ratio, "reassignment_ratio", low=0.0)
        if self.max_no_improvement is not None:
            check_int(self.max_no_improvement, "max_no_improvement", low=0)
        if self.init_size is None:
            init_size = 3 * batch_size
        else:
            init_size = check_int(self.init_size, "init_size", low=1)
        init_size = min(max(init_size, 3 * self.n_clusters), source.n_rows)
        model = MiniBatchKMeansModel(self.n_clusters, init, init_size,
                                     float(self.reassignment_ratio))
        return model, n_init, batch_size

    def _seed(self, model, source, n_init, rng):
        """The best of ``n_init`` seedings by inertia on a validation sample."""
        if n_init == 1:
            return model.initial_centers(source, rng)
        ids = rng.randint(0, source.n_rows, model.init_size)
        X_valid, w_valid = np.ascontiguousarray(source.take(ids)), source.weights(ids)
        best, best_inertia = None, np.inf
        for _ in range(n_init):
            centers = model.initial_centers(source, rng)
            inertia = model.batch_lloyd(X_valid, w_valid, centers)[2]
            if inertia < best_inertia:
                best, best_inertia = centers, inertia
        return best

    def fit(self, X, y=None, sample_weight=None):
        """Compute the centres by mini-batch steps (see the class docstring).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), memmap or :class:`fastem.ChunkedArray`
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MiniBatchKMeans
        """
        if is_dask_array(X):
            raise TypeError(
                "MiniBatchKMeans does not fit Dask arrays: each mini-batch step depends on the "
                "previous one, so on a cluster it would move every batch to one place and run "
                "serially. Use fastem.KMeans, whose Lloyd passes run on the workers in "
                "parallel, or call partial_fit on blocks you compute. A fitted "
                "MiniBatchKMeans predicts and transforms Dask arrays lazily.")
        source = as_source(X, sample_weight, self._validate)
        model, n_init, batch_size = self._checked_minibatch_params(source, X)
        tol = (float(self.tol) * mean_feature_variance(source, fused=True) if self.tol > 0
               else 0.0)
        rng = self._rng = check_random_state(self.random_state)
        model.start(self._seed(model, source, n_init, rng))
        n_steps = max(1, self.max_iter * source.n_rows // batch_size)
        result = fit_minibatch(model, source, n_steps=n_steps, batch_size=batch_size, tol=tol,
                               max_no_improvement=self.max_no_improvement, rng=rng,
                               verbose=self.verbose)
        self._finish(model, source)
        if not self.compute_labels:
            self.inertia_ = result.ewa_inertia * source.n_rows
        self.n_steps_ = result.n_steps
        self.n_iter_ = int(np.ceil(result.n_steps * batch_size / source.n_rows))
        return self

    def _finish(self, model, source):
        self._minibatch = model
        self.cluster_centers_ = model.centers.astype(source.dtype)
        self.n_features_in_ = source.n_features
        if self.compute_labels:
            self.labels_, sqdist = self._nearest(source)
            w = source.sample_weight
            self.inertia_ = float(sqdist.sum() if w is None else w @ sqdist)

    def partial_fit(self, X, y=None, sample_weight=None):
        """One mini-batch step on ``X`` (the whole chunk is the batch).

        The first call seeds the centres from this chunk (``init`` on ``init_size`` of its
        rows); later calls must have the same number of features.

        Returns
        -------
        self : MiniBatchKMeans
        """
        X = self._validate(X)
        source = ArraySource(X, sample_weight)
        model = getattr(self, "_minibatch", None)
        if model is None:
            self._rng = check_random_state(self.random_state)
            model, n_init, _ = self._checked_minibatch_params(source, X)
            model.start(self._seed(model, source, n_init, self._rng))
            self.n_steps_ = 0
        else:
            check_n_features(self, source)
        w = source.sample_weight if source.sample_weight is not None else np.ones(X.shape[0])
        model.step(X, w, self._rng)
        self._finish(model, source)
        self.n_steps_ += 1
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
