"""Bernoulli mixtures: log-pmf of binary rows and the fused E-step, dense and CSR.

Component c has success probabilities ``theta[c]`` (one per feature). For a binary row x::

    log p(x | c) = sum_j x_j log theta_cj + (1 - x_j) log(1 - theta_cj)
                 = sum_{j: x_j != 0} x_j W_jc  +  sum_j log(1 - theta_cj),
    W_jc = log theta_cj - log(1 - theta_cj)                     (the log-odds)

so a row costs one pass over its non-zero entries: a dense row is scanned once (its non-zero
positions are collected branch-free) and a CSR row costs O(nnz), never O(d). The log-odds are
kept transposed, ``WT`` of shape (d, kp) with k padded to a multiple of 8, so adding feature
j's contribution to all k components is one contiguous, vectorised update; the M-step
statistics ``sum_i w_i r_ic x_ij`` are accumulated the same way into a (d, kp) table.

Edge values (``0 * log 0 = 0``, no NaN, no fastmath assumptions): ``theta = 0`` gives
``W = -inf`` (a row with x_j = 1 is impossible) and no constant term; ``theta = 1`` gives
``W = 0``, no constant term and a *required* feature: the row is impossible (-inf) unless
x_j != 0. Infinities never meet, so -inf is the only non-finite value that can appear.

X may be bool, any integer type or float (values 0 and 1; other values are used as given in
the formula above), used as given; CSR input is ``(data, indices, indptr)`` with int32 or
int64 indices, unsorted indices and explicit zeros allowed. Statistics accumulate in float64
in per-chunk partials (a chunk is a run of whole row blocks, layout fixed by n) that are summed
in chunk order: results are bitwise identical for any number of threads.
"""
import numpy as np
from numba import prange

from ._blocks import block_bounds, chunk_bounds, fold_blocks, n_blocks, n_chunks
from ._jit import kernel
from .responsibilities import normalize_log_row

#: Most partial (d, kp) statistic tables one fused E-step keeps.
MAX_PARTIALS = 64

#: Components are padded to a multiple of this (one AVX-512 vector of float64).
LANES = 8

#: Values per block in the binary check.
CHECK_BLOCK = 1 << 16


