"""KMeans(algorithm=...): the bound-based method is Lloyd, iteration by iteration; the rest of
scikit-learn's KMeans surface (callable init, copy_x, output names, set_output, warnings).

References: the Lloyd path (every row searched each iteration), the NumPy Lloyd loop of
``tests/naive.py`` and scikit-learn's KMeans from the same initial centres.
"""
import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastem import ChunkedArray, KMeans
from fastem.models.kmeans import (ElkanKMeansModel, HamerlyKMeansModel, KMeansModel,
                                  YinyangKMeansModel, choose_algorithm, yinyang_group_size,
                                  BOUNDED_MIN_ROWS_PER_CLUSTER)
from fastem.sources import ArraySource, as_source

from . import naive


def blobs(n, d, k, dtype, seed=0, spread=3.0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=spread, size=(k, d))
    X = centres[rng.randint(k, size=n)] + rng.normal(size=(n, d))
    return np.ascontiguousarray(X, dtype=dtype)


def first_rows(X, k, seed=1):
    rows = np.sort(np.random.RandomState(seed).choice(len(X), k, replace=False))
    return np.ascontiguousarray(X[rows])


def run_models(X, init, w, n_iter, bounded_model=HamerlyKMeansModel):
    """Both models stepped side by side: per-iteration labels, statistics and objectives."""
    source = ArraySource(X, w)
    lloyd, bounded = KMeansModel(source, len(init), init), bounded_model(source, len(init), init)
    c1, c2 = lloyd.initialize(source, None), bounded.initialize(source, None)
    history = []
    for _ in range(n_iter):
        s1, s2 = lloyd.e_step(source, c1), bounded.e_step(source, c2)
        labels = lloyd.labels.copy(), bounded.labels.copy()
        c1, c2 = lloyd.m_step(source, c1, s1), bounded.m_step(source, c2, s2)
        # a bounded model's statistics hold until its next e_step (running sums)
        history.append((*labels, s1, copy.deepcopy(s2)))
        if s1.n_changed == 0 and s1.relocated == 0:
            break
    return history, c1, c2


CASES = [  # (n, d, k, dtype, weighted)
    (6000, 8, 2, np.float64, False),
    (6000, 8, 16, np.float32, True),
    (9000, 24, 64, np.float64, True),
    (9000, 24, 64, np.float32, False),
    (5000, 5, 300, np.float64, True),
    (4100, 16, 1024, np.float64, False),
    (4100, 16, 1024, np.float32, True),
    (5000, 72, 16, np.float64, True),      # 576-byte rows: searched after a sub-block sweep
]


