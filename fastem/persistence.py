"""A model file that never runs code when it is loaded: ``estimator.save(path)``, :func:`load`.

The file is a zip archive in NumPy's ``.npz`` layout (``np.load(path, allow_pickle=False)``
opens it). One member, ``__fastem__.npy``, holds the metadata as UTF-8 JSON bytes (a uint8
array); every other member is a numeric array::

    {"format": "fastem-model", "format_version": 1, "fastem_version": "0.1.0",
     "estimator": "GaussianMixture",
     "params": {...},      # constructor parameters
     "fitted": {...},      # fitted attributes and private state the estimator saves
     "arrays": {"fitted.means_": {"sha256": ..., "dtype": "<f8", "shape": [3, 2]}, ...}}

In ``params`` and ``fitted`` a value is JSON (numbers, strings, booleans, None, lists) or a
tagged object: ``{"array": name}`` (a member), ``{"random_state": {...}}`` (a
``numpy.random.RandomState``'s Mersenne-Twister state) or ``{"callable": "module.name"}``
(a callable parameter, such as KMeans' ``init``: recorded by name only, never imported on
load; the loaded estimator gets the parameter's default and a warning).

Loading checks, before any estimator exists: the archive (zip CRCs), the metadata's form, an
estimator class from fastem's own list (nothing is looked up by a name taken from the file
otherwise), each array's dtype, shape and SHA-256 against the metadata, parameter names
against the class; then the estimator checks its parameters and that its fitted arrays agree
with each other (shapes, finite values, probabilities in range). Anything wrong is a
``ValueError`` naming the problem. A file written by another fastem version loads with an
:class:`~fastem.InconsistentVersionWarning`; a newer format version is refused.
"""
import hashlib
import json
import warnings
import zipfile

import numpy as np

from ._version import __version__

FORMAT = "fastem-model"
FORMAT_VERSION = 1
METADATA_MEMBER = "__fastem__"


class InconsistentVersionWarning(UserWarning):
    """A saved or pickled estimator was written by a different fastem version than the one
    loading it."""


def _estimator_classes():
    # imported here: persistence is imported by the estimators' base module
    from .estimators import ESTIMATORS
    return ESTIMATORS


# ------------------------------------------------------------------------------- encoding
class _Encoder:
    """Turns values into JSON, collecting the arrays they hold as archive members."""

    def __init__(self):
        self.arrays = {}

    def array(self, name, value):
        value = np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot save {name}: arrays of dtype {value.dtype} are not "
                            "supported (numbers and booleans only).")
        self.arrays[name] = np.ascontiguousarray(value)
        return {"array": name}

    def value(self, name, value):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if np.isfinite(value) else {"float": repr(value)}
        if isinstance(value, np.random.RandomState):
            kind, keys, pos, has_gauss, cached = value.get_state()
            return {"random_state": {"kind": kind, "keys": self.array(f"{name}.keys", keys),
                                     "pos": int(pos), "has_gauss": int(has_gauss),
                                     "cached_gaussian": float(cached)}}
        if isinstance(value, np.ndarray):
            return self.array(name, value)
        if isinstance(value, (list, tuple)):
            if all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
                return [self.value(name, v) for v in value]
            return self.array(name, value)
        if callable(value):
            where = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
            return {"callable": where}
        raise TypeError(f"cannot save {name}: values of type {type(value).__name__} are not "
                        "supported.")


