"""Every public kernel against its NumPy twin in tests/naive.py.

Shapes are chosen to hit the awkward paths: n = 2 * 2048 + 301 rows (several fixed row
blocks, the last one partial), d = 1 and d = 7, k = 5 (narrow SIMD tile) and k = 37 (wide tile,
not a multiple of the tile width, so padded centres are present), and d = 300 (a block
searched in sub-blocks). X is float32 or float64 and
either a writable C array or a read-only ``np.load(..., mmap_mode='r')`` memmap.
"""
import math
import pathlib
import re

import numba
import numpy as np
import pytest
from numba import njit, prange

import fastem.kernels as K
from fastem.kernels import (all_finite, column_mean_var, draw_by_potential, float32_shadow,
                            kmeanspp_potentials, kmeanspp_potentials_kept, lloyd_step,
                            nearest_centers, potential_block_sums, seed_potentials_kept,
                            seed_update_kept, sqdist_to_centers, update_min_sqdist)
from fastem.kernels._simd import (ROWS_PER_SQDIST, SEARCH_ROWS, axpy, axpy_sqdist,
                                  axpy_sqdist_short, dot, nearest_rows_deep, search_tile,
                                  sqdist, sqdist_rows, top2_rows_deep)
from fastem.kernels._target import DEEP_PANEL_CHUNK_BYTES
from fastem.kernels.csr_distances import csr_column_sums
from fastem.kernels.distances import screen_table, search_table, squared_row_distances

from . import naive

N_ROWS = 2 * 2048 + 301          # > 2048, not a multiple of the block size
#: (d, k): small k / k > 16 and not a multiple of 8 / rows long enough that the search runs in
#: sub-blocks of a block (``distances.search_sub_block_rows``: 54 rows in float64, 108 in
#: float32, each ending in a partial tile) / the few-centre search (``_simd.search_tile``
#: tile 3 where the class has it): k=1 (a padding centre) with d shorter than a vector, k=2
#: with a masked tail of one feature / centres past ``DEEP_MIN_BYTES`` in both dtypes (the
#: deep tile, tile 4, where the class has one)
SHAPES = [(1, 5), (7, 37), (300, 11), (3, 1), (33, 2), (130, 512)]
DTYPES = [np.float32, np.float64]
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
README_HEADING = "## Calling the kernels from your own Numba code"


