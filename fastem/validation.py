"""Input and parameter validation shared by every estimator.

Conversions (each done at most once, and never in place):

* float32 and float64 C-contiguous arrays are used as given - no copy;
* Fortran-ordered or strided float arrays are copied to C order (same dtype);
* bool, integer and long-double arrays, lists and numeric object arrays become float64
  (float16 becomes float32; big-endian floats become native-endian of the same width).
"""
import numbers
import sys
import threading
from contextlib import contextmanager

import numpy as np


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator."""


class ConvergenceWarning(UserWarning):
    """Issued when EM stops at max_iter before meeting its tolerance."""


def _all_finite(X):
    """No NaN or +-inf in the 2-D float array X, without an n x d temporary and without a
    kernel to compile: a chunk's sum is finite when all its values are (unless the sum
    overflows; such a chunk is then checked element by element)."""
    step = max(1, (1 << 20) // max(1, X.shape[1]))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, X.shape[0], step):
            chunk = X[start:start + step]
            if not np.isfinite(np.add.reduce(chunk, axis=None)) and \
                    not np.isfinite(chunk).all():
                return False
    return True


def issparse(X):
    """``scipy.sparse.issparse(X)`` without importing scipy.sparse (~0.3 s) when no sparse
    matrix can exist: a program holding one has imported scipy.sparse already."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


_SKLEARN_TWINS = {}


def sklearn_compatible(cls):
    """``cls``, or - once the program has imported scikit-learn - a subclass of both ``cls``
    and scikit-learn's class of the same name, so ``except``/warning filters written for
    either library catch fastem's errors and warnings. fastem never imports scikit-learn
    itself (a program that filters scikit-learn's classes has imported them already)."""
    exceptions = sys.modules.get("sklearn.exceptions")
    theirs = getattr(exceptions, cls.__name__, None)
    if theirs is None:
        return cls
    if cls not in _SKLEARN_TWINS:
        _SKLEARN_TWINS[cls] = type(cls.__name__, (cls, theirs),
                                   {"__module__": cls.__module__, "__doc__": cls.__doc__})
    return _SKLEARN_TWINS[cls]


def _numeric(values, name):
    """``values`` as a real numeric array; TypeError/ValueError for anything else."""
    if np.iscomplexobj(values):
        raise ValueError(f"Complex data not supported: {name} has dtype {values.dtype}.")
    if values.dtype.kind == "O":
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError) as exc:  # keep the type; say which input it was
            raise type(exc)(f"{name} must be numeric: {exc}") from None
        if np.iscomplexobj(values):
            raise ValueError(f"Complex data not supported: {name} has dtype {values.dtype}.")
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric; got an array of dtype {values.dtype}.")
    return values


