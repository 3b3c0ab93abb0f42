"""scikit-learn's estimator protocol, implemented without importing scikit-learn.

``import fastem`` must stay fast (importing ``sklearn.base`` alone takes about a second), so
fastem's estimators do not inherit from scikit-learn's classes. They implement the protocol
that scikit-learn's tools rely on - ``get_params``/``set_params`` from the constructor's
signature (``clone``, ``Pipeline``, ``GridSearchCV``), ``__sklearn_tags__`` (built from
scikit-learn's own tag classes, imported only when scikit-learn asks for the tags, so it is
already loaded), ``fit_predict``/``fit_transform`` and a repr that lists the parameters
changed from their defaults. ``check_estimator`` passes on every estimator
(``tests/test_sklearn_protocol.py``), with and without scikit-learn installed.

:class:`PersistenceMixin`: pickles record the fastem version, and loading a pickle written by
another version warns; ``save(path)`` writes the code-free model file of
:mod:`fastem.persistence`.
"""
import copy
import inspect
import sys
import warnings

import numpy as np

from .. import persistence
from .._version import __version__
from ..persistence import InconsistentVersionWarning
from ..sources import is_dask_array
from ..validation import check_is_fitted, check_n_features


class PersistenceMixin:
    """Pickle support (the state carries ``_fastem_version``; a mismatch on load warns) and the
    safe model file (:meth:`save`, :func:`fastem.load`).

    A subclass names the fitted attributes a model file keeps (``_saved_attributes``) and
    checks them when they are loaded (``_check_restored``); one with private state beyond its
    public attributes extends ``_saved_state`` / ``_restore_state``.
    """

    _saved_attributes = ()

    def save(self, path):
        """Write this estimator to ``path`` in fastem's model file format.

        The file holds the parameters and fitted arrays (an ``.npz`` archive with JSON
        metadata, checksums and the fastem version) and never executes code when read by
        :func:`fastem.load`, unlike a pickle. Loading gives bitwise-identical predictions.

        Parameters
        ----------
        path : str or os.PathLike
            Written as given (no suffix added).
        """
        persistence.save(self, path)

    def _saved_state(self):
        """Fitted attributes for the model file (per-row results on Dask are left out)."""
        return {name: getattr(self, name) for name in self._saved_attributes
                if hasattr(self, name) and not is_dask_array(getattr(self, name))}

    def _restore_state(self, state):
        """Set the fitted state read from a model file, then check that it fits together."""
        unknown = set(state) - set(self._saved_attributes)
        if unknown:
            raise ValueError(f"unknown fitted attributes {sorted(unknown)}")
        for name, value in state.items():
            setattr(self, name, value)
        self._check_restored()

    def _check_restored(self):
        raise NotImplementedError

    def __getstate__(self):
        # per-row results of a fit on Dask (KMeans' lazy ``labels_``) refer to the cluster's
        # data; they are not part of a saved model
        state = {k: v for k, v in self.__dict__.items() if not is_dask_array(v)}
        state["_fastem_version"] = __version__
        return state

    def __setstate__(self, state):
        state = dict(state)
        version = state.pop("_fastem_version", None)
        state.pop("_sklearn_version", None)   # written by fastem versions that inherited it
        if version != __version__:
            written = f"fastem {version}" if version else "an unknown fastem version"
            warnings.warn(
                f"This {type(self).__name__} was pickled by {written} and is loaded by fastem "
                f"{__version__}. Fitted attributes are used as stored, which may give wrong "
                "results or errors; refit the estimator (or load it with the version that "
                "saved it) to be safe.", InconsistentVersionWarning, stacklevel=2)
        self.__dict__.update(state)


