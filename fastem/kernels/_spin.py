"""Spin-waiting on counters without the GIL: the hand-off of :class:`_jit.hot_threads`.

A pool thread that sleeps on a condition costs a futex wake each time work arrives (on a VM
an inter-processor interrupt: 30-60 us measured on the Intel Xeon VM), and so does a thread
that asks for the GIL while another holds it: CPython's GIL is a sleeping lock. A loop of
short parallel calls separated by Python work (k-means++ seeding: ~1 ms calls, ~0.2 ms
between them) paid both at every call. Inside ``hot_threads`` the threads instead watch
counters here, with the GIL released, and ask for the GIL only when the other thread is
known to be in compiled code.
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import kernel

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@intrinsic
def _load_acquire(typingctx, counter):
    """``counter[0]`` (int64 array) read with an atomic acquire load: never hoisted out of
    a loop, and it sees what the writing thread stored before its release."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(data, "acquire", 8)
    return types.int64(counter), codegen


@intrinsic
def _increment_release(typingctx, counter):
    """``counter[0] += 1`` (int64 array) as one atomic read-modify-write, release order."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "release")
        return context.get_dummy_value()
    return types.none(counter), codegen


@intrinsic
def _spin_pause(typingctx):
    """x86 ``pause`` (eases the spin on the core and on a hyper-thread sibling); elsewhere
    nothing."""
    def codegen(context, builder, signature, args):
        if _X86:
            pause = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()
    return types.none(), codegen


@kernel
def wait_for_change(counter, seen, spins, grace):
    """``counter[0]`` once it differs from ``seen`` (then ``grace`` more spins before
    returning, so that the thread that changed it can reach its own compiled code and let
    go of the GIL); ``seen`` after ``spins`` unchanged looks."""
    for _ in range(spins):
        value = _load_acquire(counter)
        if value != seen:
            for _ in range(grace):
                _spin_pause()
            return value
        _spin_pause()
    return seen


@kernel
def announce_and_wait(announce, counter, seen, spins, grace):
    """``announce[0] += 1`` (from here, i.e. after this thread let go of the GIL), then
    :func:`wait_for_change`."""
    _increment_release(announce)
    return wait_for_change(counter, seen, spins, grace)