def _check_2d_shape(X, name, who, min_samples=1):
    """ValueError unless X is 2-D with at least ``min_samples`` rows and one column."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array for {name}, got {X.ndim}D array instead (shape {X.shape}). "
            "Reshape your data with array.reshape(-1, 1) for a single feature or "
            "array.reshape(1, -1) for a single sample.")
    n, d = X.shape
    if n == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of "
                         f"{max(min_samples, 1)} is required{who}.")
    if d == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of "
                         f"1 is required{who}.")
    if n < min_samples:
        raise ValueError(f"n_samples={n} should be >= {min_samples}{who}.")


def check_array(X, *, name="X", min_samples=1, estimator_name=None, accept_sparse=False):
    """Validate a 2-D numeric sample matrix and return it as a float32/float64 C array.

    With ``accept_sparse``, scipy.sparse input is returned as CSR (converted once from other
    formats; duplicates summed and indices sorted in a copy when needed) with float32 or
    float64 values (other dtypes become float64); X itself is never modified.

    Raises
    ------
    TypeError
        Sparse input (unless accepted), strings, complex numbers or other non-numeric data.
    ValueError
        Not 2-D, no samples or features, fewer than ``min_samples`` rows, NaN or inf.
    """
    who = f" by {estimator_name}" if estimator_name else ""
    if issparse(X):
        if not accept_sparse:
            raise TypeError(f"{name}: sparse input is not supported{who}; pass a dense array.")
        return _check_csr(X, name, who, min_samples)
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    X = _numeric(X, name)
    _check_2d_shape(X, name, who, min_samples)
    if X.dtype == np.float16:
        X = X.astype(np.float32)
    elif X.dtype.kind != "f" or X.dtype.itemsize > 8:  # bool, int; long double
        X = X.astype(np.float64)
    elif not X.dtype.isnative:  # big-endian data: same precision, native byte order
        X = X.astype(X.dtype.newbyteorder("="))
    X = np.ascontiguousarray(X)
    if not _all_finite(X):
        kind = "NaN" if np.isnan(X).any() else "infinity"
        raise ValueError(f"Input {name} contains {kind}; fastem needs finite values "
                         f"(remove or impute them first).")
    return read_only(X)


def _check_csr(X, name, who, min_samples):
    """``check_array`` for scipy.sparse input (see there)."""
    X = X if X.format == "csr" else X.tocsr()
    data = _numeric(X.data, name)
    _check_2d_shape(X, name, who, min_samples)
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    elif data.dtype.kind != "f" or data.dtype.itemsize > 8 or not data.dtype.isnative:
        data = data.astype(np.float64 if data.dtype.kind != "f" or data.itemsize > 8
                           else data.dtype.newbyteorder("="))
    if data is not X.data:
        X = type(X)((data, X.indices, X.indptr), shape=X.shape)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if not np.isfinite(X.data).all():
        kind = "NaN" if np.isnan(X.data).any() else "infinity"
        raise ValueError(f"Input {name} contains {kind}; fastem needs finite values "
                         f"(remove or impute them first).")
    return X


def read_only(X):
    """X itself when it is read-only, else a read-only view of it (X is not changed).

    The kernels never write to X, and Numba compiles a read-only array and a writable one
    as two different types: handing the kernels read-only arrays only means one compiled
    specialisation per dtype, whether X is an ordinary array or a memmap opened read-only.
    """
    if X.flags.writeable:
        X = X.view()
        X.flags.writeable = False
    return X


def check_sample_weight(sample_weight, n_samples):
    """Return sample weights as a fresh float64 array of shape (n_samples,).

    ``None`` means unit weights. Weights must be finite, non-negative and not all zero.
    """
    if sample_weight is None:
        return np.ones(n_samples)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric; got dtype {w.dtype}.")
    if w.ndim == 0:  # a scalar: the same weight for every sample (validated below)
        w = np.full(n_samples, w, dtype=np.float64)
    w = np.array(w, dtype=np.float64, order="C")  # always a copy: never alias user memory
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n_samples},).")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity.")
    if (w < 0).any():
        raise ValueError("Negative values in sample_weight are not allowed.")
    with np.errstate(over="ignore"):
        total = w.sum()
    if not total > 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs positive weight.")
    if not np.isfinite(total):
        raise ValueError("sample_weight is too large: its sum overflows float64. Rescale the "
                         "weights (only their ratios matter to the mixture models).")
    return w


def check_random_state(seed):
    """Turn ``seed`` (None, int, RandomState or Generator) into a ``np.random.RandomState``."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.RandomState(seed.integers(2**32))
    raise ValueError(f"random_state={seed!r} cannot be used to seed a RandomState instance.")


_spare_states = threading.local()


@contextmanager
def random_state_for_fit(seed):
    """:func:`check_random_state` for the length of one fit (a ``with`` block).

    An integer seed reseeds a spare RandomState of this thread instead of building a new
    one: ``RandomState(seed)`` first seeds itself from OS entropy through a SeedSequence
    (~0.1 ms, most of a small fit's fixed cost) and then overwrites that state with the
    legacy seeding of ``seed``; ``RandomState.seed(seed)`` runs only the latter, so the
    stream is the same. The object is lent: it goes back to this thread's spares when the
    block ends, so it must not be kept beyond it; a fit nested inside the block gets
    another one.
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        yield check_random_state(seed)
        return
    spares = _spare_states.__dict__.setdefault("spares", [])
    rng = spares.pop() if spares else np.random.RandomState()
    try:
        rng.seed(int(seed))
        yield rng
    finally:
        spares.append(rng)


def check_int(value, name, *, low=None):
    """Validate an integer hyper-parameter (bools rejected)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")
    return int(value)


