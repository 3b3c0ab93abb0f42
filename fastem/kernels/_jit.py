"""The one place where fastem's Numba compilation options live.

Every kernel is compiled through :func:`kernel`, so caching, the fastmath flag set and the
error model are decided here and nowhere else.
"""
from numba import njit

#: LLVM fast-math flags used by every kernel. Deliberately *without* ``nnan`` and ``ninf``:
#: -inf appears legitimately (log(0) guards, padded centres) and must not be optimised away.
#: ``reassoc`` lets inner reductions over the contiguous feature axis vectorise; the result
#: depends on the compiled code only, never on the number of threads.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

#: Rows per block in every parallel kernel. Each block writes its own partial statistics and
#: partials are summed in block order, so results are bitwise identical for any thread count.
BLOCK_ROWS = 2048


def kernel(func=None, *, parallel=False):
    """Compile ``func`` with fastem's Numba options.

    ``cache=True`` (compiled code is reused across processes), ``nogil=True`` (Dask's threaded
    scheduler can run kernels side by side), ``error_model='numpy'`` (no ZeroDivisionError
    checks in hot loops) and :data:`FASTMATH`.
    """
    options = dict(cache=True, nogil=True, error_model="numpy", fastmath=set(FASTMATH),
                   parallel=parallel)
    if func is None:
        return lambda f: njit(**options)(f)
    return njit(**options)(func)
