"""Test-session settings: scheduling only, no fixtures.

The suite runs on pytest-xdist's workers (``-n auto --dist loadfile``, set in pyproject.toml;
``-n 0`` runs it in one process). Most of its time is Numba compiling, which is single-threaded:
in one process 2 cores were busy 125% of 200%, over a third of their time idle.
Each test file runs whole on one worker, so module-scoped fixtures (the SIMD-class and
determinism children) still start once.
"""
import os

#: Files whose tests wait minutes on child processes that compile the kernels into caches of
#: their own, longest first (pytest --durations on the 2-core Zen 3 VM). They are handed out
#: first, so that no worker is left running one of them alone at the end of the session;
#: every other file keeps pytest's order.
LONG_FILES_FIRST = ("test_simd_classes.py", "test_determinism.py", "test_large_memmap.py",
                    "test_sklearn_protocol.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES_FIRST)))


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per CPU this process may use, at most 8.

    xdist counts physical cores when psutil is installed (Dask installs it), which is 1 on a
    2-vCPU VM that presents one core with two threads; the workers mostly compile, one thread
    each, so every logical CPU helps. Beyond 8 the four long files bound the run while every
    worker compiles its own copy of the kernels. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still wins.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    from fastem.kernels._jit import usable_cores
    return max(1, min(usable_cores(), 8))
