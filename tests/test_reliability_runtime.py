"""Runtime reliability: threads, read-only installs and damaged caches, pickling, zero-copy input.

Everything that could abort or poison a process (concurrent parallel kernels under Numba's
``workqueue`` layer, a cache nobody can write, corrupt cache files) runs in a child process.
"""
import hashlib
import inspect
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numba.core.caching import _CacheLocator

import fastem
import fastem.estimators._base as base_module
import fastem.estimators._mixture as mixture_module
import fastem.estimators.kmeans as kmeans_module
from fastem import (
    BernoulliMixture,
    CacheUnavailableWarning,
    GaussianMixture,
    InconsistentVersionWarning,
    KMeans,
)
from fastem.kernels import (
    _jit,
    lloyd_step,
    nearest_centers,
)

PACKAGE_DIR = Path(fastem.__file__).resolve().parent


def _run(code, *, env=None, cwd=None, timeout=600, drop_privileges=False, args=()):
    """Run ``code`` in a fresh interpreter; returns the CompletedProcess (text mode)."""
    cmd = [sys.executable, "-c", textwrap.dedent(code), *args]
    if drop_privileges and os.geteuid() == 0:
        # root ignores file modes; without these capabilities it honours them like any user
        cmd = [shutil.which("setpriv"),
               "--bounding-set=-dac_override,-dac_read_search,-fowner", *cmd]
    return subprocess.run(cmd, env=os.environ.copy() if env is None else env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _check(proc):
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _file_modes_can_be_enforced():
    if os.geteuid() != 0:
        return True
    if shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([shutil.which("setpriv"), "--bounding-set=-dac_override", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


needs_unprivileged_writes = pytest.mark.skipif(
    not _file_modes_can_be_enforced(),
    reason="running as root without a way to drop CAP_DAC_OVERRIDE: file modes not enforced")


# =============================================================== 1. thread safety

THREADS_CHILD = """
    import hashlib, json, threading, warnings
    import numba
    import numpy as np
    import scipy.sparse as sp
    from fastem import BernoulliMixture, GaussianMixture, KMeans
    warnings.simplefilter("ignore")   # ConvergenceWarning at small max_iter is irrelevant here

    rng = np.random.RandomState(0)
    n = 12000
    X = rng.normal(size=(n, 6)) + 4.0 * rng.randint(0, 3, size=(n, 1))
    X32 = X.astype(np.float32)
    B = (X > 4.0).astype(np.uint8)
    C = sp.csr_matrix(B)

    def digest(*arrays):
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def km64():
        m = KMeans(6, random_state=0).fit(X)
        return digest(m.cluster_centers_, m.labels_, [m.inertia_], m.predict(X), m.transform(X))

    def km32():
        m = KMeans(6, init="random", n_init=2, random_state=1).fit(X32)
        return digest(m.cluster_centers_, m.labels_, [m.inertia_], m.predict(X32))

    def gmm():
        m = GaussianMixture(3, covariance_type="full", max_iter=10, random_state=0).fit(X)
        return digest(m.means_, m.covariances_, m.weights_, m.lower_bounds_,
                      m.predict_proba(X), m.score_samples(X32))

    def bmm():
        m = BernoulliMixture(3, max_iter=10, random_state=0).fit(C)
        return digest(m.means_, m.weights_, m.lower_bounds_, m.predict_proba(B))

    jobs = {"kmeans64": km64, "kmeans32": km32, "gmm": gmm, "bmm": bmm}
    sequential = {name: job() for name, job in jobs.items()}

    barrier = threading.Barrier(len(jobs))
    concurrent, errors = {}, []

    def work(name):
        try:
            barrier.wait()
            for rep in range(3):
                concurrent[name, rep] = jobs[name]()
        except BaseException as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(name,)) for name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(concurrent) == 3 * len(jobs)
    mismatches = [key for key, value in concurrent.items() if value != sequential[key[0]]]
    from numba.np.ufunc import parallel as numba_parallel
    pool_started = bool(numba_parallel._is_initialized)  # fastem's calls never start it

    # the prange versions, compiled into a user's parallel function, under the user's layer
    from fastem.kernels import lloyd_step

    @numba.njit(parallel=True)
    def user_step(X, w, centers, labels, sums, weights):
        return lloyd_step(X, w, centers, labels, sums, weights)

    out = []
    for step in (lloyd_step, user_step):
        labels, sums, weights = np.full(n, -1, np.int32), np.empty((3, 6)), np.empty(3)
        inertia, changed = step(X, np.ones(n), X[:3].copy(), labels, sums, weights)
        out.append(digest(labels, sums, weights, [inertia, changed]))
    print(json.dumps({"layer": numba.threading_layer(), "mismatches": repr(mismatches),
                      "pool_started_by_fits": pool_started, "compiled_equals_threaded":
                      out[0] == out[1]}))
"""


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_concurrent_fits_and_predictions_are_safe_and_bitwise_identical(layer):
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    if layer == "default":
        env.pop("NUMBA_THREADING_LAYER", None)
    else:
        env["NUMBA_THREADING_LAYER"] = layer
    out = _check(_run(THREADS_CHILD, env=env))
    assert out["mismatches"] == "[]"
    assert out["pool_started_by_fits"] is False
    assert out["compiled_equals_threaded"] is True
    if layer == "workqueue":
        assert out["layer"] == "workqueue"   # the user's choice is honoured, not replaced


def test_python_calls_of_parallel_kernels_run_on_fastems_threads():
    assert isinstance(lloyd_step, _jit.ParallelKernel) and lloyd_step._plan is not None
    X = np.random.RandomState(0).normal(size=(3 * _jit.PARALLEL_MIN_ROWS, 3))
    seen = []
    work = lloyd_step._plan[1]

    def spy(lo, hi, *args):
        seen.append((lo, hi, threading.current_thread().name))
        return work(lo, hi, *args)

    lloyd_step._plan = (lloyd_step._plan[0], spy, lloyd_step._plan[2])
    try:
        lloyd_step(X, np.ones(len(X)), X[:2].copy(), np.full(len(X), -1, np.int32),
                   np.empty((2, 3)), np.empty(2))
    finally:
        lloyd_step._plan = (lloyd_step._plan[0], work, lloyd_step._plan[2])
    items = sorted((lo, hi) for lo, hi, _ in seen)   # contiguous runs covering every chunk
    assert items[0][0] == 0 and all(a[1] == b[0] for a, b in zip(items, items[1:]))
    n_items = items[-1][1]
    assert items == (_jit.claim_order(n_items, min(_jit.n_threads(), n_items))
                     if _jit.n_threads() > 1 else [(0, n_items)])
    assert {name for _, _, name in seen} <= {threading.main_thread().name} | {
        t.name for t in threading.enumerate() if t.name.startswith("fastem")}
    assert numba.config.THREADING_LAYER == os.environ.get("NUMBA_THREADING_LAYER", "default")


def test_thread_caps_nest_to_the_smallest_and_none_keeps_the_enclosing_one():
    uncapped = _jit.n_threads()
    with _jit.thread_cap(None):
        assert _jit.n_threads() == uncapped
    with _jit.thread_cap(1):
        assert _jit.n_threads() == 1
        with _jit.thread_cap(8):          # an inner cap never raises an outer one
            assert _jit.n_threads() == 1
        with _jit.thread_cap(None):
            assert _jit.n_threads() == 1
    assert _jit.n_threads() == uncapped


def _lloyd_pass(X, centers):
    labels = np.full(len(X), -1, np.int32)
    sums, weights = np.empty(centers.shape), np.empty(len(centers))
    inertia, _ = lloyd_step(X, np.ones(len(X)), centers, labels, sums, weights)
    return labels.tobytes(), sums.tobytes(), weights.tobytes(), inertia


class _Spy:
    """Records which thread runs each run of ``kernel``'s work (and can fail on one)."""

    def __init__(self, kernel, fail_at=None):
        self.kernel, self.work, self.fail_at, self.seen = kernel, kernel._plan[1], fail_at, []

    def __enter__(self):
        def spy(lo, hi, *args):
            self.seen.append(threading.current_thread().name)
            if lo == self.fail_at:
                raise ArithmeticError("planted")
            return self.work(lo, hi, *args)
        self.kernel._plan = (self.kernel._plan[0], spy, self.kernel._plan[2])
        return self

    def __exit__(self, *exc):
        self.kernel._plan = (self.kernel._plan[0], self.work, self.kernel._plan[2])


def test_hot_threads_hand_runs_over_without_changing_results():
    """Inside ``hot_threads`` the pool threads spin for the next call (and sleep after the
    spin): calls back to back, after pauses longer than the spin, nested blocks, a thread
    cap of 1 inside, and an error in one run all give the results and errors of ordinary
    calls; afterwards the pool serves ordinary calls again."""
    rng = np.random.RandomState(0)
    # passes of a few ms: long enough for a pool thread to be scheduled even while the other
    # core is busy (in a cold CI run a compile-ahead helper process may still hold it)
    X = rng.normal(size=(64 * _jit.PARALLEL_MIN_ROWS, 5))
    centers = X[:7].copy()
    expected = _lloyd_pass(X, centers)
    pool_names = {t.name for t in threading.enumerate() if t.name.startswith("fastem")}
    with _jit.hot_threads(), _Spy(lloyd_step) as spy:
        for pause in (0, 0, 0, 0.01, 0, 0.005, 0):   # 5-10 ms: longer than the spin
            assert _lloyd_pass(X, centers) == expected
            time.sleep(pause)
        with _jit.hot_threads():                     # nested: the outer block's threads
            assert _lloyd_pass(X, centers) == expected
        with _jit.thread_cap(1):
            assert _lloyd_pass(X, centers) == expected
    helpers = {name for name in spy.seen if name != threading.main_thread().name}
    pool_names |= {t.name for t in threading.enumerate() if t.name.startswith("fastem")}
    assert helpers <= pool_names
    if _jit.n_threads() > 1:
        assert helpers, "no run was handed to a pool thread"
    with _jit.hot_threads():
        with _Spy(lloyd_step, fail_at=0), pytest.raises(ArithmeticError, match="planted"):
            _lloyd_pass(X, centers)
        assert _lloyd_pass(X, centers) == expected   # the block goes on after an error
    with _Spy(lloyd_step) as spy:                    # ordinary calls after the blocks
        for _ in range(20):
            assert _lloyd_pass(X, centers) == expected
    if _jit.n_threads() > 1:
        assert set(spy.seen) - {threading.main_thread().name}


def test_hot_threads_of_several_python_threads_never_wait_for_each_other():
    """Two threads with hot blocks of their own share one pool: a call whose pool threads
    serve the other block runs on its caller. Every call finishes, with ordinary results."""
    rng = np.random.RandomState(1)
    X = rng.normal(size=(4 * _jit.PARALLEL_MIN_ROWS, 4))
    centers = X[:5].copy()
    expected = _lloyd_pass(X, centers)
    results, errors = [], []

    def loop(hot):
        try:
            with (_jit.hot_threads() if hot else _jit.thread_cap(None)):
                for _ in range(30):
                    results.append(_lloyd_pass(X, centers) == expected)
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(hot,)) for hot in (True, True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a hot block hung"
    assert errors == [] and len(results) == 90 and all(results)


# ========================================================= 2. read-only installs, caches

INSTALL_CHILD = """
    import json, sys, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import numpy as np
        import fastem
        from fastem import KMeans
        rng = np.random.RandomState(0)
        X = np.vstack([rng.normal(c, 1.0, size=(400, 3)) for c in (-5.0, 0.0, 5.0)])
        km = KMeans(3, init=X[[0, 400, 800]].copy(), n_init=1).fit(X)
        labels = km.predict(X)
    cache = [str(w.message) for w in caught if issubclass(w.category, fastem.CacheUnavailableWarning)]
    other = [f"{w.category.__name__}: {w.message}" for w in caught
             if not issubclass(w.category, fastem.CacheUnavailableWarning)]
    print(json.dumps({"file": fastem.__file__, "cache_warnings": cache, "other": other,
                      "centers": km.cluster_centers_.tolist(), "inertia": km.inertia_,
                      "labels": labels.tolist()}))
"""


def _reference_install_fit():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(c, 1.0, size=(400, 3)) for c in (-5.0, 0.0, 5.0)])
    km = KMeans(3, init=X[[0, 400, 800]].copy(), n_init=1).fit(X)
    return km, km.predict(X)


def _read_only_copy_of_package(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(PACKAGE_DIR, site / "fastem",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    return site


def _make_read_only(*paths):
    for root in paths:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames:
                p = os.path.join(dirpath, name)
                os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for dirpath, dirnames, filenames in os.walk(root):
            os.chmod(dirpath, 0o555)


def _restore_writable(*paths):
    for root in paths:
        for dirpath, dirnames, filenames in os.walk(root):
            os.chmod(dirpath, 0o755)


def _child_env(site, home, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), HOME=str(home), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def _cache_files(root):
    return [p for p in Path(root).rglob("*") if p.suffix in (".nbi", ".nbc")]


def _assert_same_as_reference(out, site):
    km, labels = _reference_install_fit()
    assert Path(out["file"]).resolve().is_relative_to(Path(site).resolve())
    assert out["other"] == []
    np.testing.assert_array_equal(np.array(out["centers"]), km.cluster_centers_)
    assert out["inertia"] == km.inertia_
    np.testing.assert_array_equal(out["labels"], labels)


@needs_unprivileged_writes
def test_read_only_install_with_no_writable_cache_dir_warns_once_and_fits(tmp_path):
    site = _read_only_copy_of_package(tmp_path)
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    cache.mkdir()
    _make_read_only(site, home, cache)
    try:
        proc = _run(INSTALL_CHILD, env=_child_env(site, home, NUMBA_CACHE_DIR=str(cache)),
                    cwd=site, drop_privileges=True)
    finally:
        _restore_writable(site, home, cache)
    out = _check(proc)
    assert len(out["cache_warnings"]) == 1, out["cache_warnings"]
    assert "no writable cache directory" in out["cache_warnings"][0]
    assert _cache_files(tmp_path) == []
    _assert_same_as_reference(out, site)


@needs_unprivileged_writes
def test_read_only_install_caches_in_the_user_cache_dir(tmp_path):
    site = _read_only_copy_of_package(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    _make_read_only(site)
    try:
        proc = _run(INSTALL_CHILD, env=_child_env(site, home), cwd=site, drop_privileges=True)
    finally:
        _restore_writable(site)
    out = _check(proc)
    assert out["cache_warnings"] == []
    assert _cache_files(site) == []
    assert _cache_files(home / ".cache" / "numba")      # Numba's user-wide locator was used
    _assert_same_as_reference(out, site)


def _damage(path, how):
    data = path.read_bytes()
    if how == "garbage":
        data = hashlib.sha256(data).digest() * (len(data) // 32 + 1)
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":   # a valid-looking file with a damaged middle (e.g. machine code)
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + \
            data[middle + 64:]
    else:
        data = b""
    path.write_bytes(data)


def test_damaged_cache_files_are_recompiled_and_rewritten(tmp_path):
    km, labels = _reference_install_fit()          # fills this process's cache if it is cold
    source = Path(lloyd_step._cache.cache_path)
    if not _cache_files(source):
        pytest.skip("this process has no on-disk kernel cache to copy")
    # where a child with NUMBA_CACHE_DIR=tmp_path/"cache" looks for these kernels
    subpath = _CacheLocator.get_suitable_cache_subpath(inspect.getfile(lloyd_step.py_func))
    target = tmp_path / "cache" / subpath
    shutil.copytree(source, target)
    modes = ["garbage", "truncated", "flipped", "empty"]
    # the serial work kernels that a fit's Python-level calls compile and load
    used = [k._plan[1] for k in (lloyd_step, nearest_centers)]
    damaged = sorted(p for p in _cache_files(target)
                     if p.name.split("-")[0].split(".")[-1] in
                     {k.py_func.__name__ for k in used})
    assert damaged
    for i, path in enumerate(damaged):
        _damage(path, modes[i % len(modes)])
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = _check(_run(INSTALL_CHILD, env=env))
    assert out["cache_warnings"] == [] and out["other"] == []
    np.testing.assert_array_equal(np.array(out["centers"]), km.cluster_centers_)
    assert out["inertia"] == km.inertia_
    np.testing.assert_array_equal(out["labels"], labels)
    # the damaged index files of the kernels used were rewritten with valid contents
    for kern in used:
        index = target / Path(kern._cache._cache_file._index_path).name
        assert index in damaged
        assert _jit._unwrap(index.read_bytes()) is not None, index.name


def test_unwritable_cache_is_a_warning_not_an_error(tmp_path, monkeypatch):
    # a cache that breaks between decoration and the first save (disk full, permissions)
    work = lloyd_step._plan[1]              # the serial kernel a fit's Python calls compile
    _reference_install_fit()
    cache = _jit._CheckedFunctionCache(work.py_func)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache._impl.locator, "ensure_cache_path", broken)
    monkeypatch.setattr(_jit, "_cache_warning_issued", False)
    overload = next(iter(work.overloads.values()))
    with pytest.warns(CacheUnavailableWarning, match="No space left"):
        cache.save_overload(overload.signature, overload)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.save_overload(overload.signature, overload)      # disabled now, and silent


# ============================================================================ 3. pickling

def _fitted_estimators():
    rng = np.random.RandomState(1)
    X = np.vstack([rng.normal(c, 1.0, size=(150, 3)) for c in (-4.0, 0.0, 4.0)])
    B = (X > 0).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            (KMeans(3, random_state=0).fit(X), X),
            (GaussianMixture(3, covariance_type="full", random_state=0).fit(X), X),
            (GaussianMixture(3, covariance_type="spherical", random_state=0).fit(X), X),
            (BernoulliMixture(3, random_state=0).fit(B), B),
            (BernoulliMixture(3, random_state=0).fit(sp.csr_matrix(B)), sp.csr_matrix(B)),
        ]


def _predictions(est, X):
    if isinstance(est, KMeans):
        return [est.predict(X), est.transform(X), np.array(est.score(X))]
    return [est.predict(X), est.predict_proba(X), est.score_samples(X)]


def _assert_bitwise(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def test_pickle_round_trip_gives_identical_predictions():
    for est, X in _fitted_estimators():
        blob = pickle.dumps(est)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # same version: no warning of any kind
            loaded = pickle.loads(blob)
        assert "_fastem_version" not in loaded.__dict__
        assert loaded.get_params() == est.get_params()
        _assert_bitwise(_predictions(loaded, X), _predictions(est, X))


PICKLE_CHILD = """
    import pickle, sys, warnings
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.test_reliability_runtime import _fitted_estimators, _predictions
    path = Path(sys.argv[3])
    if sys.argv[1] == "save":
        fitted = _fitted_estimators()
        path.write_bytes(pickle.dumps([est for est, _ in fitted]))
        (path.parent / "expected.pkl").write_bytes(
            pickle.dumps([_predictions(est, X) for est, X in fitted]))
    else:
        warnings.simplefilter("error")
        models = pickle.loads(path.read_bytes())
        data = [X for _, X in _fitted_estimators()]
        (path.parent / "loaded.pkl").write_bytes(
            pickle.dumps([_predictions(m, X) for m, X in zip(models, data)]))
    print("{}")
"""


def test_pickle_across_processes(tmp_path):
    root = str(Path(__file__).resolve().parent.parent)
    path = tmp_path / "models.pkl"
    _check(_run(PICKLE_CHILD, args=("save", root, str(path))))
    _check(_run(PICKLE_CHILD, args=("load", root, str(path))))
    expected = pickle.loads((tmp_path / "expected.pkl").read_bytes())
    loaded = pickle.loads((tmp_path / "loaded.pkl").read_bytes())
    for a, b in zip(expected, loaded):
        _assert_bitwise(b, a)


def test_pickle_from_another_version_warns(monkeypatch):
    est, X = _fitted_estimators()[1]
    monkeypatch.setattr(base_module, "__version__", "0.0.1")
    blob = pickle.dumps(est)
    monkeypatch.undo()
    with pytest.warns(InconsistentVersionWarning, match=r"fastem 0\.0\.1 .* fastem 0\.1"):
        loaded = pickle.loads(blob)
    _assert_bitwise(_predictions(loaded, X), _predictions(est, X))
    # a state without any version (hand-made or very old) warns as well
    state = est.__getstate__()
    del state["_fastem_version"]
    fresh = GaussianMixture.__new__(GaussianMixture)
    with pytest.warns(InconsistentVersionWarning, match="unknown fastem version"):
        fresh.__setstate__(state)


def test_scikit_learn_pickling_still_works():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est, X = _fitted_estimators()[0]
    pipe = make_pipeline(StandardScaler(), KMeans(3, random_state=0)).fit(X)
    state = pipe.__getstate__()
    assert state["_sklearn_version"] == sklearn.__version__        # scikit-learn's own key
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    assert "_sklearn_version" not in est.__getstate__()        # only for sklearn's own classes
    assert clone(pickle.loads(pickle.dumps(est))).get_params() == est.get_params()


# ============================================================= 4. zero-copy where promised

@pytest.fixture
def spy_inputs(monkeypatch):
    """Record (estimator family, X) for every array that reaches the EM driver (each chunk of
    its row source) or a predict kernel."""
    seen = []
    for family, module in (("kmeans", kmeans_module), ("mixture", mixture_module)):
        real = module.fit_em

        def spy_fit_em(model, source, *args, _real=real, _family=family, **kwargs):
            seen.extend((_family, X) for _, X, _ in source.chunks())
            return _real(model, source, *args, **kwargs)

        monkeypatch.setattr(module, "fit_em", spy_fit_em)
    real_nearest = KMeans._nearest
    real_wlp = mixture_module.BaseMixture._estimate_weighted_log_prob

    def spy_nearest(self, source):
        seen.extend(("kmeans", X) for _, X, _ in source.chunks())
        return real_nearest(self, source)

    def spy_wlp(self, X):
        seen.append(("mixture", X))
        return real_wlp(self, X)

    monkeypatch.setattr(KMeans, "_nearest", spy_nearest)
    monkeypatch.setattr(mixture_module.BaseMixture, "_estimate_weighted_log_prob", spy_wlp)
    return seen


def _blobs(dtype):
    rng = np.random.RandomState(3)
    X = np.vstack([rng.normal(c, 1.0, size=(200, 4)) for c in (-4.0, 0.0, 4.0)])
    return np.ascontiguousarray(X, dtype=dtype)


def _estimator_for(kind):
    return {"kmeans": lambda: KMeans(3, random_state=0),
            "gmm": lambda: GaussianMixture(3, covariance_type="diag", max_iter=5,
                                           random_state=0),
            "bmm": lambda: BernoulliMixture(3, max_iter=5, random_state=0)}[kind]()


@pytest.mark.parametrize("kind", ["kmeans", "gmm", "bmm"])
@pytest.mark.parametrize("source", ["float32", "float64", "memmap32", "memmap64"])
def test_float_c_arrays_and_read_only_memmaps_are_never_copied(kind, source, spy_inputs,
                                                               tmp_path):
    dtype = np.float32 if source.endswith("32") else np.float64
    X = _blobs(dtype)
    if kind == "bmm":
        X = (X > 0).astype(dtype)
    if source.startswith("memmap"):
        np.save(tmp_path / "X.npy", X)
        X = np.load(tmp_path / "X.npy", mmap_mode="r")
        assert not X.flags.writeable
    before = np.array(X, copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _estimator_for(kind).fit(X)
    est.predict(X)
    # (a mixture's 'kmeans' initialisation is a separate KMeans fit: not counted here)
    seen = [arr for family, arr in spy_inputs
            if family == ("kmeans" if kind == "kmeans" else "mixture")]
    assert len(seen) == 2                          # fit (EM driver) and predict
    for arr in seen:
        assert arr.dtype == dtype and np.shares_memory(arr, X)
    np.testing.assert_array_equal(X, before)       # and never written to


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
def test_binary_uint8_and_bool_arrays_are_not_converted(dtype, spy_inputs):
    B = (_blobs(np.float64) > 0).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BernoulliMixture(3, max_iter=5, random_state=0).fit(B).predict(B)
    seen = [arr for family, arr in spy_inputs if family == "mixture"]
    assert len(seen) == 2
    for arr in seen:
        assert arr.dtype == dtype and np.shares_memory(arr, B)


@pytest.mark.parametrize("kind", ["gmm", "bmm"])
@pytest.mark.parametrize("layout", ["fortran", "strided", "int64"])
def test_other_layouts_are_accepted_and_match_c_float64(kind, layout):
    X = _blobs(np.float64)
    if kind == "bmm":
        X = (X > 0).astype(np.float64)
    else:
        X = np.round(X * 4.0)          # integer-valued, so the int64 version is the same data
    if layout == "fortran":
        data = np.asfortranarray(X)
    elif layout == "strided":
        wide = np.repeat(X, 2, axis=1)
        data = wide[:, ::2]
        assert not data.flags.c_contiguous and not data.flags.f_contiguous
    else:
        data = X.astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _estimator_for(kind).fit(X)
        est = _estimator_for(kind).fit(data)
    for name in ("weights_", "means_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(est, name), getattr(ref, name))
    np.testing.assert_array_equal(est.predict_proba(data), ref.predict_proba(X))


MEMORY_CHILD = """
    import json, resource, tracemalloc
    import numpy as np
    from fastem import KMeans

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    def high_water_mib():
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    small = np.random.default_rng(1).standard_normal((5000, 50), dtype=np.float32)
    KMeans(4, init=small[:4].copy(), max_iter=2).fit(small)           # warm-up: load kernels
    X = np.random.default_rng(0).standard_normal((1_000_000, 50), dtype=np.float32)
    base = rss_mib()
    # reset the high-water mark, so a compilation in the warm-up (cold cache) is not counted
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    tracemalloc.start()                                # sees every NumPy allocation
    KMeans(4, init=X[:4].copy(), max_iter=3).fit(X)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    peak = high_water_mib()
    print(json.dumps({"X": X.nbytes / 2**20, "rss_above": peak - base, "numpy_peak": traced}))
"""


def test_large_float32_fit_does_not_copy_x():
    out = _check(_run(MEMORY_CHILD, timeout=300))
    # X is 200 bytes a row; per-row vectors (weights, labels, distances) are about 24
    assert out["numpy_peak"] < 0.25 * out["X"], out
    assert out["rss_above"] < 0.5 * out["X"], out


# ============================================== 2b. stale caches: upgrades and kernel edits

STAMP_CHILD = """
    import json
    import numpy as np
    import fastem
    from fastem.kernels import column_mean_var
    column_mean_var(np.arange(12.0).reshape(4, 3))
    work = column_mean_var._plan[1]     # the serial kernel that a Python-level call runs
    print(json.dumps({"file": fastem.__file__,
                      "hits": sum(work.stats.cache_hits.values()),
                      "misses": sum(work.stats.cache_misses.values())}))
"""


def test_cache_is_invalidated_by_kernel_edits_and_version(tmp_path):
    """A kernel cached by one fastem is not served after an edit of *another* kernel source
    file (here ``_simd.py``, which ``column_mean_var`` does not even call) or a version change.
    Numba alone keys on the kernel's own file only."""
    site = _read_only_copy_of_package(tmp_path)
    env = _child_env(site, tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first = _check(_run(STAMP_CHILD, env=env, cwd=site))
    assert Path(first["file"]).resolve().is_relative_to(site.resolve())
    again = _check(_run(STAMP_CHILD, env=env, cwd=site))
    assert (first["misses"], again["hits"], again["misses"]) == (1, 1, 0)
    simd = site / "fastem" / "kernels" / "_simd.py"
    simd.write_text(simd.read_text() + "\n# an edit elsewhere in the kernels\n")
    edited = _check(_run(STAMP_CHILD, env=env, cwd=site))
    assert (edited["hits"], edited["misses"]) == (0, 1)
    assert _check(_run(STAMP_CHILD, env=env, cwd=site))["hits"] == 1
    version = site / "fastem" / "_version.py"
    version.write_text(version.read_text().replace('__version__ = "', '__version__ = "9'))
    upgraded = _check(_run(STAMP_CHILD, env=env, cwd=site))
    assert (upgraded["hits"], upgraded["misses"]) == (0, 1)


def test_cache_files_are_separate_per_simd_class(tmp_path):
    """Kernels built with another class's tiles never share an index file."""
    site = _read_only_copy_of_package(tmp_path)
    cache = tmp_path / "cache"
    for forced in ("portable", None):
        extra = {"FASTEM_SIMD_CLASS": forced} if forced else {}
        _check(_run(STAMP_CHILD, env=_child_env(site, tmp_path, NUMBA_CACHE_DIR=str(cache),
                                                **extra), cwd=site))
    names = {p.name for p in cache.rglob("*.nbi")}
    assert any("-fe1-portable" in n for n in names)
    assert any(f"-fe1-{_jit.SIMD_CLASS}" in n for n in names)
    forced_again = _check(_run(STAMP_CHILD, env=_child_env(
        site, tmp_path, NUMBA_CACHE_DIR=str(cache), FASTEM_SIMD_CLASS="portable"), cwd=site))
    assert forced_again["hits"] == 1


FORK_CHILD = """
    import json, multiprocessing, warnings
    import numpy as np
    from fastem import GaussianMixture, KMeans
    warnings.simplefilter("ignore")
    X = np.random.RandomState(0).normal(size=(20000, 3))

    def fit(_):
        return float(KMeans(3, random_state=0).fit(X).inertia_)

    parent = fit(None)                                 # starts fastem's thread pool here
    GaussianMixture(2, random_state=0, max_iter=5).fit(X)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(fit, range(2))             # would hang on the inherited pool
    from fastem.kernels._jit import hot_threads
    with hot_threads():                                # forked inside a hot block too
        with multiprocessing.get_context("fork").Pool(2) as pool:
            children += pool.map(fit, range(2))
    print(json.dumps({"parent": parent, "children": children}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_children_fit_after_the_parent_did():
    out = _check(_run(FORK_CHILD, timeout=180))
    assert out["children"] == [out["parent"]] * 4


def test_work_items_are_covered_once_and_errors_reach_the_caller(monkeypatch):
    rows = np.empty((_jit.PARALLEL_MIN_ROWS, 1))
    for threads in (1, 2, 3, 5):
        monkeypatch.setattr(_jit, "n_threads", lambda t=threads: t)
        for n_items in (1, 2, 3, 7, 64):
            seen, lock = [], threading.Lock()

            def work(lo, hi, *args):
                with lock:
                    seen.extend(range(lo, hi))

            _jit.run_work_items(work, n_items, (rows,))
            assert sorted(seen) == list(range(n_items))

    monkeypatch.setattr(_jit, "n_threads", lambda: 2)
    caller = threading.get_ident()
    pool_ran = threading.Event()

    def fails_in_pool(lo, hi, *args):
        if threading.get_ident() == caller:
            # hold the caller's first run until a pool thread has claimed one (else the
            # caller may take every run before the pool thread starts)
            pool_ran.wait(30)
            return
        pool_ran.set()
        raise RuntimeError("raised in a pool thread")

    with pytest.raises(RuntimeError, match="pool thread"):
        _jit.run_work_items(fails_in_pool, 4, (rows,))


def test_small_calls_use_the_pool_only_for_items_finer_than_blocks(monkeypatch):
    """Below PARALLEL_MIN_ROWS rows a call stays on the calling thread, unless its kernel cut
    the rows into more items than row blocks (rows costly enough to split)."""
    monkeypatch.setattr(_jit, "n_threads", lambda: 2)
    caller = threading.get_ident()
    rows = np.empty((_jit.BLOCK_ROWS + 1, 1))                       # two blocks
    for n_items, pooled in ((2, False), (3, True), (5, True)):
        threads_seen, lock = set(), threading.Lock()
        pool_claimed = threading.Event()

        def work(lo, hi, *args):
            with lock:
                threads_seen.add(threading.get_ident())
            if threading.get_ident() == caller:
                pool_claimed.wait(30 if pooled else 0)   # let a pool thread claim a run
            else:
                pool_claimed.set()

        _jit.run_work_items(work, n_items, (rows,))
        assert (threads_seen != {caller}) == pooled, (n_items, threads_seen)


def test_item_runs_are_contiguous_in_order_and_shrink():
    for threads in (2, 3, 8):
        for n_items in (1, 2, 3, 7, 25, 489):
            runs = _jit.claim_order(n_items, threads)
            assert runs[0][0] == 0 and runs[-1][1] == n_items
            assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))   # no gap, no overlap
            sizes = [hi - lo for lo, hi in runs]
            assert min(sizes) >= 1 and sizes == sorted(sizes, reverse=True)
            assert sizes[-1] == 1


def test_a_stalled_pool_thread_does_not_hold_the_caller(monkeypatch):
    """The caller returns once every run is done, although the pool thread has not looked
    in yet (here: busy with an earlier task), and the results come back in item order."""
    monkeypatch.setattr(_jit, "n_threads", lambda: 2)
    release = threading.Event()
    blocker = _jit._thread_pool().submit(release.wait, 30)   # the pool's only thread
    try:
        results = _jit.map_item_ranges(lambda lo, hi: (lo, hi), 9, True)
        assert results == _jit.claim_order(9, 2)
        assert not blocker.done()
    finally:
        release.set()
        blocker.result()


BLAS_POOL_CHILD = """
import json, sys, threading
import numpy as np
import fastem
from fastem import _blas_pool
from fastem.kernels import _jit

rng = np.random.default_rng(0)
A = rng.standard_normal((400, 400))
X = rng.standard_normal((50_000, 8))
other_thread = sys.argv[1] == "other-thread"
if sys.argv[1] == "threadpoolctl":
    import threadpoolctl  # noqa: F401 - its thread limits would restart an ended pool
release = threading.Event()
if other_thread:   # a user's thread that could be inside a BLAS call
    threading.Thread(target=release.wait, name="user-thread").start()

A @ A   # starts NumPy's OpenBLAS workers (they then spin for ~0.1 s)
numpy_servers = [s for s in map(_blas_pool._thread_server, _blas_pool._loaded_openblas_paths())
                 if s is not None and "numpy" in s.path]
if not numpy_servers:
    print(json.dumps({"server": False}))
    sys.exit(0)
server = numpy_servers[0]
before = server.running.value
fastem.KMeans(4, n_init=1, random_state=0).fit(X)   # parallel calls on 2 threads
after_fit = server.running.value
product = A @ A                                      # restarts the workers by itself
reference = np.einsum("ij,jk->ik", A, A, optimize=False)
release.set()
print(json.dumps({"server": True, "threads": _jit.n_threads(), "before": before,
                  "after_fit": after_fit, "after_product": server.running.value,
                  "product_error": float(np.abs(product - reference).max())}))
"""


def _blas_pool_child(mode):
    env = dict(os.environ, NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    out = _check(_run(BLAS_POOL_CHILD, env=env, args=(mode,), timeout=300))
    if not out["server"]:
        pytest.skip("NumPy is not linked to an OpenBLAS with its own pthreads thread server "
                    "(the only BLAS whose spinning workers fastem ends)")
    assert out["threads"] == 2
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (/proc/self/maps)")
def test_spinning_blas_workers_are_ended_before_a_parallel_call_and_restart_on_their_own():
    out = _blas_pool_child("alone")
    assert out["before"] == 1 and out["after_fit"] == 0
    assert out["after_product"] == 1 and out["product_error"] < 1e-9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (/proc/self/maps)")
def test_blas_workers_are_left_alone_while_another_python_thread_runs():
    out = _blas_pool_child("other-thread")
    assert out["before"] == 1 and out["after_fit"] == 1 and out["product_error"] < 1e-9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (/proc/self/maps)")
def test_blas_workers_are_left_alone_once_threadpoolctl_is_imported():
    pytest.importorskip("threadpoolctl")   # installed with scikit-learn (the test extra)
    out = _blas_pool_child("threadpoolctl")
    assert out["before"] == 1 and out["after_fit"] == 1 and out["product_error"] < 1e-9


def test_libraries_other_than_a_pthreads_openblas_are_never_touched():
    import ctypes.util
    from fastem import _blas_pool
    libc = ctypes.util.find_library("c")
    assert _blas_pool._thread_server(libc or "libc.so.6") is None
    assert _blas_pool._thread_server("/nonexistent/libopenblas.so") is None
