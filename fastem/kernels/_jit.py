"""The one place where fastem's Numba compilation options live.

Every kernel is compiled through :func:`kernel`, so caching, the fastmath flag set, the error
model and the runtime policies below are decided here and nowhere else:

* **Threads.** Python-level calls of parallel kernels run their serial work kernels on
  fastem's own thread pool (:class:`ParallelKernel`); compiled callers get the ``prange``
  version. The user's threading-layer choice is never changed.
* **One specialisation per dtype.** Whatever the caller passes - a literal, an int32 or
  uint64 index, a writable ``X`` - a kernel compiles for the types fits use
  (:func:`_call_type`): a user's ``@njit`` code, or a Python call of a parallel kernel,
  reuses the kernels that ``fastem.warmup`` cached instead of compiling its own.
* **Read-only installs.** Numba caches next to the source, or in ``NUMBA_CACHE_DIR``, or in the
  user cache directory. When none of them is writable, Numba raises at decoration time; here
  the kernels are then compiled without caching and one :class:`CacheUnavailableWarning` is
  issued per process.
* **Stale caches.** Numba keys a cached kernel on its own file's timestamp and the target
  CPU, but not on the files it calls (``_simd``, ``_blocks``, this module's constants) nor on
  fastem's version. Here every cache entry also carries :data:`KERNEL_STAMP` - fastem's
  version and a SHA-256 of all kernel sources - so an upgrade or an edit anywhere in
  ``fastem/kernels`` recompiles every kernel; and cache files are named after the SIMD class
  of ``_target`` so kernels built with another tile choice never share an index file.
* **Concurrent writers.** Updating a kernel's cache index is a read-modify-write; it runs
  under an exclusive file lock, so processes compiling the same kernels at once (e.g.
  ``fastem.warmup``) never drop each other's entries.
* **Damaged caches.** Cache files are written with a SHA-256 checksum (file names carry a
  ``fe1`` tag so that they never collide with Numba's own format). A truncated, corrupt or
  unreadable cache entry is treated as a miss: the kernel is recompiled and the entry
  rewritten. A cache that cannot be written (disk full, permissions changed) is disabled for
  that kernel with the same one-time warning.
* **Warm starts.** Before loading a cached kernel Numba sets up its whole CPU target once per
  process: it scans every installed package's entry points and imports all its lowering
  registries, among them ``numba.np.arraymath``, whose BLAS check imports ``scipy.linalg``
  (0.4-0.6 s together, more than loading all of a fit's kernels). A loaded kernel needs only
  Numba's runtime (NRT), so fastem's cache initialises that and defers the rest to the first
  cache miss; Numba's compiler itself repeats the full set-up before any compilation, so a
  later ``@njit`` function (fastem's or the user's) compiles as usual. Kernels must therefore
  not use functions whose cached environments import those registries (``np.finfo``: use a
  module constant).
"""
import hashlib
import inspect
import os
import pickle
import threading
import time
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

import numba
import numpy as np
from numba.core import config, entrypoints, types
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys

from .._blas_pool import POOL_THREAD_PREFIX, quiet_blas_workers
from .._version import __version__
from ..validation import read_only
from ._target import HAS_FMA, PARALLEL_MIN_ROWS, SIMD_CLASS

#: LLVM fast-math flags used by every kernel. Deliberately *without* ``nnan`` and ``ninf``:
#: -inf appears legitimately (log(0) guards, padded centres) and must not be optimised away.
#: ``reassoc`` lets inner reductions over the contiguous feature axis vectorise; the result
#: depends on the compiled code only, never on the number of threads. Deliberately *without*
#: ``contract`` too: LLVM's choice of which a*b+c to fuse into an FMA differed between a fresh
#: compile (callees optimised inside their caller) and the same kernel loaded from the on-disk
#: cache, so a process's first fit differed in the last bits from later ones (caught by
#: tests/test_determinism.py with a cold cache). The SIMD code in ``_simd.py`` calls
#: ``llvm.fma`` explicitly and is unaffected.
FASTMATH = frozenset({"nsz", "arcp", "reassoc"})
#: The same without ``reassoc``, for functions whose short reductions are inlined into many
#: callers (the responsibilities' sum of exponentials): with ``reassoc`` LLVM vectorised that
#: sum in a fresh compile (callee optimised inside its caller) and not in the code it wrote
#: to the cache, or the other way round, so a process that had just compiled the E-step
#: differed in the last bits from every later one (found 2026-12-03: ``responsibilities`` on
#: a (5000, 16) array, and N_j of a d = 128, k = 16 E-step; without ``reassoc`` both agree).
ORDERED_FASTMATH = FASTMATH - {"reassoc"}

