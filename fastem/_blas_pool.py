"""Stop OpenBLAS's spinning worker threads before fastem's threads start work (issue 8).

After each multi-threaded call, an OpenBLAS built with its own pthreads server keeps its
worker threads spinning for 2^28 cycles (~0.1 s; ``OPENBLAS_THREAD_TIMEOUT``, read once
when the library loads) before they sleep. A fastem fit that starts within that time (a
user's loop alternating NumPy products with fits) shares its cores with those spinners:
on 2 cores the fit took 1.5-1.8x its time. OpenBLAS has no call that sends its workers to
sleep, but it has one that ends them, ``blas_thread_shutdown_`` (what its own fork handler
calls), and it starts them again on its next multi-threaded call (``exec_blas``'s lazy
re-initialisation), which costs that call ~0.1 ms. The thread count and every other setting
stay as they were.

Ending the workers while another thread is inside a BLAS call could lose that call's work,
so it is done only when nothing else can be calling BLAS: every Python thread but the
caller is one of fastem's pool threads (which never call BLAS), and the libraries are the
OpenBLAS copies that NumPy's and SciPy's wheels vendor (in ``numpy.libs`` / ``scipy.libs``,
found in this process's memory map), reachable only through Python calls - a system or
conda OpenBLAS may also serve other libraries' native threads and is left alone. Linux
only; anything unexpected (an OpenMP build, a missing symbol, an old version) leaves the
library alone.

Nor is it done once ``threadpoolctl`` is imported (scikit-learn imports it): its thread
limits call ``openblas_set_num_threads``, which restarts an ended pool, and the fresh workers
then spin through the caller's own parallel loop - moving the fight onto scikit-learn
instead of removing it (measured: a scikit-learn Lloyd iteration on 10^6 x 2, k = 2, took
about 3x its time right after a fastem call that had ended the pool). Where threadpoolctl
is loaded, workers that were spinning are left to their timeout, as before.
"""
import ctypes
import os
import re
import sys
import threading

#: Oldest OpenBLAS whose thread server restarts itself after a shutdown (the lazy
#: re-initialisation in ``exec_blas`` dates from 0.2.20; this leaves a margin).
MIN_OPENBLAS_VERSION = (0, 3, 10)
#: Name prefix of fastem's pool threads (``kernels._jit._thread_pool``).
POOL_THREAD_PREFIX = "fastem"
#: Directories of the wheels' vendored libraries whose OpenBLAS may be ended.
VENDOR_DIRS = ("numpy.libs", "scipy.libs")

_ENABLED = sys.platform.startswith("linux") and hasattr(os, "RTLD_NOLOAD")
_servers = []
_modules_seen = -1


class _ThreadServer:
    """One loaded OpenBLAS with a pthreads server: its 'workers running' flag and the call
    that ends them."""

    def __init__(self, path, running, shutdown):
        self.path, self.running, self.shutdown = path, running, shutdown


def _symbol(lib, name):
    """``name`` with any of the prefixes and suffixes the wheels' builds use, or None."""
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            try:
                return getattr(lib, prefix + name + suffix)
            except AttributeError:
                continue
    return None


def _thread_server(path):
    """A :class:`_ThreadServer` for the OpenBLAS at ``path`` (already loaded), or None."""
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        running = ctypes.c_int.in_dll(lib, "blas_server_avail")
        shutdown = lib.blas_thread_shutdown_
    except (OSError, ValueError, AttributeError):
        return None
    get_parallel, get_config = _symbol(lib, "openblas_get_parallel"), _symbol(
        lib, "openblas_get_config")
    if get_parallel is None or get_config is None:
        return None
    get_parallel.restype, get_config.restype = ctypes.c_int, ctypes.c_char_p
    if get_parallel() != 1:   # 0: sequential, 2: OpenMP (no server of its own)
        return None
    version = re.search(rb"OpenBLAS (\d+)\.(\d+)\.(\d+)", get_config() or b"")
    if version is None or tuple(int(v) for v in version.groups()) < MIN_OPENBLAS_VERSION:
        return None
    shutdown.restype, shutdown.argtypes = ctypes.c_int, []
    return _ThreadServer(path, running, shutdown)


def _loaded_openblas_paths():
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    paths = set()
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        path = fields[5].strip()
        folder, name = os.path.split(path)
        if "openblas" in name.lower() and os.path.basename(folder) in VENDOR_DIRS:
            paths.add(path)
    return sorted(paths)


def _only_pool_threads_besides_caller():
    me = threading.current_thread()
    return all(t is me or t.name.startswith(POOL_THREAD_PREFIX)
               for t in threading.enumerate())


def quiet_blas_workers():
    """End the worker threads of every loaded OpenBLAS thread server that has them running,
    when no other thread can be inside a BLAS call (module docstring). Costs a flag read per
    server when they are already ended; libraries are looked for again after imports."""
    global _servers, _modules_seen
    if not _ENABLED or "threadpoolctl" in sys.modules:
        return
    if len(sys.modules) != _modules_seen:   # a new import may have loaded a BLAS
        _modules_seen = len(sys.modules)
        _servers = [s for s in map(_thread_server, _loaded_openblas_paths()) if s is not None]
    running = [server for server in _servers if server.running.value]
    if running and _only_pool_threads_besides_caller():
        for server in running:
            server.shutdown()
