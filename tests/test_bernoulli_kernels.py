"""The Bernoulli kernels against their NumPy twins in tests/naive_bernoulli.py.

n = 2 * 2048 + 301 rows (several row blocks, the last one partial); (d, k) = (1, 3), (21, 10)
and (13, 37): k padded to 8, 16 and 40 lanes exercise every SIMD pass width, d = 13 and 21
the scalar tail of the 8-wide scan. theta holds exact 0s and 1s (``0 log 0 = 0``, impossible
rows), one mixture weight is 0 (log weight -inf) and some sample weights are 0.
"""
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numba import prange

import fastem.kernels as K
from fastem.kernels import (bernoulli_estep, bernoulli_estep_csr, bernoulli_log_pmf,
                            bernoulli_log_pmf_csr)
from fastem.kernels.bernoulli import CHECK_BLOCK, _count_non_binary

from . import naive_bernoulli as naive

N_ROWS = 2 * 2048 + 301
SHAPES = [(1, 3), (21, 10), (13, 37)]
DENSE_DTYPES = [np.bool_, np.uint8, np.float64]


def _problem(d, k, seed, density=0.3):
    rng = np.random.RandomState(seed)
    X = (rng.uniform(size=(N_ROWS, d)) < density).astype(np.uint8)
    theta = rng.uniform(0.02, 0.98, size=(k, d))
    theta[0, 0] = 0.0                       # rows with x_0 = 1 are impossible under component 0
    if k > 1:
        theta[1, -1] = 1.0                  # rows with x_-1 = 0 are impossible under component 1
    log_w = np.log(rng.dirichlet(np.ones(k)))
    if k > 2:
        log_w[2] = -np.inf                  # an empty component
    w = rng.uniform(0.1, 3.0, size=N_ROWS)
    w[::53] = 0.0
    return X, theta, log_w, w


def _assert_log_prob_equal(out, ref):
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(out), finite)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[~finite], ref[~finite])      # -inf where impossible
    np.testing.assert_allclose(out[finite], ref[finite], rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("d, k", SHAPES)
@pytest.mark.parametrize("dtype", DENSE_DTYPES, ids=lambda t: np.dtype(t).name)
def test_log_pmf_dense(dtype, d, k):
    X, theta, log_w, _ = _problem(d, k, seed=d + k)
    out = np.full((N_ROWS, k), np.nan)
    bernoulli_log_pmf(X.astype(dtype), theta, log_w, out)
    _assert_log_prob_equal(out, naive.log_pmf(X, theta, log_w))


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_log_pmf_csr(index_dtype):
    X, theta, log_w, _ = _problem(21, 10, seed=5)
    C = sp.csr_matrix(X)
    out = np.full((N_ROWS, 10), np.nan)
    bernoulli_log_pmf_csr(C.data, C.indices.astype(index_dtype), C.indptr.astype(index_dtype),
                          theta, log_w, out)
    _assert_log_prob_equal(out, naive.log_pmf(X, theta, log_w))


@pytest.mark.parametrize("d, k", SHAPES)
@pytest.mark.parametrize("dtype", DENSE_DTYPES, ids=lambda t: np.dtype(t).name)
def test_estep_dense(dtype, d, k):
    X, theta, log_w, w = _problem(d, k, seed=10 * d + k)
    nk, sx = np.full(k, np.nan), np.full((k, d), np.nan)
    ll = bernoulli_estep(X.astype(dtype), w, theta, log_w, nk, sx)
    ref_nk, ref_sx, ref_ll = naive.estep(X, w, theta, log_w)
    np.testing.assert_allclose(nk, ref_nk, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(sx, ref_sx, rtol=1e-11, atol=1e-9)
    if np.isfinite(ref_ll):
        assert ll == pytest.approx(ref_ll, rel=1e-12)
    else:
        assert ll == ref_ll


def test_estep_csr_with_explicit_zeros_and_int64_indices():
    X, theta, log_w, w = _problem(13, 37, seed=7)
    C = sp.csr_matrix(X)
    C.data[::5] = 0                          # explicit zeros are skipped
    C.indices = C.indices.astype(np.int64)
    C.indptr = C.indptr.astype(np.int64)
    Xz = C.toarray()
    nk, sx = np.empty(37), np.empty((37, 13))
    ll = bernoulli_estep_csr(C.data, C.indices, C.indptr, w, theta, log_w, nk, sx)
    ref_nk, ref_sx, ref_ll = naive.estep(Xz, w, theta, log_w)
    np.testing.assert_allclose(nk, ref_nk, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(sx, ref_sx, rtol=1e-11, atol=1e-9)
    assert ll == pytest.approx(ref_ll, rel=1e-12)


def test_dense_dtypes_csr_and_thread_counts_are_bitwise_identical():
    """Same non-zero positions in the same order -> the same sums, bit for bit."""
    X, theta, log_w, w = _problem(21, 10, seed=3)
    theta[1, -1] = 0.9          # all rows possible: a finite log-likelihood to compare
    C = sp.csr_matrix(X)
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in sorted({1, previous}):
            numba.set_num_threads(threads)
            for Xv in (X, X.astype(bool), X.astype(np.float32), X.astype(np.int64)):
                nk, sx = np.empty(10), np.empty((10, 21))
                ll = bernoulli_estep(Xv, w, theta, log_w, nk, sx)
                results.append((nk, sx, ll))
            nk, sx = np.empty(10), np.empty((10, 21))
            ll = bernoulli_estep_csr(C.data, C.indices, C.indptr, w, theta, log_w, nk, sx)
            results.append((nk, sx, ll))
    finally:
        numba.set_num_threads(previous)
    assert np.isfinite(results[0][2])
    for nk, sx, ll in results[1:]:
        np.testing.assert_array_equal(nk, results[0][0])
        np.testing.assert_array_equal(sx, results[0][1])
        assert ll == results[0][2]


def test_read_only_memmap(tmp_path):
    X, theta, log_w, w = _problem(21, 10, seed=4)
    np.save(tmp_path / "X.npy", X)
    Xro = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert not Xro.flags.writeable
    out = np.empty((N_ROWS, 10))
    bernoulli_log_pmf(Xro, theta, log_w, out)
    _assert_log_prob_equal(out, naive.log_pmf(X, theta, log_w))


def test_read_only_csr_arrays():
    X, theta, log_w, w = _problem(13, 37, seed=8)
    C = sp.csr_matrix(X)
    C.data[::7] = 0                                        # both row paths
    arrays = [a.copy() for a in (C.data, C.indices, C.indptr)]
    for a in arrays:
        a.flags.writeable = False
    out = np.empty((N_ROWS, 37))
    bernoulli_log_pmf_csr(*arrays, theta, log_w, out)
    _assert_log_prob_equal(out, naive.log_pmf(C.toarray(), theta, log_w))
    nk, sx = np.empty(37), np.empty((37, 13))
    ll = bernoulli_estep_csr(*arrays, w, theta, log_w, nk, sx)
    assert ll == pytest.approx(naive.estep(C.toarray(), w, theta, log_w)[2], rel=1e-12)


def test_impossible_rows_give_minus_inf_not_nan():
    X = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.uint8)
    theta = np.array([[0.0, 0.0], [1.0, 1.0]])          # only [0, 0] and [1, 1] are possible
    log_w = np.log([0.5, 0.5])
    out = np.empty((3, 2))
    bernoulli_log_pmf(X, theta, log_w, out)
    np.testing.assert_array_equal(out, [[-np.inf, -np.inf], [-np.inf, -np.inf],
                                        [-np.inf, np.log(0.5)]])
    nk, sx = np.empty(2), np.empty((2, 2))
    assert bernoulli_estep(X, np.ones(3), theta, log_w, nk, sx) == -np.inf
    # impossible rows with zero weight do not count (0 * -inf is not NaN here)
    ll = bernoulli_estep(X, np.array([0.0, 0.0, 2.0]), theta, log_w, nk, sx)
    assert ll == pytest.approx(2 * np.log(0.5))
    np.testing.assert_allclose(nk, [0.0, 2.0])
    np.testing.assert_allclose(sx, [[0.0, 0.0], [2.0, 2.0]])


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32, np.float32, np.float64])
def test_count_non_binary(dtype):
    values = np.zeros(2 * CHECK_BLOCK + 17, dtype=dtype)
    values[::3] = 1
    counts = np.empty(3, dtype=np.int64)
    _count_non_binary(values, counts)
    np.testing.assert_array_equal(counts, 0)
    if dtype is np.bool_:
        return
    values[CHECK_BLOCK + 5] = 2
    if np.dtype(dtype).kind == "f":
        values[-1] = np.nan
        values[7] = 0.5
    _count_non_binary(values, counts)
    expected = [1, 1, 1] if np.dtype(dtype).kind == "f" else [0, 1, 0]
    np.testing.assert_array_equal(counts, expected)