#: Numba's parallel transformations that parallel kernels use: explicit ``prange`` loops only.
#: The others (array expressions, reductions, fusion, ...) would turn helper code into
#: hidden parallel regions and each costs compile time.
PARALLEL_OPTIONS = {"prange": True, "comprehension": False, "reduction": False,
                    "inplace_binop": False, "setitem": False, "numpy": False,
                    "stencil": False, "fusion": False}

#: Rows per block in every parallel kernel. Each block writes its own partial statistics and
#: partials are summed in block order, so results are bitwise identical for any thread count.
BLOCK_ROWS = 2048

class CacheUnavailableWarning(UserWarning):
    """Compiled kernels cannot be cached on disk; they are compiled in every new process."""


_cache_warning_issued = False
_cache_warning_lock = threading.Lock()


def _warn_cache_unavailable(detail):
    global _cache_warning_issued
    with _cache_warning_lock:
        if _cache_warning_issued:
            return
        _cache_warning_issued = True
    warnings.warn(
        f"fastem: {detail}; kernels are compiled without an on-disk cache, so every new "
        "process compiles them again. Set NUMBA_CACHE_DIR to a writable directory to cache "
        "them.", CacheUnavailableWarning, stacklevel=3)


# ------------------------------------------------------------------------------- caching
_MAGIC = b"fastem-cache-1\n"


def _kernel_sources_digest():
    """SHA-256 of every Python source in this package (the code any kernel can call)."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(here, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


#: Added to every cache entry's source stamp: a cached kernel is reused only by the same
#: fastem version, the same kernel sources and the same SIMD class / FMA choice.
KERNEL_STAMP = (__version__, _kernel_sources_digest(), SIMD_CLASS, HAS_FMA)


def _wrap(payload):
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unwrap(raw):
    """The checked payload of a cache file, or None when it is damaged."""
    head = len(_MAGIC)
    if not raw.startswith(_MAGIC) or len(raw) < head + 32:
        return None
    digest, payload = raw[head:head + 32], raw[head + 32:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    return payload


class _index_lock:
    """Exclusive advisory lock on ``<index>.lock`` (POSIX ``flock``; a no-op where it does not
    exist, e.g. Windows, where concurrent warm-ups should then not share a cache directory)."""

    def __init__(self, index_path):
        self._path = index_path + ".lock"
        self._fd = None

    def __enter__(self):
        if fcntl is not None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class _CheckedCacheFile(IndexDataCacheFile):
    """Numba's index/data cache files with a checksum on every file; damage reads as a miss."""

    def __init__(self, cache_path, filename_base, source_stamp):
        super().__init__(cache_path, f"{filename_base}-fe1-{SIMD_CLASS}",
                         (source_stamp, KERNEL_STAMP))

    def save(self, key, data):
        # Numba's save is a read-modify-write of the index (and picks the data file's number
        # from it): two processes compiling the same kernel (``fastem.warmup``, parallel test
        # runs, several workers on one node) could drop each other's entries. Hold an
        # exclusive lock on the index for the whole update.
        with _index_lock(self._index_path):
            super().save(key, data)

    def _load_index(self):
        try:
            with open(self._index_path, "rb") as f:
                payload = _unwrap(f.read())
            if payload is None:
                return {}
            version, stamp, overloads = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - missing, unreadable or damaged: start afresh
            return {}
        if version != self._version or stamp != self._source_stamp or \
                not isinstance(overloads, dict):
            return {}
        return overloads

    def _save_index(self, overloads):
        payload = self._dump((self._version, self._source_stamp, overloads))
        with self._open_for_write(self._index_path) as f:
            f.write(_wrap(payload))

    def _load_data(self, name):
        with open(self._data_path(name), "rb") as f:
            payload = _unwrap(f.read())
        if payload is None:
            raise OSError(f"damaged cache file {name!r}")  # IndexDataCacheFile.load -> miss
        return pickle.loads(payload)

    def _save_data(self, name, data):
        with self._open_for_write(self._data_path(name)) as f:
            f.write(_wrap(self._dump(data)))


