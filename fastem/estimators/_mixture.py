"""Shared estimator code for mixture models (GaussianMixture, BernoulliMixture).

A subclass provides:

* ``_validate_data(X, name)`` - the checked array (dense or CSR) for fit and predict (called
  once per array, or once per chunk of a memmap or :class:`fastem.ChunkedArray`);
* ``_check_model_params(source)`` - validation of its own hyper-parameters;
* ``_make_model()`` - the layer-2 model (see ``fastem.em``), which must also
  offer ``weighted_log_prob(X, params) -> (n, k) float64``, ``n_parameters(params)``,
  ``sample(params, n, rng)`` and ``attributes(params) -> dict`` of fitted attributes;
* ``_params_attribute`` - the name of a fitted attribute that marks the estimator as fitted;
* ``_saved_attributes`` and ``_restored_model()`` - for the model file: the fitted attributes
  it keeps, and ``(model, params)`` rebuilt from them after they were loaded and checked.

Everything else (fit loop, warm start, convergence warning, predict/score/bic/aic) is here.
"""
import warnings

import numpy as np

from .._warmup import compile_ahead
from ..em import fit_em, stepwise_em_update, stepwise_rate
from ..kernels import responsibilities
from ..persistence import restored_array, restored_number
from ..sources import ArraySource, as_source, is_dask_array
from ..validation import (ConvergenceWarning, check_float, check_init_array, check_int,
                          check_is_fitted, check_n_features, check_random_state,
                          check_sample_weight, random_state_for_fit, sklearn_compatible)
from ._base import BaseEstimator, DensityMixin
from .kmeans import KMeans