def save(estimator, path):
    """Write a fitted (or unfitted) fastem estimator to ``path`` (see the module docstring).

    Parameters
    ----------
    estimator : KMeans, MiniBatchKMeans, GaussianMixture or BernoulliMixture
    path : str or os.PathLike
        Written as given (no suffix is added); ``.npz`` or ``.fastem`` are good suffixes.
    """
    name = type(estimator).__name__
    if _estimator_classes().get(name) is not type(estimator):
        raise TypeError(f"save writes fastem's own estimators, not {name}.")
    encode = _Encoder()
    params = {k: encode.value(f"param.{k}", v) for k, v in estimator.get_params().items()}
    fitted = {k: encode.value(f"fitted.{k}", v)
              for k, v in estimator._saved_state().items()}
    arrays = {k: {"sha256": _digest(a), "dtype": a.dtype.str, "shape": list(a.shape)}
              for k, a in encode.arrays.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastem_version": __version__,
            "estimator": name, "params": params, "fitted": fitted, "arrays": arrays}
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **{METADATA_MEMBER: blob}, **encode.arrays)


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# ------------------------------------------------------------------------------- decoding
class _Decoder:
    def __init__(self, arrays, path):
        self.arrays, self.path = arrays, path

    def error(self, message):
        return ValueError(f"{self.path}: {message}")

    def value(self, name, value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            value = [self.value(name, v) if isinstance(v, dict) else v for v in value]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise self.error(f"{name} is not a list of numbers.")
            return value
        if not isinstance(value, dict) or len(value) != 1:
            raise self.error(f"{name} has an unknown form.")
        (tag, body), = value.items()
        if tag == "array":
            if body not in self.arrays:
                raise self.error(f"{name} refers to a missing array {body!r}.")
            return self.arrays[body]
        if tag == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "random_state" and isinstance(body, dict):
            try:
                state = (str(body["kind"]), self.value(name, body["keys"]), int(body["pos"]),
                         int(body["has_gauss"]), float(body["cached_gaussian"]))
                rng = np.random.RandomState()
                rng.set_state(state)
            except (KeyError, TypeError, ValueError) as e:
                raise self.error(f"{name} is not a valid random state ({e}).") from None
            return rng
        if tag == "callable":
            return _CALLABLE
        raise self.error(f"{name} has an unknown form {tag!r}.")


_CALLABLE = object()   # marks a callable parameter (recorded by name, never loaded)


def load(path):
    """Load an estimator written by ``estimator.save(path)``.

    Nothing in the file is executed or imported: arrays are read with
    ``allow_pickle=False`` and the estimator class comes from fastem's own list.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    KMeans, MiniBatchKMeans, GaussianMixture or BernoulliMixture
        With the saved parameters and, when it was fitted, the same fitted state:
        predictions are bitwise those of the saved estimator.

    Raises
    ------
    ValueError
        The file is not a fastem model file, is truncated or corrupted, was modified
        (checksums, shapes or values that do not fit together), or has a newer format.
    OSError
        The file cannot be read.

    Warns
    -----
    InconsistentVersionWarning
        The file was written by another fastem version.
    """
    return _load(path)[0]


def load_with_metadata(path):
    """:func:`load`, also returning the file's metadata (a dict: format, fastem version,
    estimator, parameters, ...): ``(estimator, metadata)``."""
    return _load(path)


def _load(path):
    arrays, meta = _read_archive(path)
    decode = _Decoder(arrays, path)
    for key in ("format", "format_version", "fastem_version", "estimator", "params", "fitted",
                "arrays"):
        if key not in meta:
            raise decode.error(f"the metadata has no {key!r} entry.")
    if meta["format"] != FORMAT:
        raise decode.error(f"not a fastem model file (format {meta['format']!r}).")
    if not isinstance(meta["format_version"], int) or meta["format_version"] > FORMAT_VERSION:
        raise decode.error(f"model file format version {meta['format_version']!r} is newer "
                           f"than this fastem ({__version__}) reads ({FORMAT_VERSION}); "
                           "upgrade fastem.")
    _check_arrays(decode, arrays, meta["arrays"])
    cls = _estimator_classes().get(meta["estimator"])
    if cls is None:
        raise decode.error(f"unknown estimator {meta['estimator']!r}.")
    if not isinstance(meta["params"], dict) or not isinstance(meta["fitted"], dict):
        raise decode.error("the metadata's params and fitted entries must be objects.")
    if meta["fastem_version"] != __version__:
        warnings.warn(f"{path} was saved by fastem {meta['fastem_version']} and is loaded by "
                      f"fastem {__version__}: the fitted state is used as stored; refit to be "
                      "safe if results look wrong.", InconsistentVersionWarning, stacklevel=3)
    valid = set(cls._get_param_names())
    params = {}
    for name, raw in meta["params"].items():
        if name not in valid:
            raise decode.error(f"{name!r} is not a parameter of {cls.__name__}.")
        value = decode.value(f"param.{name}", raw)
        if value is _CALLABLE:
            default = cls().get_params()[name]
            warnings.warn(f"{cls.__name__}.{name} was the callable {raw['callable']} when "
                          f"saved; callables are not loaded from files, so it is {default!r} "
                          "(the fitted state is unchanged).", UserWarning, stacklevel=3)
            value = default
        params[name] = value
    estimator = cls(**params)
    fitted = {name: decode.value(f"fitted.{name}", raw) for name, raw in meta["fitted"].items()}
    if fitted:
        try:
            estimator._restore_state(fitted)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise decode.error(f"the fitted state of the {cls.__name__} is inconsistent: "
                               f"{e}") from None
    return estimator, meta


def _read_archive(path):
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()   # reads every member and checks its CRC
            if bad is not None:
                raise ValueError(f"{path}: member {bad!r} is corrupted (CRC mismatch).")
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a fastem model file or truncated ({e}).") from None
    except (EOFError, ValueError, KeyError, zipfile.LargeZipFile) as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: unreadable model file ({e}).") from None
    blob = arrays.pop(METADATA_MEMBER, None)
    if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
        raise ValueError(f"{path}: not a fastem model file (no metadata member).")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the metadata is not valid JSON ({e}).") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the metadata is not a JSON object.")
    return arrays, meta