@pytest.mark.parametrize("n, d, k, dtype, weighted", CASES)
def test_bounded_iterations_equal_lloyds(n, d, k, dtype, weighted):
    X = blobs(n, d, max(2, k // 4), dtype, seed=k)
    w = np.random.RandomState(2).uniform(0.0, 3.0, n) if weighted else None
    if weighted:
        w[::17] = 0.0
    history, c1, c2 = run_models(X, first_rows(X, k), w, 40)
    assert_same_iterations(history, c1, c2)


GROUP_CASES = [  # (n, d, k, dtype, weighted): group size from yinyang_group_size
    (6000, 12, 37, np.float64, True),      # 3 groups, the last one with padding columns
    (9000, 24, 64, np.float32, False),
    (5000, 5, 300, np.float64, True),      # 9 groups (the memory cap), 34 centres each
    (4100, 16, 1024, np.float64, False),
    (4100, 16, 1024, np.float32, True),    # 15 groups (the cap) of 69: not whole panels
    (5000, 160, 40, np.float32, True),     # 640-byte rows, swept once for all groups
]


@pytest.mark.parametrize("n, d, k, dtype, weighted", GROUP_CASES)
def test_group_bounded_iterations_equal_lloyds(n, d, k, dtype, weighted):
    assert yinyang_group_size(k, d, np.dtype(dtype).itemsize) > 0
    X = blobs(n, d, max(2, k // 4), dtype, seed=k + 1)
    w = np.random.RandomState(2).uniform(0.0, 3.0, n) if weighted else None
    if weighted:
        w[::17] = 0.0
    history, c1, c2 = run_models(X, first_rows(X, k), w, 40, YinyangKMeansModel)
    assert sum(s1.n_changed for _, _, s1, _ in history[3:]) > 0, "nothing moved late"
    assert_same_iterations(history, c1, c2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_group_bounds_hold_after_every_pass(dtype):
    """After every Yinyang pass (full or bounded), each row's upper bound is at least its
    distance to its centre and its bound for each group at most its distance to every centre
    of that group but its own: NumPy float64 distances to the centres rounded to X's dtype.
    Not vacuous: bounded passes ran, the full pass's bounds are within 10%, and most
    bounds rule their group out."""
    X = blobs(4000, 20, 24, dtype, seed=9)
    k = 96
    source = ArraySource(X, None)
    model = YinyangKMeansModel(source, k, first_rows(X, k, seed=3))
    centers = model.initialize(source, None)
    order, group_start = model.bound_layout
    group_of = np.empty(k, int)
    for g in range(len(group_start) - 1):
        group_of[order[group_start[g]:group_start[g + 1]]] = g
    assert len(group_start) - 1 >= 3
    rows = np.arange(len(X))
    bounded, close, ruled_out = 0, [], []
    for it in range(30):
        stats = model.e_step(source, centers)
        c = centers.astype(dtype).astype(np.float64)
        D = np.sqrt(naive.sqdist_to_centers(X.astype(np.float64), c))
        labels = model.labels
        np.testing.assert_array_equal(labels, D.argmin(axis=1))
        assert (model.upper >= D[rows, labels]).all(), it
        D[rows, labels] = np.inf
        group_min = np.stack([D[:, group_of == g].min(axis=1)
                              for g in range(len(group_start) - 1)], axis=1)
        finite = np.isfinite(group_min)
        assert (model.lower[finite] <= group_min[finite]).all(), it
        close.append(np.mean(model.lower[finite] >= 0.9 * group_min[finite]))
        ruled_out.append(np.mean(model.lower > model.upper[:, None]))
        bounded += model.bounded_passes is not None and model.bounded_passes > 0
        centers = model.m_step(source, centers, stats)
        if stats.n_changed == 0:
            break
    # a full pass makes every bound tight; later most bounds rule their group out
    assert bounded >= 3 and close[0] > 0.99 and np.median(ruled_out) > 0.5, (
        bounded, close, ruled_out)


def test_group_search_breaks_ties_like_lloyd():
    """Identical centres in different groups: the smaller index wins (Lloyd's rule), though
    its group is scored after the other's; the bound for the twin's group is 0."""
    from fastem.kernels import group_bounded_full_step, nearest_centers
    rng = np.random.RandomState(4)
    for dtype in (np.float64, np.float32):
        C = rng.normal(size=(40, 6)).astype(dtype)
        C[33] = C[2]
        C[20] = C[7]
        X = np.ascontiguousarray(np.vstack([C[[2, 7, 33]], rng.normal(size=(500, 6))]),
                                 dtype=dtype)
        # groups: [20..39] first (holding 20 and 33), then [0..19]
        order = np.r_[np.arange(20, 40), np.arange(20)].astype(np.int64)
        group_start = np.array([0, 20, 40], np.int64)
        labels = np.full(len(X), -1, np.int32)
        upper, lower = np.empty(len(X), np.float32), np.empty((len(X), 2), np.float32)
        group_bounded_full_step(X, np.ones(len(X)), C, order, group_start, labels, upper,
                                lower)
        expected = np.empty(len(X), np.int32)
        nearest_centers(X, C, expected, np.empty(len(X)))
        np.testing.assert_array_equal(labels, expected)
        assert list(labels[:3]) == [2, 7, 2]
        np.testing.assert_array_equal(labels, naive.sqdist_to_centers(X, C).argmin(axis=1))
        assert (lower[:3, 0] == 0).all()   # the tied twin sits in the first group


def test_group_kernels_reject_an_empty_group():
    from fastem.kernels import group_bounded_full_step
    X = blobs(100, 4, 3, np.float64)
    C = np.ascontiguousarray(X[:8])
    for group_start in ([0, 4, 4, 8], [0, 4, 9]):
        with pytest.raises(ValueError, match="group_start"):
            group_bounded_full_step(X, np.ones(100), C, np.arange(8, dtype=np.int64),
                                    np.array(group_start, np.int64), np.zeros(100, np.int32),
                                    np.empty(100, np.float32), np.empty((100, 3), np.float32))


def test_balanced_groups():
    """Groups of at most the requested size, none empty, each centre once, in increasing
    index within a group, the same for the same centres; far-apart clusters of centres
    are found as groups."""
    from fastem.models.kmeans import balanced_groups
    rng = np.random.RandomState(0)
    far = np.repeat(rng.normal(scale=100.0, size=(4, 5)), 32, axis=0)
    C = far + rng.normal(size=far.shape)
    perm = rng.permutation(len(C))
    order, group_start = balanced_groups(C[perm], 32, 5)
    assert list(group_start) == [0, 32, 64, 96, 128]
    assert sorted(order) == list(range(128))
    for g in range(4):
        members = order[group_start[g]:group_start[g + 1]]
        assert (np.diff(members) > 0).all()
        assert len(set(perm[members] // 32)) == 1     # one cluster per group
    order2, start2 = balanced_groups(C[perm[:100]], 32, 5)
    sizes = np.diff(start2)
    assert len(sizes) <= 4 and (sizes > 0).all() and (sizes <= 32).all()
    assert sorted(order2) == list(range(100)) and start2[-1] == 100
    again = balanced_groups(C[perm[:100]], 32, 5)
    assert np.array_equal(again[0], order2) and np.array_equal(again[1], start2)


@pytest.mark.parametrize("model", [HamerlyKMeansModel, YinyangKMeansModel])
@pytest.mark.parametrize("fraction, resum", [(0.0, 32), (1.1, 3)])
def test_full_pass_schedule_keeps_lloyds_iterations(monkeypatch, fraction, resum, model):
    # fraction 0: a full pass after every bounded one; 1.1: never for the scored fraction,
    # but a re-sum every 3 bounded passes
    import fastem.models.kmeans as kmeans_models
    monkeypatch.setattr(kmeans_models, "FULL_PASS_FRACTION", fraction)
    monkeypatch.setattr(kmeans_models, "RESUM_EVERY", resum)
    X = blobs(6000, 12, 32, np.float64, seed=5)
    history, c1, c2 = run_models(X, first_rows(X, 128), None, 30, model)
    assert len(history) > 8
    assert_same_iterations(history, c1, c2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d, k", [(8, 2), (33, 2), (8, 5), (16, 37), (130, 512)])
def test_full_pass_bounds_hold(dtype, d, k):
    # upper >= ||x - c_label|| and lower <= the distance to every other centre (float64
    # distances to the centres rounded to X's dtype), for every search tile's top-2
    from fastem.kernels import bounded_full_step
    X = blobs(3000, d, 4, dtype, seed=d + k)
    C = first_rows(X, k, seed=k)
    labels = np.full(len(X), -1, np.int32)
    upper, lower = np.empty(len(X), np.float32), np.empty(len(X), np.float32)
    bounded_full_step(X, np.ones(len(X)), C, labels, upper, lower)
    D = np.sqrt(naive.sqdist_to_centers(X, C))
    rows = np.arange(len(X))
    np.testing.assert_array_equal(labels, D.argmin(axis=1))
    assert (upper >= D[rows, labels]).all()
    D[rows, labels] = np.inf
    assert (lower <= D.min(axis=1)).all()
    # and not vacuous: most lower bounds are within 1% of the runner-up's distance
    assert np.mean(lower >= 0.99 * D.min(axis=1)) > 0.9


def test_bounded_full_step_from_user_njit_equals_python_call():
    # a public parallel kernel: its compiled body (the prange loop with its set-up and
    # fold steps) must type-check for a user's @njit caller and give the Python call's
    # outputs (no screen at k = 5, so bit for bit, bounds included)
    from numba import njit

    from fastem.kernels import bounded_full_step

    @njit
    def user(X, w, C, labels, upper, lower):
        return bounded_full_step(X, w, C, labels, upper, lower)

    X = blobs(5000, 6, 5, np.float64, seed=3)
    C = first_rows(X, 5)
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    outs = []
    for call in (bounded_full_step, user):
        labels = np.full(len(X), -1, np.int32)
        upper, lower = np.empty(len(X), np.float32), np.empty(len(X), np.float32)
        sums, moments, changed = call(X, w, C, labels, upper, lower)
        outs.append((labels, upper, lower, sums, moments, changed))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_bounded_and_group_steps_from_user_njit_equal_python_calls():
    # the other public parallel kernels of the bounded methods: a full pass that builds the
    # bounds, then a pass after the centres moved, compiled into a user's @njit function
    # (their prange bodies with set-up and fold steps) and called from Python: the same
    # labels, bounds, sums, moments and counts bit for bit (k = 6: no float64 screen)
    from numba import njit

    from fastem.kernels import (bounded_full_step, bounded_step, group_bounded_full_step,
                                group_bounded_step)

    @njit
    def user_hamerly(X, w, C, C2, labels, upper, lower):
        drift = np.sqrt(((C2 - C) ** 2).sum(axis=1))
        sums, moments, changed = bounded_full_step(X, w, C, labels, upper, lower)
        shift = C.astype(np.float64)
        counts = bounded_step(X, w, C2, drift, shift, labels, upper, lower, sums, moments)
        return sums, moments, changed, counts

    @njit
    def user_yinyang(X, w, C, C2, order, group_start, labels, upper, lower):
        drift = np.sqrt(((C2 - C) ** 2).sum(axis=1))
        sums, moments, changed = group_bounded_full_step(X, w, C, order, group_start, labels,
                                                         upper, lower)
        shift = C.astype(np.float64)
        counts = group_bounded_step(X, w, C2, drift, shift, order, group_start, labels, upper,
                                    lower, sums, moments)
        return sums, moments, changed, counts

    X = blobs(5000, 6, 6, np.float64, seed=4)
    C = first_rows(X, 6)
    C2 = C + 0.05 * np.random.default_rng(4).standard_normal(C.shape)
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(X))
    order, group_start = np.arange(6, dtype=np.int64), np.array([0, 3, 6], dtype=np.int64)
    assert_compiled_passes_equal_python(
        lambda *b: python_passes(bounded_full_step, bounded_step, (X, w), (), C, C2, *b),
        lambda *b: user_hamerly(X, w, C, C2, *b), len(X), (len(X),))
    assert_compiled_passes_equal_python(
        lambda *b: python_passes(group_bounded_full_step, group_bounded_step, (X, w),
                                 (order, group_start), C, C2, *b),
        lambda *b: user_yinyang(X, w, C, C2, order, group_start, *b), len(X), (len(X), 2))


def python_passes(full, step, rows, groups, C, C2, labels, upper, lower):
    """A bounded method's full pass from centres C, then its bounded pass after they moved
    to C2, called from Python: ``full(*rows, C, *groups, labels, upper, lower)`` and
    ``step(*rows, C2, drift, shift, *groups, labels, upper, lower, sums, moments)`` (rows:
    X and its weights, dense or CSR; groups: Yinyang's order and group starts, or none).
    Returns ``(sums, moments, n_changed, (n_changed, n_scored))``."""
    drift = np.sqrt(((C2 - C) ** 2).sum(axis=1))
    sums, moments, changed = full(*rows, C, *groups, labels, upper, lower)
    shift = C.astype(np.float64)
    counts = step(*rows, C2, drift, shift, *groups, labels, upper, lower, sums, moments)
    return sums, moments, changed, counts


def assert_compiled_passes_equal_python(python_passes, compiled_passes, n, lower_shape):
    """Run a full and a bounded pass from Python and from a user's @njit function, each on
    fresh labels and bounds (``passes(labels, upper, lower) -> (sums, moments, n_changed,
    (n_changed, n_scored))``): the second pass must move and search rows, and every output
    must be the same bit for bit."""
    outs = []
    for run in (python_passes, compiled_passes):
        labels = np.full(n, -1, np.int32)
        upper, lower = np.empty(n, np.float32), np.empty(lower_shape, np.float32)
        outs.append((labels, upper, lower) + tuple(run(labels, upper, lower)))
    assert outs[0][6][0] > 0 and outs[0][6][1] > 0
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ["hamerly", "yinyang"])
def test_bounded_fit_on_data_beyond_float32_range_equals_lloyd(algorithm):
    # distances past float32's largest value: the stored (float32) lower bounds must stay
    # finite bounds, not +inf (which separated every row: two passes, wrong labels)
    X = np.random.default_rng(0).standard_normal((3000, 8)) * 1e60
    lloyd = KMeans(20, init=X[:20], n_init=1, algorithm="lloyd", max_iter=20).fit(X)
    bounded = KMeans(20, init=X[:20], n_init=1, algorithm=algorithm, max_iter=20).fit(X)
    assert bounded.n_iter_ == lloyd.n_iter_
    np.testing.assert_array_equal(bounded.labels_, lloyd.labels_)
    np.testing.assert_allclose(bounded.cluster_centers_, lloyd.cluster_centers_, rtol=1e-10)


def assert_same_iterations(history, c1, c2):
    for it, (l1, l2, s1, s2) in enumerate(history):
        assert np.array_equal(l1, l2), f"labels differ at iteration {it + 1}"
        assert s1.n_changed == s2.n_changed
        np.testing.assert_allclose(s2.sums, s1.sums, rtol=1e-10, atol=1e-10 * np.abs(s1.sums).max())
        np.testing.assert_allclose(s2.weights, s1.weights, rtol=1e-10, atol=1e-9)
        assert s2.inertia == pytest.approx(s1.inertia, rel=1e-10)
    np.testing.assert_allclose(c2, c1, rtol=1e-10, atol=1e-12 * np.abs(c1).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_estimators_agree_with_numpy_lloyd(dtype):
    X = blobs(3000, 12, 20, dtype, seed=5)
    w = np.random.RandomState(3).uniform(0.5, 2.0, len(X))
    init = first_rows(X, 40)
    centers, labels, inertia, n_iter = naive.lloyd(X, init, w, tol=1e-4)
    fits = {a: KMeans(40, init=init, algorithm=a).fit(X, sample_weight=w)
            for a in ("lloyd", "hamerly", "yinyang", "elkan", "auto")}
    for name, km in fits.items():
        assert km.n_iter_ == n_iter, name
        assert np.array_equal(km.labels_, labels), name
        np.testing.assert_allclose(km.cluster_centers_, centers.astype(dtype),
                                   rtol=1e-5 if dtype == np.float32 else 1e-10, err_msg=name)
        assert km.inertia_ == pytest.approx(inertia, rel=1e-5 if dtype == np.float32 else 1e-10)
    ref = fits["lloyd"]
    for name in ("hamerly", "yinyang"):
        np.testing.assert_allclose(fits[name].cluster_centers_, ref.cluster_centers_,
                                   rtol=1e-10 if dtype == np.float64 else 0)
        assert fits[name].inertia_ == pytest.approx(ref.inertia_, rel=1e-10)


@pytest.mark.parametrize("algorithm, model", [("hamerly", HamerlyKMeansModel),
                                              ("yinyang", YinyangKMeansModel)])
def test_empty_cluster_relocation_matches_lloyd(algorithm, model):
    X = blobs(4000, 10, 6, np.float64, seed=7)
    init = np.vstack([first_rows(X, 30), np.full((2, 10), 1e3)])  # two centres nobody picks
    a = KMeans(32, init=init, algorithm="lloyd").fit(X)
    b = KMeans(32, init=init, algorithm=algorithm).fit(X)
    history, _, _ = run_models(X, init, None, 60, model)
    assert any(s1.relocated for _, _, s1, _ in history), "no relocation happened"
    for l1, l2, s1, s2 in history:
        assert s1.relocated == s2.relocated and np.array_equal(l1, l2)
    assert a.n_iter_ == b.n_iter_
    assert np.array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-10)


@pytest.mark.parametrize("algorithm", ["hamerly", "yinyang"])
def test_bounded_fit_on_a_chunked_source_equals_in_memory(algorithm):
    X = blobs(7000, 16, 24, np.float64, seed=3)
    init = first_rows(X, 48)
    a = KMeans(48, init=init, algorithm=algorithm).fit(X)
    chunks = [X[i:i + 1500] for i in range(0, len(X), 1500)]
    b = KMeans(48, init=init, algorithm=algorithm).fit(ChunkedArray(chunks))
    assert a.n_iter_ == b.n_iter_
    assert np.array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-10)


def test_same_fixed_point_as_scikit_learn_elkan():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    X = blobs(5000, 16, 30, np.float64, seed=11)
    init = first_rows(X, 48)
    ours = KMeans(48, init=init, algorithm="hamerly", tol=0).fit(X)
    theirs = sklearn_cluster.KMeans(48, init=init, n_init=1, algorithm="elkan", tol=0).fit(X)
    assert np.array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-9)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)


def test_auto_rule():
    def source(k, d, dtype, per_cluster=BOUNDED_MIN_ROWS_PER_CLUSTER):
        # per_cluster * k rows: by default the fewest for which 'auto' considers bounds
        return ArraySource(np.zeros((per_cluster * k, d), dtype), None)
    assert choose_algorithm("auto", 64, source(64, 16, np.float64)) == "hamerly"
    assert choose_algorithm("auto", 64, source(64, 16, np.float32)) == "hamerly"
    assert choose_algorithm("auto", 8, source(8, 32, np.float64)) == "lloyd"    # few clusters
    assert choose_algorithm("auto", 16, source(16, 8, np.float64)) == "lloyd"    # k d < 256
    assert choose_algorithm("auto", 512, source(512, 1, np.float32)) == "lloyd"   # bounds > X
    assert choose_algorithm("auto", 512, source(512, 2, np.float32)) == "hamerly"
    assert choose_algorithm("elkan", 8, source(8, 2, np.float64)) == "hamerly"
    # one row per cluster too few: Lloyd, whatever the rest says
    few = BOUNDED_MIN_ROWS_PER_CLUSTER - 1
    assert choose_algorithm("auto", 64, source(64, 16, np.float64, few)) == "lloyd"
    assert choose_algorithm("auto", 1024, source(1024, 8, np.float64, few)) == "lloyd"
    assert choose_algorithm("yinyang", 1024, source(1024, 8, np.float64, few)) == "yinyang"
    # Yinyang from 64 clusters and the class's bytes of centres (64 KiB on AVX-512, 16 KiB
    # on the others)
    from fastem.kernels._target import SIMD_CLASS, YINYANG_MIN_TABLE_BYTES
    assert YINYANG_MIN_TABLE_BYTES == (65536 if SIMD_CLASS == "avx512" else 16384)
    d = YINYANG_MIN_TABLE_BYTES // (256 * 8)
    assert choose_algorithm("auto", 256, source(256, d, np.float64)) == "yinyang"
    assert choose_algorithm("auto", 256, source(256, d, np.float32)) == "hamerly"
    assert choose_algorithm("auto", 256, source(256, d - 1, np.float64)) == "hamerly"
    assert choose_algorithm("auto", 1024, source(1024, 8, np.float64)) == "yinyang"
    assert choose_algorithm("auto", 32, source(32, 512, np.float64)) == "hamerly"
    from fastem.kernels._simd import SEARCH_BYTES
    panel = SEARCH_BYTES[2] // 8    # a group holds at least a panel of the widest tile
    assert choose_algorithm("yinyang", panel, source(panel, 32, np.float64)) == "hamerly"
    assert choose_algorithm("yinyang", 40, source(40, 32, np.float64)) == "yinyang"
    assert choose_algorithm("yinyang", 400, source(400, 1, np.float64)) == "hamerly"  # memory
    sp = pytest.importorskip("scipy.sparse")
    rows = sp.random(BOUNDED_MIN_ROWS_PER_CLUSTER * 512, 2000, density=0.05, format="csr",
                     random_state=0)   # 1.2 kB/row
    assert choose_algorithm("auto", 64, ArraySource(rows, None)) == "elkan"   # 256 B bounds
    assert choose_algorithm("auto", 512, ArraySource(rows, None)) == "hamerly"
    assert choose_algorithm("elkan", 8, ArraySource(rows, None)) == "elkan"
    assert choose_algorithm("yinyang", 64, ArraySource(rows, None)) == "elkan"
    assert choose_algorithm("yinyang", 512, ArraySource(rows, None)) == "hamerly"
    just_short = ArraySource(rows[:BOUNDED_MIN_ROWS_PER_CLUSTER * 64 - 1], None)
    assert choose_algorithm("auto", 64, just_short) == "lloyd"
    assert choose_algorithm("lloyd", 512, source(512, 32, np.float64)) == "lloyd"


def test_bad_algorithm():
    X = blobs(200, 4, 3, np.float64)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        KMeans(3, algorithm="full").fit(X)


def test_elkan_with_one_cluster_warns_like_scikit_learn():
    X = blobs(200, 4, 3, np.float64)
    with pytest.warns(RuntimeWarning, match="single cluster"):
        km = KMeans(1, algorithm="elkan").fit(X)
    np.testing.assert_allclose(km.cluster_centers_[0], X.mean(axis=0))


def test_explicit_init_with_several_restarts_warns():
    X = blobs(300, 4, 3, np.float64)
    init = first_rows(X, 3)
    with pytest.warns(RuntimeWarning, match="performing only one init"):
        km = KMeans(3, init=init, n_init=5).fit(X)
    assert km.n_iter_ >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(3, init=init).fit(X)   # n_init='auto' means one run: no warning


def test_callable_init():
    X = blobs(500, 6, 4, np.float64)
    calls = []

    def init(data, n_clusters, random_state):
        calls.append((data, n_clusters, random_state))
        return data[random_state.choice(len(data), n_clusters, replace=False)]

    km = KMeans(4, init=init, random_state=0).fit(X)
    assert len(calls) == 10                      # 'auto' restarts for a callable: 10
    assert np.shares_memory(calls[0][0], X) and calls[0][1] == 4   # validated X, no copy
    assert isinstance(calls[0][2], np.random.RandomState)
    again = KMeans(4, init=init, random_state=0).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, again.cluster_centers_)
    assert KMeans(4, init=init, n_init=1, random_state=0).fit(X).n_iter_ >= 1
    with pytest.raises(ValueError, match="returned by init has shape"):
        KMeans(4, init=lambda X, k, random_state: X[:3]).fit(X)


def test_copy_x_is_accepted_and_x_is_never_modified():
    X = blobs(400, 5, 3, np.float64) + 100.0
    before = X.copy()
    for copy_x in (True, False):
        KMeans(3, copy_x=copy_x, random_state=0).fit(X)
        np.testing.assert_array_equal(X, before)
    assert KMeans(copy_x=False).get_params()["copy_x"] is False


def test_feature_names_out_and_set_output():
    X = blobs(300, 4, 3, np.float64)
    km = KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.get_feature_names_out(), ["kmeans0", "kmeans1", "kmeans2"])
    assert km.get_feature_names_out().dtype == object
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=list("abcd"), index=np.arange(300) + 1000)
    out = KMeans(3, random_state=0).set_output(transform="pandas").fit(frame).transform(frame)
    assert list(out.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    assert (out.index == frame.index).all()
    np.testing.assert_allclose(out.to_numpy(), km.transform(X))
    with pytest.raises(ValueError, match="transform must be"):
        km.set_output(transform="arrow")


def test_column_transformer_and_set_output():
    compose = pytest.importorskip("sklearn.compose")
    pd = pytest.importorskip("pandas")
    from sklearn.base import clone
    X = blobs(300, 4, 3, np.float64)
    frame = pd.DataFrame(X, columns=list("abcd"))
    ct = compose.ColumnTransformer([("km", KMeans(3, random_state=0), ["a", "b", "c"]),
                                    ("keep", "passthrough", ["d"])])
    ct.set_output(transform="pandas")
    out = ct.fit_transform(frame)
    assert list(out.columns) == ["km__kmeans0", "km__kmeans1", "km__kmeans2", "keep__d"]
    expected = KMeans(3, random_state=0).fit(X[:, :3]).transform(X[:, :3])
    np.testing.assert_allclose(out.iloc[:, :3].to_numpy(), expected)
    cloned = clone(KMeans(3).set_output(transform="pandas"))
    assert cloned._sklearn_output_config == {"transform": "pandas"}


# ----------------------------------------------------------------- pruned k-means++ seeding

def unpruned_kmeans_plusplus(X, w, k, rng):
    """Greedy k-means++ as fastem ran it before pruning, from the public unpruned kernels
    (each checked against its NumPy twin in test_kernels.py): every candidate's potential
    over every row, every row updated for every new centre."""
    from fastem.kernels import (draw_by_potential, kmeanspp_potentials,
                                potential_block_sums, update_min_sqdist)
    n = len(X)
    m = 2 + int(np.log(k))
    sums = np.empty((n + 2047) // 2048)

    def draw(closest, n_draws):
        potential_block_sums(w, closest, sums)
        targets = rng.uniform(size=n_draws) * np.cumsum(sums)[-1]
        out = np.empty(n_draws, dtype=np.int64)
        draw_by_potential(w, closest, sums, targets, out)
        return out

    ids = [int(draw(np.ones(n), 1)[0])]
    closest = np.full(n, np.inf)
    update_min_sqdist(X, X[ids[0]], closest)
    potentials = np.empty(m)
    for _ in range(1, k):
        cand = draw(closest, m)
        kmeanspp_potentials(X, w, np.ascontiguousarray(X[cand]), closest, potentials)
        ids.append(int(cand[np.argmin(potentials)]))
        update_min_sqdist(X, X[ids[-1]], closest)
    return np.array(ids)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, d, k", [(5000, 4, 8), (8000, 16, 64), (3000, 8, 700),
                                     (6000, 24, 64), (3000, 48, 300), (4000, 100, 64),
                                     (5000, 64, 400)])
