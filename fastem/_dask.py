"""Dask arrays as a row source (layer 2): X stays on the workers, only small tables travel.

Imported only when a ``dask.array.Array`` reaches fastem (``import fastem`` never imports
dask). What a fit does with a Dask array ``X`` (and optional Dask or NumPy ``sample_weight``):

* **Once per fit.** Column chunks are merged (``X.rechunk({1: -1})``: blocks hold whole
  rows), every block is validated on its worker by the estimator's own check and the
  validated blocks are persisted (``dask.persist``): later passes read them from worker
  memory. One summary pass returns the row count, the total weight and the number of rows
  with positive weight.
* **Every pass** (an E-step, an init statistic): the model's picklable per-chunk function
  (with the current parameters) reaches the workers once - one task of its own on a
  distributed cluster, one graph key under Dask's local schedulers; tasks call it on the
  blocks where they are (one per block, or one per worker thread over its blocks: see
  :meth:`DaskSource._block_results`) and return only the blocks' tables; :func:`tree_sum` adds the tables in a fixed tree (groups
  of :data:`SPLIT_EVERY` consecutive blocks in row order, then groups of those sums, ...; the
  last at most :data:`SPLIT_EVERY` partial sums are added on the client).
  The tree depends on the number of blocks only, never on timing or on the workers, so a fit
  is reproducible for a given chunking and equals the in-memory fit up to the rounding of the
  sums. The M-step, the driver and the convergence test run unchanged on the client.
* **Threads.** Kernels release the GIL, so a worker with several threads runs several blocks
  at once. A task's kernels use the worker's fair share of its host's cores - ``cores x
  (worker threads) / (Dask threads of all workers on the host)`` - divided by the fastem tasks
  running in that process at the moment (at least 1; see :func:`_thread_budgets`). Results do
  not depend on it (the kernels are deterministic for any thread count).
* **Faults.** When a worker dies, Dask's scheduler recomputes its blocks from the persisted
  collection's lineage and the pass goes on. A pass that fails because the cluster lost data
  it cannot recompute (e.g. X made from scattered futures) is retried :data:`RETRIES` times
  and then raises :class:`DaskFitError`; a fit never continues with missing blocks.
"""
import sys
import threading
import types
from functools import partial

import dask
import numpy as np
from dask import delayed

from .kernels import nearest_centers
from .kernels._jit import thread_cap, usable_cores
from .sources import RowSource, add_tables, is_dask_array
from .validation import issparse, read_only

#: Tables added per task of the tree reduction.
SPLIT_EVERY = 8

#: Times a pass is resubmitted after the cluster lost data or workers, before DaskFitError.
RETRIES = 2

#: A pass whose tables take at most this many bytes in all (blocks x table) runs one task
#: per worker thread and adds the tables on the client (see DaskSource._block_results).
CLIENT_TABLE_BYTES = 64 * 2**20

#: k-means|| (Bahmani et al. 2012): candidates drawn per round, as a multiple of k, and rounds.
KMEANS_PARALLEL_OVERSAMPLING = 2.0
KMEANS_PARALLEL_ROUNDS = 5


class DaskFitError(RuntimeError):
    """A pass over a Dask array failed because the cluster lost workers or data for good."""


# ------------------------------------------------------------------------------ the client
def _client():
    """The distributed Client that ``dask.compute`` uses now, or None (local schedulers)."""
    if "distributed" not in sys.modules:
        return None
    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    from distributed import Client
    return owner if isinstance(owner, Client) else None