def _make_data(dtype, d, k, seed):
    rng = np.random.RandomState(seed)
    X = (rng.normal(size=(N_ROWS, d)) * 3 + rng.uniform(-2, 2, size=d)).astype(dtype)
    centers = (rng.normal(size=(k, d)) * 3).astype(dtype)
    w = rng.uniform(0.1, 4.0, size=N_ROWS)
    w[::97] = 0.0                                     # zero weights are legal
    w[5] = 17.0
    return X, centers, w


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{(dtype, d, k, readonly): (X, centers, w)}; read-only X comes from an .npy memmap."""
    root = tmp_path_factory.mktemp("kernel-data")
    out = {}
    for dtype in DTYPES:
        for d, k in SHAPES:
            X, centers, w = _make_data(dtype, d, k, seed=d * 100 + k)
            out[dtype, d, k, False] = (X, centers, w)
            path = root / f"X-{np.dtype(dtype).name}-{d}-{k}.npy"
            np.save(path, X)
            Xro = np.load(path, mmap_mode="r")
            assert not Xro.flags.writeable and Xro.flags.c_contiguous
            out[dtype, d, k, True] = (Xro, centers, w)
    return out


CASES = [pytest.param(dtype, d, k, ro,
                      id=f"{np.dtype(dtype).name}-d{d}-k{k}-{'ro' if ro else 'rw'}")
         for dtype in DTYPES for d, k in SHAPES for ro in (False, True)]


def _label_tolerance_check(X, centers, labels, ref_labels):
    """Labels equal the reference; in float32 near-ties may go either way (within 1e-5 rel)."""
    if X.dtype == np.float64:
        np.testing.assert_array_equal(labels, ref_labels)
        return
    D = naive.sqdist_to_centers(X, centers)
    rows = np.arange(X.shape[0])
    best = D[rows, ref_labels]
    chosen = D[rows, labels]
    assert np.all(chosen <= best * (1 + 1e-5) + 1e-6), "float32 search chose a far centre"
    clear = naive.relative_gap(X, centers) > 1e-4
    assert clear.mean() > 0.95  # the data really has few near-ties
    np.testing.assert_array_equal(labels[clear], ref_labels[clear])


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_nearest_centers(datasets, dtype, d, k, ro):
    X, centers, _ = datasets[dtype, d, k, ro]
    labels = np.full(X.shape[0], -7, np.int32)
    sqdist = np.full(X.shape[0], np.nan)
    nearest_centers(X, centers, labels, sqdist)
    ref_labels, _ = naive.nearest_centers(X, centers)
    _label_tolerance_check(X, centers, labels, ref_labels)
    # the returned distance is the exact float64 distance to the *chosen* centre
    D = naive.sqdist_to_centers(X, centers)
    np.testing.assert_allclose(sqdist, D[np.arange(X.shape[0]), labels], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_centers_tie_rule_is_smallest_index(dtype):
    # Exact ties in exact arithmetic: duplicated centres and points on a bisector.
    X = np.array([[0.0], [1.0], [-1.0], [0.5], [3.0], [2.0]], dtype=dtype)
    X = np.ascontiguousarray(np.repeat(X, 5, axis=0))  # 30 rows: partial SIMD row tiles
    centers = np.array([[2.0], [-1.0], [1.0], [-1.0], [1.0], [2.0]], dtype=dtype)

    def same_as_reference(X, C):
        labels = np.empty(len(X), np.int32)
        sqdist = np.empty(len(X))
        nearest_centers(X, C, labels, sqdist)
        ref_labels, ref_sq = naive.nearest_centers(X, C)
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_array_equal(sqdist, ref_sq)

    for k in (2, 6):  # narrow tile; and with duplicated centres
        same_as_reference(X, np.ascontiguousarray(centers[:k]))
    # the few-centre search (d >= 2 and k <= 2 where the class has one): the same rule, on
    # a bisector and with a duplicated centre
    X2 = np.ascontiguousarray(np.hstack([X, np.zeros_like(X)]))
    for C in ([[-1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [-1.0, 0.0]]):
        same_as_reference(X2, np.array(C, dtype=dtype))
    # 40 identical centres: everything goes to centre 0 (wide tile with padding)
    C = np.zeros((40, 1), dtype=dtype)
    labels = np.empty(len(X), np.int32)
    nearest_centers(X, C, labels, np.empty(len(X)))
    np.testing.assert_array_equal(labels, 0)


@njit
def _deep_tile_by_tile(X, centers, labels, gap):
    """The deep tile's labels (``gap`` None) or labels and runner-up gaps with every panel
    of the table streamed past each tile of rows (one call per tile: the search before
    panel chunks); returns the tile the search picks for these centres."""
    tile, width = search_tile(centers.shape[0], X.itemsize, X.shape[1])
    ct, half_norms = search_table(X, centers, tile, width)
    for i in range(0, X.shape[0], SEARCH_ROWS[4]):
        if gap is None:
            nearest_rows_deep(X, i, X.shape[0] - 1, ct, half_norms, labels, 0)
        else:
            top2_rows_deep(X, i, X.shape[0] - 1, ct, half_norms, labels, 0, gap)
    return tile


def _chunk_spanning_centers(rng, dtype):
    """d = 260, k = 512 centres: a table of several ``DEEP_PANEL_CHUNK_BYTES`` chunks in both
    dtypes, with exact duplicates in different chunks (300 of 20, 511 of 260), so that a
    row's best centre and its ties lie in different chunks."""
    centers = (rng.normal(size=(512, 260)) * 3).astype(dtype)
    assert centers.nbytes > 2 * DEEP_PANEL_CHUNK_BYTES
    centers[300] = centers[20]
    centers[511] = centers[260]
    return centers


@pytest.mark.parametrize("dtype", DTYPES)
def test_deep_search_in_panel_chunks_keeps_labels_and_the_tie_rule(dtype):
    rng = np.random.RandomState(3)
    centers = _chunk_spanning_centers(rng, dtype)
    d = centers.shape[1]
    X = (rng.normal(size=(3 * 2048 + 77, d)) * 3).astype(dtype)
    X[::5] = centers[20]                 # rows on a duplicated centre: ties at distance 0
    X[1::5] = centers[511]
    labels = np.full(X.shape[0], -1, np.int32)
    sqdist = np.empty(X.shape[0])
    nearest_centers(X, centers, labels, sqdist)
    assert np.all(labels[::5] == 20) and np.all(labels[1::5] == 260)
    others = np.arange(X.shape[0]) % 5 >= 2
    ref_labels, _ = naive.nearest_centers(X[others], centers)
    _label_tolerance_check(X[others], centers, labels[others], ref_labels)
    tile_by_tile = np.full(X.shape[0], -1, np.int32)
    if _deep_tile_by_tile(X, centers, tile_by_tile, None) == 4:   # classes with a deep tile
        np.testing.assert_array_equal(labels, tile_by_tile)