def test_pruned_seeding_chooses_todays_centres(n, d, k, dtype):
    """Plain passes at low d or few centres, pruned ones from d >= 12 with k >= 16 and at
    d >= 96 (in memory: with the kept improving rows where they fit; chunked: updates from
    X)."""
    from fastem.models.kmeans import kmeans_plusplus
    X = blobs(n, d, 12, dtype, seed=d)
    X[100:140] = X[99]                      # duplicates: D = 0 rows
    w = np.random.RandomState(4).uniform(0.0, 2.0, n)
    expected = unpruned_kmeans_plusplus(X, w, k, np.random.RandomState(7))
    centers, ids = kmeans_plusplus(X, w, k, np.random.RandomState(7))
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(centers, X[expected])
    for prune in (False, True):             # either path, whatever the rule picks
        np.testing.assert_array_equal(
            kmeans_plusplus(X, w, k, np.random.RandomState(7), prune=prune)[1], expected)
    chunked = as_source(ChunkedArray([X[i:i + 1700] for i in range(0, n, 1700)]), w,
                        KMeans._validate)
    np.testing.assert_array_equal(
        kmeans_plusplus(chunked, None, k, np.random.RandomState(7))[1], expected)


def test_pruned_seeding_kernels_equal_the_unpruned_ones_bitwise():
    from fastem.kernels import (kmeanspp_potentials, kmeanspp_potentials_kept,
                                potential_block_sums, seed_potentials, seed_potentials_kept,
                                seed_update, seed_update_kept, update_min_sqdist)
    X = blobs(9000, 6, 10, np.float64, seed=3)
    w = np.random.RandomState(0).uniform(0.1, 2.0, len(X))
    centers = np.ascontiguousarray(X[[5, 900, 4000, 7000]])
    closest, nearest = np.full(len(X), np.inf), np.zeros(len(X), np.int32)
    sums = np.empty(5)
    for c in range(len(centers)):
        gaps = ((centers[c] - centers[:max(c, 1)]) ** 2).sum(axis=1)
        seed_update(X, w, centers[c], c, gaps, closest, nearest, sums)
    reference = np.full(len(X), np.inf)
    for c in centers:
        update_min_sqdist(X, c, reference)
    ref_sums = np.empty(5)
    potential_block_sums(w, reference, ref_sums)
    assert closest.tobytes() == reference.tobytes() and sums.tobytes() == ref_sums.tobytes()
    np.testing.assert_array_equal(nearest, naive.nearest_centers(X, centers)[0])
    candidates = np.ascontiguousarray(X[[10, 2500, 8000]])
    gaps = ((centers[:, None, :] - candidates[None]) ** 2).sum(axis=-1)   # (centres, cands)
    ours, theirs = np.empty(3), np.empty(3)
    no_shadow = np.empty((0, X.shape[1]), np.float32), np.empty(0)
    seed_potentials(X, w, candidates, gaps, closest, nearest, ours, *no_shadow)
    kmeanspp_potentials(X, w, candidates, closest, theirs)
    assert ours.tobytes() == theirs.tobytes()
    # the variants that keep the improving rows: same potentials, the same lists as the
    # plain pass's (independently: the rows exactly closer, and their distances), and the
    # update from them is seed_update's, bit for bit
    nb = len(sums)
    exact = ((X[None, :, :] - candidates[:, None, :]) ** 2).sum(axis=-1)

    def lists():
        return np.empty((3, len(X)), np.int32), np.empty((3, len(X))), np.empty((3, nb), np.int64)

    kept, again = lists(), np.empty(3)
    seed_potentials_kept(X, w, candidates, gaps, closest, nearest, again, *kept, *no_shadow)
    assert again.tobytes() == theirs.tobytes()
    every, plain = lists(), np.empty(3)
    kmeanspp_potentials_kept(X, w, candidates, closest, plain, *every)
    assert plain.tobytes() == theirs.tobytes()
    for c in range(3):
        dense = naive.improved_dense(*(a[c] for a in kept), closest)
        assert dense.tobytes() == naive.improved_dense(*(a[c] for a in every), closest).tobytes()
        listed = np.isfinite(dense)
        assert listed.any() and not listed.all()
        clear = np.abs(exact[c] - closest) > 1e-9 * closest
        np.testing.assert_array_equal(listed[clear], (exact[c] < closest)[clear])
        np.testing.assert_allclose(dense[listed], exact[c][listed], rtol=1e-12)
    for best in range(3):
        c1, n1, s1 = closest.copy(), nearest.copy(), sums.copy()
        c2, n2, s2 = closest.copy(), nearest.copy(), sums.copy()
        seed_update(X, w, candidates[best], 4, gaps[:, best].copy(), c1, n1, s1)
        seed_update_kept(w, *(a[best] for a in kept), 4, c2, n2, s2)
        assert c1.tobytes() == c2.tobytes() and s1.tobytes() == s2.tobytes()
        np.testing.assert_array_equal(n1, n2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 3, 5, 8, 13, 17, 40])