def check_float(value, name, *, low=None):
    """Validate a finite real hyper-parameter."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")
    return float(value)


def check_init_array(value, name, shape):
    """A user-given initial parameter as a fresh float64 array of ``shape``, finite."""
    arr = np.array(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; expected {shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr


def check_is_fitted(estimator, attribute):
    """Raise :class:`NotFittedError` unless ``estimator`` has ``attribute``."""
    if not hasattr(estimator, attribute):
        raise sklearn_compatible(NotFittedError)(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator.")


def check_n_features(estimator, X):
    """Raise a ValueError when ``X`` has a different width than the data seen in fit."""
    expected = estimator.n_features_in_
    if X.shape[1] != expected:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
                         f"expecting {expected} features as input.")


def check_binary_array(X, *, name="X", estimator_name=None):
    """Validate binary (0/1) data: a dense array used as given, or a CSR matrix.

    * dense bool, integer, float32 and float64 C-contiguous arrays are used as given - no copy,
      no float conversion; other layouts are copied once to C order (same dtype); float16,
      long double and big-endian arrays become uint8; lists become arrays;
    * scipy.sparse input is converted to CSR once if it is in another format; CSR with
      duplicate or unsorted entries is copied once and canonicalised (duplicates summed);
      data in float16, long double or big-endian become uint8.

    The 0/1 check runs over the values without any temporary of their size.

    Raises
    ------
    TypeError
        Strings or other non-numeric data.
    ValueError
        Not 2-D, no samples or features, NaN, complex numbers, or any value other than 0 and 1.
    """
    from .kernels.bernoulli import CHECK_BLOCK, _count_non_binary

    who = f" by {estimator_name}" if estimator_name else ""
    sparse = issparse(X)
    if sparse:
        if X.format != "csr":
            X = X.tocsr()
        values = X.data
    else:
        if not isinstance(X, np.ndarray):
            X = np.asarray(X)
        values = X
    values = _numeric(values, name)
    if not sparse:
        X = values
    _check_2d_shape(X, name, who)
    n, d = X.shape
    if sparse and not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
        values = X.data
    odd_dtype = (values.dtype == np.float16 or values.itemsize > 8
                 or not values.dtype.isnative)
    if odd_dtype:  # rare: check in NumPy, then store compactly as uint8
        flat = np.asarray(values).reshape(-1)
        bad = np.flatnonzero((flat != 0) & (flat != 1))
    else:
        if not sparse:
            values = X = np.ascontiguousarray(values)
        flat = values.reshape(-1)
        bad = np.empty(0, dtype=np.int64)
        first_bad_block = None
        if values.dtype.kind in "iu" and flat.size:
            # integers are binary iff 0 <= min and max <= 1: two vectorised reductions per
            # block, no temporary and no kernel to compile (the usual uint8 input)
            for start in range(0, flat.size, CHECK_BLOCK):
                part = flat[start:start + CHECK_BLOCK]
                if part.min() < 0 or part.max() > 1:
                    first_bad_block = start // CHECK_BLOCK
                    break
        elif values.dtype.kind == "f" and flat.size:
            counts = np.empty((flat.size + CHECK_BLOCK - 1) // CHECK_BLOCK, dtype=np.int64)
            _count_non_binary(flat, counts)
            if counts.any():
                first_bad_block = int(np.flatnonzero(counts)[0])
        if first_bad_block is not None:
            start = first_bad_block * CHECK_BLOCK
            part = flat[start:start + CHECK_BLOCK]
            bad = start + np.flatnonzero((part != 0) & (part != 1))
    if bad.size:
        value = flat[bad[0]].item()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if sparse:
            row = int(np.searchsorted(X.indptr, bad[0], side="right") - 1)
            where = f"row {row}, column {int(X.indices[bad[0]])}"
        else:
            where = f"row {bad[0] // d}, column {bad[0] % d}"
        if value != value:
            raise ValueError(f"Input {name} contains NaN (at {where}); {estimator_name or 'this'}"
                             " needs binary data (remove or impute missing values first).")
        raise ValueError(f"{estimator_name or 'This estimator'} needs binary data (only 0 and "
                         f"1): {name} contains the value {value} at {where}. Binarise it "
                         f"first, e.g. (X > threshold).")
    if odd_dtype:
        values = np.asarray(values).astype(np.uint8)  # all 0/1 now: an exact cast
        if sparse:
            X = type(X)((values, X.indices, X.indptr), shape=X.shape)
        else:
            X = np.ascontiguousarray(values)
    return X if sparse else read_only(X)