class _CheckedFunctionCache(FunctionCache):
    """Numba's function cache that never lets a cache problem break a call."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _CheckedCacheFile(self._cache_path, self._impl.filename_base,
                                             self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        # Numba's version refreshes the whole target first; a hit needs only the runtime
        # (see "Warm starts" above), a miss gets the full set-up before it compiles
        try:
            rtsys.initialize(target_context)
            data = self._load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - damaged or incompatible entry: recompile
            data = None
        if data is None:
            entrypoints.init_all()
            target_context.refresh()
        return data

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as exc:  # noqa: BLE001 - a cache must never break a call
            self.disable()
            _warn_cache_unavailable(f"cannot write the kernel cache in {self._cache_path!r} "
                                    f"({type(exc).__name__}: {exc})")


# ---------------------------------------------------------------------------- dispatchers
#: Parameters that no kernel writes. Fits pass them read-only (``validation.read_only``);
#: calls from compiled code type them read-only too and Python-level calls of parallel
#: kernels get read-only views, because a writable and a read-only array are two Numba types
#: and each would compile every kernel it reaches once more (a user's ``@njit`` caller with
#: writable arrays compiled each work kernel again; one specialisation per dtype serves all).
READ_ONLY_PARAMETERS = frozenset({"X", "sample_weight"})


def _call_type(arg_type, name=None):
    """The type a compiled call of a fastem kernel is specialised on, for the argument of
    parameter ``name``: literals as their value's type; integer scalars as int64 (signed ones
    widen, unsigned ones are indices and counts below 2**63 - chiefly a ``prange`` index,
    which Numba types as uint64 in the parallel loop but as int64 when it first types the
    loop body, so each work kernel compiled twice); :data:`READ_ONLY_PARAMETERS` read-only."""
    arg_type = types.unliteral(arg_type)
    if isinstance(arg_type, types.Integer):
        return types.int64
    if name in READ_ONLY_PARAMETERS and isinstance(arg_type, types.Array) and arg_type.mutable:
        return arg_type.copy(readonly=True)
    return arg_type


class Kernel(CPUDispatcher):
    """A Numba CPU dispatcher with fastem's cache policy (see the module docstring).

    Calls from Python go straight to Numba's dispatcher (no Python-level ``__call__``: it
    would add ~0.6 us to each of the hundreds of kernel calls of a small fit), except for
    the kernels that :func:`python_calls` turns into :class:`PythonServedKernel`.
    """

    def get_call_template(self, args, kws):
        # calls from compiled code: a constant argument types as a literal
        # (``Literal[int](0)``) and an int32 index (a label, a CSR offset) as int32; each
        # would compile a specialisation of its own, one per kernel and dtype is enough
        names = self._parameter_names()
        args = [_call_type(a, names[i] if i < len(names) else None) for i, a in enumerate(args)]
        return super().get_call_template(args, {k: _call_type(v, k) for k, v in kws.items()})

    def _parameter_names(self):
        names = self.__dict__.get("_names")
        if names is None:
            names = self._names = tuple(inspect.signature(self.py_func).parameters)
        return names

    def _read_only_positions(self):
        """Positions of :data:`READ_ONLY_PARAMETERS` among the arguments (found once)."""
        positions = self.__dict__.get("_read_only_at")
        if positions is None:
            positions = self._read_only_at = tuple(
                i for i, name in enumerate(self._parameter_names())
                if name in READ_ONLY_PARAMETERS)
        return positions

    def enable_caching(self):
        try:
            self._cache = _CheckedFunctionCache(self.py_func)
        except RuntimeError as exc:  # Numba: "cannot cache function ...: no locator available"
            _warn_cache_unavailable(f"no writable cache directory ({exc})")
        except (AttributeError, TypeError):  # Numba's cache internals changed: plain caching
            super().enable_caching()

    def _compilation_chain_init_hook(self):
        # Numba scans all entry points before a signature's first call; fastem's cache does
        # it on a miss, just before compiling (see "Warm starts")
        if not isinstance(self._cache, _CheckedFunctionCache):
            super()._compilation_chain_init_hook()


class PythonServedKernel(Kernel):
    """A kernel whose calls from Python run ``_python_call`` (:func:`python_calls`);
    compiled callers always get the compiled function."""

    _python_call = None

    def __call__(self, *args, **kwargs):
        if self._python_call is not None and not kwargs:
            return self._python_call(*args)
        return super().__call__(*args, **kwargs)


class ParallelKernel(PythonServedKernel):
    """The dispatcher of a parallel kernel.

    A parallel kernel is three serial kernels - ``prepare`` (layout and scratch; returns the
    number of work items and the scratch arrays), ``work`` (items ``[lo, hi)``: fixed row
    blocks or chunks, each writing only its own partials) and ``finish`` (folds the partials
    in item order) - plus this dispatcher, whose Python function runs the items under
    ``prange``. Calls compiled into ``@njit`` code (yours included) use that ``prange``
    version. Calls from Python run the same items with :func:`run_work_items` on fastem's
    thread pool instead: nothing is lowered by Numba's parfor machinery (the costliest part
    of compiling a parallel kernel), no OpenMP/TBB thread pool starts (it would spin-wait
    against BLAS's threads), and any threading layer is safe from several Python threads.
    Items, their rows and the fold order are the same on both paths, so results are bitwise
    identical to each other and for any thread count.
    """

    _plan = None  # (prepare, work, finish), set by run_on_threads

    def _run_plan(self, *args):
        prepare, work, finish = self._plan
        positions = self._read_only_positions()
        if positions:
            args = list(args)
            for i in positions:
                if i < len(args) and isinstance(args[i], np.ndarray):
                    args[i] = read_only(args[i])
            args = tuple(args)
        layout = prepare(*args)
        args += layout[1:]
        run_work_items(work, layout[0], args)
        return None if finish is None else finish(*args)


def python_calls(kernel_, function):
    """Serve Python-level calls of ``kernel_`` with ``function`` (same signature and results;
    e.g. one that reshapes its arguments so that one compiled specialisation serves all)."""
    if isinstance(kernel_, Kernel):   # not under NUMBA_DISABLE_JIT
        if not isinstance(kernel_, PythonServedKernel):
            kernel_.__class__ = PythonServedKernel   # same layout: only __call__ differs
        kernel_._python_call = function
    return kernel_


def run_on_threads(parallel_kernel, prepare, work, finish):
    """Make Python-level calls of ``parallel_kernel`` run ``work`` on fastem's threads.

    ``prepare(*args)`` returns ``(n_items, *scratch)`` (``_blocks.one_item_per_block`` for
    kernels without scratch); ``work(lo, hi, *args, *scratch)`` processes items
    ``lo <= item < hi``; ``finish(*args, *scratch)`` returns the kernel's result (None: the
    kernel returns nothing). The kernel's own body must be exactly that sequence with
    ``prange`` over the items. ``prepare`` and ``finish`` may only allocate, index and call
    other kernels (Python-level calls run their Python functions).
    """
    if isinstance(parallel_kernel, ParallelKernel):   # not under NUMBA_DISABLE_JIT
        # prepare and finish run as Python: each is a few calls of other kernels plus
        # allocations (no arithmetic of its own, so no result depends on where it runs), and
        # compiling them separately would add two kernels to every cold start
        parallel_kernel._plan = (getattr(prepare, "py_func", prepare), work,
                                 getattr(finish, "py_func", finish))
        python_calls(parallel_kernel, parallel_kernel._run_plan)
    return parallel_kernel


# ------------------------------------------------------------------------- thread pool
_pool = None
_pool_lock = threading.Lock()


_thread_cap = threading.local()


def usable_cores():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def n_threads():
    """Threads a Python-level parallel call may use: Numba's setting for the calling thread
    (``numba.set_num_threads``) once Numba's pool exists, else ``NUMBA_NUM_THREADS``; at most
    the calling thread's :func:`thread_cap`."""
    from numba.np.ufunc import parallel as _numba_parallel
    if getattr(_numba_parallel, "_is_initialized", False):
        threads = numba.get_num_threads()
    else:
        threads = config.NUMBA_NUM_THREADS
    cap = getattr(_thread_cap, "value", None)
    return threads if cap is None else max(1, min(threads, cap))