def _check_arrays(decode, arrays, listed):
    if not isinstance(listed, dict) or set(listed) != set(arrays):
        raise decode.error("the arrays in the file differ from those its metadata lists.")
    for name, a in arrays.items():
        entry = listed[name]
        if not isinstance(entry, dict):
            raise decode.error(f"array {name!r} has no valid metadata entry.")
        if a.dtype.kind not in "biuf" or entry.get("dtype") != a.dtype.str \
                or entry.get("shape") != list(a.shape):
            raise decode.error(f"array {name!r} has dtype {a.dtype} and shape {a.shape}; "
                               f"the metadata says {entry.get('dtype')} and "
                               f"{entry.get('shape')}.")
        if entry.get("sha256") != _digest(a):
            raise decode.error(f"array {name!r} does not match its checksum: the file was "
                               "modified or corrupted.")


# ------------------------------------------------------------------- checks for estimators
def restored_array(estimator, name, shape, kinds="f", finite=True):
    """The loaded attribute ``name`` as an array of ``shape`` and a dtype kind in ``kinds``
    (``None`` in ``shape``: any length); raises ValueError otherwise."""
    if not hasattr(estimator, name):
        raise ValueError(f"{name} is missing")
    a = getattr(estimator, name)
    if not isinstance(a, np.ndarray) or a.dtype.kind not in kinds or a.ndim != len(shape) \
            or any(s is not None and s != t for s, t in zip(shape, a.shape)):
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name} should be an array of shape {tuple(shape)} (kind "
                         f"{kinds!r}), got {got}")
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values")
    return a


def restored_number(estimator, name, kind=float, low=None, required=True):
    """The loaded scalar attribute ``name`` (``kind`` int, float or bool), checked."""
    if not hasattr(estimator, name):
        if required:
            raise ValueError(f"{name} is missing")
        return None
    value = getattr(estimator, name)
    ok = isinstance(value, bool) if kind is bool else (
        isinstance(value, (int, float) if kind is float else int)
        and not isinstance(value, bool))
    if not ok or (kind is float and not np.isfinite(value)) or \
            (low is not None and value < low):
        what = {bool: "a boolean", int: "an integer", float: "a finite number"}[kind]
        raise ValueError(f"{name} should be {what}"
                         f"{f' >= {low}' if low is not None else ''}, got {value!r}")
    return value

