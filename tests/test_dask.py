"""fastem on Dask arrays, on Dask's threaded scheduler and on a real ``distributed`` cluster
(a LocalCluster of 2 worker processes started and torn down here).

The reference is the in-memory fit (itself tested against scikit-learn and NumPy twins
elsewhere) from the same initial parameters: a Dask fit must equal it to 1e-10 relative in
every parameter and in the lower bound / inertia, for every model, covariance type, dtype and
chunking (the only difference is the order in which the blocks' statistics are added).
"""
import logging
import os
import pickle
import signal
import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from distributed import Client, LocalCluster

from fastem import BernoulliMixture, GaussianMixture, KMeans, MiniBatchKMeans
from fastem import _dask
from fastem._dask import DaskFitError, DaskSource
from fastem.estimators.kmeans import KMeans as _KMeans

RTOL = 1e-10
CHUNKINGS = {"uneven": (700, 1300, 450, 1550), "one block": (4000,)}


def _cluster(**kw):
    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.CRITICAL, **kw)


@pytest.fixture(scope="module")
def client():
    cluster = _cluster()
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(params=["threads", "cluster"])
def scheduler(request):
    """Dask's threaded scheduler, or the module's LocalCluster as the current client."""
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield None
    else:
        c = request.getfixturevalue("client")
        with c.as_current():
            yield c


