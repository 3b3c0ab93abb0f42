"""scikit-learn compatibility without a runtime dependency on scikit-learn.

When scikit-learn is importable its ``BaseEstimator`` and mixins are used, so ``clone``,
``Pipeline``, ``GridSearchCV`` and ``check_estimator`` see native estimators. Otherwise small
stand-ins provide the same ``get_params``/``set_params`` conventions.
"""
import inspect

try:
    from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin, TransformerMixin
    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    HAVE_SKLEARN = False

    class BaseEstimator:
        """Parameters are the constructor's keyword arguments, stored unchanged."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(f"Invalid parameter {name!r} for estimator {self!r}. "
                                     f"Valid parameters are: {valid!r}.")
                setattr(self, name, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class ClusterMixin:
        _estimator_type = "clusterer"

        def fit_predict(self, X, y=None, **kwargs):
            self.fit(X, **kwargs)
            return self.labels_

    class DensityMixin:
        _estimator_type = "DensityEstimator"

    class TransformerMixin:
        def fit_transform(self, X, y=None, **kwargs):
            return self.fit(X, y, **kwargs).transform(X)

__all__ = ["BaseEstimator", "ClusterMixin", "DensityMixin", "TransformerMixin", "HAVE_SKLEARN"]