class thread_cap:
    """``with thread_cap(n):`` Python-level kernel calls made by this thread use at most ``n``
    threads (e.g. a Dask task sharing its process with other tasks; ``None``: no cap of its
    own, an enclosing one stands). Never changes results."""

    def __init__(self, n):
        self.n = None if n is None else int(n)

    def __enter__(self):
        self.previous = getattr(_thread_cap, "value", None)
        if self.n is not None:
            _thread_cap.value = (self.n if self.previous is None
                                 else min(self.n, self.previous))
        return self

    def __exit__(self, *exc):
        _thread_cap.value = self.previous


def _forget_pool_after_fork():
    # a forked child inherits the pool object but not its threads: work submitted to it
    # would wait forever. The child starts its own pool on first use (and a hot_threads
    # block it was forked in has no threads there: its calls run as ordinary ones).
    global _pool, _pool_lock, _hot_workers
    _pool = None
    _pool_lock = threading.Lock()
    _hot_workers = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _thread_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor
            _pool = ThreadPoolExecutor(max(1, config.NUMBA_NUM_THREADS - 1),
                                       thread_name_prefix=POOL_THREAD_PREFIX)
        return _pool


def run_work_items(work, n_items, args):
    """``work(lo, hi, *args)`` over ``[0, n_items)``, split into contiguous runs of items.

    The calling thread and the pool's threads claim the runs (:func:`map_item_ranges`);
    idle workers wait on a condition (no spinning). Calls whose first array has fewer than
    ``PARALLEL_MIN_ROWS`` rows, or with one thread, run on the calling thread alone - unless
    the kernel cut those rows into more items than row blocks, which it does only for rows
    costly enough to split (``_blocks.partial_units``). The partition never changes what an
    item computes, only who computes it.
    """
    first = args[0] if args else None
    rows = first.shape[0] if isinstance(first, np.ndarray) and first.ndim else 0
    blocks = (rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    if n_items <= 1 or (rows < PARALLEL_MIN_ROWS and n_items <= blocks):
        work(0, n_items, *args)    # small calls: no pool (~1 us per call of a small fit)
    else:
        map_item_ranges(work, n_items, True, *args)


def map_item_ranges(function, n_items, parallel, *args):
    """``[function(lo, hi, *args) for each run [lo, hi) of items]``, in item order.

    With ``parallel`` and more than one thread, ``[0, n_items)`` is cut into contiguous runs
    of decreasing size (:func:`claim_order`) that the calling thread and the pool claim one
    at a time, so a thread that gets less of its core (another library's spinning BLAS
    threads, a busy neighbour on a VM) takes fewer runs instead of holding the others up;
    otherwise one call covers all items. ``function`` must release the GIL (a ``nogil``
    kernel) for the runs to overlap.
    """
    threads = min(n_threads(), n_items) if parallel else 1
    if threads <= 1:
        return [function(0, n_items, *args)]
    quiet_blas_workers()   # BLAS's spinning workers would take the cores these threads need
    claims = _RunClaims(function, claim_order(n_items, threads), args)
    hot = getattr(_hot_workers, "value", None)
    if hot is not None:
        return hot.run(claims)
    return claims.run(threads)


class _RunClaims:
    """One :func:`map_item_ranges` call: runs handed out one at a time under a lock. The
    caller waits until every run is done, not until every pool thread has looked in: a
    worker that the OS starts late (its core busy) finds nothing left and returns."""

    def __init__(self, function, runs, args):
        self.function, self.runs, self.args = function, runs, args
        self.results = [None] * len(runs)
        self.next_run = self.n_done = 0
        self.error = None
        self.lock = threading.Lock()
        self.all_done = threading.Event()

    def run(self, threads):
        pool = _thread_pool()
        for _ in range(1, threads):
            pool.submit(self.claim_and_run)
        self.claim_and_run()
        self.all_done.wait()
        return self.outcome()

    def outcome(self):
        """The runs' results in item order, or the error one of them raised."""
        if self.error is not None:
            raise self.error
        return self.results

    def claim_and_run(self):
        while True:
            with self.lock:
                r = self.next_run
                if r == len(self.runs):
                    return
                self.next_run += 1
            lo, hi = self.runs[r]
            try:
                if self.error is None:
                    self.results[r] = self.function(lo, hi, *self.args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                self.error = exc
            with self.lock:
                self.n_done += 1
                if self.n_done == len(self.runs):
                    self.all_done.set()


_hot_workers = threading.local()


class hot_threads:
    """``with hot_threads():`` the parallel calls this thread makes inside the block hand
    their runs to pool threads that wait for them spinning (for up to
    ``HOT_SPIN_SECONDS`` after each call) instead of sleeping, and the caller spins for the
    last run the same way; outside it the pool's threads sleep as always.

    For loops of short parallel calls with serial Python between them and no BLAS call (a
    spinning thread would take a core from BLAS's threads): k-means++ seeding. Nested or
    concurrent blocks of other threads work; a pool thread serves one block at a time, and a
    call whose pool threads are busy elsewhere runs on its caller. Never changes results.
    """

    def __init__(self):
        self.workers = None

    def __enter__(self):
        self.outer = getattr(_hot_workers, "value", None)
        threads = n_threads()
        if self.outer is None and threads > 1:
            self.workers = _SpinningWorkers(threads - 1)
            _hot_workers.value = self.workers
        return self

    def __exit__(self, *exc):
        if self.workers is not None:
            self.workers.close()
            _hot_workers.value = self.outer


#: How long a pool thread inside :class:`hot_threads` spins for the next call (and a
#: caller for the last run) before it sleeps: longer than the Python work between two calls
#: of a k-means++ step. After seeing a call, a pool thread waits ``HOT_GRACE_SECONDS`` more
#: (the caller's Python from the call's start to its first compiled run takes 2-3 us) so
#: that it asks for a free GIL.
HOT_SPIN_SECONDS = 1e-3
HOT_GRACE_SECONDS = 1e-5


class _SpinningWorkers:
    """The pool threads of one :class:`hot_threads` block and the counters they watch:
    ``generation`` (the caller bumps it for each call, and to close) and ``finished``
    (each thread adds 1 after its part of a call, with the GIL already let go)."""

    _spins_per_second = None

    def __init__(self, n_workers):
        from ._spin import announce_and_wait, wait_for_change
        self.wait_for_change, self.announce_and_wait = wait_for_change, announce_and_wait
        if _SpinningWorkers._spins_per_second is None:   # once per process
            compile_hot_threads()   # here, not on a pool thread while calls go on
            _SpinningWorkers._spins_per_second = _calibrate_spins(wait_for_change)
        self.spins = max(1, int(HOT_SPIN_SECONDS * _SpinningWorkers._spins_per_second))
        self.grace = int(HOT_GRACE_SECONDS * _SpinningWorkers._spins_per_second)
        self.generation = np.zeros(1, np.int64)
        self.finished = np.zeros(1, np.int64)
        self.claims = None
        self.closed = False
        self.wake = threading.Condition()
        self.n_sleeping = 0
        pool = _thread_pool()
        for _ in range(n_workers):
            pool.submit(self.serve)

    def serve(self):
        seen = 0
        generation = self.wait_for_change(self.generation, seen, self.spins, self.grace)
        while True:
            if generation == seen:   # no call within the spin: sleep until the next one
                with self.wake:
                    self.n_sleeping += 1
                    while self.generation[0] == seen:
                        self.wake.wait()
                    self.n_sleeping -= 1
                    generation = int(self.generation[0])
            seen = generation
            if self.closed:
                return
            claims = self.claims
            if claims is not None:   # None: the call is over already
                claims.claim_and_run()
            claims = None            # hold no call's arrays while waiting
            generation = self.announce_and_wait(self.finished, self.generation, seen,
                                                self.spins, self.grace)

    def run(self, claims):
        self.claims = claims
        with self.wake:
            self.generation[0] += 1
            if self.n_sleeping:
                self.wake.notify_all()
        claims.claim_and_run()
        while True:
            finished = int(self.finished[0])
            if claims.n_done == len(claims.runs):
                break
            if self.wait_for_change(self.finished, finished, self.spins, 0) == finished:
                claims.all_done.wait()
                break
        self.claims = None   # its arguments may be a streamed chunk: do not keep them
        return claims.outcome()

    def close(self):
        with self.wake:
            self.closed = True
            self.generation[0] += 1
            self.wake.notify_all()


def compile_hot_threads():
    """Compile (or load) the counters' kernels of :class:`hot_threads` (for warm-ups)."""
    from ._spin import announce_and_wait, wait_for_change
    counter = np.zeros(1, np.int64)
    wait_for_change(counter, 1, 1, 0)
    announce_and_wait(counter, counter, 0, 1, 0)


def _calibrate_spins(wait_for_change):
    counter = np.zeros(1, np.int64)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        wait_for_change(counter, 0, 20_000, 0)
        best = min(best, time.perf_counter() - t0)
    return 20_000 / best


def claim_order(n_items, threads):
    """The runs ``[(lo, hi), ...]`` that :func:`map_item_ranges` hands out, in item order:
    each run is a ``1 / (2 threads)`` share of the items not yet handed out (guided
    scheduling), so the first runs are large (few calls) and the last ones single items
    (the threads finish together even when one of them runs slower)."""
    runs, lo = [], 0
    while lo < n_items:
        size = max(1, (n_items - lo) // (2 * threads))
        runs.append((lo, lo + size))
        lo += size
    return runs


def kernel(func=None, *, parallel=False, ordered=False):
    """Compile ``func`` with fastem's Numba options.

    Equivalent to ``numba.njit(cache=True, nogil=True, error_model='numpy',
    fastmath=FASTMATH, parallel=parallel)``: compiled code is reused across processes,
    ``nogil=True`` lets Dask's threaded scheduler run kernels side by side,
    ``error_model='numpy'`` drops ZeroDivisionError checks from hot loops. The result is an
    ordinary Numba dispatcher (callable from Python and from ``@njit`` code) with the cache
    and thread-safety policies described in the module docstring. ``ordered=True`` leaves
    ``reassoc`` out of the fastmath set (:data:`ORDERED_FASTMATH`).
    """
    options = {"nopython": True, "boundscheck": None, "nogil": True, "error_model": "numpy",
               "fastmath": set(ORDERED_FASTMATH if ordered else FASTMATH),
               "parallel": dict(PARALLEL_OPTIONS) if parallel else False}

    def compile_(f):
        if config.DISABLE_JIT:
            return f
        cls = ParallelKernel if parallel else Kernel
        disp = cls(py_func=f, locals={}, targetoptions=options)
        disp.enable_caching()
        return disp

    if func is None:
        return compile_
    return compile_(func)