class BaseMixture(DensityMixin, BaseEstimator):
    """Base class; not for direct use."""

    _params_attribute = "weights_"
    _saved_attributes = ("weights_", "means_", "converged_", "n_iter_", "lower_bound_",
                         "lower_bounds_", "n_features_in_")

    def _check_common_params(self):
        check_int(self.n_components, "n_components", low=1)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", low=1)
        check_int(self.n_init, "n_init", low=1)
        check_int(self.verbose, "verbose", low=0)
        check_int(self.verbose_interval, "verbose_interval", low=1)

    def _checked_weights_init(self):
        """``weights_init`` validated (shape (k,), non-negative, sums to 1) or None."""
        if self.weights_init is None:
            return None
        w = check_init_array(self.weights_init, "weights_init", (self.n_components,))
        if (w < 0).any() or (w > 1).any() or not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
            raise ValueError("weights_init must be non-negative and sum to 1, "
                             f"got sum {w.sum():.6g}.")
        return w / w.sum()

    def _kmeans_fit(self, X, sample_weight, rng):
        """fastem's KMeans fitted for init_params='kmeans' (weighted, seeded by rng); X is
        an array or a row source (which carries its weights)."""
        km = KMeans(self.n_components, n_init=1, random_state=rng)
        return km.fit(X, sample_weight=sample_weight)

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model parameters with the EM algorithm.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), memmap, :class:`fastem.ChunkedArray` or dask array
            A memory-mapped array (``np.load(path, mmap_mode='r')``) or a ChunkedArray is
            streamed in chunks (the statistics of the chunks are summed in order): no n x d
            or n x k array is made, whatever the size of X. A Dask array stays on its
            workers: each E-step is one task per block returning the block's statistics,
            summed in a fixed tree (the 'kmeans' init runs fastem's KMeans there).
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights are equivalent to repeating rows.

        Returns
        -------
        self
        """
        self._check_common_params()
        self._online = None  # a fit starts afresh; partial_fit then continues from it
        source = as_source(X, sample_weight, self._validate_data)
        self._check_model_params(source)
        if source.n_rows < self.n_components:
            raise ValueError(f"n_samples={source.n_rows} should be >= n_components="
                             f"{self.n_components}.")
        model = self._make_model()
        warm = self.warm_start and hasattr(self, "_fitted_params")
        if warm:
            check_n_features(self, source)
            # scikit-learn's rule: the first change is measured from the last lower bound
            model.previous_lower_bound = self.lower_bound_
        helper = None
        if not warm and self._means_init is None:   # the initialisation compiles kernels
            estimator, kind, estep = self._estep_kernel(source)
            helper = compile_ahead(estep, source, "em", estimator, kind, self.n_components)
        with random_state_for_fit(self.random_state) as rng:
            result = fit_em(model, source, n_init=1 if warm else self.n_init,
                            max_iter=self.max_iter, tol=self.tol, rng=rng,
                            verbose=self.verbose, verbose_interval=self.verbose_interval,
                            init_params=self._fitted_params if warm else None,
                            objective_name="lower bound",
                            on_initialized=helper.wait if helper is not None else None)
        if not result.converged:
            warnings.warn("Best performing initialization did not converge: raise max_iter "
                          "or tol, or try other initial parameters.",
                          sklearn_compatible(ConvergenceWarning))
        self._fitted_params = result.params
        for name, value in model.attributes(result.params).items():
            setattr(self, name, value)
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.objective
        self.lower_bounds_ = list(result.history)
        self.n_features_in_ = source.n_features
        self._model = model
        return self

    def _check_restored(self):
        """Loaded fitted attributes fit together; then the model and parameters are rebuilt."""
        self._check_common_params()
        k = self.n_components
        d = restored_number(self, "n_features_in_", int, low=1)
        weights = restored_array(self, "weights_", (k,))
        if (weights < 0).any() or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-6):
            raise ValueError("weights_ should be non-negative and sum to 1")
        restored_array(self, "means_", (k, d))
        restored_number(self, "converged_", bool)
        restored_number(self, "n_iter_", int, low=0)
        restored_number(self, "lower_bound_", float)
        if not isinstance(getattr(self, "lower_bounds_", None), list):
            raise ValueError("lower_bounds_ should be a list of numbers")
        self._model, self._fitted_params = self._restored_model()
        self._online = None

    # -- online EM -----------------------------------------------------------------------------
    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on the chunk ``X``.

        The chunk's E-step under the current parameters gives statistics ``s_t`` (weighted
        sums, total weight ``W_t``); the running normalised statistics move toward them,
        ``S_t = (1 - rho_t) S_{t-1} + rho_t s_t / W_t`` with
        ``rho_t = (t + learning_offset) ** -learning_decay`` (``t`` = updates after the first
        chunk, whose statistics start ``S``), and the parameters are the usual M-step of
        ``S_t`` scaled to the total weight seen (``reg_covar``/``alpha`` as in batch EM).
        The first call initialises from its chunk with ``init_params`` (or the user-given
        initial parameters; after ``fit``, from the fitted parameters).

        ``n_iter_`` counts the chunks seen; ``lower_bound_`` is the last chunk's mean
        log-likelihood under the parameters before its update (``lower_bounds_``: one per
        chunk). A later ``fit`` starts afresh.

        Parameters
        ----------
        X : array-like of shape (n_chunk, n_features)
        y : ignored
        sample_weight : array-like of shape (n_chunk,), default=None

        Returns
        -------
        self
        """
        online = getattr(self, "_online", None)
        X = self._validate_data(X)
        if online is None:
            self._check_common_params()
            self._check_learning_params()
            source = ArraySource(X, sample_weight)
            self._check_model_params(source)
            if hasattr(self, "_fitted_params"):
                check_n_features(self, source)
                model, params = self._model, self._fitted_params
            else:
                if source.n_rows < self.n_components:
                    raise ValueError(f"The first chunk has n_samples={source.n_rows}; it "
                                     f"should be >= n_components={self.n_components}.")
                model = self._make_model()
                params = model.initialize(source, check_random_state(self.random_state))
            online = self._online = {"model": model, "running": None, "weight": 0.0,
                                     "rows": 0, "history": []}
            self.n_features_in_ = source.n_features
            self._model = model
        else:
            source = ArraySource(X, sample_weight)
            check_n_features(self, source)
            model, params = online["model"], self._fitted_params
        stats = model.e_step(source, params)
        # chunk t + 1 makes the t-th update; the first chunk's statistics start S (rho 1)
        rho = 1.0 if online["running"] is None else stepwise_rate(
            len(online["history"]), self.learning_offset, self.learning_decay)
        online["running"] = stepwise_em_update(model, online["running"], stats,
                                               source.total_weight, rho)
        online["weight"] += source.total_weight
        online["rows"] += source.n_rows
        online["history"].append(stats.objective)
        params = model.params_from_running(online["running"], online["weight"],
                                           online["weight"] / online["rows"])
        self._fitted_params = params
        for name, value in model.attributes(params).items():
            setattr(self, name, value)
        self.n_iter_ = len(online["history"])
        self.lower_bound_ = stats.objective
        self.lower_bounds_ = online["history"]
        return self

    def _check_learning_params(self):
        decay = check_float(self.learning_decay, "learning_decay")
        if not 0.5 < decay <= 1.0:
            raise ValueError(f"learning_decay must lie in (0.5, 1], got {decay}.")
        check_float(self.learning_offset, "learning_offset", low=0.0)

    # -- prediction (row by row: chunk by chunk for a memmap or a ChunkedArray) -------------
    def _checked_input(self, X):
        check_is_fitted(self, self._params_attribute)
        source = as_source(X, None, self._validate_data)
        check_n_features(self, source)
        return source

    def _estimate_weighted_log_prob(self, X):
        return self._model.weighted_log_prob(X, self._fitted_params)

    def _row_outputs(self, X, per_chunk, width=None, dtype=np.float64):
        """``per_chunk(X_chunk)`` for every chunk of the checked input, stacked by rows."""
        source = self._checked_input(X)
        if source.in_memory is not None:
            return per_chunk(source.in_memory)
        out = np.empty((source.n_rows,) if width is None else (source.n_rows, width), dtype)
        for rows, Xc, _ in source.chunks():
            out[rows] = per_chunk(Xc)
        return out

    def _resp_and_log_norm(self, X):
        wlp = self._estimate_weighted_log_prob(X)
        log_norm = np.empty(wlp.shape[0])
        responsibilities(wlp, wlp, log_norm)
        return wlp, log_norm

    def predict(self, X):
        """Most probable component of each sample (int64 array of shape (n_samples,); a
        lazy Dask array for a Dask array X, as for the other per-row methods)."""
        if is_dask_array(X):
            return self._lazy_rows(X, "predict", None, np.int64)
        return self._row_outputs(
            X, lambda Xc: self._estimate_weighted_log_prob(Xc).argmax(axis=1), dtype=np.int64)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each sample."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples, n_components)."""
        if is_dask_array(X):
            return self._lazy_rows(X, "predict_proba", self.n_components)
        return self._row_outputs(X, lambda Xc: self._resp_and_log_norm(Xc)[0],
                                 width=self.n_components)

    def score_samples(self, X):
        """Log-likelihood ``log p(x)`` of each sample, shape (n_samples,)."""
        if is_dask_array(X):
            return self._lazy_rows(X, "score_samples")
        return self._row_outputs(X, lambda Xc: self._resp_and_log_norm(Xc)[1])

    def score(self, X, y=None, sample_weight=None):
        """(Weighted) mean log-likelihood of X."""
        log_norm = self.score_samples(X)
        if is_dask_array(log_norm):
            from .._dask import weighted_sum
            total, weight = weighted_sum(log_norm, sample_weight)
            return total / weight
        if sample_weight is None:
            return float(log_norm.mean())
        w = check_sample_weight(sample_weight, log_norm.shape[0])
        return float(w @ log_norm / w.sum())

    def _n_parameters(self):
        return self._model.n_parameters(self._fitted_params)

    def bic(self, X):
        """Bayesian information criterion: ``-2 log L + p log n`` (lower is better)."""
        log_norm = self.score_samples(X)
        return -2 * float(log_norm.sum()) + self._n_parameters() * np.log(len(log_norm))

    def aic(self, X):
        """Akaike information criterion: ``-2 log L + 2 p`` (lower is better)."""
        log_norm = self.score_samples(X)
        return -2 * float(log_norm.sum()) + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw ``n_samples`` samples; returns ``(X, component labels)``."""
        check_is_fitted(self, self._params_attribute)
        check_int(n_samples, "n_samples", low=1)
        return self._model.sample(self._fitted_params, n_samples,
                                  check_random_state(self.random_state))