def _thread_budgets(client):
    """Kernel threads each worker process may use: its share of its host's cores in
    proportion to its Dask threads (2 workers x 1 thread on 2 cores: 1 each; 1 worker x 2
    threads: 2, shared by the tasks running at once)."""
    if client is None:
        return {}
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:   # distributed < 2025: every worker is listed anyway
        workers = client.scheduler_info()["workers"]
    cores = client.run(usable_cores)
    host_threads = {}
    for info in workers.values():
        host_threads[info["host"]] = host_threads.get(info["host"], 0) + info["nthreads"]
    return {address: max(1, cores.get(address, 1) * info["nthreads"]
                         // max(1, host_threads[info["host"]]))
            for address, info in workers.items()}


_running = 0
_running_lock = threading.Lock()


def _process_budget(budgets):
    """Kernel threads for all fastem tasks of this process (see :func:`_thread_budgets`)."""
    from numba.core import config
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return config.NUMBA_NUM_THREADS   # a local scheduler: the whole process
    budget = budgets.get(worker.address)
    if budget is None:   # a worker that joined (or restarted) after the budgets were made
        budget = max(1, config.NUMBA_NUM_THREADS // max(1, worker.state.nthreads))
    return budget


def _capped_call(budgets, function, *args):
    """``function(*args)`` in a task, its kernels limited to the task's share of threads."""
    global _running
    budget = _process_budget(budgets)
    with _running_lock:
        _running += 1
        running = _running
    try:
        with thread_cap(max(1, budget // running)):
            return function(*args)
    finally:
        with _running_lock:
            _running -= 1


def _run_blocks(payload, slices, blocks, weights):
    """Task body for several blocks of one worker: their results, in order."""
    return [_run_block(payload, rows, X, w) for rows, X, w in zip(slices, blocks, weights)]


_ones = np.ones(0)
_ones_lock = threading.Lock()


def _unit_weights(n):
    """A read-only array of n ones, shared by the tasks of a process: fresh pages cost page
    faults on every pass (measured on a 2-core VM: 15 -> 20 ms per 250,000-row Lloyd block
    with a new ``np.ones`` per task)."""
    global _ones
    with _ones_lock:
        if len(_ones) < n:
            _ones = np.ones(n)
            _ones.flags.writeable = False
        return _ones[:n]


def _run_block(payload, rows, X, w):
    """Task body: ``function(rows, X_block, w_block)`` (unit weights made here)."""
    function, budgets = payload
    if w is None:
        w = _unit_weights(rows.stop - rows.start)
    return _capped_call(budgets, function, rows, X, w)


def _add_tables(*parts):
    """The element-wise sum of statistic tuples, left to right."""
    total = None
    for part in parts:
        total = add_tables(total, part)
    return tuple(total)


def tree_sum(parts, split_every=SPLIT_EVERY, combine=None):
    """The top of a fixed summation tree over a list of statistic tuples (delayed objects or
    futures): groups of ``split_every`` consecutive items are summed left to right on the
    cluster (``combine(*group)``, default a delayed :func:`_add_tables`), then groups of the
    group sums, ..., until at most ``split_every`` partial sums remain. Those are fetched and
    added left to right on the client - one dependent task hop less per pass than a last
    summing task on a worker."""
    if combine is None:
        combine = delayed(_add_tables, pure=False)
    while len(parts) > split_every:
        parts = [combine(*parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
    return parts


def _lost_data(exc):
    names = {type(e).__name__ for e in (exc, exc.__cause__) if e is not None}
    return bool(names & {"KilledWorker", "FutureCancelledError", "CancelledError",
                         "CommClosedError"})


# -------------------------------------------------------------------------- per-block helpers
def _validated_block(block, validate, empty, block_id=None):
    if block.shape[0] == 0:   # e.g. after boolean indexing; such blocks are left out
        return empty
    return validate(block, f"X (block {block_id[0]})")


def _validated_weights(w):
    w = np.array(w, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity.")
    if (w < 0).any():
        raise ValueError("Negative values in sample_weight are not allowed.")
    return w


def _summary(rows, X, w):
    with np.errstate(over="ignore"):
        return float(w.sum()), int(np.count_nonzero(w))


def _rows_of(X, local):
    return X[local]


def _min_sqdist(candidates, previous, X):
    """Squared distance of every row of the block to its nearest candidate (float64), the
    smaller of it and ``previous``."""
    labels, sqdist = np.empty(X.shape[0], dtype=np.int32), np.empty(X.shape[0])
    nearest_centers(X, candidates, labels, sqdist)
    return sqdist if previous is None else np.minimum(previous, sqdist)


def _potential(sqdist, w):
    return (float(sqdist.sum() if w is None else w @ sqdist),)


def _oversample(sqdist, w, scale, seed, start):
    """Rows drawn independently with probability ``min(1, scale * w * D^2)`` (k-means||),
    from the block's own random stream."""
    u = np.random.RandomState([seed, start]).uniform(size=len(sqdist))
    p = scale * sqdist if w is None else scale * w * sqdist
    return start + np.flatnonzero(u < p)


def _candidate_weights(candidates, rows, X, w):
    """(sum of w over the rows nearest to each candidate,) for k-means||' final step."""
    labels, sqdist = np.empty(X.shape[0], dtype=np.int32), np.empty(X.shape[0])
    nearest_centers(X, candidates, labels, sqdist)
    return (np.bincount(labels, weights=w, minlength=len(candidates)).astype(np.float64),)


def _block_futures(persisted, kept):
    """The futures of a persisted Dask array's blocks ``kept`` (block order)."""
    from distributed import futures_of
    by_key = {future.key: future for future in futures_of(persisted)}
    keys = list(dask.core.flatten(persisted.__dask_keys__()))
    return [by_key[keys[i]] for i in kept]


def _same(value):
    return value


def _apply_rows(block, function, empty):
    return function(block) if block.shape[0] else empty


# ----------------------------------------------------------------------------- the source
class DaskSource(RowSource):
    """A ``dask.array.Array`` X (rows in blocks; any number of column chunks, merged) and
    optional sample weights, validated and persisted on the workers (see the module
    docstring). ``validate(block, name)`` is the estimator's check for one block: a
    module-level function or a classmethod (it runs on the workers)."""

    distributed = True

    def __init__(self, X, sample_weight, validate):
        if X.ndim != 2:
            raise ValueError(f"Expected a 2D dask array for X, got {X.ndim}D (shape {X.shape}).")
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})
        d = X.shape[1]
        self.sparse = issparse(X._meta)
        if self.sparse:
            import scipy.sparse as sp
            probe = validate(sp.csr_matrix((1, d), dtype=X.dtype), "X")
        else:
            probe = validate(np.zeros((1, d), dtype=X.dtype), "X")
        self.dtype, self.n_features = probe.dtype, d
        validated = X.map_blocks(_validated_block, validate, probe[:0], dtype=probe.dtype,
                                 meta=probe[:0])
        weights = self._weight_array(sample_weight, X) if sample_weight is not None else None
        if weights is not None and not np.isnan(X.shape[0]):
            weights = weights.rechunk((validated.chunks[0],))
        validated, weights = dask.persist(validated, weights)
        if any(np.isnan(c) for c in validated.chunks[0]):
            validated.compute_chunk_sizes()
            if weights is not None and weights.shape[0] != validated.shape[0]:
                raise ValueError(f"sample_weight.shape == {weights.shape}, expected "
                                 f"({validated.shape[0]},).")
            if weights is not None:
                weights = weights.rechunk((validated.chunks[0],)).persist()
        self.X = validated
        self._table_bytes = {}   # bytes of a pass's summed tables, by kind of chunk function
        self._client = _client()
        self._budgets = _thread_budgets(self._client)
        sizes = [int(c) for c in validated.chunks[0]]
        kept = [i for i, size in enumerate(sizes) if size > 0]   # empty blocks: no tasks
        blocks = validated.to_delayed().ravel()
        self._blocks = [blocks[i] for i in kept]
        w_blocks = weights.to_delayed().ravel() if weights is not None else None
        self._w_blocks = [w_blocks[i] if w_blocks is not None else None for i in kept]
        if self._client is not None:   # the persisted blocks' futures, for Client.map
            self._block_futures = _block_futures(validated, kept)
            self._w_futures = (_block_futures(weights, kept) if weights is not None
                               else [None] * len(kept))
            self._locate()
        self._starts = np.concatenate([[0], np.cumsum([sizes[i] for i in kept])]).astype(np.int64)
        self.n_rows = int(self._starts[-1])
        self.sample_weight = weights
        if not kept:
            raise ValueError(f"Found array with 0 sample(s) (shape={validated.shape}) while a "
                             "minimum of 1 is required.")
        total, positive = self.sum_chunks(_summary)
        if weights is None:
            total = float(self.n_rows)
        elif not total > 0:
            raise ValueError("sample_weight sums to zero; at least one sample needs positive "
                             "weight.")
        elif not np.isfinite(total):
            raise ValueError("sample_weight is too large: its sum overflows float64. Rescale "
                             "the weights (only their ratios matter to the mixture models).")
        self.total_weight, self._positive = float(total), int(positive)

    def _locate(self):
        """Where each block is (for the tasks of :meth:`_block_results`), once per fit.

        fastem does not move blocks: a moved block would be a task pinned to one worker,
        which Dask cannot recompute once that worker is gone (a fit would wait forever). A
        pass takes as long as its busiest worker, so persist X spread evenly over the
        workers (Dask usually does; see the README)."""
        from distributed import wait
        wait(self._block_futures)   # validated and placed first
        who = self._client.who_has(self._block_futures)
        self._placement = [(who.get(f.key) or [None])[0] for f in self._block_futures]

    @staticmethod
    def _weight_array(sample_weight, X):
        """Validated float64 Dask weights chunked like the rows of the Dask array X (1-D or
        2-D; block checks run with the first pass, shape and dtype are checked here)."""
        import dask.array as da
        if not is_dask_array(sample_weight):
            w = np.asarray(sample_weight)
            if w.dtype.kind not in "biuf":
                raise TypeError(f"sample_weight must be numeric; got dtype {w.dtype}.")
            if w.ndim == 0:
                return da.full(X.shape[0], float(w), chunks=(X.chunks[0],))
            if w.ndim == 1 and w.shape[0] == X.shape[0]:
                w = da.from_array(w, chunks=(X.chunks[0],))
            sample_weight = w
        if sample_weight.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must be numeric; got dtype {sample_weight.dtype}.")
        if sample_weight.ndim != 1 or (not np.isnan(X.shape[0])
                                       and sample_weight.shape[0] != X.shape[0]):
            raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                             f"({X.shape[0]},).")
        if not is_dask_array(sample_weight):   # NumPy weights for X of unknown length
            sample_weight = da.from_array(sample_weight, chunks=-1)
        return sample_weight.map_blocks(_validated_weights, dtype=np.float64)

    # -- the RowSource interface -------------------------------------------------------------
    def chunk_slices(self):
        for i in range(len(self._blocks)):
            yield slice(int(self._starts[i]), int(self._starts[i + 1]))

    def chunks(self):
        raise TypeError("A Dask source's blocks stay on the workers: use sum_chunks, "
                        "map_chunks or take.")

    weight_chunks = chunks

    def positive_weights(self):
        return self._positive

    @staticmethod
    def _broadcast(value):
        """``value`` as one key of a graph that many tasks depend on (shipped once, fetched
        by the workers that need it; part of the lineage, so recomputed if lost)."""
        return delayed(value, pure=False, traverse=False)

    def _block_tasks(self, chunk_function):
        payload = self._broadcast((chunk_function, self._budgets))
        return [delayed(_run_block, pure=False)(payload, rows, X, w)
                for rows, X, w in zip(self.chunk_slices(), self._blocks, self._w_blocks)]

    def _compute(self, build):
        """``dask.compute(*build())``, resubmitted after lost workers (see the module)."""
        return self._with_retries(lambda attempt: dask.compute(*build()))

    def _with_retries(self, run):
        """``run(attempt)``, called again after the cluster lost workers or data (attempts
        0, 1, ..., RETRIES), then :class:`DaskFitError`; other errors propagate at once."""
        for attempt in range(RETRIES + 1):
            try:
                return run(attempt)
            except Exception as exc:   # noqa: BLE001 - only the cluster's losses are retried
                if not _lost_data(exc):
                    raise
                if attempt == RETRIES:
                    raise DaskFitError(
                        "The Dask cluster lost workers or data during a pass over X and could "
                        f"not recompute them ({type(exc).__name__}: {exc}). Persist X from a "
                        "recomputable source (e.g. dask.array.from_zarr / from_array, not "
                        "scattered futures) or give the cluster more memory; no model was "
                        "fitted.") from exc

    def _block_results(self, chunk_function, summed):
        """``chunk_function`` over every block: the tables' sum in the fixed tree
        (``summed``) or the list of the blocks' results, in block order.

        On a distributed cluster the function (with the current parameters) is submitted once
        as a task of its own, which one worker runs and the others fetch (never copied into
        the block tasks; part of the lineage, so recomputed if its worker dies), and then
        either

        * **one task per worker thread** runs the function on each block that thread's worker
          holds (see :meth:`_locate`) and returns the blocks' tables, which the client adds
          in the fixed tree - when all the tables of a pass are small
          (:data:`CLIENT_TABLE_BYTES`, learnt from the function's first pass); a task costs
          ~3 ms of scheduling per block on a busy 2-core VM, so this saves ~45 ms per pass
          with 16 blocks; or
        * **one task per block**, the tree's group sums as tasks on the cluster and its top
          on the client (large tables: they never all travel to the client).

        Both add the same tables in the same tree, so they give the same bits. Not
        ``Client.scatter(broadcast=True)``: a broadcast to a worker that has just died waits
        forever (its ``timeout`` does not cover that; seen in the fault test). Retries go
        through ``dask.compute`` of a graph.
        """
        kind = getattr(chunk_function, "func", chunk_function)   # a partial's function
        kind = kind if isinstance(kind, types.FunctionType) else type(kind)
        batched = not summed or (
            self._table_bytes.get(kind, np.inf) * len(self._block_futures)
            <= CLIENT_TABLE_BYTES if self._client is not None else False)

        def run(attempt):
            client = self._client if attempt == 0 else None
            if client is None:
                parts = self._block_tasks(chunk_function)
                return dask.compute(*(tree_sum(parts) if summed else parts))
            payload = client.submit(_same, (chunk_function, self._budgets), pure=False)
            slices = list(self.chunk_slices())
            if batched:
                runs = self._thread_runs()
                tasks = [client.submit(_run_blocks, payload, [slices[i] for i in blocks],
                                       [self._block_futures[i] for i in blocks],
                                       [self._w_futures[i] for i in blocks],
                                       workers=[worker] if worker else None,
                                       allow_other_workers=True, pure=False)
                         for worker, blocks in runs]
                results = [None] * len(slices)
                for (_, blocks), outputs in zip(runs, client.gather(tasks)):
                    for i, output in zip(blocks, outputs):
                        results[i] = output
                return tree_sum(results, combine=_add_tables) if summed else results
            parts = client.map(_run_block, [payload] * len(slices), slices,
                               self._block_futures, self._w_futures, pure=False)
            parts = tree_sum(parts, combine=lambda *group: client.submit(
                _add_tables, *group, pure=False))
            return client.gather(parts)

        results = self._with_retries(run)
        if not summed:
            return list(results)
        total = _add_tables(*results)
        self._table_bytes[kind] = sum(getattr(t, "nbytes", 8) for t in total)
        return total

    def _thread_runs(self):
        """(worker, block indices) per worker thread: each worker's blocks (see
        :meth:`_locate`) in block order, cut into as many runs as it has threads."""
        runs = []
        nthreads = self._client.nthreads()
        for worker in sorted(set(self._placement), key=str):
            mine = [i for i, w in enumerate(self._placement) if w == worker]
            parts = max(1, min(len(mine), nthreads.get(worker, 1)))
            bounds = [len(mine) * t // parts for t in range(parts + 1)]
            runs += [(worker, mine[a:b]) for a, b in zip(bounds, bounds[1:])]
        return runs

    def sum_chunks(self, chunk_function):
        """The tree sum of ``chunk_function(rows, X_block, w_block)`` over the blocks,
        computed on the cluster (see the module docstring); only the tables travel."""
        return self._block_results(chunk_function, summed=True)

    def map_chunks(self, chunk_function):
        """Every block's (small) ``chunk_function`` result, in block order."""
        return self._block_results(chunk_function, summed=False)

    def _gather_rows(self, blocks, indices):
        indices = np.asarray(indices, dtype=np.int64)
        which = np.searchsorted(self._starts, indices, side="right") - 1
        groups = [(int(b), np.flatnonzero(which == b)) for b in np.unique(which)]
        parts = self._compute(lambda: [
            delayed(_rows_of, pure=False)(blocks[b], indices[mine] - self._starts[b])
            for b, mine in groups])
        order = np.concatenate([mine for _, mine in groups])
        if parts and issparse(parts[0]):
            import scipy.sparse as sp
            stacked = sp.vstack(parts, format="csr")
        else:
            stacked = np.concatenate(parts)
        return stacked[np.argsort(order, kind="stable")]

    def take(self, indices):
        """Rows ``indices`` (any order), fetched from the blocks that hold them."""
        rows = self._gather_rows(self._blocks, indices)
        return rows if self.sparse else read_only(np.ascontiguousarray(rows))

    def weights(self, indices):
        if self.sample_weight is None:
            return np.ones(len(indices))
        return self._gather_rows(self._w_blocks, indices)

    def _nearest_sqdist(self, previous, candidates):
        """Per block (persisted on the workers): each row's squared distance to its nearest
        candidate, the smaller of it and ``previous``'s."""
        candidates = self._broadcast(read_only(np.ascontiguousarray(candidates)))
        return list(dask.persist(*[
            delayed(_capped_call, pure=False)(self._budgets, _min_sqdist, candidates, prev, X)
            for prev, X in zip(previous or [None] * len(self._blocks), self._blocks)]))

    # -- k-means|| ------------------------------------------------------------------------------
    def kmeans_parallel(self, n_clusters, rng, oversampling=KMEANS_PARALLEL_OVERSAMPLING,
                        rounds=KMEANS_PARALLEL_ROUNDS):
        """k-means|| seeding (Bahmani et al. 2012), the Dask version of k-means++.

        A first centre drawn with probability proportional to w; then ``rounds`` rounds in
        which every row joins the candidates independently with probability
        ``min(1, l w D^2 / phi)`` (``l = oversampling * k``, D the distance to the nearest
        candidate so far, phi the potential ``sum w D^2``); each candidate is weighted by the
        weight of the rows nearest to it, and greedy k-means++
        (:func:`fastem.models.kmeans.kmeans_plusplus`) picks k of them on the client. Per
        round: one pass that samples (per-block random streams seeded from ``rng``), one that
        updates D (persisted per block on the workers) and its potential. Returns
        ``(centers, row indices)`` like ``kmeans_plusplus``.
        """
        from .models.kmeans import _distributed_weighted_rows, kmeans_plusplus
        ell = oversampling * n_clusters
        ids = [np.asarray(_distributed_weighted_rows(self, 1, rng), dtype=np.int64)]
        sqdist = self._nearest_sqdist(None, self.take(ids[0]))
        for round_ in range(rounds):
            potential = _add_tables(*self._compute(lambda: tree_sum([
                delayed(_potential, pure=False)(s, w)
                for s, w in zip(sqdist, self._w_blocks)])))[0]
            if not potential > 0:
                break   # every row is a candidate already
            seed = int(rng.randint(2**31 - 1))
            picked = self._compute(lambda: [
                delayed(_oversample, pure=False)(s, w, ell / potential, seed, int(start))
                for s, w, start in zip(sqdist, self._w_blocks, self._starts)])
            picked = np.concatenate(picked).astype(np.int64)
            if picked.size:
                ids.append(picked)
                if round_ < rounds - 1:
                    sqdist = self._nearest_sqdist(sqdist, self.take(picked))
        ids = np.concatenate(ids)
        k = n_clusters
        if len(ids) < k:   # (near-)duplicate data: too few candidates; add rows by weight
            ids = np.concatenate([ids, _distributed_weighted_rows(self, k, rng)])
        candidates = read_only(np.ascontiguousarray(self.take(ids)))
        counts, = self.sum_chunks(partial(_candidate_weights, candidates))
        if not counts.sum() > 0:
            counts = np.ones(len(ids))
        centers, chosen = kmeans_plusplus(candidates, counts, k, rng)
        return centers, ids[chosen]


def map_rows(X, row_function, width=None, dtype=np.float64):
    """``row_function(block)`` over the row blocks of the Dask array X, lazily: a Dask array
    of shape (n,) (``width`` None) or (n, width). ``row_function`` (a picklable object,
    e.g. a fitted estimator's bound method) is one key of the graph, not copied per task."""
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array for X, got {X.ndim}D (shape {X.shape}).")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    function = delayed(row_function, pure=False, traverse=False)
    if width is None:
        empty = np.empty((0,), dtype=dtype)
        return X.map_blocks(_apply_rows, function, empty, dtype=dtype, drop_axis=1, meta=empty)
    empty = np.empty((0, width), dtype=dtype)
    return X.map_blocks(_apply_rows, function, empty, dtype=dtype,
                        chunks=(X.chunks[0], (width,)), meta=empty)


def weighted_sum(values, sample_weight=None):
    """``(sum_i w_i v_i, sum_i w_i)`` of a lazy per-row Dask array ``values`` (computed;
    ``sample_weight`` a Dask or NumPy array, validated block by block, or None)."""
    if sample_weight is None:
        return float(values.sum().compute()), float(values.shape[0])
    w = DaskSource._weight_array(sample_weight, values)
    total, weight = dask.compute((w * values).sum(), w.sum())
    if not weight > 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs positive weight.")
    return float(total), float(weight)