def close(a, b, rtol=RTOL):
    """Relative closeness of two parameter arrays, scaled by their largest entry."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(), np.abs(b).max(), np.finfo(float).tiny)
    return a.shape == b.shape and np.abs(a - b).max() <= rtol * scale


def blobs(n=4000, d=5, k=4, dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-6, 6, (k, d))
    X = centers[rng.randint(k, size=n)] + rng.randn(n, d) * rng.uniform(0.5, 1.5, d)
    return X.astype(dtype), rng.uniform(0.2, 2.0, n)


def binary(n=4000, d=24, k=3, seed=1):
    rng = np.random.RandomState(seed)
    theta = rng.uniform(0.05, 0.95, (k, d))
    X = (rng.uniform(size=(n, d)) < theta[rng.randint(k, size=n)]).astype(np.uint8)
    return X, rng.uniform(0.2, 2.0, n)


def dask_rows(X, chunking, sparse=False):
    Xd = da.from_array(X, chunks=(CHUNKINGS[chunking], X.shape[1]))
    if sparse:
        Xd = Xd.map_blocks(sp.csr_matrix, dtype=X.dtype,
                           meta=sp.csr_matrix((0, X.shape[1]), dtype=X.dtype))
    return Xd


def quiet(fit, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # max_iter reached on purpose (tol=0)
        return fit(*args, **kw)


# ------------------------------------------------------------------------------ equality
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_kmeans_equals_in_memory(scheduler, dtype, chunking):
    X, w = blobs(dtype=dtype)
    init = X[[3, 50, 700, 2100]] + 0.5          # a poor start: several iterations
    ref = KMeans(4, init=init, tol=0).fit(X, sample_weight=w)
    got = KMeans(4, init=init, tol=0).fit(dask_rows(X, chunking), sample_weight=w)
    assert got.n_iter_ == ref.n_iter_ > 2
    assert got.cluster_centers_.dtype == dtype
    assert close(got.cluster_centers_, ref.cluster_centers_)
    assert abs(got.inertia_ - ref.inertia_) <= RTOL * ref.inertia_
    assert isinstance(got.labels_, da.Array)
    np.testing.assert_array_equal(got.labels_.compute(), ref.labels_)


def test_kmeans_equals_in_memory_with_tolerance_stop_and_empty_cluster(scheduler):
    """tol > 0 (stops on the centre shift, then one more pass for labels) and an initial
    centre far from every point (empty cluster re-seeded by the farthest points)."""
    X, w = blobs(n=3000, d=3, k=3, seed=4)
    init = np.vstack([X[[0, 1000]], [[1e3, 1e3, 1e3]]])
    ref = KMeans(3, init=init, tol=1e-3).fit(X, sample_weight=w)
    got = KMeans(3, init=init, tol=1e-3).fit(da.from_array(X, chunks=777), sample_weight=w)
    assert got.n_iter_ == ref.n_iter_
    assert close(got.cluster_centers_, ref.cluster_centers_)
    assert abs(got.inertia_ - ref.inertia_) <= RTOL * ref.inertia_


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_gaussian_mixture_equals_in_memory(scheduler, covariance_type, dtype, chunking):
    X, w = blobs(dtype=dtype, seed=2)
    start = GaussianMixture(4, covariance_type=covariance_type, max_iter=2,
                            random_state=0)
    start = quiet(start.fit, X)
    kw = dict(covariance_type=covariance_type, max_iter=8, tol=0,
              weights_init=start.weights_, means_init=start.means_,
              precisions_init=start.precisions_)
    ref = quiet(GaussianMixture(4, **kw).fit, X, sample_weight=w)
    got = quiet(GaussianMixture(4, **kw).fit, dask_rows(X, chunking), sample_weight=w)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert close(getattr(got, name), getattr(ref, name)), name
        assert type(getattr(got, name)) is np.ndarray
    assert close(got.lower_bounds_, ref.lower_bounds_)
    assert abs(got.lower_bound_ - ref.lower_bound_) <= RTOL * abs(ref.lower_bound_)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_bernoulli_mixture_equals_in_memory(scheduler, sparse, chunking):
    X, w = binary()
    rng = np.random.RandomState(3)
    kw = dict(max_iter=10, tol=0, weights_init=np.full(3, 1 / 3),
              means_init=rng.uniform(0.3, 0.7, (3, X.shape[1])))
    ref = quiet(BernoulliMixture(3, **kw).fit, sp.csr_matrix(X) if sparse else X,
                sample_weight=w)
    got = quiet(BernoulliMixture(3, **kw).fit, dask_rows(X, chunking, sparse),
                sample_weight=da.from_array(w, chunks=1000))
    assert close(got.weights_, ref.weights_) and close(got.means_, ref.means_)
    assert close(got.lower_bounds_, ref.lower_bounds_)


def test_bool_and_float_blocks(scheduler):
    X, _ = binary(n=1500)
    ref = BernoulliMixture(3, random_state=0, max_iter=5, tol=0, init_params="random")
    ref = quiet(ref.fit, X)
    kw = dict(max_iter=5, tol=0, weights_init=ref.weights_, means_init=ref.means_)
    base = quiet(BernoulliMixture(3, **kw).fit, X)
    for as_type in (bool, np.float32):
        got = quiet(BernoulliMixture(3, **kw).fit, da.from_array(X.astype(as_type), chunks=400))
        assert close(got.means_, base.means_)


# --------------------------------------------------------------------- initialisation on Dask
def test_kmeans_parallel_seeding(scheduler):
    """k-means|| returns k distinct rows of X (with their indices) and seeds as well as
    greedy k-means++ on separated blobs; 'random' draws rows in proportion to the weights."""
    X, w = blobs(n=6000, d=4, k=8, seed=5)
    Xd = da.from_array(X, chunks=1000)
    source = DaskSource(Xd, w, _KMeans._validate)
    centers, idx = source.kmeans_parallel(8, np.random.RandomState(0))
    assert len(set(idx.tolist())) == 8
    np.testing.assert_array_equal(centers, X[idx])
    # both seedings end in one of the same local optima; compare medians over seeds
    mem = [KMeans(8, random_state=s, max_iter=10).fit(X, sample_weight=w).inertia_
           for s in range(8)]
    got = [KMeans(8, random_state=s, max_iter=10).fit(Xd, sample_weight=w).inertia_
           for s in range(8)]
    assert np.median(got) <= 1.02 * np.median(mem)
    w0 = w.copy()
    w0[::2] = 0.0   # 'random' never draws a row of weight 0
    from fastem.models.kmeans import random_centers
    chosen = random_centers(DaskSource(Xd, w0, _KMeans._validate), 8,
                            np.random.RandomState(0))
    rows = [np.flatnonzero((X == c).all(axis=1))[0] for c in chosen]
    assert len(set(rows)) == 8 and all(r % 2 == 1 for r in rows)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_gaussian_inits_on_dask(scheduler, init_params):
    X, w = blobs(seed=6)
    mem = GaussianMixture(4, init_params=init_params, random_state=0, n_init=2)
    mem = quiet(mem.fit, X, sample_weight=w)
    got = GaussianMixture(4, init_params=init_params, random_state=0, n_init=2)
    got = quiet(got.fit, da.from_array(X, chunks=900), sample_weight=w)
    assert np.isfinite(got.lower_bound_)
    assert got.lower_bound_ >= mem.lower_bound_ - 0.05 * abs(mem.lower_bound_)


@pytest.mark.parametrize("init_params", ["kmeans", "random", "random_from_data"])
def test_bernoulli_inits_on_dask(scheduler, init_params):
    X, w = binary()
    mem = quiet(BernoulliMixture(3, init_params=init_params, random_state=0).fit, X,
                sample_weight=w)
    got = quiet(BernoulliMixture(3, init_params=init_params, random_state=0).fit,
                dask_rows(X, "uneven", sparse=True), sample_weight=w)
    assert got.lower_bound_ >= mem.lower_bound_ - 0.01 * abs(mem.lower_bound_)


# --------------------------------------------------------------------- outputs and attributes
def test_lazy_outputs_equal_numpy_outputs(scheduler):
    X, w = blobs(seed=7)
    Xd = da.from_array(X, chunks=1100)
    gm = quiet(GaussianMixture(4, random_state=0).fit, Xd)
    for method in ("predict", "predict_proba", "score_samples"):
        lazy = getattr(gm, method)(Xd)
        assert isinstance(lazy, da.Array)
        np.testing.assert_array_equal(lazy.compute(), getattr(gm, method)(X))
    assert gm.score(Xd) == pytest.approx(gm.score(X), rel=1e-12)
    assert gm.score(Xd, sample_weight=w) == pytest.approx(gm.score(X, sample_weight=w),
                                                         rel=1e-12)
    assert gm.bic(Xd) == pytest.approx(gm.bic(X), rel=1e-12)
    assert gm.aic(Xd) == pytest.approx(gm.aic(X), rel=1e-12)
    km = KMeans(4, random_state=0).fit(Xd)
    for method in ("predict", "transform"):
        lazy = getattr(km, method)(Xd)
        assert isinstance(lazy, da.Array) and lazy.dtype == getattr(km, method)(X).dtype
        np.testing.assert_array_equal(lazy.compute(), getattr(km, method)(X))
    assert km.score(Xd, sample_weight=w) == pytest.approx(km.score(X, sample_weight=w),
                                                         rel=1e-12)
    mb = MiniBatchKMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(mb.predict(Xd).compute(), mb.predict(X))


def test_fitted_on_dask_is_a_numpy_model(scheduler):
    X, _ = blobs(seed=8)
    Xd = da.from_array(X, chunks=1000)
    for est in (KMeans(4, random_state=0), GaussianMixture(4, random_state=0),
                BernoulliMixture(3, random_state=0)):
        data, numpy_data = (Xd, X) if not isinstance(est, BernoulliMixture) else (
            da.from_array(X > 0, chunks=1000), X > 0)
        quiet(est.fit, data)
        for name, value in vars(est).items():
            if name.endswith("_") and name != "labels_" and isinstance(value, np.ndarray):
                assert type(value) is np.ndarray
        expected = est.predict(numpy_data)
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.predict(numpy_data), expected)
        assert not hasattr(again, "labels_") or isinstance(again.labels_, np.ndarray)


def test_fit_never_gathers_x(scheduler, monkeypatch):
    """No code path of a fit computes the Dask array X (or converts it to NumPy)."""
    X, w = blobs(seed=9)
    Xd = da.from_array(X, chunks=1000)

    def forbidden(*args, **kw):
        raise AssertionError("X was gathered")

    monkeypatch.setattr(da.Array, "__array__", forbidden)
    monkeypatch.setattr(da.Array, "compute", forbidden)
    KMeans(4, random_state=0).fit(Xd, sample_weight=w)
    quiet(GaussianMixture(4, covariance_type="tied", random_state=0).fit, Xd)


def test_every_pass_is_one_task_per_block_plus_a_tree(monkeypatch):
    calls = []
    real = _dask.tree_sum

    def spy(parts, split_every=_dask.SPLIT_EVERY):
        calls.append(len(parts))
        return real(parts, split_every)

    monkeypatch.setattr(_dask, "tree_sum", spy)
    X, _ = blobs()
    with dask.config.set(scheduler="threads"):
        KMeans(4, init=X[:4], max_iter=3, tol=0).fit(da.from_array(X, chunks=250))
    assert calls and set(calls) == {16}
    # 20 leaves, split_every 8: 3 group sums on the cluster, added on the client
    top = _dask.tree_sum([dask.delayed(i) for i in range(20)])
    assert len(top) == 3 and all(str(t.key).startswith("_add_tables") for t in top)
    assert [len(dict(t.dask)) for t in top] == [9, 9, 5]


# --------------------------------------------------------------------------- validation
def test_bad_dask_input_is_a_clear_error(scheduler):
    X, w = blobs(n=2000)
    Xn = X.copy()
    Xn[1500, 2] = np.nan
    with pytest.raises(ValueError, match=r"X \(block 1\) contains NaN"):
        KMeans(3).fit(da.from_array(Xn, chunks=1000))
    with pytest.raises(ValueError, match="block 1"):
        GaussianMixture(3).fit(da.from_array(Xn, chunks=1000))
    bad = np.zeros((100, 4))
    bad[70, 1] = 2.0
    with pytest.raises(ValueError, match="binary"):
        BernoulliMixture(2).fit(da.from_array(bad, chunks=50))
    w_neg = w.copy()
    w_neg[5] = -1
    with pytest.raises(ValueError, match="Negative"):
        KMeans(3).fit(da.from_array(X, chunks=500), sample_weight=w_neg)
    with pytest.raises(ValueError, match="sample_weight.shape"):
        KMeans(3).fit(da.from_array(X, chunks=500), sample_weight=w[:10])
    with pytest.raises(ValueError, match="sums to zero"):
        KMeans(3).fit(da.from_array(X, chunks=500), sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="2D"):
        KMeans(3).fit(da.from_array(X[:, 0], chunks=500))
    with pytest.raises(TypeError, match="MiniBatchKMeans does not fit Dask"):
        MiniBatchKMeans(3).fit(da.from_array(X, chunks=500))
    km = KMeans(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        km.predict(da.from_array(X[:, :2], chunks=500))


def test_column_chunks_and_unknown_chunk_sizes(scheduler):
    X, _ = blobs(d=6, seed=10)
    init = X[:4]
    ref = KMeans(4, init=init, tol=0).fit(X)
    cols = da.from_array(X, chunks=(1000, 2))
    assert close(KMeans(4, init=init, tol=0).fit(cols).cluster_centers_, ref.cluster_centers_)
    Xd = da.from_array(X, chunks=1000)
    unknown = Xd[Xd[:, 0] > -np.inf]          # same rows, chunk sizes unknown (nan)
    assert np.isnan(unknown.shape[0])
    got = KMeans(4, init=init, tol=0).fit(unknown)
    assert close(got.cluster_centers_, ref.cluster_centers_)
    empty_blocks = da.from_array(X, chunks=((1000, 0, 2000, 0, 1000), (6,)))
    got = KMeans(4, init=init, tol=0).fit(empty_blocks, sample_weight=np.ones(len(X)))
    assert close(got.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(got.labels_.compute(), ref.labels_)


def test_integer_blocks_become_float64(scheduler):
    X, _ = blobs(seed=11)
    Xi = np.round(X).astype(np.int32)
    ref = KMeans(4, init=Xi[:4].astype(float), tol=0).fit(Xi)
    got = KMeans(4, init=Xi[:4].astype(float), tol=0).fit(da.from_array(Xi, chunks=1000))
    assert got.cluster_centers_.dtype == np.float64
    assert close(got.cluster_centers_, ref.cluster_centers_)


# ------------------------------------------------------------------------ threads and faults
def test_thread_budgets_share_each_host(client):
    budgets = _dask._thread_budgets(client)
    assert set(budgets) == set(client.scheduler_info(n_workers=-1)["workers"])
    cores = _dask.usable_cores()
    # 2 single-threaded workers on one host: each gets half the cores (at least one)
    assert all(b == max(1, cores // 2) for b in budgets.values())


def test_lost_data_is_retried_then_a_clear_error():
    source = object.__new__(DaskSource)
    attempts = []

    class KilledWorker(Exception):
        pass

    def build():
        attempts.append(1)
        raise KilledWorker("worker died")

    with pytest.raises(DaskFitError, match="lost workers"):
        DaskSource._compute(source, build)
    assert len(attempts) == _dask.RETRIES + 1
    with pytest.raises(ZeroDivisionError):   # other errors are not retried
        DaskSource._compute(source, lambda: 1 / 0)


@pytest.mark.parametrize("delay", [0.0, 0.03], ids=["as a pass starts", "during a pass"])
def test_worker_killed_mid_fit_gives_the_same_model(monkeypatch, delay):
    """SIGKILL one of the two worker processes as an E-step is submitted or while it runs:
    the scheduler recomputes its persisted blocks (and the pass's parameters) from their
    lineage and the fit equals the in-memory one."""
    X, w = blobs(n=60000, d=6, k=5, seed=12)
    start = quiet(GaussianMixture(5, covariance_type="diag", max_iter=1,
                                  random_state=0).fit, X)
    kw = dict(covariance_type="diag", max_iter=12, tol=0, weights_init=start.weights_,
              means_init=start.means_, precisions_init=start.precisions_)
    ref = quiet(GaussianMixture(5, **kw).fit, X, sample_weight=w)
    cluster = _cluster()
    try:
        with Client(cluster, set_as_default=False) as c, c.as_current():
            victim = sorted(c.run(os.getpid).values())[0]
            passes = []
            real = DaskSource.sum_chunks

            def sum_chunks(self, function):
                passes.append(1)
                if len(passes) == 6:   # the 5th E-step (pass 1 is the input summary)
                    threading.Timer(delay, os.kill, (victim, signal.SIGKILL)).start()
                return real(self, function)

            monkeypatch.setattr(DaskSource, "sum_chunks", sum_chunks)
            fitted = {}

            def fit():   # in a thread, so that a hang fails this test instead of CI's run
                with c.as_current():
                    fitted["model"] = quiet(GaussianMixture(5, **kw).fit,
                                            da.from_array(X, chunks=5000), sample_weight=w)

            runner = threading.Thread(target=fit, daemon=True)
            runner.start()
            runner.join(timeout=300)
            assert not runner.is_alive(), "the fit hung after a worker was killed"
            got = fitted["model"]
            assert victim not in c.run(os.getpid).values()   # it really died
    finally:
        cluster.close()
    assert len(passes) > 6
    for name in ("weights_", "means_", "covariances_"):
        assert close(getattr(got, name), getattr(ref, name)), name
    assert close(got.lower_bounds_, ref.lower_bounds_)


def test_fastem_works_without_dask_installed():
    """With dask and distributed blocked at import (as when the extra is not installed),
    fastem imports and fits NumPy data; nothing asks for dask."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent("""
        import importlib.abc, sys
        class _NoDask(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed"):
                    raise ImportError(f"No module named {name!r} (blocked by the test)")
        sys.meta_path.insert(0, _NoDask())
        import numpy as np
        from fastem import BernoulliMixture, GaussianMixture, KMeans
        X = np.random.RandomState(0).randn(300, 3)
        KMeans(3, random_state=0).fit(X).predict(X)
        GaussianMixture(2, random_state=0).fit(X).score(X)
        BernoulliMixture(2, random_state=0).fit(X > 0).predict(X > 0)
        assert not any(m.split(".")[0] in ("dask", "distributed") for m in sys.modules)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_both_kinds_of_pass_give_the_same_bits(client):
    """A pass run as one task per worker thread (tables added on the client) and one run as
    one task per block (group sums on the cluster) add the same tables in the same tree."""
    from fastem.models.kmeans import LloydStatistics
    X, w = blobs(n=8000, d=4, seed=13)
    with client.as_current():
        source = DaskSource(da.from_array(X, chunks=500), w, _KMeans._validate)
        statistics = LloydStatistics(X[:5].copy(), None)
        per_block = source.sum_chunks(statistics)          # the first pass of its kind
        assert LloydStatistics in source._table_bytes      # ... learns its tables are small
        batched = source.sum_chunks(statistics)
        calls = []
        real = source._thread_runs
        source._thread_runs = lambda: calls.append(1) or real()
        again = source.sum_chunks(statistics)
        assert calls   # the batched path ran
    for a, b, c in zip(per_block, batched, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
