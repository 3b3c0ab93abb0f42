"""scikit-learn compatibility without a runtime dependency on scikit-learn.

When scikit-learn is importable its ``BaseEstimator`` and mixins are used, so ``clone``,
``Pipeline``, ``GridSearchCV`` and ``check_estimator`` see native estimators. Otherwise small
stand-ins provide the same ``get_params``/``set_params`` conventions.

Either way :class:`BaseEstimator` here adds :class:`PersistenceMixin`: pickles record the
fastem version, and loading a pickle written by another version warns.
"""
import inspect
import warnings

from .._version import __version__

try:
    from sklearn.base import BaseEstimator as _BaseEstimator
    from sklearn.base import ClusterMixin, DensityMixin, TransformerMixin
    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    HAVE_SKLEARN = False

    class _BaseEstimator:
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


class InconsistentVersionWarning(UserWarning):
    """A fitted estimator was pickled by a different fastem version than the one loading it."""


class PersistenceMixin:
    """Pickle support: the state carries ``_fastem_version``; a mismatch on load warns.

    Cooperates with scikit-learn's own ``__getstate__``/``__setstate__`` (which add and check
    ``_sklearn_version`` for scikit-learn's classes only), so both behaviours are kept.
    """

    def __getstate__(self):
        getstate = getattr(super(), "__getstate__", None)
        state = getstate() if getstate is not None else None
        if state is None:
            state = self.__dict__
        state = dict(state)
        state["_fastem_version"] = __version__
        return state

    def __setstate__(self, state):
        state = dict(state)
        version = state.pop("_fastem_version", None)
        if version != __version__:
            written = f"fastem {version}" if version else "an unknown fastem version"
            warnings.warn(
                f"This {type(self).__name__} was pickled by {written} and is loaded by fastem "
                f"{__version__}. Fitted attributes are used as stored, which may give wrong "
                "results or errors; refit the estimator (or load it with the version that "
                "saved it) to be safe.", InconsistentVersionWarning, stacklevel=2)
        setstate = getattr(super(), "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            self.__dict__.update(state)


class BaseEstimator(PersistenceMixin, _BaseEstimator):
    """Base class of fastem's estimators (scikit-learn's ``BaseEstimator`` when available)."""


__all__ = ["HAVE_SKLEARN", "BaseEstimator", "ClusterMixin", "DensityMixin",
           "InconsistentVersionWarning", "PersistenceMixin", "TransformerMixin"]