@pytest.mark.parametrize("dtype", DTYPES)
def test_deep_top2_in_panel_chunks_keeps_labels_gaps_and_the_tie_rule(dtype):
    # the bounded methods' full-pass search (label and runner-up gap) with the table in
    # panel chunks: bit for bit the search that streams every panel past each tile, the
    # earlier of two duplicated centres in different chunks wins with gap 0, and the gaps
    # are those of float64 NumPy scores within the search's rounding
    from fastem.kernels.distances import _top2_in_block
    rng = np.random.RandomState(4)
    centers = _chunk_spanning_centers(rng, dtype)
    k, d = centers.shape
    X = (rng.normal(size=(2 * SEARCH_ROWS[4] * 9 + 5, d)) * 3).astype(dtype)
    X[::4] = centers[20]
    n = X.shape[0]
    tile, width = search_tile(k, X.itemsize, d)
    ct, half_norms = search_table(X, centers, tile, width)
    labels, gap = np.full(n, -1, np.int32), np.full(n, np.nan)
    _top2_in_block(X, 0, n, ct, half_norms, tile, labels, 0, gap)
    assert np.all(labels[::4] == 20) and np.all(gap[::4] == 0.0)
    scores = 0.5 * naive.sqdist_to_centers(X, centers)   # ||x - c||^2 / 2 + const(x)
    order = np.sort(scores, axis=1)
    others = np.arange(n) % 4 > 0
    np.testing.assert_array_equal(labels[others], scores[others].argmin(axis=1))
    tol = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(gap[others], (order[:, 1] - order[:, 0])[others], rtol=tol,
                               atol=tol * np.abs(scores).max())
    per_tile, per_tile_gap = np.full(n, -1, np.int32), np.full(n, np.nan)
    if _deep_tile_by_tile(X, centers, per_tile, per_tile_gap) == 4:   # classes with one
        np.testing.assert_array_equal(labels, per_tile)
        np.testing.assert_array_equal(gap, per_tile_gap)


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_lloyd_step(datasets, dtype, d, k, ro):
    X, centers, w = datasets[dtype, d, k, ro]
    n = X.shape[0]
    ref_labels, ref_sums, ref_weights, _, _ = naive.lloyd_step(X, w, centers, np.full(n, -1))
    # previous labels: the reference labels with some rows changed, so n_changed is known
    previous = ref_labels.copy()
    previous[::50] = (previous[::50] + 1) % k
    previous[7] = -1
    labels = previous.copy()
    sums = np.full((k, d), np.nan)
    weights = np.full(k, np.nan)
    inertia, n_changed = lloyd_step(X, w, centers, labels, sums, weights)
    _label_tolerance_check(X, centers, labels, ref_labels)
    # the statistics must be those of the labels the kernel chose
    X64 = np.asarray(X, dtype=np.float64)
    exp_sums = np.zeros((k, d))
    exp_weights = np.zeros(k)
    for j in range(k):
        m = labels == j
        exp_sums[j] = (w[m, None] * X64[m]).sum(axis=0)
        exp_weights[j] = w[m].sum()
    np.testing.assert_allclose(sums, exp_sums, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(weights, exp_weights, rtol=1e-12, atol=1e-12)
    exp_inertia = float((w * ((X64 - centers.astype(np.float64)[labels]) ** 2).sum(1)).sum())
    assert inertia == pytest.approx(exp_inertia, rel=1e-10)
    assert n_changed == int((labels != previous).sum())
    if X.dtype == np.float64:  # and, with no near-ties, exactly the reference step
        _, s, wt, ine, ch = naive.lloyd_step(X, w, centers, previous)
        np.testing.assert_allclose(sums, s, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(weights, wt, rtol=1e-12)
        assert inertia == pytest.approx(ine, rel=1e-10)
        assert n_changed == ch
    # a second pass from the new labels changes nothing
    again = labels.copy()
    _, n_changed2 = lloyd_step(X, w, centers, again, sums, weights)
    assert n_changed2 == 0
    np.testing.assert_array_equal(again, labels)


def check_screened_search():
    """A float64 search screened in float32 (``distances._screened_search``) gives the labels
    of the plain float64 search bit for bit: ``_top2_in_block``'s, on the same table, never
    screened. So do Hamerly's full pass, whose bounds (built from the screen's lower bounds
    on the gaps) must hold against NumPy's float64 distances. The cases are built to defeat
    the screen: near-duplicate centres (1e-9 apart, below float32's resolution), exact
    duplicates, integer grids (exact ties), data 1e6 from the origin, tiny (1e-300, float32
    underflow) and huge (1e200: no screen) values, rows whose norm is beyond float32
    arithmetic, NaN."""
    from fastem.kernels.distances import _top2_in_block
    rng = np.random.default_rng(5)
    n = 2500   # a full and a partial row block
    for d, k in ((16, 64), (40, 33), (130, 256)):
        X = rng.standard_normal((n, d))
        C = X[:k].copy()
        tile, width = search_tile(k, 8, d)
        ct, half_norms = search_table(X, C, tile, width)
        assert screen_table(X, C, ct, half_norms, tile, width)[0] >= 0, (d, k)  # screened
        near = np.repeat(C[: (k + 1) // 2], 2, axis=0)[:k]
        near[1::2] += 1e-9 * rng.standard_normal(near[1::2].shape)
        grid = rng.integers(0, 3, (n, d)).astype(np.float64)
        spiky = X.copy()
        spiky[::7] *= 1e60
        spiky[5, 3] = np.nan   # a NaN row: never certified, searched in float64
        cases = {"gauss": (X, C), "near ties": (X, near),
                 "duplicates": (X, np.repeat(C[: (k + 1) // 2], 2, axis=0)[:k]),
                 "offset": (X + 1e6, C + 1e6), "grid": (grid, grid[:k]),
                 "tiny": (X * 1e-300, C * 1e-300), "huge": (X * 1e200, C * 1e200),
                 "spiky rows": (spiky, C)}
        for name, (Xc, Cc) in cases.items():
            Xc, Cc = np.ascontiguousarray(Xc), np.ascontiguousarray(Cc)
            ct, half_norms = search_table(Xc, Cc, tile, width)
            plain = np.full(n, -1, np.int32)
            _top2_in_block(Xc, 0, n, ct, half_norms, tile, plain, 0, np.empty(n))
            labels = np.full(n, -1, np.int32)
            nearest_centers(Xc, Cc, labels, np.empty(n))
            np.testing.assert_array_equal(labels, plain, err_msg=f"nearest {name} {d} {k}")
            labels[:] = -1
            lloyd_step(Xc, np.ones(n), Cc, labels, np.empty((k, d)), np.empty(k))
            np.testing.assert_array_equal(labels, plain, err_msg=f"lloyd {name} {d} {k}")
            labels[:] = -1
            upper, lower = np.empty(n, np.float32), np.empty(n, np.float32)
            K.bounded_full_step(Xc, np.ones(n), Cc, labels, upper, lower)
            np.testing.assert_array_equal(labels, plain, err_msg=f"hamerly {name} {d} {k}")
            with np.errstate(over="ignore", invalid="ignore"):
                D = np.sqrt(naive.sqdist_to_centers(Xc, Cc))
            rows = np.arange(n)
            ok = (D < np.finfo(np.float32).max).all(axis=1)   # the bounds are float32
            assert (upper[ok] >= D[ok, labels[ok]]).all(), (name, d, k)
            D[rows, labels] = np.inf
            assert (lower[ok] <= D[ok].min(axis=1)).all(), (name, d, k)


def test_screened_search_gives_the_float64_labels():
    check_screened_search()


def test_lloyd_step_first_pass_counts_every_row(datasets):
    X, centers, w = datasets[np.float64, 7, 37, False]
    labels = np.full(X.shape[0], -1, np.int32)
    sums, weights = np.empty((37, 7)), np.empty(37)
    _, n_changed = lloyd_step(X, w, centers, labels, sums, weights)
    assert n_changed == X.shape[0]
    assert weights.sum() == pytest.approx(w.sum(), rel=1e-12)


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_sqdist_to_centers(datasets, dtype, d, k, ro):
    X, centers, _ = datasets[dtype, d, k, ro]
    out = np.full((X.shape[0], k), np.nan)
    sqdist_to_centers(X, centers, out)
    np.testing.assert_allclose(out, naive.sqdist_to_centers(X, centers), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_update_min_sqdist(datasets, dtype, d, k, ro):
    X, centers, _ = datasets[dtype, d, k, ro]
    current = np.full(X.shape[0], np.inf)
    expected = current.copy()
    for j in range(min(k, 4)):
        update_min_sqdist(X, centers[j], current)
        expected = naive.update_min_sqdist(X, centers[j], expected)
        np.testing.assert_allclose(current, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(current, naive.sqdist_to_centers(X, centers[:4]).min(1),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_kmeanspp_potentials(datasets, dtype, d, k, ro):
    X, centers, w = datasets[dtype, d, k, ro]
    min_sqdist = naive.sqdist_to_centers(X, centers[:2]).min(1)
    rng = np.random.RandomState(k)
    candidates = np.ascontiguousarray(X[rng.choice(X.shape[0], 6, replace=False)])
    potentials = np.full(6, np.nan)
    kmeanspp_potentials(X, w, candidates, min_sqdist, potentials)
    np.testing.assert_allclose(potentials,
                               naive.kmeanspp_potentials(X, w, candidates, min_sqdist),
                               rtol=1e-11)
    # also with candidates that are not rows of X (all of the centres)
    potentials = np.full(k, np.nan)
    kmeanspp_potentials(X, w, centers, min_sqdist, potentials)
    np.testing.assert_allclose(potentials, naive.kmeanspp_potentials(X, w, centers, min_sqdist),
                               rtol=1e-11)
    # rows without a centre yet (+inf) in the first block, some of them weightless: that
    # block sums w * min(s, D) directly (0 * inf would poison its block sum)
    partly, weights = min_sqdist.copy(), w.copy()
    partly[:700], weights[:300] = np.inf, 0.0
    potentials = np.full(6, np.nan)
    kmeanspp_potentials(X, weights, candidates, partly, potentials)
    np.testing.assert_allclose(potentials,
                               naive.kmeanspp_potentials(X, weights, candidates, partly),
                               rtol=1e-11)


def _potential_sampling_inputs(seed=3):
    rng = np.random.RandomState(seed)
    w = rng.uniform(0.0, 3.0, size=N_ROWS)
    w[::11] = 0.0
    closest = rng.exponential(2.0, size=N_ROWS)
    closest[::7] = 0.0                       # rows that are centres already
    return w, closest


def test_potential_block_sums():
    w, closest = _potential_sampling_inputs()
    out = np.empty(-(-N_ROWS // 2048))
    potential_block_sums(w, closest, out)
    ref = [float(w[s:s + 2048] @ closest[s:s + 2048]) for s in range(0, N_ROWS, 2048)]
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_draw_by_potential_is_searchsorted_on_the_cumulative_sum():
    w, closest = _potential_sampling_inputs()
    blocks = np.empty(-(-N_ROWS // 2048))
    potential_block_sums(w, closest, blocks)
    cumulative = np.cumsum(w * closest)
    rng = np.random.RandomState(0)
    # random targets plus the awkward ones: 0, block boundaries, the very end
    targets = np.concatenate([rng.uniform(size=200) * cumulative[-1], [0.0],
                              cumulative[[2047, 2048, 4095]], [cumulative[-1]]])
    ids = np.empty(len(targets), dtype=np.int64)
    draw_by_potential(w, closest, blocks, targets, ids)
    ref = np.minimum(np.searchsorted(cumulative, targets), N_ROWS - 1)
    # summation order differs (per block) only in the last bits: a target that falls within
    # rounding of a cumulative value may pick the neighbouring row
    close = np.abs(cumulative[ref] - targets) < 1e-9 * cumulative[-1]
    assert np.array_equal(ids[~close], ref[~close])
    assert (w[ids[:200]] * closest[ids[:200]] > 0).all()   # never a zero-probability row


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_column_mean_var(datasets, dtype, d, k, ro):
    X, _, _ = datasets[dtype, d, k, ro]
    mean, var = column_mean_var(X)
    ref_mean, ref_var = naive.column_mean_var(X)
    assert mean.dtype == np.float64 and var.dtype == np.float64
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var, ref_var, rtol=1e-11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_mean_var_far_from_origin(dtype):
    # variance about the mean, not E[x^2] - E[x]^2: no cancellation with a large offset
    rng = np.random.RandomState(3)
    X = (1e4 + rng.normal(size=(N_ROWS, 7))).astype(dtype)
    _, var = column_mean_var(X)
    np.testing.assert_allclose(var, naive.column_mean_var(X)[1], rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_centre_moves_and_csr_column_sums(dtype):
    # how far each centre moved (convergence test, bound drift), in float64
    rng = np.random.RandomState(5)
    A = (100.0 * rng.normal(size=(7, 301))).astype(dtype)
    B = (A + rng.normal(size=A.shape)).astype(dtype)
    ref = ((A.astype(np.float64) - B.astype(np.float64)) ** 2).sum(axis=1)
    np.testing.assert_allclose(squared_row_distances(A, B), ref, rtol=1e-13)
    assert not squared_row_distances(A, A).any()
    # the CSR tol scale's per-column sums: numpy.bincount's values (the same order of terms)
    import scipy.sparse
    X = scipy.sparse.random(300, 57, density=0.1, format="csr", random_state=rng, dtype=dtype)
    x = X.data.astype(np.float64)
    s1, s2 = csr_column_sums(X.data, X.indices, 57)
    np.testing.assert_array_equal(s1, np.bincount(X.indices, weights=x, minlength=57))
    np.testing.assert_array_equal(s2, np.bincount(X.indices, weights=x * x, minlength=57))


@pytest.mark.parametrize("dtype, d, k, ro", CASES)
def test_all_finite(datasets, dtype, d, k, ro):
    X, _, _ = datasets[dtype, d, k, ro]
    assert all_finite(X) is True and naive.all_finite(X)
    if ro:
        return
    for row in (0, 2048, X.shape[0] - 1):  # first block, a later block, the partial last one
        for bad in (np.nan, np.inf, -np.inf):
            Y = X.copy()
            Y[row, d - 1] = bad
            assert all_finite(Y) is False
            assert not naive.all_finite(Y)


#: The k-means kernels of issue 2, all of them called from ``_user_function`` below. (Kernels of
#: other models are exercised by those models' test modules.)
KMEANS_KERNELS = {"all_finite", "column_mean_var", "draw_by_potential", "kmeanspp_potentials",
                  "lloyd_step", "nearest_centers", "potential_block_sums", "sqdist_to_centers",
                  "update_min_sqdist"}


def test_public_kernels_are_plain_documented_dispatchers():
    assert KMEANS_KERNELS <= set(K.__all__)
    for name in K.__all__:
        kernel = getattr(K, name)
        assert isinstance(kernel, numba.core.registry.CPUDispatcher), name
        assert kernel.__doc__ and kernel.__doc__.strip(), f"{name} has no docstring"


# ----------------------------------------------------------------------------------------
# Every public kernel called from a user's own parallel @njit function


@numba.njit(parallel=True)
def _user_function(X, w, centers, candidates):
    n, d = X.shape
    k = centers.shape[0]
    labels = np.empty(n, np.int32)
    sqdist = np.empty(n)
    nearest_centers(X, centers, labels, sqdist)
    step_labels = np.full(n, -1, np.int32)
    sums = np.empty((k, d))
    weights = np.empty(k)
    inertia, n_changed = lloyd_step(X, w, centers, step_labels, sums, weights)
    dist = np.empty((n, k))
    sqdist_to_centers(X=X, centers=centers, out=dist)        # keyword arguments work too
    closest = np.full(n, np.inf)
    update_min_sqdist(X, centers[0], closest)
    potentials = np.empty(candidates.shape[0])
    kmeanspp_potentials(X, w, candidates, closest, potentials)
    mean, var = column_mean_var(X)
    finite = all_finite(X)
    blocks = np.empty((n + 2047) // 2048)
    potential_block_sums(w, closest, blocks)
    drawn = np.empty(3, np.int64)
    draw_by_potential(w, closest, blocks, np.array([0.25, 0.5, 0.75]) * blocks.sum(), drawn)
    # the k-means++ variants that keep their distances (nothing pruned: gaps of 0)
    m = candidates.shape[0]
    kept = (np.empty((m, n), np.int32), np.empty((m, n)), np.empty((m, blocks.shape[0]), np.int64))
    kept_potentials = np.empty(m)
    kmeanspp_potentials_kept(X, w, candidates, closest, kept_potentials, kept[0], kept[1], kept[2])
    pruned_kept = (np.empty((m, n), np.int32), np.empty((m, n)),
                   np.empty((m, blocks.shape[0]), np.int64))
    pruned_potentials = np.empty(m)
    nearest = np.zeros(n, np.int32)
    shadow, norms = np.empty(X.shape, np.float32), np.empty(n)   # with the float32 shadow
    float32_shadow(X, shadow, norms)
    seed_potentials_kept(X, w, candidates, np.zeros((1, m)), closest, nearest,
                         pruned_potentials, pruned_kept[0], pruned_kept[1], pruned_kept[2],
                         shadow, norms)
    updated = closest.copy()
    seed_update_kept(w, kept[0][1], kept[1][1], kept[2][1], 1, updated, nearest, blocks)
    # some parallel work of the user's own around the kernel calls
    weighted = np.empty(n)
    for i in prange(n):
        weighted[i] = w[i] * sqdist[i]
    return (labels, sqdist, step_labels, sums, weights, inertia, n_changed, dist, closest,
            potentials, mean, var, finite, weighted.sum(), drawn,
            (kept, kept_potentials, pruned_kept, pruned_potentials, updated, nearest, blocks))


def test_kernels_from_user_parallel_njit(datasets):
    X, centers, w = datasets[np.float64, 7, 37, False]
    candidates = np.ascontiguousarray(X[:5])
    (labels, sqdist, step_labels, sums, weights, inertia, n_changed, dist, closest, potentials,
     mean, var, finite, total, drawn, kept_results) = _user_function(X, w, centers, candidates)
    ref_labels, ref_sq = naive.nearest_centers(X, centers)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(sqdist, ref_sq, rtol=1e-12)
    r_labels, r_sums, r_weights, r_inertia, r_changed = naive.lloyd_step(
        X, w, centers, np.full(len(X), -1))
    np.testing.assert_array_equal(step_labels, r_labels)
    np.testing.assert_allclose(sums, r_sums, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(weights, r_weights, rtol=1e-12)
    assert inertia == pytest.approx(r_inertia, rel=1e-10)
    assert n_changed == r_changed == len(X)
    np.testing.assert_allclose(dist, naive.sqdist_to_centers(X, centers), rtol=1e-12)
    ref_closest = naive.update_min_sqdist(X, centers[0], np.full(len(X), np.inf))
    np.testing.assert_allclose(closest, ref_closest, rtol=1e-12)
    np.testing.assert_allclose(
        potentials, naive.kmeanspp_potentials(X, w, candidates, ref_closest), rtol=1e-11)
    ref_mean, ref_var = naive.column_mean_var(X)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var, ref_var, rtol=1e-11)
    assert finite
    assert total == pytest.approx(float(w @ ref_sq), rel=1e-10)
    cumulative = np.cumsum(w * ref_closest)
    np.testing.assert_array_equal(
        drawn, np.searchsorted(cumulative, np.array([0.25, 0.5, 0.75]) * cumulative[-1]))
    (kept, kept_potentials, pruned_kept, pruned_potentials, updated, nearest,
     blocks) = kept_results
    ref_kept = ((X[None, :, :] - candidates[:, None, :]) ** 2).sum(axis=-1)
    ref_potentials = naive.kmeanspp_potentials(X, w, candidates, ref_closest)
    ref_improves = ref_kept < ref_closest
    for lists, pots in ((kept, kept_potentials), (pruned_kept, pruned_potentials)):
        # the rows each candidate brings closer (ties at rounding level excepted)
        dense = np.array([naive.improved_dense(*(a[c] for a in lists), closest)
                          for c in range(len(candidates))])
        listed = np.isfinite(dense)
        clear = np.abs(ref_kept - ref_closest) > 1e-9 * ref_closest
        np.testing.assert_array_equal(listed[clear], ref_improves[clear])
        np.testing.assert_allclose(dense[listed], ref_kept[listed], rtol=1e-12)
        np.testing.assert_allclose(pots, ref_potentials, rtol=1e-11)
    dense = naive.improved_dense(kept[0][1], kept[1][1], kept[2][1], closest)
    np.testing.assert_allclose(updated, np.minimum(ref_closest, ref_kept[1]), rtol=1e-12)
    np.testing.assert_array_equal(nearest, np.where(dense < closest, 1, 0))
    ref_blocks = [float(w[s:s + 2048] @ updated[s:s + 2048]) for s in range(0, len(X), 2048)]
    np.testing.assert_allclose(blocks, ref_blocks, rtol=1e-12)


@njit
def _user_lloyd(X, w, centers, labels, sums, weights):
    return lloyd_step(X, w, centers, labels, sums, weights)


def test_writable_inputs_and_njit_callers_reuse_the_fits_specialisations():
    """Writable X and sample_weight, from Python or from @njit code (whose prange index is
    uint64), run the work kernel compiled for fits: read-only inputs, int64 item indices."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((5000, 6))
    w = rng.uniform(0.5, 2.0, len(X))
    centers = X[:5].copy()
    results = []
    for call in (lloyd_step, _user_lloyd):
        labels, sums, weights = np.full(len(X), -1, np.int32), np.empty((5, 6)), np.empty(5)
        inertia, _ = call(X, w, centers, labels, sums, weights)
        results.append((labels, sums, weights, inertia))
    assert X.flags.writeable and w.flags.writeable   # the caller's arrays are left as given
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    work = lloyd_step._plan[1]
    for signature in work.signatures:
        assert signature[0] == signature[1] == numba.types.int64, signature[:2]
        assert not signature[2].mutable and not signature[3].mutable, signature[2:4]
    # (a screened fit in this process adds its own: screen argument a tuple, not None)
    assert sum(s[2].dtype == numba.types.float64 and s[11] == numba.types.none
               for s in work.signatures) == 1


# ----------------------------------------------------------------------------------------
# The README example runs as written


def _readme_example():
    assert README.exists(), f"{README} does not exist"
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == README_HEADING)
    except StopIteration:
        pytest.fail(f"README.md has no section {README_HEADING!r}; the kernel example "
                    "for users' own Numba code is missing")
    rest = "\n".join(lines[start + 1:])
    match = re.search(r"^```python[ \t]*\n(.*?)^```", rest, flags=re.S | re.M)
    assert match, f"no ```python block after {README_HEADING!r} in README.md"
    return match.group(1)


def test_readme_kernel_example_runs():
    code = _readme_example()
    namespace = {"__name__": "readme_example"}
    exec(compile(code, f"{README}:{README_HEADING}", "exec"), namespace)


@njit
def _short_vector_helpers(x, c, a, y1, y2, y3):
    m = x.shape[0]
    fused = axpy_sqdist(a, x, 0, y1, 0, c, 0, m)
    axpy(a, x, 0, y2, 0, m)
    per_length = axpy_sqdist_short(a, x, 0, y3, 0, c, 0, m)
    return fused, sqdist(x, 0, c, 0, m), dot(x, 0, c, 0, m), per_length


@njit
def _sqdist_rows_and_one_by_one(X, c):
    """:func:`sqdist_rows` of the rows of X (``ROWS_PER_SQDIST`` of them), and each row's
    :func:`sqdist`."""
    n, d = X.shape
    xt = np.empty((d, n))
    for t in range(d):
        for r in range(n):
            xt[t, r] = X[r, t]
    rows, one_by_one = np.empty(n), np.empty(n)
    sqdist_rows(xt, c, 0, d, rows, 0)
    for r in range(n):
        one_by_one[r] = sqdist(X, r * d, c, 0, d)
    return rows, one_by_one


def check_short_vector_helpers():
    """``_simd``'s axpy / dot / sqdist / axpy_sqdist / sqdist_rows at every length up to 71 and from 120
    to 159 (through several of each class's steps: chained vectors, leftover full vectors,
    the scalar tail), against exact sums; axpy_sqdist bitwise equal to sqdist + axpy,
    axpy_sqdist_short (a copy per length up to SHORT_ROW_FEATURES, else the loop) to
    axpy_sqdist, and sqdist_rows to sqdist row by row, as documented. Also run for every
    other SIMD class by ``test_simd_classes``."""
    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        for m in list(range(72)) + list(range(120, 160)):
            x = rng.normal(size=m).astype(dtype)
            c = rng.normal(size=m).astype(dtype)
            y = rng.normal(size=m)
            y1, y2, y3 = y.copy(), y.copy(), y.copy()
            fused, sq, dt, per_length = _short_vector_helpers(x, c, 0.75, y1, y2, y3)
            xd, cd = x.astype(np.float64), c.astype(np.float64)
            assert fused == sq and np.array_equal(y1, y2), (dtype, m)
            assert per_length == fused and y3.tobytes() == y1.tobytes(), (dtype, m)
            assert abs(sq - math.fsum((xd - cd) ** 2)) <= 1e-14 * max(1.0, sq), (dtype, m)
            scale = max(1.0, np.abs(xd * cd).sum())
            assert abs(dt - math.fsum(xd * cd)) <= 1e-14 * scale, (dtype, m)
            np.testing.assert_allclose(y2, y + 0.75 * xd, rtol=1e-15, atol=1e-15)
            # several rows at once, one per lane: sqdist's bits in every lane (rows of
            # different scales, so that rounding differs from lane to lane)
            X = (rng.normal(size=(ROWS_PER_SQDIST, m))
                 * np.logspace(-3, 3, ROWS_PER_SQDIST)[:, None]).astype(dtype)
            rows, one_by_one = _sqdist_rows_and_one_by_one(X, c)
            assert rows.tobytes() == one_by_one.tobytes(), (dtype, m)


def test_short_vector_helpers():
    check_short_vector_helpers()