@kernel
def _padded(k):
    return ((k + LANES - 1) // LANES) * LANES


@kernel
def _log_odds_table(theta, log_weights):
    """Kernel form of the parameters.

    Returns
    -------
    WT : (d, kp) float64
        ``log theta_cj - log(1 - theta_cj)``, transposed and zero padded; -inf where theta = 0,
        0 where theta = 1.
    const : (k,) float64
        ``log_weights[c] + sum_{j: theta_cj < 1} log(1 - theta_cj)``.
    required : (d, kp) or (0, kp) float64
        1.0 where theta_cj = 1 (features that must be non-zero); 0 rows when there are none.
    n_required : (k,) float64
        Number of such features per component.
    """
    k, d = theta.shape
    kp = _padded(k)
    WT = np.zeros((d, kp))
    const = np.empty(k)
    n_required = np.zeros(k)
    for c in range(k):
        s = np.float64(log_weights[c])
        for j in range(d):
            t = np.float64(theta[c, j])
            if t <= 0.0:
                WT[j, c] = -np.inf
            elif t >= 1.0:
                n_required[c] += 1.0
            else:
                l1 = np.log1p(-t)
                WT[j, c] = np.log(t) - l1
                s += l1
        const[c] = s
    any_required = False
    for c in range(k):
        if n_required[c] > 0.0:
            any_required = True
    required = np.zeros((d if any_required else 0, kp))
    if any_required:
        for c in range(k):
            for j in range(d):
                if np.float64(theta[c, j]) >= 1.0:
                    required[j, c] = 1.0
    return WT, const, required, n_required


@kernel
def _nonzero_positions(X, i, idx):
    """Write the positions of the non-zero entries of row ``X[i]`` to ``idx``; return count."""
    cnt = 0
    for j in range(X.shape[1]):
        idx[cnt] = j
        cnt += X[i, j] != 0
    return cnt


@kernel
def _finish_row(acc, hits, const, n_required, row):
    """row[c] = acc[c] + const[c], or -inf when a required feature (theta = 1) is missing."""
    k = row.shape[0]
    check = hits.shape[0] > 0
    for c in range(k):
        v = acc[c] + const[c]
        if check and hits[c] < n_required[c]:
            v = -np.inf
        row[c] = v


@kernel
def _dense_log_prob_row(X, i, WT, const, required, n_required, idx, acc, hits, row):
    """Log-probabilities of row i of dense X into row (k,); idx keeps its non-zero positions.

    Returns the number of non-zero entries. acc and hits are (kp,) scratch arrays (hits has
    0 entries when no theta equals 1).
    """
    kp = WT.shape[1]
    cnt = _nonzero_positions(X, i, idx)
    for c in range(kp):
        acc[c] = 0.0
    for t in range(cnt):
        j = idx[t]
        v = np.float64(X[i, j])
        for c in range(kp):
            acc[c] += v * WT[j, c]
    if hits.shape[0] > 0:
        for c in range(kp):
            hits[c] = 0.0
        for t in range(cnt):
            j = idx[t]
            for c in range(kp):
                hits[c] += required[j, c]
    _finish_row(acc, hits, const, n_required, row)
    return cnt


@kernel
def _csr_log_prob_row(data, indices, start, stop, WT, const, required, n_required, acc, hits,
                      row):
    """Log-probabilities of the CSR row ``data/indices[start:stop]`` into row (k,)."""
    kp = WT.shape[1]
    for c in range(kp):
        acc[c] = 0.0
    for p in range(start, stop):
        v = np.float64(data[p])
        if v == 0.0:
            continue
        j = indices[p]
        for c in range(kp):
            acc[c] += v * WT[j, c]
    if hits.shape[0] > 0:
        for c in range(kp):
            hits[c] = 0.0
        for p in range(start, stop):
            if data[p] != 0:
                j = indices[p]
                for c in range(kp):
                    hits[c] += required[j, c]
    _finish_row(acc, hits, const, n_required, row)


@kernel
def _scratch(k, kp, d, any_required):
    """(idx (d,) int64, acc (kp,), hits (kp,) or (0,), row (k,), r (kp,) zero padded)."""
    return (np.empty(d, dtype=np.int64), np.empty(kp), np.empty(kp if any_required else 0),
            np.empty(k), np.zeros(kp))


@kernel
def _unpad_stats(p_nk, p_sT, p_ll, nk, sx):
    """Fold chunk partials in chunk order; (d, kp) statistics to (k, d). Returns the ll."""
    k, d = sx.shape
    kp = p_sT.shape[2]
    nk_p = np.empty(kp)
    sT = np.empty((d, kp))
    fold_blocks(p_nk, nk_p)
    fold_blocks(p_sT, sT)
    for c in range(k):
        nk[c] = nk_p[c]
        for j in range(d):
            sx[c, j] = sT[j, c]
    total = np.empty(1)
    fold_blocks(p_ll, total)
    return total[0]


@kernel(parallel=True)
def bernoulli_log_pmf(X, theta, log_weights, out):
    """Weighted log-probabilities of dense binary rows under every component.

    Parameters
    ----------
    X : ndarray, shape (n, d), bool, any integer dtype, float32 or float64, C-contiguous
        Binary data (0/1), used as given (no conversion, no copy).
    theta : ndarray, shape (k, d), float64
        Success probabilities in [0, 1]; 0 and 1 are allowed (``0 * log 0 = 0``).
    log_weights : ndarray, shape (k,), float64
        Added to each column: ``log pi_c`` (zeros for plain log-pmfs; -inf allowed).
    out : ndarray, shape (n, k), float64
        OUT: ``log_weights[c] + sum_j x_ij log theta_cj + (1 - x_ij) log(1 - theta_cj)``;
        -inf where row i is impossible under component c.
    """
    n, d = X.shape
    k = theta.shape[0]
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    kp = WT.shape[1]
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        idx, acc, hits, row, _ = _scratch(k, kp, d, required.shape[0] > 0)
        for i in range(start, stop):
            _dense_log_prob_row(X, i, WT, const, required, n_required, idx, acc, hits, out[i])


@kernel(parallel=True)
def bernoulli_log_pmf_csr(data, indices, indptr, theta, log_weights, out):
    """Weighted log-probabilities of CSR binary rows under every component, O(nnz k).

    Parameters
    ----------
    data : ndarray, shape (nnz,), bool, any integer dtype, float32 or float64
        Stored values (0/1; explicit zeros are skipped).
    indices : ndarray, shape (nnz,), int32 or int64
        Column of each stored value (need not be sorted within a row; no duplicates).
    indptr : ndarray, shape (n + 1,), int32 or int64
        Row i is ``data[indptr[i]:indptr[i + 1]]`` (absolute offsets, so a slice
        ``indptr[a:b + 1]`` selects rows a..b without copying).
    theta : ndarray, shape (k, d), float64
    log_weights : ndarray, shape (k,), float64
    out : ndarray, shape (n, k), float64
        OUT, as in :func:`bernoulli_log_pmf`.
    """
    n = indptr.shape[0] - 1
    k, d = theta.shape
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    kp = WT.shape[1]
    for b in prange(n_blocks(n)):
        start, stop = block_bounds(b, n)
        _, acc, hits, row, _ = _scratch(k, kp, 0, required.shape[0] > 0)
        for i in range(start, stop):
            _csr_log_prob_row(data, indices, indptr[i], indptr[i + 1], WT, const, required,
                              n_required, acc, hits, out[i])


@kernel
def _accumulate_row(w, lse, row, r, c_nk):
    """Weighted responsibilities r[:k] = w * row; c_nk += r. Returns w * lse (0 if w == 0)."""
    k = row.shape[0]
    for c in range(k):
        rc = w * row[c]
        r[c] = rc
        c_nk[c] += rc
    return w * lse if w != 0.0 else 0.0


@kernel(parallel=True)
def bernoulli_estep(X, sample_weight, theta, log_weights, nk, sx):
    """Fused E-step and sufficient statistics for dense binary X.

    One pass over X: log-probabilities, responsibilities ``r_ic`` (log-sum-exp) and the
    statistics, without an (n, k) temporary or a float copy of X.

    Parameters
    ----------
    X : ndarray, shape (n, d), bool, any integer dtype, float32 or float64, C-contiguous
    sample_weight : ndarray, shape (n,), float64
    theta : ndarray, shape (k, d), float64
        Success probabilities in [0, 1].
    log_weights : ndarray, shape (k,), float64
        ``log pi_c``.
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i w_i r_ic``.
    sx : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ic x_ij``.

    Returns
    -------
    float
        ``sum_i w_i log p(x_i)``, the weighted log-likelihood of the input parameters
        (-inf if a row with positive weight is impossible under every component).
    """
    n, d = X.shape
    k = theta.shape[0]
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    kp = WT.shape[1]
    nc = n_chunks(n, MAX_PARTIALS)
    p_nk = np.empty((nc, kp))
    p_sT = np.empty((nc, d, kp))
    p_ll = np.empty((nc, 1))
    for ch in prange(nc):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        idx, acc, hits, row, r = _scratch(k, kp, d, required.shape[0] > 0)
        ll = 0.0
        for i in range(start, stop):
            cnt = _dense_log_prob_row(X, i, WT, const, required, n_required, idx, acc, hits,
                                      row)
            ll += _accumulate_row(sample_weight[i], normalize_log_row(row), row, r, c_nk)
            for t in range(cnt):
                j = idx[t]
                v = np.float64(X[i, j])
                for c in range(kp):
                    c_sT[j, c] += v * r[c]
        p_ll[ch, 0] = ll
    return _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


@kernel(parallel=True)
def bernoulli_estep_csr(data, indices, indptr, sample_weight, theta, log_weights, nk, sx):
    """Fused E-step and sufficient statistics for CSR binary X, O(nnz k) per pass.

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays, as in :func:`bernoulli_log_pmf_csr` (n = ``indptr.shape[0] - 1``).
    sample_weight : ndarray, shape (n,), float64
    theta : ndarray, shape (k, d), float64
    log_weights : ndarray, shape (k,), float64
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i w_i r_ic``.
    sx : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ic x_ij``.

    Returns
    -------
    float
        ``sum_i w_i log p(x_i)``.
    """
    n = indptr.shape[0] - 1
    k, d = theta.shape
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    kp = WT.shape[1]
    nc = n_chunks(n, MAX_PARTIALS)
    p_nk = np.empty((nc, kp))
    p_sT = np.empty((nc, d, kp))
    p_ll = np.empty((nc, 1))
    for ch in prange(nc):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        _, acc, hits, row, r = _scratch(k, kp, 0, required.shape[0] > 0)
        ll = 0.0
        for i in range(start, stop):
            lo, hi = indptr[i], indptr[i + 1]
            _csr_log_prob_row(data, indices, lo, hi, WT, const, required, n_required, acc,
                              hits, row)
            ll += _accumulate_row(sample_weight[i], normalize_log_row(row), row, r, c_nk)
            for p in range(lo, hi):
                v = np.float64(data[p])
                if v == 0.0:
                    continue
                j = indices[p]
                for c in range(kp):
                    c_sT[j, c] += v * r[c]
        p_ll[ch, 0] = ll
    return _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


# ------------------------------------------------------------------ initialisation, validation

@kernel(parallel=True)
def _resp_stats(X, resp, nk, sx):
    """nk = sum_i resp_ic, sx = sum_i resp_ic x_ij for dense X and weighted resp (n, k)."""
    n, d = X.shape
    k = resp.shape[1]
    kp = _padded(k)
    nc = n_chunks(n, MAX_PARTIALS)
    p_nk = np.empty((nc, kp))
    p_sT = np.empty((nc, d, kp))
    p_ll = np.zeros((nc, 1))
    for ch in prange(nc):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        idx = np.empty(d, dtype=np.int64)
        r = np.zeros(kp)
        for i in range(start, stop):
            for c in range(k):
                r[c] = resp[i, c]
                c_nk[c] += r[c]
            cnt = _nonzero_positions(X, i, idx)
            for t in range(cnt):
                j = idx[t]
                v = np.float64(X[i, j])
                for c in range(kp):
                    c_sT[j, c] += v * r[c]
    _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


@kernel(parallel=True)
def _resp_stats_csr(data, indices, indptr, resp, nk, sx):
    """As :func:`_resp_stats` for CSR X (``indptr`` may be a slice; resp has its rows)."""
    n = indptr.shape[0] - 1
    k, d = sx.shape
    kp = _padded(k)
    nc = n_chunks(n, MAX_PARTIALS)
    p_nk = np.empty((nc, kp))
    p_sT = np.empty((nc, d, kp))
    p_ll = np.zeros((nc, 1))
    for ch in prange(nc):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        r = np.zeros(kp)
        for i in range(start, stop):
            for c in range(k):
                r[c] = resp[i, c]
                c_nk[c] += r[c]
            for p in range(indptr[i], indptr[i + 1]):
                v = np.float64(data[p])
                if v == 0.0:
                    continue
                j = indices[p]
                for c in range(kp):
                    c_sT[j, c] += v * r[c]
    _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


@kernel(parallel=True)
def _count_non_binary(values, counts):
    """counts[b] = number of entries other than 0 and 1 (NaN included) in value block b.

    ``values`` is 1-D (a flat view of X or CSR data); blocks have :data:`CHECK_BLOCK` values.
    No temporaries, so checking a large uint8 array allocates nothing of its size.
    """
    m = values.shape[0]
    nb = (m + CHECK_BLOCK - 1) // CHECK_BLOCK
    for b in prange(nb):
        start = b * CHECK_BLOCK
        stop = min(m, start + CHECK_BLOCK)
        bad = 0
        for p in range(start, stop):
            v = values[p]
            bad += (v != 0) & (v != 1)
        counts[b] = bad