def test_plain_seeding_distances_are_the_row_by_row_ones_bitwise(d, dtype):
    """The plain k-means++ passes and update take several rows at once, one per vector lane
    (``sqdist_rows``); the pruned passes and ``sqdist_to_centers`` one row at a time. Their
    distances must have the same bits (plain and pruned seedings choose the same centres),
    at every d (the helpers' chains, lanes and tails) and in the rows after a block's last
    full group (two blocks and 13 rows)."""
    from fastem.kernels import kmeanspp_potentials_kept, sqdist_to_centers, update_min_sqdist
    n, m = 2 * 2048 + 13, 3
    X = blobs(n, d, 5, dtype, seed=d)
    w = np.random.RandomState(d).uniform(0.5, 2.0, n)
    candidates = np.ascontiguousarray(X[[1, 700, n - 1]])
    one_by_one = np.empty((n, m))
    sqdist_to_centers(X, candidates, one_by_one)
    exact = ((X[:, None, :].astype(np.float64) - candidates[None].astype(np.float64)) ** 2
             ).sum(axis=-1)
    np.testing.assert_allclose(one_by_one, exact, rtol=1e-12, atol=1e-12 * exact.max())
    kept = np.empty((m, n), np.int32), np.empty((m, n)), np.empty((m, 3), np.int64)
    potentials = np.empty(m)   # no centre yet: every distance kept in place
    kmeanspp_potentials_kept(X, w, candidates, np.full(n, np.inf), potentials, *kept)
    assert kept[1].tobytes() == one_by_one.T.copy().tobytes()
    np.testing.assert_allclose(potentials, (w[:, None] * exact).sum(axis=0), rtol=1e-12)
    for c in range(m):
        closest = np.full(n, np.inf)
        update_min_sqdist(X, candidates[c], closest)
        assert closest.tobytes() == one_by_one[:, c].copy().tobytes()