class BaseEstimator(PersistenceMixin):
    """Base class of fastem's estimators: scikit-learn's parameter and tag conventions.

    Parameters are the keyword arguments of ``__init__``, stored unchanged as attributes of
    the same name; fitted attributes end with ``_``.
    """

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        for p in signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise RuntimeError(f"{cls.__name__}.__init__ must name all its parameters.")
        return sorted(p.name for p in signature.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        """Parameters of this estimator.

        Parameters
        ----------
        deep : bool, default=True
            Accepted for scikit-learn compatibility (fastem's estimators hold no nested
            estimators, so it changes nothing).

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set parameters (``clone``, ``GridSearchCV``); returns the estimator.

        Raises
        ------
        ValueError
            For a name that is not a parameter of this estimator.
        """
        valid = self._get_param_names()
        for name in params:
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self!r}. "
                                 f"Valid parameters are: {valid!r}.")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _changed_params(self):
        defaults = {p.name: p.default
                    for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = {}
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or (type(value) is type(default) and value == default)
                same = bool(same)
            except (TypeError, ValueError):   # arrays: compare by identity only
                same = False
            if not same:
                changed[name] = value
        return changed

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._changed_params().items())
        return f"{type(self).__name__}({args})"

    def _lazy_rows(self, X, method, width=None, dtype=np.float64):
        """``self.<method>(block)`` over the blocks of the Dask array X, lazily (a Dask array
        of shape (n,) or (n, width)). The workers receive one copy of the fitted estimator
        (without its Dask attributes); each block is validated there as in ``method``."""
        from .._dask import map_rows
        check_is_fitted(self, self._params_attribute)
        check_n_features(self, X)
        twin = copy.copy(self)   # via __getstate__: without the Dask attributes
        return map_rows(X, getattr(twin, method), width, dtype)

    def __sklearn_tags__(self):
        # only scikit-learn calls this, so importing it here costs nothing extra
        from sklearn.utils import Tags, TargetTags
        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=None, regressor_tags=None, classifier_tags=None)


class ClusterMixin:
    """``fit_predict`` and the clusterer tag."""

    _estimator_type = "clusterer"

    def fit_predict(self, X, y=None, **kwargs):
        """Fit and return the labels of the training data (``labels_``)."""
        self.fit(X, **kwargs)
        return self.labels_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "clusterer"
        return tags


class DensityMixin:
    """The density-estimator tag."""

    _estimator_type = "DensityEstimator"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "density_estimator"
        return tags


class TransformerMixin:
    """``fit_transform``, output names, ``set_output`` and the transformer tag.

    The transform has one output per component/cluster, named like scikit-learn's
    ``ClassNamePrefixFeaturesOutMixin`` (``kmeans0, kmeans1, ...``), so ``set_output`` and
    ``ColumnTransformer`` work without fastem importing scikit-learn.
    """

    def fit_transform(self, X, y=None, **kwargs):
        """Fit, then return ``transform(X)``."""
        return self.fit(X, y, **kwargs).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Names of the transform's outputs: ``<class name lowercased><i>``.

        Parameters
        ----------
        input_features : ignored
            Accepted for scikit-learn compatibility (the outputs do not depend on it).

        Returns
        -------
        ndarray of str objects, shape (n_outputs,)
        """
        check_is_fitted(self, self._params_attribute)
        prefix = type(self).__name__.lower()
        n_out = len(getattr(self, self._params_attribute))
        return np.asarray([f"{prefix}{i}" for i in range(n_out)], dtype=object)

    def set_output(self, *, transform=None):
        """Choose the container of ``transform``'s output (scikit-learn's API).

        Parameters
        ----------
        transform : {'default', 'pandas', 'polars'} or None
            'default': NumPy; 'pandas' / 'polars': a DataFrame with the columns of
            :meth:`get_feature_names_out` (and X's index for pandas input); None: unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in ("default", "pandas", "polars"):
            raise ValueError(f"transform must be 'default', 'pandas', 'polars' or None, got "
                             f"{transform!r}.")
        # scikit-learn's attribute name: its clone() copies this configuration
        self._sklearn_output_config = {"transform": transform}
        return self

    def _wrap_output(self, out, X):
        """``out`` in the container chosen by :meth:`set_output` (or scikit-learn's global
        ``transform_output`` setting when scikit-learn is loaded)."""
        kind = getattr(self, "_sklearn_output_config", {}).get("transform")
        if kind is None and "sklearn" in sys.modules:
            kind = sys.modules["sklearn"].get_config().get("transform_output", "default")
        if kind in (None, "default"):
            return out
        names = self.get_feature_names_out()
        if kind == "pandas":
            import pandas as pd
            index = X.index if isinstance(X, pd.DataFrame) else None
            return pd.DataFrame(out, columns=names, index=index, copy=False)
        import polars as pl
        return pl.DataFrame(out, schema=list(names), orient="row")

    def __sklearn_tags__(self):
        from sklearn.utils import TransformerTags
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags()
        return tags


__all__ = ["BaseEstimator", "ClusterMixin", "DensityMixin", "InconsistentVersionWarning",
           "PersistenceMixin", "TransformerMixin"]
