"""Where the rows live (layer 2): arrays, memory-mapped files and chunk sources, all seen by the
models as one fixed sequence of row chunks - and the one reducer of chunk statistics.

A model never touches X directly. It asks a :class:`RowSource` for

* ``chunks()``: ``(rows, X_chunk, w_chunk)`` in a fixed order - ``rows`` is the chunk's
  ``slice`` of the global row numbers, ``X_chunk`` a validated C-contiguous (read-only) array
  or CSR matrix, ``w_chunk`` its float64 sample weights;
* ``weight_chunks()``: the same ``(rows, w_chunk)`` without reading X;
* ``take(indices)``: a few rows (k-means++ candidates, init subsamples);

and sums what each chunk's kernels return with :func:`sum_chunks`, the reducer every fit uses
(batch EM over an array, a memmap or a chunk source; the online update folds one chunk).
An in-memory array is one chunk (the kernels split it into row blocks on fastem's threads), so
its results are those of the kernels on the whole array. A memory-mapped array is read in
chunks of about :data:`STREAM_CHUNK_BYTES`; unit weights are then a chunk-sized buffer of ones,
never an n-sized array. A Dask array is one more source (:mod:`fastem._dask`, imported only
when one is passed): its chunks are its blocks on the workers, ``sum_chunks`` a tree sum of
the blocks' tables on the cluster and ``map_chunks`` returns the blocks' small results.
"""
import mmap
import os
import sys

import numpy as np

from .validation import check_sample_weight, issparse, read_only

#: Bytes of X per chunk when streaming a memory-mapped array (a multiple of the kernels' row
#: blocks): large enough that the per-chunk overhead (one thread-pool round, a few small
#: tables) is negligible, small enough that a chunk-sized buffer costs nothing.
STREAM_CHUNK_BYTES = 32 * 2**20


class ChunkedArray:
    """One data set stored as several row chunks, read again on every pass of a fit.

    Pass it to ``fit``, ``predict``, ``score`` (...) of every fastem estimator in place of an
    array; the result is that of the concatenated array (batch EM sums the statistics of the
    chunks in order, so it differs only by floating-point rounding).

    Parameters
    ----------
    chunks : sequence or callable
        Either a sequence whose items are arrays of shape (n_i, d) (memmaps included), CSR
        matrices (BernoulliMixture) or paths of ``.npy`` files (opened with
        ``mmap_mode='r'`` on every pass, so only the pages in use are in memory); or a
        zero-argument callable returning a fresh iterable of such arrays - called once per
        pass, it must yield the same rows in the same order every time.

    Notes
    -----
    Every chunk is validated (finite values, or 0/1 for BernoulliMixture; dtype conversions
    as for an array) the first time a fit reads it; later passes check only its shape and
    dtype. All chunks must have the same number of columns and, after conversion, the same
    dtype. Random row access (k-means++ candidates, subsampled inits) opens the chunk that
    holds the row; for a callable it costs one more pass, so prefer a sequence when you can.
    """

    def __init__(self, chunks):
        if callable(chunks):
            self._items = None
            self._factory = chunks
        else:
            if isinstance(chunks, (str, bytes, os.PathLike)) or not hasattr(chunks, "__len__"):
                raise TypeError("ChunkedArray needs a sequence of arrays or .npy paths, or a "
                                f"callable returning an iterable of arrays; got {type(chunks)}.")
            self._items = list(chunks)
            if not self._items:
                raise ValueError("ChunkedArray needs at least one chunk.")
            self._factory = None

    def __iter__(self):
        items = self._items if self._items is not None else self._factory()
        for item in items:
            yield _load(item)

    def chunk(self, i):
        """Chunk ``i`` (sequences only)."""
        return _load(self._items[i])

    @property
    def random_access(self):
        """True when single chunks can be opened without a pass (a sequence)."""
        return self._items is not None

    def __repr__(self):
        what = f"{len(self._items)} chunks" if self._items is not None else "a callable"
        return f"ChunkedArray({what})"


def _load(item):
    if isinstance(item, (str, os.PathLike)):
        return np.load(item, mmap_mode="r", allow_pickle=False)
    return item