BERNOULLI_KERNELS = {"bernoulli_log_pmf", "bernoulli_log_pmf_csr", "bernoulli_estep",
                     "bernoulli_estep_csr"}


def test_kernels_are_public_and_documented():
    assert BERNOULLI_KERNELS <= set(K.__all__)
    for name in BERNOULLI_KERNELS:
        kernel = getattr(K, name)
        assert isinstance(kernel, numba.core.registry.CPUDispatcher)
        assert "Parameters" in kernel.__doc__ and "shape" in kernel.__doc__


@numba.njit(parallel=True)
def _user_function(X, data, indices, indptr, w, theta, log_w):
    n = X.shape[0]
    k, d = theta.shape
    dense = np.empty((n, k))
    bernoulli_log_pmf(X, theta, log_w, dense)
    sparse = np.empty((n, k))
    bernoulli_log_pmf_csr(data=data, indices=indices, indptr=indptr, theta=theta,
                          log_weights=log_w, out=sparse)        # keyword arguments work too
    nk, sx = np.empty(k), np.empty((k, d))
    ll = bernoulli_estep(X, w, theta, log_w, nk, sx)
    nk2, sx2 = np.empty(k), np.empty((k, d))
    ll2 = bernoulli_estep_csr(data, indices, indptr, w, theta, log_w, nk2, sx2)
    best = np.empty(n, dtype=np.int64)           # some parallel work of the user's own
    for i in prange(n):
        best[i] = np.argmax(dense[i])
    return dense, sparse, nk, sx, ll, nk2, sx2, ll2, best


def test_kernels_from_user_parallel_njit():
    X, theta, log_w, w = _problem(21, 10, seed=9)
    theta[1, -1] = 0.9
    C = sp.csr_matrix(X)
    dense, sparse, nk, sx, ll, nk2, sx2, ll2, best = _user_function(
        X, C.data, C.indices, C.indptr, w, theta, log_w)
    ref = naive.log_pmf(X, theta, log_w)
    _assert_log_prob_equal(dense, ref)
    _assert_log_prob_equal(sparse, ref)
    np.testing.assert_array_equal(best, np.argmax(ref, axis=1))
    ref_nk, ref_sx, ref_ll = naive.estep(X, w, theta, log_w)
    for a, b, total in ((nk, sx, ll), (nk2, sx2, ll2)):
        np.testing.assert_allclose(a, ref_nk, rtol=1e-11)
        np.testing.assert_allclose(b, ref_sx, rtol=1e-11, atol=1e-9)
        assert total == pytest.approx(ref_ll, rel=1e-12)
