"""First contact (issue 9): ``import fastem`` imports no optional dependency, and the
scikit-learn protocol works with scikit-learn installed and without it (child processes: one
sees scikit-learn, one has it blocked at import)."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastem import BernoulliMixture, GaussianMixture, KMeans
from fastem.kernels._jit import usable_cores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Makes ``import sklearn`` (and its submodules) fail in a child, as when it is not installed.
BLOCK_SKLEARN = """
    import importlib.abc, sys
    class _NoSklearn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" or name.startswith("sklearn."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None
    sys.meta_path.insert(0, _NoSklearn())
"""


def _child(code, block_sklearn=False):
    src = (textwrap.dedent(BLOCK_SKLEARN) if block_sklearn else "") + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("block_sklearn", [False, True])
def test_import_loads_no_optional_dependency(block_sklearn):
    out = _child("""
        import json, sys
        import fastem
        heavy = ("sklearn", "scipy.sparse", "scipy.linalg", "matplotlib", "dask",
                 "distributed", "pandas")
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy
                                and (m in heavy or m.split(".")[0] != "scipy"))))
    """, block_sklearn)
    assert out == []


PROTOCOL_WITHOUT_SKLEARN = """
    import json, pickle, warnings
    import numpy as np
    import fastem
    from fastem import BernoulliMixture, GaussianMixture, KMeans
    from fastem.validation import ConvergenceWarning, NotFittedError

    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(c, 1.0, size=(100, 2)) for c in (-5.0, 0.0, 5.0)])
    B = (X > 0).astype(np.uint8)
    out = {}
    for est, data in ((KMeans(3, random_state=0), X),
                      (GaussianMixture(3, covariance_type="diag", random_state=0), X),
                      (BernoulliMixture(2, random_state=0), B)):
        name = type(est).__name__
        try:
            est.predict(data)
            raise AssertionError("predict before fit must raise")
        except NotFittedError as exc:
            not_fitted = isinstance(exc, ValueError) and isinstance(exc, AttributeError)
        params = est.get_params()
        est.set_params(max_iter=50)
        try:
            est.set_params(no_such_parameter=1)
            raise AssertionError("set_params must reject unknown names")
        except ValueError as exc:
            rejected = "no_such_parameter" in str(exc)
        labels = est.fit_predict(data)
        again = pickle.loads(pickle.dumps(est))
        out[name] = dict(params=sorted(params), repr=repr(est), not_fitted=not_fitted,
                         rejected=rejected, n_labels=len(set(labels.tolist())),
                         pickled=bool(np.array_equal(again.predict(data), est.predict(data))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    out["convergence_warning"] = [issubclass(w.category, ConvergenceWarning) for w in caught]
    out["transform"] = KMeans(3, random_state=0).fit_transform(X).shape
    print(json.dumps(out))
"""


def test_protocol_without_scikit_learn():
    out = _child(PROTOCOL_WITHOUT_SKLEARN, block_sklearn=True)
    expected_repr = {
        "KMeans": "KMeans(max_iter=50, n_clusters=3, random_state=0)",
        "GaussianMixture": "GaussianMixture(covariance_type='diag', max_iter=50, "
                           "n_components=3, random_state=0)",
        "BernoulliMixture": "BernoulliMixture(max_iter=50, n_components=2, random_state=0)"}
    for name, n_labels in (("KMeans", 3), ("GaussianMixture", 3), ("BernoulliMixture", 2)):
        got = out[name]
        assert got["not_fitted"] and got["rejected"] and got["pickled"], got
        assert got["n_labels"] == n_labels
        assert got["repr"] == expected_repr[name]
    assert out["convergence_warning"] == [True]
    assert out["transform"] == [300, 3]


def test_errors_and_warnings_are_scikit_learns_when_it_is_loaded():
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    X = np.random.RandomState(0).normal(size=(60, 2))
    with pytest.raises(NotFittedError):
        KMeans(2).predict(X)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(2, max_iter=1, random_state=0).fit(X)


def test_tags_clone_and_meta_estimators():
    from sklearn.base import clone, is_clusterer
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils import get_tags

    X = np.random.RandomState(0).normal(size=(120, 3))
    assert is_clusterer(KMeans())
    assert get_tags(KMeans()).transformer_tags is not None
    assert get_tags(KMeans()).input_tags.sparse is True       # CSR input (issue 12)
    assert get_tags(GaussianMixture()).estimator_type == "density_estimator"
    assert get_tags(BernoulliMixture()).input_tags.sparse is True
    km = KMeans(4, init="random", random_state=3)
    copy = clone(km)
    assert copy is not km and copy.get_params() == km.get_params()
    pipe = make_pipeline(StandardScaler(), KMeans(3, random_state=0)).fit(X)
    assert pipe.predict(X).shape == (120,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(GaussianMixture(random_state=0),
                              {"n_components": [1, 2, 3]}, cv=3).fit(X)
    assert search.best_params_["n_components"] in (1, 2, 3)
    assert repr(KMeans()) == "KMeans()"


# ------------------------------------------------------------------ warm-up and cache lock
WARM_CHILD = """
    import json, sys, warnings
    import numpy as np
    import scipy.sparse as sp
    import fastem
    from numba.core.registry import CPUDispatcher
    from fastem.kernels._target import PRUNED_SEEDING_MIN_FEATURES   # pruned k-means++
    warnings.simplefilter("ignore")
    if sys.argv[1] == "warmup":
        fastem.warmup(n_jobs=2, verbose=False)
        raise SystemExit(0)
    rng = np.random.default_rng(1)
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((6000, 4)).astype(dtype)
        fastem.KMeans(5, random_state=0).fit(X).predict(X)
        wide = rng.standard_normal((6000, PRUNED_SEEDING_MIN_FEATURES)).astype(dtype)
        fastem.KMeans(5, random_state=0).fit(wide)
        X8 = rng.standard_normal((6000, 8)).astype(dtype)
        fastem.KMeans(128, init=X8[:128], n_init=1, algorithm="yinyang", max_iter=3).fit(X8)
        X32 = rng.standard_normal((6000, 32)).astype(dtype)   # float64: screened search
        for algorithm in ("lloyd", "hamerly"):
            fastem.KMeans(32, init=X32[:32], n_init=1, algorithm=algorithm,
                          max_iter=3).fit(X32).predict(X32)
        for ct in ("full", "tied", "diag", "spherical"):
            fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X).score(X)
    B = (rng.random((6000, 9)) < 0.4).astype(np.uint8)
    for data in (B, sp.csr_matrix(B)):
        fastem.BernoulliMixture(3, random_state=0).fit(data).predict_proba(data)
    hits = misses = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("fastem.kernels"):
            for obj in vars(module).values():
                if isinstance(obj, CPUDispatcher) and hasattr(obj, "stats"):
                    hits += sum(obj.stats.cache_hits.values())
                    misses += sum(obj.stats.cache_misses.values())
    # fastem loads cached kernels without Numba's full target set-up (its registries import
    # scipy.linalg: most of a warm first fit); Numba still does it before compiling anything
    loaded = [m for m in ("numba.np.arraymath", "scipy.linalg") if m in sys.modules]
    from numba import njit
    from fastem.kernels.linalg import precision_cholesky_factors

    @njit
    def user(covs, out, a):
        return precision_cholesky_factors(covs, out), np.dot(a, a), np.argmin(a)

    a = rng.standard_normal(7)
    cov = np.cov(rng.standard_normal((4, 50)))[None]
    out = np.empty_like(cov)
    failed, dot, arg = user(cov, out, a)
    user_ok = bool(failed == -1 and np.isclose(dot, a @ a) and arg == np.argmin(a)
                   and np.allclose(out[0] @ out[0].T @ cov[0], np.eye(4)))
    print(json.dumps({"hits": hits, "misses": misses, "loaded": loaded, "user_ok": user_ok}))
"""


def test_warmup_compiles_everything_fits_load(tmp_path):
    """Two warm-up processes fill an empty cache; a fresh process then fits every estimator,
    dtype and input kind and compiles nothing (a dropped index entry would be a miss), without
    Numba's full target set-up, which a later @njit compile in that process still gets."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    src = textwrap.dedent(WARM_CHILD)
    for arg in ("warmup", "check"):
        proc = subprocess.run([sys.executable, "-c", src, arg], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["misses"] == 0 and out["hits"] > 20, out
    assert out["loaded"] == [] and out["user_ok"], out


def test_cache_index_update_holds_an_exclusive_lock(tmp_path, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    from numba.core.caching import IndexDataCacheFile

    from fastem.kernels import _jit
    cache_file = _jit._CheckedCacheFile(str(tmp_path), "probe", "stamp")
    seen = []

    def save(self, key, data):   # runs inside fastem's save: the lock must be held by now
        fd = os.open(self._index_path + ".lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append("unlocked")
        except BlockingIOError:
            seen.append("locked")
        finally:
            os.close(fd)

    monkeypatch.setattr(IndexDataCacheFile, "save", save)
    cache_file.save(("sig",), b"data")
    assert seen == ["locked"]


# ---------------------------------------------------------------- compiling ahead (cold cache)
AHEAD_CHILD = """
    import json, sys, warnings
    import numpy as np
    import fastem
    from fastem.kernels import bernoulli_estep, gaussian_estep_full, kmeanspp_potentials
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6000, 5))
    B = (rng.random((6000, 7)) < 0.4).astype(np.uint8)
    real = sys.executable

    def estep_stats(kernel):
        work = kernel._plan[1]
        return sum(work.stats.cache_hits.values()), sum(work.stats.cache_misses.values())

    km = fastem.KMeans(4, random_state=0).fit(X.astype(np.float32))
    kmeans_stats = estep_stats(kmeanspp_potentials)
    # a helper that fails at once: the fit compiles its iterations itself
    sys.executable = "/bin/false"
    bm = fastem.BernoulliMixture(3, random_state=0).fit(B)
    sys.executable = real
    gm = fastem.GaussianMixture(4, covariance_type="full", random_state=0).fit(X)
    print(json.dumps({"bernoulli": estep_stats(bernoulli_estep),
                      "gmm": estep_stats(gaussian_estep_full),
                      "kmeans": kmeans_stats,
                      "km_centers": km.cluster_centers_.tolist(), "km_inertia": km.inertia_,
                      "bm_means": bm.means_.tolist(), "bm_lb": bm.lower_bound_,
                      "gm_means": gm.means_.tolist(), "gm_lb": gm.lower_bound_,
                      "gm_cov": gm.covariances_.tolist()}))
"""


@pytest.mark.skipif(not os.path.exists("/bin/false") or usable_cores() < 2,
                    reason="needs /bin/false and two usable CPUs (compile-ahead's condition)")
def test_cold_first_fit_compiles_its_iterations_ahead_in_a_helper(tmp_path):
    """With an empty cache a mixture fit starts a helper process that compiles the E-step
    while the fit compiles its k-means initialisation, and a KMeans fit one that compiles
    k-means++ while the fit compiles the Lloyd kernel: the fits then load those kernels from
    the cache (a hit, no compile). A helper that fails leaves the fit compiling it itself.
    The fits equal the same fits in this process, bitwise."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("FASTEM_COMPILE_AHEAD", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(AHEAD_CHILD)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bernoulli"] == [0, 1], out["bernoulli"]      # compiled here
    assert out["gmm"] == [1, 0], out["gmm"]                  # compiled by the helper
    assert out["kmeans"] == [1, 0], out["kmeans"]            # k-means++ by its helper
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6000, 5))
    B = (rng.random((6000, 7)) < 0.4).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = BernoulliMixture(3, random_state=0).fit(B)
        gm = GaussianMixture(4, covariance_type="full", random_state=0).fit(X)
        km = KMeans(4, random_state=0).fit(X.astype(np.float32))
    np.testing.assert_array_equal(np.array(out["km_centers"], dtype=np.float32),
                                  km.cluster_centers_)
    assert out["km_inertia"] == km.inertia_
    np.testing.assert_array_equal(np.array(out["bm_means"]), bm.means_)
    np.testing.assert_array_equal(np.array(out["gm_means"]), gm.means_)
    np.testing.assert_array_equal(np.array(out["gm_cov"]), gm.covariances_)
    assert (out["bm_lb"], out["gm_lb"]) == (bm.lower_bound_, gm.lower_bound_)


def test_compile_ahead_only_for_a_cold_cache_and_when_allowed(monkeypatch):
    import fastem._warmup as warmup_module
    from fastem._warmup import COMPILE_AHEAD_VARIABLE, compile_ahead
    from fastem.kernels import gaussian_estep_full
    from fastem.sources import ArraySource

    monkeypatch.setattr(warmup_module, "usable_cores", lambda: 2)   # whatever this host has

    X = np.random.default_rng(0).standard_normal((5000, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GaussianMixture(2, random_state=0, max_iter=2).fit(X)   # this process has the kernel
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    source = ArraySource(X)
    assert compile_ahead(gaussian_estep_full, source, "em", "gmm", "full", 2) is None
    work = gaussian_estep_full._plan[1]
    monkeypatch.setattr(work, "overloads", {})            # as if not compiled here ...
    monkeypatch.setattr(work._cache._cache_file, "_load_index", lambda: {})  # ... nor cached
    monkeypatch.setenv(COMPILE_AHEAD_VARIABLE, "0")
    assert compile_ahead(gaussian_estep_full, source, "em", "gmm", "full", 2) is None
    monkeypatch.delenv(COMPILE_AHEAD_VARIABLE)
    assert compile_ahead(gaussian_estep_full, ArraySource(X[:, :1].repeat(4096, axis=1)),
                         "em", "gmm", "full", 2) is None       # too wide for the helper
    monkeypatch.setattr(warmup_module, "usable_cores", lambda: 1)
    assert compile_ahead(gaussian_estep_full, source, "em", "gmm", "full", 2) is None
    monkeypatch.setattr(warmup_module, "usable_cores", lambda: 2)
    assert started == []
    helper = compile_ahead(gaussian_estep_full, source, "em", "gmm", "full", 2)
    assert helper is not None and len(started) == 1
    cmd = started[0][0]
    assert cmd[0] == sys.executable and cmd[-7:] == ["em", "float64", "3", "int32", "gmm",
                                                     "full", "2"]
    assert os.path.samefile(cmd[-8], os.path.join(ROOT, "fastem", "__init__.py"))