def is_file_backed(X):
    """True when X is (a view of) a memory-mapped file: ``np.memmap``, ``np.load(...,
    mmap_mode=...)`` or an array over an ``mmap.mmap`` buffer."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap):
            return True
        X = X.base
    return isinstance(X, mmap.mmap)


class RowSource:
    """Rows of X and their weights as a fixed sequence of chunks (see the module docstring).

    Attributes
    ----------
    n_rows, n_features : int
    dtype : numpy dtype of the chunks the kernels see
    sparse : bool
    total_weight : float
        ``sum_i w_i`` (``n_rows`` for unit weights).
    in_memory : ndarray, CSR matrix or None
        The whole validated X when it is one in-memory chunk.
    """

    in_memory = None
    #: True for a source whose chunks live elsewhere (a Dask array on its workers): models may
    #: only reach its rows through ``sum_chunks``, ``map_chunks``, ``take`` and ``weights``.
    distributed = False

    def map_chunks(self, chunk_function):
        """``[chunk_function(rows, X_chunk, w_chunk) for every chunk]``, in chunk order: for
        per-chunk results that are small but not additive (e.g. each chunk's farthest rows)."""
        return [chunk_function(rows, X, w) for rows, X, w in self.chunks()]

    def _set_weights(self, sample_weight):
        if sample_weight is None:
            self.sample_weight = None
            self.total_weight = float(self.n_rows)
        else:
            # read-only like the unit weights: one kernel specialisation for both
            self.sample_weight = read_only(check_sample_weight(sample_weight, self.n_rows))
            self.total_weight = float(self.sample_weight.sum())
        self._ones = None

    def _weights_of(self, rows, n_chunk_rows):
        if self.sample_weight is not None:
            return self.sample_weight[rows]
        if self._ones is None or len(self._ones) < n_chunk_rows:
            self._ones = read_only(np.ones(n_chunk_rows))
        return self._ones[:n_chunk_rows]

    @property
    def shape(self):
        return (self.n_rows, self.n_features)

    @property
    def weight_mean(self):
        return self.total_weight / self.n_rows

    def weights(self, indices):
        """Weights of the rows ``indices``."""
        if self.sample_weight is None:
            return np.ones(len(indices))
        return self.sample_weight[indices]

    def weight_chunks(self):
        """``(rows, w_chunk)`` for every chunk, without reading X."""
        for rows in self.chunk_slices():
            yield rows, self._weights_of(rows, rows.stop - rows.start)

    def positive_weights(self):
        """Number of rows with positive weight."""
        if self.sample_weight is None:
            return self.n_rows
        return int(np.count_nonzero(self.sample_weight))


class ArraySource(RowSource):
    """An in-memory array (dense or CSR), already validated, as one chunk."""

    def __init__(self, X, sample_weight=None):
        self.X = self.in_memory = X
        self.n_rows, self.n_features = X.shape
        self.dtype = X.dtype
        self.sparse = issparse(X)
        self._set_weights(sample_weight)

    def chunk_slices(self):
        yield slice(0, self.n_rows)

    def weight_chunks(self):
        rows = slice(0, self.n_rows)
        yield rows, self._weights_of(rows, self.n_rows)

    def chunks(self):
        rows = slice(0, self.n_rows)
        yield rows, self.X, self._weights_of(rows, self.n_rows)

    def take(self, indices):
        return self.X[np.asarray(indices)]


class StreamSource(RowSource):
    """Chunks read from a :class:`ChunkedArray` or a file-backed array, validated on first use.

    ``validate(chunk, name)`` is the estimator's input check for one chunk; it returns the
    chunk as the kernels need it (C-contiguous, native dtype; a copy only when it converts).
    """

    def __init__(self, data, validate, sample_weight=None):
        self._validate = validate
        if isinstance(data, ChunkedArray):
            self._data = data
            self._memmap = None
        else:  # a file-backed array: row slices of it
            self._memmap = data
            rows = max(1, STREAM_CHUNK_BYTES // max(1, data.shape[1] * data.dtype.itemsize))
            self._data = ChunkedArray([data[r] for r in _slices(data.shape[0], rows)])
        self._scan()
        self._set_weights(sample_weight)

    def _scan(self):
        """First pass: validate every chunk; learn the row offsets, width and dtype."""
        starts, dtype, width, sparse = [0], None, None, None
        for i, raw in enumerate(self._data):
            chunk = self._validate(raw, f"X (chunk {i})")
            if dtype is None:
                dtype, width, sparse = chunk.dtype, chunk.shape[1], issparse(chunk)
            elif chunk.shape[1] != width:
                raise ValueError(f"Chunk {i} has {chunk.shape[1]} columns; chunk 0 has {width}.")
            elif chunk.dtype != dtype or issparse(chunk) != sparse:
                raise ValueError(f"Chunk {i} becomes {'CSR ' if issparse(chunk) else ''}"
                                 f"{chunk.dtype} after validation but chunk 0 became "
                                 f"{'CSR ' if sparse else ''}{dtype}; all chunks must have one "
                                 "dtype (and be all dense or all sparse).")
            starts.append(starts[-1] + chunk.shape[0])
        if dtype is None:
            raise ValueError("The chunk source yielded no chunks.")
        self._starts = np.array(starts, dtype=np.int64)
        self.n_rows, self.n_features, self.dtype, self.sparse = starts[-1], width, dtype, sparse

    def chunk_slices(self):
        for i in range(len(self._starts) - 1):
            yield slice(int(self._starts[i]), int(self._starts[i + 1]))

    def _prepared(self, raw, i):
        """A chunk of a later pass: checked against the first pass, converted like it."""
        rows = self._starts[i + 1] - self._starts[i]
        if raw.shape != (rows, self.n_features):
            raise ValueError(f"Chunk {i} changed between passes: shape {raw.shape}, first "
                             f"pass ({rows}, {self.n_features}). A callable chunk source must "
                             "yield the same rows on every pass.")
        if issparse(raw) or (raw.dtype == self.dtype and raw.flags.c_contiguous):
            return raw if issparse(raw) else read_only(raw)
        return self._validate(raw, f"X (chunk {i})")

    def chunks(self):
        n_chunks = len(self._starts) - 1
        slices = list(self.chunk_slices())
        count = 0
        for i, raw in enumerate(self._data):
            if i >= n_chunks:
                raise ValueError("The chunk source yielded more chunks than on its first pass.")
            rows = slices[i]
            yield rows, self._prepared(raw, i), self._weights_of(rows, rows.stop - rows.start)
            count += 1
        if count != n_chunks:
            raise ValueError("The chunk source yielded fewer chunks than on its first pass.")

    def take(self, indices):
        """Rows ``indices`` (any order) in the chunks' dtype."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._memmap is not None and not self.sparse:
            rows = np.asarray(self._memmap[np.sort(indices)])
            rows = self._validate(rows, "X")
            return rows[np.argsort(np.argsort(indices, kind="stable"), kind="stable")]
        which = np.searchsorted(self._starts, indices, side="right") - 1
        wanted = np.unique(which).tolist()
        parts, order = [], []
        if self._data.random_access:
            pairs = ((i, self._data.chunk(i)) for i in wanted)
        else:
            pairs = enumerate(self._data)
        last, wanted = wanted[-1], set(wanted)
        for i, raw in pairs:
            if i not in wanted:
                continue
            chunk = self._prepared(raw, int(i))
            mine = np.flatnonzero(which == i)
            parts.append(chunk[indices[mine] - self._starts[i]])
            order.append(mine)
            if i == last:   # a callable source: read no further than the last chunk needed
                break
        order = np.concatenate(order)
        if self.sparse:
            import scipy.sparse as sp
            stacked = sp.vstack(parts, format="csr")
        else:
            stacked = np.concatenate(parts)
        return stacked[np.argsort(order, kind="stable")]


def is_dask_array(X):
    """True for a ``dask.array.Array`` (without importing dask: a program holding one has)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)


def _slices(n_rows, chunk_rows):
    return [slice(s, min(n_rows, s + chunk_rows)) for s in range(0, n_rows, chunk_rows)]


def as_source(X, sample_weight, validate):
    """The :class:`RowSource` for ``fit``/``predict`` input X.

    ``validate(array, name)`` is the estimator's check for an array (it returns the array the
    kernels use). A ChunkedArray and a file-backed array are streamed and validated chunk by
    chunk (no conversion of the whole file, no n x d temporary); anything else is validated
    once and used as one in-memory chunk. A Dask array stays on its workers (validated there
    block by block, persisted once).
    """
    if isinstance(X, RowSource):
        return X
    if is_dask_array(X):
        from ._dask import DaskSource
        return DaskSource(X, sample_weight, validate)
    if isinstance(X, ChunkedArray) or (isinstance(X, np.ndarray) and X.ndim == 2
                                       and is_file_backed(X) and X.shape[0] > 0):
        return StreamSource(X, validate, sample_weight)
    return ArraySource(validate(X, "X"), sample_weight)


def sum_chunks(source, chunk_statistics):
    """``sum over chunks of chunk_statistics(rows, X_chunk, w_chunk)``, in chunk order.

    ``chunk_statistics`` returns a tuple of float64 arrays and floats (a model's additive
    sufficient statistics); the tuple of sums is returned. The one reducer of fastem: a fixed
    order makes the result independent of threads, and equal for any chunking up to rounding.
    On a Dask source the same function runs on the workers where the blocks are, and the
    tables are added with :func:`add_tables` in a fixed tree (see
    :meth:`fastem._dask.DaskSource.sum_chunks`); it must then be picklable (a module-level
    function or class, or a ``functools.partial`` of one) and must not change shared state.
    """
    if source.distributed:
        return source.sum_chunks(chunk_statistics)
    total = None
    for rows, X, w in source.chunks():
        total = add_tables(total, chunk_statistics(rows, X, w))
    return tuple(total)


def add_tables(total, part):
    """``total + part`` for statistic tuples, element by element, into ``total`` (a list;
    None: a copy of ``part`` starts it). Every sum of chunk statistics uses it."""
    if total is None:
        return [p.copy() if isinstance(p, np.ndarray) else p for p in part]
    for i, p in enumerate(part):
        total[i] += p
    return total
