"""Shared estimator code for mixture models (GaussianMixture, BernoulliMixture).

A subclass provides:

* ``_validate_data(X)`` - the checked array (dense or CSR) for fit and predict;
* ``_check_model_params(X)`` - validation of its own hyper-parameters;
* ``_make_model(X, sample_weight)`` - the layer-2 model (see ``fastem.em``), which must also
  offer ``weighted_log_prob(X, params) -> (n, k) float64``, ``n_parameters(params)``,
  ``sample(params, n, rng)`` and ``attributes(params) -> dict`` of fitted attributes;
* ``_params_attribute`` - the name of a fitted attribute that marks the estimator as fitted.

Everything else (fit loop, warm start, convergence warning, predict/score/bic/aic) is here.
"""
import warnings

import numpy as np

from ..em import fit_em
from ..kernels import responsibilities
from ..validation import (ConvergenceWarning, check_float, check_init_array, check_int,
                          check_is_fitted, check_n_features, check_random_state,
                          check_sample_weight, sklearn_compatible)
from ._base import BaseEstimator, DensityMixin
from .kmeans import KMeans


class BaseMixture(DensityMixin, BaseEstimator):
    """Base class; not for direct use."""

    _params_attribute = "weights_"

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

    def _kmeans_labels(self, X, sample_weight, rng):
        """Labels of fastem's KMeans, for init_params='kmeans' (weighted, seeded by rng)."""
        km = KMeans(self.n_components, n_init=1, random_state=rng)
        return km.fit(X, sample_weight=sample_weight).labels_

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model parameters with the EM algorithm.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights are equivalent to repeating rows.

        Returns
        -------
        self
        """
        X = self._validate_data(X)
        self._check_common_params()
        self._check_model_params(X)
        if X.shape[0] < self.n_components:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_components="
                             f"{self.n_components}.")
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        model = self._make_model(X, sample_weight)
        warm = self.warm_start and hasattr(self, "_fitted_params")
        if warm:
            check_n_features(self, X)
            # scikit-learn's rule: the first change is measured from the last lower bound
            model.previous_lower_bound = self.lower_bound_
        result = fit_em(model, X, sample_weight, n_init=1 if warm else self.n_init,
                        max_iter=self.max_iter, tol=self.tol,
                        rng=check_random_state(self.random_state), verbose=self.verbose,
                        verbose_interval=self.verbose_interval,
                        init_params=self._fitted_params if warm else None,
                        objective_name="lower bound")
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
        self.n_features_in_ = X.shape[1]
        self._model = model
        return self

    # -- prediction -------------------------------------------------------------------------
    def _checked_input(self, X):
        check_is_fitted(self, self._params_attribute)
        X = self._validate_data(X)
        check_n_features(self, X)
        return X

    def _estimate_weighted_log_prob(self, X):
        return self._model.weighted_log_prob(X, self._fitted_params)

    def _resp_and_log_norm(self, X):
        wlp = self._estimate_weighted_log_prob(self._checked_input(X))
        log_norm = np.empty(wlp.shape[0])
        responsibilities(wlp, wlp, log_norm)
        return wlp, log_norm

    def predict(self, X):
        """Most probable component of each sample (int64 array of shape (n_samples,))."""
        return self._estimate_weighted_log_prob(self._checked_input(X)).argmax(axis=1)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each sample."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples, n_components)."""
        return self._resp_and_log_norm(X)[0]

    def score_samples(self, X):
        """Log-likelihood ``log p(x)`` of each sample, shape (n_samples,)."""
        return self._resp_and_log_norm(X)[1]

    def score(self, X, y=None, sample_weight=None):
        """(Weighted) mean log-likelihood of X."""
        log_norm = self.score_samples(X)
        if sample_weight is None:
            return float(log_norm.mean())
        w = check_sample_weight(sample_weight, log_norm.shape[0])
        return float(w @ log_norm / w.sum())

    def _n_parameters(self):
        return self._model.n_parameters(self._fitted_params)

    def bic(self, X):
        """Bayesian information criterion: ``-2 log L + p log n`` (lower is better)."""
        n = self._checked_input(X).shape[0]
        return -2 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion: ``-2 log L + 2 p`` (lower is better)."""
        n = self._checked_input(X).shape[0]
        return -2 * self.score(X) * n + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw ``n_samples`` samples; returns ``(X, component labels)``."""
        check_is_fitted(self, self._params_attribute)
        check_int(n_samples, "n_samples", low=1)
        return self._model.sample(self._fitted_params, n_samples,
                                  check_random_state(self.random_state))