@pytest.mark.parametrize("d", [64, 129])
@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (1e6, 1e-3), (0.0, 1e-40),
                                           (0.0, 1e-20), (-3e30, 1e25), (5.0, 0.0)])
def test_float32_shadow_never_skips_a_pair_that_improves(d, offset, scale):
    """The pruned potentials skip a pair when its distance on the float32 shadow proves that
    the float64 one is not below the row's closest distance. Rows are set a hair (2^-50
    relative) beside their exact distance to candidate 0, one in eight improving: potentials
    and kept lists must be those of the plain pass, bit for bit, at every scale (float32
    subnormals at 1e-40, a large offset with a small spread, values near 1e30). The other
    two candidates improve nothing, so the shadow stays in use (it is given up where many
    rows improve)."""
    from fastem.kernels import (float32_shadow, kmeanspp_potentials_kept,
                                seed_potentials, seed_potentials_kept)
    rng = np.random.RandomState(d)
    n, m = 5000, 3
    X = offset + scale * rng.standard_normal((n, d))
    X[7:20] = X[6]                                      # duplicates: distance 0
    candidates = np.ascontiguousarray(X[[6, 2100, 4000]])
    candidates[1:] += 10 * (scale or 1.0)               # too far to improve any row
    w = rng.uniform(0.5, 2.0, n)
    nb = -(-n // 2048)

    def lists():
        return np.empty((m, n), np.int32), np.empty((m, n)), np.empty((m, nb), np.int64)

    exact, plain = lists(), np.empty(m)   # with no centre yet: every distance, in place
    kmeanspp_potentials_kept(X, w, candidates, np.full(n, np.inf), plain, *exact)
    s64 = exact[1][0]                                   # the kernels' own float64 distances
    improving = rng.uniform(size=n) < 0.125
    closest = np.where(improving, s64 * (1 + 2.0 ** -50) + 1e-300, s64 * (1 - 2.0 ** -50))
    closest[7:20] = 1.0 if scale == 0.0 else closest[7:20]
    nearest = np.zeros(n, np.int32)
    gaps = np.zeros((1, m))                             # nothing pruned by the centre test
    shadow, norms = np.empty(X.shape, np.float32), np.empty(n)
    float32_shadow(X, shadow, norms)
    np.testing.assert_array_equal(shadow, X.astype(np.float32))
    np.testing.assert_allclose(norms, np.linalg.norm(X, axis=1), rtol=1e-14)
    reference, expected = lists(), np.empty(m)
    kmeanspp_potentials_kept(X, w, candidates, closest, expected, *reference)
    assert np.count_nonzero(naive.improved_dense(*(a[0] for a in reference), closest)
                            < np.inf) >= improving.sum() * 0.99
    no_shadow = np.empty((0, d), np.float32), np.empty(0)
    for shade in (no_shadow, (shadow, norms)):
        kept, ours, unkept = lists(), np.empty(m), np.empty(m)
        seed_potentials_kept(X, w, candidates, gaps, closest, nearest, ours, *kept, *shade)
        seed_potentials(X, w, candidates, gaps, closest, nearest, unkept, *shade)
        assert ours.tobytes() == expected.tobytes() and unkept.tobytes() == expected.tobytes()
        for c in range(m):
            assert (naive.improved_dense(*(a[c] for a in kept), closest).tobytes()
                    == naive.improved_dense(*(a[c] for a in reference), closest).tobytes())


def test_seeding_shadow_only_for_float64_rows_float32_can_hold():
    from fastem.models.kmeans import kmeans_plusplus, seeding_shadow
    X = blobs(3000, 64, 8, np.float64, seed=1)
    shadow, norms = seeding_shadow(ArraySource(X))
    assert shadow.shape == X.shape and norms.shape == (3000,)
    for other in (X.astype(np.float32), X[:, :32].copy(), sp.csr_matrix(X)):
        assert seeding_shadow(ArraySource(other))[0].shape[0] == 0
    assert seeding_shadow(as_source(ChunkedArray([X[:1500], X[1500:]]), None,
                                    KMeans._validate))[0].shape[0] == 0
    huge = X * 1e37                                     # beyond float32 once rounded
    assert seeding_shadow(ArraySource(huge))[0].shape[0] == 0
    expected = unpruned_kmeans_plusplus(huge, np.ones(3000), 50, np.random.RandomState(2))
    np.testing.assert_array_equal(
        kmeans_plusplus(huge, None, 50, np.random.RandomState(2), prune=True)[1], expected)


def test_seeding_keeps_candidate_distances_only_in_memory_and_within_x_size():
    from fastem.models.kmeans import keeps_candidate_distances
    X = np.zeros((100, 48))
    # room for m (float64 distance, int32 row) entries a row: 12 m bytes <= a row of X
    assert keeps_candidate_distances(ArraySource(X), 8)          # 96 B <= 384 B a row
    assert keeps_candidate_distances(ArraySource(X.astype(np.float32)), 16)   # 192 <= 192
    assert not keeps_candidate_distances(ArraySource(X.astype(np.float32)), 17)
    assert keeps_candidate_distances(ArraySource(np.zeros((100, 8))), 4)      # plain passes
    assert not keeps_candidate_distances(ArraySource(np.zeros((100, 8), np.float32)), 3)
    assert not keeps_candidate_distances(
        as_source(ChunkedArray([X[:50], X[50:]]), None, KMeans._validate), 2)
    assert not keeps_candidate_distances(ArraySource(sp.csr_matrix(X)), 2)


# --------------------------------------------------------------------------- sparse input

def sparse_blobs(n, d, density, k, dtype, seed=0):
    """TF-IDF-like CSR rows: each row draws most of its non-zeros from its cluster's columns."""
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.RandomState(seed)
    per_row = max(1, int(density * d))
    topics = [rng.choice(d, size=max(per_row * 3, 8), replace=False) for _ in range(k)]
    rows = []
    for i in range(n):
        own = rng.uniform(size=per_row) < 0.8
        rows.append(np.unique(np.where(own, rng.choice(topics[i % k], per_row),
                                       rng.randint(d, size=per_row))))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    cols = np.concatenate(rows)
    data = rng.exponential(size=len(cols)).astype(dtype)
    return sp.csr_matrix((data, cols, indptr), shape=(n, d))



SPARSE_CASES = [  # (n, d, density, k, dtype, weighted, bounded model)
    (3000, 400, 0.04, 64, np.float64, True, ElkanKMeansModel),
    (3000, 400, 0.04, 64, np.float32, False, ElkanKMeansModel),
    (2500, 300, 0.05, 200, np.float64, False, ElkanKMeansModel),
    (3000, 400, 0.04, 48, np.float64, True, HamerlyKMeansModel),
]


@pytest.mark.parametrize("n, d, density, k, dtype, weighted, model", SPARSE_CASES)
def test_sparse_bounded_iterations_equal_lloyds(n, d, density, k, dtype, weighted, model):
    # rows near several centres of their topic: Elkan's rows with a few open centres (one
    # pass scores them), with many (the whole search), and moved rows applied in row order
    X = sparse_blobs(n, d, density, max(2, k // 4), dtype, seed=k)
    w = np.random.RandomState(2).uniform(0.0, 3.0, n) if weighted else None
    if weighted:
        w[::17] = 0.0
    init = X[first_rows_index(n, k)].toarray()
    history, c1, c2 = run_models(X, init, w, 40, bounded_model=model)
    assert sum(s1.n_changed for _, _, s1, _ in history[3:]) > 0, "nothing moved late"
    assert_same_iterations(history, c1, c2)


def test_sparse_bounded_steps_from_user_njit_equal_python_calls():
    # the CSR kernels of Hamerly and Elkan, full pass then a pass after the centres moved,
    # compiled into a user's @njit function and called from Python: the same labels,
    # bounds, sums, moments and counts bit for bit
    from numba import njit

    from fastem.kernels import (bounded_full_step_csr, bounded_step_csr, elkan_full_step_csr,
                                elkan_step_csr)

    @njit
    def user_hamerly(data, indices, indptr, w, C, C2, labels, upper, lower):
        drift = np.sqrt(((C2 - C) ** 2).sum(axis=1))
        sums, moments, changed = bounded_full_step_csr(data, indices, indptr, w, C, labels,
                                                       upper, lower)
        shift = C.astype(np.float64)
        counts = bounded_step_csr(data, indices, indptr, w, C2, drift, shift, labels, upper,
                                  lower, sums, moments)
        return sums, moments, changed, counts

    @njit
    def user_elkan(data, indices, indptr, w, C, C2, labels, upper, lower):
        drift = np.sqrt(((C2 - C) ** 2).sum(axis=1))
        sums, moments, changed = elkan_full_step_csr(data, indices, indptr, w, C, labels, upper,
                                                     lower)
        shift = C.astype(np.float64)
        counts = elkan_step_csr(data, indices, indptr, w, C2, drift, shift, labels, upper,
                                lower, sums, moments)
        return sums, moments, changed, counts

    X = sparse_blobs(3000, 300, 0.05, 6, np.float64, seed=6)
    k = 12
    C = X[first_rows_index(X.shape[0], k)].toarray()
    C2 = C + 0.02 * np.random.RandomState(6).standard_normal(C.shape)
    w = np.random.RandomState(6).uniform(0.5, 2.0, X.shape[0])
    csr = (X.data, X.indices, X.indptr)
    n = X.shape[0]
    for full, step, user, lower_shape in (
            (bounded_full_step_csr, bounded_step_csr, user_hamerly, (n,)),
            (elkan_full_step_csr, elkan_step_csr, user_elkan, (n, k))):
        assert_compiled_passes_equal_python(
            lambda *b: python_passes(full, step, (*csr, w), (), C, C2, *b),
            lambda *b: user(*csr, w, C, C2, *b), n, lower_shape)


@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly", "yinyang", "elkan"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_fit_equals_dense_fit(dtype, algorithm):
    X = sparse_blobs(2500, 400, 0.03, 12, dtype)
    dense = X.toarray()
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    init = dense[first_rows_index(X.shape[0], 12)]
    a = KMeans(12, init=init, algorithm=algorithm).fit(X, sample_weight=w)
    b = KMeans(12, init=init, algorithm="lloyd").fit(dense, sample_weight=w)
    assert a.n_iter_ == b.n_iter_
    assert np.array_equal(a.labels_, b.labels_)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=rtol, atol=rtol)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=rtol)
    assert a.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(a.predict(X), b.predict(dense))
    np.testing.assert_allclose(a.transform(X), b.transform(dense), rtol=rtol, atol=rtol)
    assert a.score(X, sample_weight=w) == pytest.approx(b.score(dense, sample_weight=w), rel=rtol)
    # k-means++ on CSR picks the rows the dense seeding picks
    from fastem.models.kmeans import kmeans_plusplus
    np.testing.assert_array_equal(kmeans_plusplus(X, w, 12, np.random.RandomState(3))[1],
                                  kmeans_plusplus(dense, w, 12, np.random.RandomState(3))[1])


def test_csr_seeding_kernels_match_numpy():
    """seed_update_csr / seed_potentials_csr (all candidates in one pass over a row) against
    the formulas in NumPy: min distances, nearest centres and potentials."""
    from fastem.kernels import seed_potentials_csr, seed_update_csr
    rng = np.random.RandomState(5)
    X = sp.random(3000, 400, density=0.03, format="csr", random_state=rng) * 3.0
    X.data += 0.5
    dense = X.toarray()
    w = rng.uniform(0.1, 2.0, X.shape[0])
    centers = dense[[7, 1500, 2900]]
    closest, nearest = np.full(X.shape[0], np.inf), np.zeros(X.shape[0], np.int32)
    sums = np.empty(2)
    for c in range(len(centers)):
        gaps = ((centers[c] - centers[:max(c, 1)]) ** 2).sum(axis=1)
        seed_update_csr(X.data, X.indices, X.indptr, w, centers[c:c + 1], c, gaps, closest,
                        nearest, sums)
    d2 = ((dense[:, None, :] - centers[None]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(closest, d2.min(axis=1), rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(nearest, d2.argmin(axis=1))
    candidates = dense[[11, 900, 2000, 2500, 2999]]
    gaps = ((centers[:, None, :] - candidates[None]) ** 2).sum(axis=-1)
    ours = np.empty(len(candidates))
    seed_potentials_csr(X.data, X.indices, X.indptr, w, candidates, gaps, closest, nearest,
                        ours)
    to_candidates = ((dense[:, None, :] - candidates[None]) ** 2).sum(axis=-1)
    expected = (w[:, None] * np.minimum(closest[:, None], to_candidates)).sum(axis=0)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def first_rows_index(n, k, seed=1):
    return np.sort(np.random.RandomState(seed).choice(n, k, replace=False))


def test_sparse_fit_reaches_scikit_learns_fixed_point():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    X = sparse_blobs(3000, 2000, 0.01, 16, np.float64, seed=5)
    init = X[first_rows_index(X.shape[0], 16)].toarray()
    ours = KMeans(16, init=init, tol=0).fit(X)
    theirs = sklearn_cluster.KMeans(16, init=init, n_init=1, tol=0).fit(X)
    assert np.array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-9,
                               atol=1e-12)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)
    assert ours.n_iter_ == theirs.n_iter_


def test_sparse_formats_random_init_minibatch_and_errors():
    sp = pytest.importorskip("scipy.sparse")
    X = sparse_blobs(1200, 300, 0.05, 6, np.float64, seed=2)
    ref = KMeans(6, random_state=0).fit(X)
    for other in (X.tocsc(), X.tocoo(), sp.csr_array(X)):
        km = KMeans(6, random_state=0).fit(other)
        np.testing.assert_array_equal(km.labels_, ref.labels_)
    before = X.copy()
    KMeans(6, init="random", n_init=3, random_state=0).fit(X)
    assert (X != before).nnz == 0                                    # input untouched
    from fastem import MiniBatchKMeans
    mb = MiniBatchKMeans(6, batch_size=256, random_state=0).fit(X)
    assert mb.cluster_centers_.shape == (6, 300) and np.isfinite(mb.inertia_)
    dense_mb = MiniBatchKMeans(6, batch_size=256, random_state=0).fit(X.toarray())
    np.testing.assert_allclose(mb.cluster_centers_, dense_mb.cluster_centers_, rtol=1e-9,
                               atol=1e-12)
    online = MiniBatchKMeans(6, random_state=0)
    for start in range(0, X.shape[0], 400):
        online.partial_fit(X[start:start + 400])
    assert online.n_steps_ == 3 and np.isfinite(online.cluster_centers_).all()
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(6).fit(bad)
    with pytest.raises(ValueError, match="expecting 300 features"):
        ref.predict(X[:, :299])


@pytest.mark.parametrize("model", [HamerlyKMeansModel, ElkanKMeansModel])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bounded_csr_iterations_equal_lloyds(dtype, model):
    X = sparse_blobs(3000, 600, 0.03, 20, dtype, seed=4)
    w = np.random.RandomState(5).uniform(0.0, 2.0, X.shape[0])
    init = X[first_rows_index(X.shape[0], 40)].toarray()
    history, c1, c2 = run_models(X, init, w, 40, model)
    assert len(history) > 3 and any(h[2].n_changed for h in history[1:])
    assert_same_iterations(history, c1, c2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_elkan_bounds_hold_after_every_pass(dtype):
    """After every Elkan pass over CSR rows (full or bounded; a row scored against a few open
    centres takes every bound from the scores alone), each row's upper bound is at least
    its distance to its centre and each lower bound at most its distance to that centre:
    NumPy float64 distances to the centres rounded to X's dtype. Not vacuous: most rows
    were scored by bounded passes, and most bounds sit within 10% of the distance."""
    X = sparse_blobs(3000, 500, 0.04, 16, dtype, seed=6)
    k = 64
    source = ArraySource(X, None)
    model = ElkanKMeansModel(source, k, X[first_rows_index(X.shape[0], k)].toarray())
    centers = model.initialize(source, None)
    dense = X.toarray().astype(np.float64)
    rows = np.arange(X.shape[0])
    scored_passes, close = 0, []
    for it in range(25):
        stats = model.e_step(source, centers)
        c = centers.astype(dtype).astype(np.float64)
        D = np.sqrt(((dense[:, None, :] - c[None]) ** 2).sum(axis=-1))
        labels = model.labels
        np.testing.assert_array_equal(labels, D.argmin(axis=1))
        assert (model.upper >= D[rows, labels]).all(), it
        others = np.ones_like(D, dtype=bool)
        others[rows, labels] = False
        assert (model.lower[others] <= D[others]).all(), it
        close.append(np.mean(model.lower[others] >= 0.9 * D[others]))
        scored_passes += model.bounded_passes is not None and model.bounded_passes > 0
        centers = model.m_step(source, centers, stats)
        if stats.n_changed == 0:
            break
    assert scored_passes >= 3 and np.median(close) > 0.5, (scored_passes, close)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bounded_objective_matches_numpy(dtype):
    # sum_j Q_j + W_j ||c_j - m_j||^2 - 2 (c_j - m_j).(S_j - W_j m_j), written from the math;
    # any infinite or NaN sum is reported
    from fastem.kernels import bounded_objective
    rng = np.random.RandomState(4)
    centers = rng.normal(size=(37, 21)).astype(dtype)
    shift = centers + rng.normal(scale=1e-3, size=centers.shape)
    sums, moments = rng.normal(size=(37, 21)) * 50, rng.uniform(1, 9, size=(37, 2))
    offset = centers.astype(np.float64) - shift
    expected = (moments[:, 1].sum() + moments[:, 0] @ (offset ** 2).sum(axis=1)
                - 2.0 * (offset * (sums - moments[:, :1] * shift)).sum())
    inertia, finite = bounded_objective(centers, shift, sums, moments)
    assert finite and inertia == pytest.approx(expected, rel=1e-12)
    for bad in (np.inf, -np.inf, np.nan):
        broken = sums.copy()
        broken[30, 20] = bad
        assert not bounded_objective(centers, shift, broken, moments)[1]
