"""Gaussian mixtures: log-densities, the fused E-step with moment accumulation.

Parametrisation (scikit-learn's): component j has mean ``means[j]`` and precision matrix
``P_j P_j^T`` where ``P_j`` is the *precision Cholesky factor* (any square factor works: upper
triangular from a covariance, lower from a precision). Then::

    log N(x | mu_j, Sigma_j) = -d/2 log(2 pi) + log|det P_j| - 1/2 ||(x - mu_j)^T P_j||^2

Covariance types map onto two layouts:

* full / tied  - ``prec_chol`` of shape (k, d, d), or (1, d, d) shared by all components;
* diag / spherical - ``prec`` of shape (k, d) holding 1/sigma per feature (spherical: the same
  value repeated over the d features).

``const[j] = log(pi_j) + log|det P_j| - d/2 log(2 pi)`` is precomputed by the caller (pass
``log(pi_j) = 0`` for plain densities). Every pass works on ``xc = x - c`` in float64 with
``c`` the mean of the component means weighted by softmax(const), so float32 data far from the origin keep their
precision; X itself is never copied. The hot loops are the register-tiled SIMD products of
``_simd`` (quadratic forms; statistics as small per-block matrix products about c - at small
d one product of row features [xc, xc xc^T, 1] with the responsibilities - moved exactly to
the requested shift at the end).
"""
import numpy as np
from numba import prange

from ._blocks import (block_bounds, chunk_bounds, fold_blocks, n_blocks, n_chunks,
                      partial_units, scratch_rows, unit_chunk_bounds)
from ._jit import BLOCK_ROWS, kernel, run_on_threads
from ._simd import (PRODUCT_COLS, PRODUCT_ROWS, SEARCH_ROWS, axpy, matmul_acc_rows,
                    search_tile, sumsq_rows_medium, sumsq_rows_narrow, sumsq_rows_wide)
from ._target import DIAG_FEATURE_BYTES, DIAG_WHOLE_TABLE_BYTES
from .responsibilities import normalize_log_row

#: Most partial statistic tables a fused E-step keeps (each is k*d*d floats for full).
MAX_PARTIALS = 64


@kernel
def _full_layout(means, prec_chol, center):
    """Padded factors for the SIMD quadratic-form tile.

    Returns ``tile`` (0/1/2, ``_simd.search_tile`` of the d factor columns, ``width`` each),
    ``factors`` (k, dp / width * d, width): per component the zero-padded (d, dp) matrix
    ``[P_j 0]`` in ``_simd``'s column panels (row ``p * d + f``, column c = entry (f,
    p * width + c)), ``bias`` (k, dp) with
    ``bias[j] = (mu_j - center) @ factors[j]``, so that for ``xc = x - center``
    ``bias[j] - xc @ factors[j] = -(x - mu_j)^T P_j`` and its squared norm is the
    Mahalanobis term, and ``spans`` (k, dp / width, 2): the rows [first, last + 1) of each
    panel that hold a non-zero. A triangular factor (upper from a covariance, lower from a
    precision) has half its entries zero, and the tile skips those rows: adding
    ``-x_f * 0`` leaves a sum unchanged (up to the sign of a zero, which the square drops),
    so the result is the same bit for bit at half the work.
    """
    k, d = means.shape
    tile, width = search_tile(d, 8, 0)   # factor columns are float64
    dp = (d + width - 1) // width * width
    shared = prec_chol.shape[0] == 1
    factors = np.zeros((k, dp // width * d, width))
    bias = np.zeros((k, dp))
    spans = np.empty((k, dp // width, 2), np.int64)
    for j in range(k):
        p = prec_chol[0] if shared else prec_chol[j]
        for f in range(d):
            delta = means[j, f] - center[f]
            for g in range(d):
                bias[j, g] += delta * p[f, g]
        for panel in range(dp // width):
            first, stop = d, 0   # the panel's non-zero rows [first, stop); none yet
            cols = min(width, d - panel * width)
            for f in range(d):
                row = factors[j, panel * d + f]
                nonzero = False
                for c in range(cols):
                    v = p[f, panel * width + c]
                    row[c] = v
                    nonzero |= v != 0.0
                if nonzero:
                    first = min(first, f)
                    stop = f + 1
            spans[j, panel, 0] = first if stop > 0 else 0   # an all-zero panel: empty
            spans[j, panel, 1] = stop
    return tile, factors, bias, spans


@kernel
def _mean_of_means(means, const):
    """Centre c of a pass: the means averaged with weights softmax(const).

    const_j = log pi_j + log|det P_j| + ..., so components with (almost) no weight - e.g. an
    empty component far from the data - do not pull c away from where the data are.
    """
    k, d = means.shape
    top = -np.inf
    for j in range(k):
        top = max(top, const[j])
    center = np.zeros(d)
    total = 0.0
    for j in range(k):
        wj = np.exp(const[j] - top) if top > -np.inf else 1.0
        total += wj
        for f in range(d):
            center[f] += wj * means[j, f]
    return center / total


@kernel
def _full_block_log_prob(X, start, stop, center, tile, factors, bias, spans, const, xc, q, out):
    """out[i - start, j] = const[j] - 1/2 ||(X[i] - mu_j)^T P_j||^2 for a row block.

    Scratch: ``xc`` (>= stop - start, d) receives ``X[i] - center`` in float64 (the
    quadratic forms then run on float64 data whatever X's dtype); ``q`` (k, >= rows).
    """
    k, d = factors.shape[0], xc.shape[1]
    rows = stop - start
    for i in range(rows):
        for f in range(d):
            xc[i, f] = np.float64(X[start + i, f]) - center[f]
    last = rows - 1
    for j in range(k):
        fj, bj, qj, sj = factors[j], bias[j], q[j], spans[j]
        if tile == 2:
            for i in range(0, rows, SEARCH_ROWS[2]):
                sumsq_rows_wide(xc, i, last, fj, bj, qj, 0, sj)
        elif tile == 1:
            for i in range(0, rows, SEARCH_ROWS[1]):
                sumsq_rows_medium(xc, i, last, fj, bj, qj, 0, sj)
        else:
            for i in range(0, rows, SEARCH_ROWS[0]):
                sumsq_rows_narrow(xc, i, last, fj, bj, qj, 0, sj)
    for i in range(rows):
        for j in range(k):
            out[i, j] = const[j] - 0.5 * q[j, i]


@kernel
def _diag_layout(means, prec, center):
    """Coefficients of the expanded diagonal quadratic form.

    With ``xc = x - center`` and ``delta_j = mu_j - center``::

        sum_f prec_jf^2 (xc_f - delta_jf)^2 = [xc^2, xc] @ coef[:, j] - bias[j]

    ``coef`` (yp, kp), stored as column panels of w columns, shape (kp / w, yp, w)
    (``coef[f, j]`` at ``[j // w, f, j % w]``; w = kp, one panel, while the table fits
    ``DIAG_WHOLE_TABLE_BYTES``, else the product tile's width ``PRODUCT_COLS``): rows
    f < d hold ``prec^2``, rows d..2d-1 ``-2 prec^2 delta``, the rest (including row 2d, which
    meets the constant feature 1 of ``_diag_block_features``) and the padding columns j >= k
    are zero; ``bias[j] = -sum_f prec_jf^2 delta_jf^2``. yp and kp are multiples of
    ``PRODUCT_COLS``, kp of w.
    """
    k, d = means.shape
    yp = (2 * d + 1 + PRODUCT_COLS - 1) // PRODUCT_COLS * PRODUCT_COLS
    kp = (k + PRODUCT_COLS - 1) // PRODUCT_COLS * PRODUCT_COLS
    w = kp if yp * kp * 8 <= DIAG_WHOLE_TABLE_BYTES else PRODUCT_COLS
    coef = np.zeros((kp // w, yp, w))
    bias = np.zeros(kp)
    for j in range(k):
        panel, col = j // w, j % w
        for f in range(d):
            p2 = prec[j, f] * prec[j, f]
            delta = means[j, f] - center[f]
            coef[panel, f, col] = p2
            coef[panel, d + f, col] = -2.0 * p2 * delta
            bias[j] -= p2 * delta * delta
    return coef, bias


@kernel
def _diag_block_features(X, start, stop, center, y):
    """y[i] = [xc^2, xc, 1, 0...] for the rows of a block (xc = X[start + i] - center, float64).

    Rows of ``y`` past ``stop - start`` (padding up to a multiple of ``PRODUCT_ROWS``) are
    zeroed.
    """
    d = X.shape[1]
    rows = stop - start
    for i in range(rows):
        for f in range(d):
            v = np.float64(X[start + i, f]) - center[f]
            y[i, f] = v * v
            y[i, d + f] = v
        y[i, 2 * d] = 1.0
    for i in range(rows, y.shape[0]):
        for f in range(2 * d + 1):
            y[i, f] = 0.0


@kernel
def _diag_block_log_prob(y, coef, bias, const, q, out, rows):
    """out[i, j] = const[j] - 1/2 q_ij with q = y @ coef - bias (SIMD product tile), one
    column panel of ``coef`` (yp x w, :func:`_diag_layout`) at a time over every row of y:
    the panel (66 KB at d = 512) stays in L2 while the rows pass, where a whole table of
    many panels (528 KB at d = 512, k = 64) streamed from L3 past every tile of rows; a
    table small enough to stay in L1 is one panel. ``q`` (kp / w, rows of y, w) takes the
    panels' products; each q_ij is the same sum whatever the panels."""
    k = out.shape[1]
    w = coef.shape[2]
    m = y.shape[0]
    last = m - 1
    for p in range(coef.shape[0]):
        qp = q[p]
        qp[:m] = 0.0
        for i in range(0, m, PRODUCT_ROWS):
            matmul_acc_rows(y, i, last, coef[p], bias[p * w:(p + 1) * w], qp, 0)
    for p in range(coef.shape[0]):
        j0 = p * w
        for i in range(rows):
            for c in range(min(w, k - j0)):
                out[i, j0 + c] = const[j0 + c] - 0.5 * q[p, i, c]



@kernel
def _log_pdf_full_prepare(X, means, prec_chol, const, out):
    center = _mean_of_means(means, const)
    tile, factors, bias, spans = _full_layout(means, prec_chol, center)
    return n_blocks(X.shape[0]), center, tile, factors, bias, spans


@kernel
def _log_pdf_full_work(lo, hi, X, means, prec_chol, const, out, center, tile, factors, bias,
                       spans):
    n = X.shape[0]
    k, d = means.shape
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        xc = np.empty((stop - start, d))
        q = np.empty((k, stop - start))
        _full_block_log_prob(X, start, stop, center, tile, factors, bias, spans, const, xc, q,
                             out[start:stop])


@kernel(parallel=True)
def gaussian_log_pdf_full(X, means, prec_chol, const, out):
    """Log-densities for full or tied covariances.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    means : ndarray, shape (k, d), float64
    prec_chol : ndarray, shape (k, d, d) or (1, d, d) (tied), float64
    const : ndarray, shape (k,), float64
        ``log pi_j + log|det P_j| - d/2 log(2 pi)``.
    out : ndarray, shape (n, k), float64
        OUT: ``const[j] - 1/2 ||(x_i - mu_j)^T P_j||^2``.
    """
    nb, center, tile, factors, bias, spans = _log_pdf_full_prepare(X, means, prec_chol, const,
                                                                    out)
    for b in prange(nb):
        _log_pdf_full_work(b, b + 1, X, means, prec_chol, const, out, center, tile, factors,
                           bias, spans)


run_on_threads(gaussian_log_pdf_full, _log_pdf_full_prepare, _log_pdf_full_work, None)




@kernel
def _log_pdf_diag_prepare(X, means, prec, const, out):
    center = _mean_of_means(means, const)
    coef, bias = _diag_layout(means, prec, center)
    return n_blocks(X.shape[0]), center, coef, bias


@kernel
def _diag_sub_block_rows(n_features):
    """Rows whose diagonal features (``n_features`` float64 each: [xc^2, xc, 1] padded) and
    their panel copy take at most ``DIAG_FEATURE_BYTES``: a multiple of ``PRODUCT_ROWS``, at
    most ``SCATTER_ROWS``."""
    rows = DIAG_FEATURE_BYTES // (16 * n_features) // PRODUCT_ROWS * PRODUCT_ROWS
    return max(PRODUCT_ROWS, min(SCATTER_ROWS, rows))


@kernel
def _log_pdf_diag_work(lo, hi, X, means, prec, const, out, center, coef, bias):
    n = X.shape[0]
    sub = _diag_sub_block_rows(coef.shape[1])
    y = np.zeros((sub, coef.shape[1]))
    q = np.empty((coef.shape[0], sub, coef.shape[2]))
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for s0 in range(start, stop, sub):   # a row's density does not depend on its group
            s1 = min(stop, s0 + sub)
            rows4 = (s1 - s0 + PRODUCT_ROWS - 1) // PRODUCT_ROWS * PRODUCT_ROWS
            _diag_block_features(X, s0, s1, center, y[:rows4])
            _diag_block_log_prob(y[:rows4], coef, bias, const, q, out[s0:s1], s1 - s0)


@kernel(parallel=True)
def gaussian_log_pdf_diag(X, means, prec, const, out):
    """Log-densities for diagonal or spherical covariances.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    means : ndarray, shape (k, d), float64
    prec : ndarray, shape (k, d), float64
        1/sigma_jf (spherical: repeat 1/sigma_j over the features).
    const : ndarray, shape (k,), float64
        ``log pi_j + sum_f log prec[j, f] - d/2 log(2 pi)``.
    out : ndarray, shape (n, k), float64
        OUT.
    """
    nb, center, coef, bias = _log_pdf_diag_prepare(X, means, prec, const, out)
    for b in prange(nb):
        _log_pdf_diag_work(b, b + 1, X, means, prec, const, out, center, coef, bias)


run_on_threads(gaussian_log_pdf_diag, _log_pdf_diag_prepare, _log_pdf_diag_work, None)



@kernel
def _accumulate_scatter(r, v, s2):
    """Upper triangle of s2 += r * v v^T (s2 is (d, d) C-contiguous; rows via SIMD axpy)."""
    d = v.shape[0]
    for f in range(d):
        axpy(r * v[f], v, f, s2, f * d + f, d - f)


@kernel
def _mirror_upper(s2):
    """Copy the upper triangle of each (d, d) matrix in s2 (m, d, d) to its lower triangle."""
    for m in range(s2.shape[0]):
        for f in range(s2.shape[1]):
            for g in range(f):
                s2[m, f, g] = s2[m, g, f]



#: Rows of a block per sub-product of the E-step statistics. A panel of them
#: (``SCATTER_ROWS x PRODUCT_COLS`` floats: 32 KB with AVX-512 tiles) stays in the L1 cache
#: while every group of output rows passes over it, and the (d, SCATTER_ROWS) left operand
#: stays in L2; one product over a whole 2048-row block streamed its (2048, d) right operand
#: from memory once per four output rows (d = 512: 8 MB, 128 times per block and component).
SCATTER_ROWS = 256
#: Multiply-adds per row (full: k d^2; diag: 2 k (2d + 1)) from which a fused E-step may
#: split row blocks into chunks of down to ``SCATTER_ROWS`` rows (``_blocks.partial_units``):
#: such a chunk is then >= 34 MFLOP, ten times the cost of zeroing and folding a full pass's
#: k d^2 table, and a pass over one or two blocks (2,048 rows at d = 512; 5,086 rows in
#: three blocks, diag d = 512, k = 64) no longer leaves a thread idle or waiting.
FINE_CHUNK_WORK = 2**16


@kernel
def _smallest_unit(row_work):
    """The fewest rows a fused E-step's chunk may have, for ``row_work`` multiply-adds a row
    (``_blocks.partial_units``): ``SCATTER_ROWS`` from ``FINE_CHUNK_WORK`` on, else a block."""
    return SCATTER_ROWS if row_work >= FINE_CHUNK_WORK else BLOCK_ROWS


#: Full covariances, small d: the statistics of a block as one product ``T = Y^T R`` of the
#: row features ``y_i = [xc_i, xc_if xc_ig (f <= g), 1]`` (d + d(d+1)/2 + 1 of them) with
#: the weighted responsibilities ``R_ij = w_i r_ij``: T's rows are T1, the upper triangle of
#: every T2_j and N at once. Per row that costs (features x k) multiply-adds padded to the
#: product tile, against k d-wide scatter products that each fill whole tile squares
#: (d = 16, k = 16: 2,496 against 4,352 on AVX-512). :func:`_full_stats_by_features` picks the
#: cheaper. The feature rows of a sub-block take at most this many bytes (L2-resident):
FEATURE_BLOCK_BYTES = 256 * 1024


@kernel
def _full_stats_by_features(d, k, pooled):
    """Rows per sub-block of the feature product (0: use the per-component scatter
    products), its padded feature count and padded number of responsibility columns."""
    pr, pc = PRODUCT_ROWS, PRODUCT_COLS
    n_feat = (d + d * (d + 1) // 2 + 1 + pr - 1) // pr * pr
    kp = (k + pc - 1) // pc * pc
    if pooled:   # one pooled scatter: the per-component features would be k times the work
        return 0, n_feat, kp
    k4 = (k + pr - 1) // pr * pr
    d4 = (d + pr - 1) // pr * pr
    n_panels = (d + pc - 1) // pc
    scatter = 0
    for p in range(n_panels):
        scatter += min(d4, (p + 1) * pc) * pc
    by_scatter = k4 * n_panels * pc + k * scatter
    by_features = n_feat * kp + n_feat - d - 1   # the product and forming the features
    rows = FEATURE_BLOCK_BYTES // (8 * n_feat) // pr * pr
    if by_features >= by_scatter or rows < 4 * pr:
        return 0, n_feat, kp
    return min(rows, BLOCK_ROWS), n_feat, kp


@kernel
def _full_feature_product(xc, resp, sample_weight, b0, rows, sub_rows, yt_buf, r_buf, zeros,
                          t):
    """t += Y^T R for the rows [0, rows) of a block (see ``FEATURE_BLOCK_BYTES``).

    ``xc`` (>= rows, d) centred rows, ``resp`` their responsibilities, weighted here by
    ``sample_weight[b0 + i]``; ``t`` (n_feat, kp). Scratch ``yt_buf`` (>= n_feat *
    sub_rows) and ``r_buf`` (>= sub_rows * kp): Y^T and R of one sub-block.
    """
    d = xc.shape[1]
    k = resp.shape[1]
    n_feat, kp = t.shape
    one = d + d * (d + 1) // 2
    for s0 in range(0, rows, sub_rows):
        m = min(rows, s0 + sub_rows) - s0
        yt = yt_buf[:n_feat * m].reshape((n_feat, m))
        r = r_buf[:m * kp].reshape((m, kp))
        for i in range(m):
            w = sample_weight[b0 + s0 + i]
            for j in range(k):
                r[i, j] = w * resp[s0 + i, j]
            for j in range(k, kp):
                r[i, j] = 0.0
            for f in range(d):
                yt[f, i] = xc[s0 + i, f]
        at = d
        for f in range(d):
            for g in range(f, d):
                for i in range(m):   # contiguous: vectorised
                    yt[at, i] = yt[f, i] * yt[g, i]
                at += 1
        for i in range(m):
            yt[one, i] = 1.0
        for f in range(one + 1, n_feat):
            for i in range(m):
                yt[f, i] = 0.0
        for f0 in range(0, n_feat, PRODUCT_ROWS):
            matmul_acc_rows(yt, f0, n_feat - 1, r, zeros, t, 0)


@kernel
def _full_tables_from_features(ty, d, nk, t1p, t2p):
    """Unpack the feature product's ``ty`` (n_feat, kp) into N, and T1 / T2 in the scatter
    path's column panels (see :func:`_full_stats_about_shift`)."""
    k = nk.shape[0]
    w = t1p.shape[2]
    one = d + d * (d + 1) // 2
    t1p[:] = 0.0
    t2p[:] = 0.0
    for j in range(k):
        nk[j] = ty[one, j]
        for f in range(d):
            t1p[f // w, j, f % w] = ty[f, j]
        at = d
        for f in range(d):
            for g in range(f, d):
                t2p[j, g // w, f, g % w] = ty[at, j]
                at += 1


@kernel
def _full_estep_plan(n, d, k, pooled):
    """How a full-covariance E-step forms its statistics and splits its rows: (rows per
    feature sub-block or 0 (:func:`_full_stats_by_features`), padded features, padded
    responsibility columns, chunks, rows per chunk unit (``_blocks.partial_units``))."""
    pr, pc = PRODUCT_ROWS, PRODUCT_COLS
    sub_rows, n_feat, kp = _full_stats_by_features(d, k, pooled)
    if sub_rows > 0:
        table = n_feat * kp
    else:
        d4 = (d + pr - 1) // pr * pr
        n_panels = (d + pc - 1) // pc
        m2 = 1 if pooled else k
        table = k + (k + pr - 1) // pr * pr * n_panels * pc + m2 * n_panels * d4 * pc
    nc, unit = partial_units(n, 8 * table, _smallest_unit(k * d * d))
    return sub_rows, n_feat, kp, nc, unit


@kernel
def _estep_full_prepare(X, sample_weight, means, prec_chol, const, shift, nk, s1, s2):
    n = X.shape[0]
    k, d = means.shape
    center = _mean_of_means(means, const)
    tile, factors, bias, spans = _full_layout(means, prec_chol, center)
    pr, pc = PRODUCT_ROWS, PRODUCT_COLS
    d4 = (d + pr - 1) // pr * pr   # product rows, padded for the product tile
    k4 = (k + pr - 1) // pr * pr
    n_panels = (d + pc - 1) // pc   # product columns in panels of the tile's width
    sub_rows, n_feat, kp, nc, unit = _full_estep_plan(n, d, k, shift.shape[0] == 1)
    # per chunk, moments about `center`: with features, T = Y^T R (n_feat, kp); else
    # N_j, T1 = R^T XC (k4, dp), T2_j = (r_j XC)^T XC (upper triangle), each column panel of
    # T1 / T2 stored contiguously (the unused tables get no chunks)
    nf, ns = (nc, 0) if sub_rows > 0 else (0, nc)
    return (nc, unit, center, tile, factors, bias, spans, sub_rows, np.empty((nf, n_feat, kp)),
            np.empty((ns, k)), np.empty((ns, n_panels, k4, pc)),
            np.empty((ns, s2.shape[0], n_panels, d4, pc)), np.empty((nc, 1)))


@kernel
def _estep_full_work(lo, hi, X, sample_weight, means, prec_chol, const, shift, nk, s1, s2,
                     unit, center, tile, factors, bias, spans, sub_rows, p_ty, p_nk, p_t1,
                     p_t2, p_ll):
    n = X.shape[0]
    k, d = means.shape
    pooled = shift.shape[0] == 1
    m2 = s2.shape[0]
    pr, pc, sr = PRODUCT_ROWS, PRODUCT_COLS, SCATTER_ROWS
    nc = p_ll.shape[0]
    n_panels, k4, d4 = p_t1.shape[1], p_t1.shape[2], p_t2.shape[3]
    n_feat, kp = p_ty.shape[1], p_ty.shape[2]
    # scratch for one block, no larger than the chunk (fresh pages cost a fault each)
    rows_max = scratch_rows(lo, hi, n, nc, unit)
    xc = np.empty((rows_max, d))
    q = np.empty((k, rows_max))
    resp = np.empty((rows_max, k))
    features = sub_rows > 0
    if features:
        zeros = np.zeros(kp)
        yt_buf = np.empty(n_feat * min(sub_rows, rows_max))
        r_buf = np.empty(min(sub_rows, rows_max) * kp)
    else:
        zeros = np.zeros(pc)
        yt_buf = np.empty(0)
        r_buf = np.empty(0)
    # operands of the scatter products, zero-padded: RT = (w r)^T (k4, sr) per sub-block s
    # of `sr` rows, and for one sub-block at a time XC in column panels (sr, pc), XT = XC^T
    # and WT = (w r_m XC)^T (d4, sr)
    n_sub = 0 if features else (rows_max + sr - 1) // sr
    rt = np.empty((n_sub, k4, sr))
    xcp = np.empty((min(n_sub, 1), n_panels, sr, pc))
    xt = np.empty((min(n_sub, 1), d4, sr))
    wt = np.empty((min(n_sub, 1), d4, sr))
    rw = np.empty(sr)
    for c in range(lo, hi):
        start, stop = unit_chunk_bounds(c, n, nc, unit)
        ll = 0.0
        if features:
            c_ty = p_ty[c]
            c_ty[:] = 0.0
            for b0 in range(start, stop, BLOCK_ROWS):
                b1 = min(stop, b0 + BLOCK_ROWS)
                _full_block_log_prob(X, b0, b1, center, tile, factors, bias, spans, const, xc,
                                     q, resp)
                for i in range(b1 - b0):
                    ll += sample_weight[b0 + i] * normalize_log_row(resp[i])
                _full_feature_product(xc, resp, sample_weight, b0, b1 - b0, sub_rows, yt_buf,
                                      r_buf, zeros, c_ty)
            p_ll[c, 0] = ll
            continue
        c_nk, c_t1, c_t2 = p_nk[c], p_t1[c], p_t2[c]
        c_nk[:] = 0.0
        c_t1[:] = 0.0
        for m in range(m2):   # only the upper triangle is ever touched (see the products)
            for p in range(n_panels):
                c_t2[m, p, :min(d4, (p + 1) * pc)] = 0.0
        xs, xts, ws = xcp[0], xt[0], wt[0]
        for b0 in range(start, stop, BLOCK_ROWS):
            b1 = min(stop, b0 + BLOCK_ROWS)
            rows = b1 - b0
            subs = (rows + sr - 1) // sr
            _full_block_log_prob(X, b0, b1, center, tile, factors, bias, spans, const, xc, q,
                                 resp)
            rt[:subs] = 0.0
            for i in range(rows):
                w = sample_weight[b0 + i]
                ll += w * normalize_log_row(resp[i])
                for j in range(k):
                    rt[i // sr, j, i % sr] = w * resp[i, j]
            for j in range(k):
                for i in range(rows):
                    c_nk[j] += rt[i // sr, j, i % sr]
            for sb in range(subs):
                i0 = sb * sr
                m_rows = min(rows, i0 + sr) - i0
                xs[:] = 0.0
                xts[:] = 0.0
                for ii in range(m_rows):
                    for f in range(d):
                        xs[f // pc, ii, f % pc] = xc[i0 + ii, f]
                        xts[f, ii] = xc[i0 + ii, f]
                for p in range(n_panels):
                    for j0 in range(0, k4, pr):
                        matmul_acc_rows(rt[sb], j0, k4 - 1, xs[p], zeros, c_t1[p], 0)
                for m in range(m2):
                    # pooled (tied): weights w_i; per component: w_i r_im (zero on padding)
                    for ii in range(sr):
                        if pooled:
                            rw[ii] = sample_weight[b0 + i0 + ii] if ii < m_rows else 0.0
                        else:
                            rw[ii] = rt[sb, m, ii]
                    for f in range(d4):
                        for ii in range(sr):   # contiguous: vectorised
                            ws[f, ii] = xts[f, ii] * rw[ii]
                    for p in range(n_panels):
                        # rows f <= the panel's last column g: the upper triangle f <= g
                        for f0 in range(0, min(d4, (p + 1) * pc), pr):
                            matmul_acc_rows(ws, f0, d4 - 1, xs[p], zeros, c_t2[m, p], 0)
        p_ll[c, 0] = ll


@kernel
def _fold_upper_panels(p_t2, t2p):
    """``t2p`` = the chunk sum of the scatter tables ``p_t2`` (nc, m, panels, d4, w), in chunk
    order, over the rows a panel's products touch (f < (p + 1) w; the rest is left unset)."""
    nc, m2, n_panels, d4, w = p_t2.shape
    for m in range(m2):
        for p in range(n_panels):
            rows = min(d4, (p + 1) * w)
            t2p[m, p, :rows] = 0.0
            for c in range(nc):
                for f in range(rows):
                    for g in range(w):
                        t2p[m, p, f, g] += p_t2[c, m, p, f, g]


@kernel
def _estep_full_finish(X, sample_weight, means, prec_chol, const, shift, nk, s1, s2,
                       unit, center, tile, factors, bias, spans, sub_rows, p_ty, p_nk, p_t1,
                       p_t2, p_ll):
    t1p = np.empty(p_t1.shape[1:])
    t2p = np.empty(p_t2.shape[1:])
    if sub_rows > 0:
        ty = np.empty(p_ty.shape[1:])
        fold_blocks(p_ty, ty)
        _full_tables_from_features(ty, means.shape[1], nk, t1p, t2p)
    else:
        fold_blocks(p_nk, nk)
        fold_blocks(p_t1, t1p)
        _fold_upper_panels(p_t2, t2p)
    _full_stats_about_shift(nk, t1p, t2p, center, shift, s1, s2)
    total = np.empty(1)
    fold_blocks(p_ll, total)
    return total[0]


@kernel(parallel=True)
def gaussian_estep_full(X, sample_weight, means, prec_chol, const, shift, nk, s1, s2):
    """Fused E-step and sufficient statistics for full or tied covariances.

    One pass over X: log-densities, responsibilities ``r_ij`` (log-sum-exp) and the
    statistics, without an (n, k) or (n, d) temporary.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    sample_weight : ndarray, shape (n,), float64
    means : ndarray, shape (k, d), float64
    prec_chol : ndarray, shape (k, d, d) (full) or (1, d, d) (tied), float64
    const : ndarray, shape (k,), float64
        ``log pi_j + log|det P_j| - d/2 log(2 pi)``.
    shift : ndarray, shape (k, d) or (1, d), float64
        Centre of the accumulated moments: (k, d) per component (full; pass ``means``), or
        (1, d) one pooled centre (tied). Shifting avoids E[xx^T] - mu mu^T cancellation.
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i w_i r_ij``.
    s1 : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ij (x_i - c_j)`` with ``c_j = shift[j]`` (or ``shift[0]``).
    s2 : ndarray, shape (k, d, d) or (1, d, d), float64
        OUT: ``sum_i w_i r_ij (x_i - c_j)(x_i - c_j)^T`` per component when ``shift`` has k
        rows; ``sum_i w_i (x_i - c)(x_i - c)^T`` (pooled, tied) when it has one row.

    Returns
    -------
    float
        ``sum_i w_i log p(x_i)``, the weighted log-likelihood of the input parameters.
    """
    (nc, unit, center, tile, factors, bias, spans, sub_rows, p_ty, p_nk, p_t1, p_t2,
     p_ll) = _estep_full_prepare(X, sample_weight, means, prec_chol, const, shift, nk, s1, s2)
    for c in prange(nc):
        _estep_full_work(c, c + 1, X, sample_weight, means, prec_chol, const, shift, nk, s1,
                         s2, unit, center, tile, factors, bias, spans, sub_rows, p_ty, p_nk,
                         p_t1, p_t2, p_ll)
    return _estep_full_finish(X, sample_weight, means, prec_chol, const, shift, nk, s1, s2,
                              unit, center, tile, factors, bias, spans, sub_rows, p_ty, p_nk,
                              p_t1, p_t2, p_ll)


run_on_threads(gaussian_estep_full, _estep_full_prepare, _estep_full_work, _estep_full_finish)



@kernel
def _full_stats_about_shift(nk, t1p, t2p, center, shift, s1, s2):
    """Move moments about ``center`` to moments about ``shift``.

    T1 and T2 come in the E-step's column panels of width w: ``T1[j, f] = t1p[f // w, j,
    f % w]`` and, upper triangle only, ``T2[m, f, g] = t2p[m, g // w, f, g % w]`` for f <= g
    (T2 is symmetric). With e = shift_j - center::

        s1_j = T1_j - N_j e
        s2_j = T2_j - e T1_j^T - T1_j e^T + N_j e e^T          (per component)
        s2   = T2 - e t^T - t e^T + N e e^T,  t = sum_j T1_j, N = sum_j N_j   (pooled)
    """
    k, d = s1.shape
    w = PRODUCT_COLS   # the tables' panel width, as a constant: no division per entry below
    pooled = shift.shape[0] == 1
    for j in range(k):
        sj = 0 if pooled else j
        for f in range(d):
            s1[j, f] = t1p[f // w, j, f % w] - nk[j] * (shift[sj, f] - center[f])
    for m in range(s2.shape[0]):
        n_m = 0.0
        t = np.zeros(d)
        if pooled:
            for j in range(k):
                n_m += nk[j]
                for f in range(d):
                    t[f] += t1p[f // w, j, f % w]
        else:
            n_m = nk[m]
            for f in range(d):
                t[f] = t1p[f // w, m, f % w]
        for f in range(d):
            ef = shift[m, f] - center[f]
            for g in range(d):
                eg = shift[m, g] - center[g]
                lo, hi = min(f, g), max(f, g)
                s2[m, f, g] = t2p[m, hi // w, lo, hi % w] - ef * t[g] - t[f] * eg + n_m * ef * eg


@kernel
def _diag_stats_from_t(tp, means, shift, center, nk, s1, s2):
    """Moments about ``shift`` from T = sum_i w r [xc^2, xc, 1] (moments about ``center``),
    given in the E-step's column panels of width w: ``T[j, c] = tp[c // w, j, c % w]``.

    With e = shift_j - center: s1 = B - N e and s2 = A - 2 e B + N e^2 (A, B, N: the xc^2, xc
    and constant columns of T).
    """
    k, d = means.shape
    w = tp.shape[2]
    for j in range(k):
        n_j = tp[2 * d // w, j, 2 * d % w]
        nk[j] = n_j
        for f in range(d):
            e = shift[j, f] - center[f]
            a, b = tp[f // w, j, f % w], tp[(d + f) // w, j, (d + f) % w]
            s1[j, f] = b - n_j * e
            s2[j, f] = a - 2.0 * e * b + n_j * e * e


@kernel
def _estep_diag_prepare(X, sample_weight, means, prec, const, shift, nk, s1, s2):
    k, d = means.shape
    center = _mean_of_means(means, const)
    coef, bias = _diag_layout(means, prec, center)
    k4 = (k + PRODUCT_ROWS - 1) // PRODUCT_ROWS * PRODUCT_ROWS
    nc, unit = partial_units(X.shape[0], 8 * coef.shape[1] * k4,
                             _smallest_unit(2 * k * (2 * d + 1)))
    # per chunk: T[j] = sum_i w_i r_ij [xc^2, xc, 1] (rows j >= k stay 0) in column panels,
    # and the log-likelihood
    return (nc, unit, center, coef, bias,
            np.empty((nc, coef.shape[1] // PRODUCT_COLS, k4, PRODUCT_COLS)), np.empty((nc, 1)))


@kernel
def _estep_diag_work(lo, hi, X, sample_weight, means, prec, const, shift, nk, s1, s2,
                     unit, center, coef, bias, p_t, p_ll):
    n = X.shape[0]
    k = means.shape[0]
    yp = coef.shape[1]
    pr, pc = PRODUCT_ROWS, PRODUCT_COLS
    nc, n_panels, k4 = p_t.shape[0], p_t.shape[1], p_t.shape[2]
    zeros = np.zeros(pc)
    # one sub-block of `sr` rows at a time, from X to the statistics, so that its features Y
    # and their panel copy stay in the L2 cache (DIAG_FEATURE_BYTES: whole blocks of them,
    # 17 MB at d = 512, were written and read four times); zero-padded: RT = (w r)^T (k4, sr)
    sr = _diag_sub_block_rows(yp)
    y = np.zeros((sr, yp))
    q = np.empty((coef.shape[0], sr, coef.shape[2]))
    resp = np.empty((sr, k))
    rt = np.zeros((k4, sr))   # rows k..k4-1 stay zero
    ypan = np.empty((n_panels, sr, pc))
    for c in range(lo, hi):
        start, stop = unit_chunk_bounds(c, n, nc, unit)
        c_t = p_t[c]
        c_t[:] = 0.0
        ll = 0.0
        for b0 in range(start, stop, BLOCK_ROWS):
            b1 = min(stop, b0 + BLOCK_ROWS)
            for s0 in range(b0, b1, sr):
                rows = min(b1, s0 + sr) - s0
                rows4 = (rows + pr - 1) // pr * pr
                _diag_block_features(X, s0, s0 + rows, center, y[:rows4])
                _diag_block_log_prob(y[:rows4], coef, bias, const, q, resp, rows)
                if rows < sr:   # a full sub-block overwrites every entry below
                    rt[:] = 0.0
                    ypan[:] = 0.0
                for i in range(rows):
                    w = sample_weight[s0 + i]
                    ll += w * normalize_log_row(resp[i])
                    for j in range(k):
                        rt[j, i] = w * resp[i, j]
                    for f in range(yp):
                        ypan[f // pc, i, f % pc] = y[i, f]
                # T += RT @ Y, one column panel at a time (see SCATTER_ROWS)
                for p in range(n_panels):
                    for j0 in range(0, k4, pr):
                        matmul_acc_rows(rt, j0, k4 - 1, ypan[p], zeros, c_t[p], 0)
        p_ll[c, 0] = ll


@kernel
def _estep_diag_finish(X, sample_weight, means, prec, const, shift, nk, s1, s2,
                       unit, center, coef, bias, p_t, p_ll):
    tp = np.empty(p_t.shape[1:])
    fold_blocks(p_t, tp)
    total = np.empty(1)
    fold_blocks(p_ll, total)
    _diag_stats_from_t(tp, means, shift, center, nk, s1, s2)
    return total[0]


@kernel(parallel=True)
def gaussian_estep_diag(X, sample_weight, means, prec, const, shift, nk, s1, s2):
    """Fused E-step and sufficient statistics for diagonal or spherical covariances.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    sample_weight : ndarray, shape (n,), float64
    means : ndarray, shape (k, d), float64
    prec : ndarray, shape (k, d), float64
        1/sigma_jf (spherical: repeated over the features).
    const : ndarray, shape (k,), float64
    shift : ndarray, shape (k, d), float64
        Centre of the accumulated moments (pass ``means``).
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i w_i r_ij``.
    s1 : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ij (x_i - shift_j)``.
    s2 : ndarray, shape (k, d), float64
        OUT: ``sum_i w_i r_ij (x_i - shift_j)^2`` (element-wise).

    Returns
    -------
    float
        ``sum_i w_i log p(x_i)``.
    """
    nc, unit, center, coef, bias, p_t, p_ll = _estep_diag_prepare(
        X, sample_weight, means, prec, const, shift, nk, s1, s2)
    for c in prange(nc):
        _estep_diag_work(c, c + 1, X, sample_weight, means, prec, const, shift, nk, s1, s2,
                         unit, center, coef, bias, p_t, p_ll)
    return _estep_diag_finish(X, sample_weight, means, prec, const, shift, nk, s1, s2,
                              unit, center, coef, bias, p_t, p_ll)


run_on_threads(gaussian_estep_diag, _estep_diag_prepare, _estep_diag_work, _estep_diag_finish)




@kernel
def _moments_prepare(X, resp, shift, nk, s1, s2_full, s2_diag):
    n, d = X.shape
    k = resp.shape[1]
    nc = n_chunks(n, MAX_PARTIALS)
    return (nc, np.empty((nc, k)), np.empty((nc, k, d)), np.empty((nc, s2_full.shape[0], d, d)),
            np.empty((nc, s2_diag.shape[0], d)))


@kernel
def _moments_work(lo, hi, X, resp, shift, nk, s1, s2_full, s2_diag, p_nk, p_s1, p_full, p_diag):
    n, d = X.shape
    k = resp.shape[1]
    per_component = shift.shape[0] != 1
    m_full = s2_full.shape[0]
    do_diag = s2_diag.shape[0] > 0
    nc = p_nk.shape[0]
    v = np.empty(d)
    for c in range(lo, hi):
        start, stop = chunk_bounds(c, n, nc)
        p_nk[c][:] = 0.0
        p_s1[c][:] = 0.0
        p_full[c][:] = 0.0
        p_diag[c][:] = 0.0
        for i in range(start, stop):
            total = 0.0
            for j in range(k):
                r = resp[i, j]
                total += r
                if r == 0.0:
                    continue
                cj = j if per_component else 0
                for f in range(d):
                    v[f] = np.float64(X[i, f]) - shift[cj, f]
                p_nk[c, j] += r
                for f in range(d):
                    p_s1[c, j, f] += r * v[f]
                if do_diag:
                    for f in range(d):
                        p_diag[c, j, f] += r * v[f] * v[f]
                if per_component and m_full > 0:
                    _accumulate_scatter(r, v, p_full[c, j])
            if not per_component and m_full > 0 and total != 0.0:
                for f in range(d):
                    v[f] = np.float64(X[i, f]) - shift[0, f]
                _accumulate_scatter(total, v, p_full[c, 0])


@kernel
def _moments_finish(X, resp, shift, nk, s1, s2_full, s2_diag, p_nk, p_s1, p_full, p_diag):
    fold_blocks(p_nk, nk)
    fold_blocks(p_s1, s1)
    if s2_full.shape[0] > 0:
        fold_blocks(p_full, s2_full)
        _mirror_upper(s2_full)
    if s2_diag.shape[0] > 0:
        fold_blocks(p_diag, s2_diag)


@kernel(parallel=True)
def weighted_moments(X, resp, shift, nk, s1, s2_full, s2_diag):
    """Moments of X under given (weighted) responsibilities, e.g. for initialisation.

    Parameters
    ----------
    X : ndarray, shape (n, d), float32 or float64
    resp : ndarray, shape (n, k), float64
        ``w_i r_ij`` (sample weights already folded in).
    shift : ndarray, shape (k, d) or (1, d), float64
        Centre per component, or one pooled centre.
    nk : ndarray, shape (k,), float64
        OUT: ``sum_i resp_ij``.
    s1 : ndarray, shape (k, d), float64
        OUT: ``sum_i resp_ij (x_i - c_j)``.
    s2_full : ndarray, shape (m, d, d), float64
        OUT: scatter about the centre; m = k (per component), 1 (pooled: ``sum_i (sum_j
        resp_ij) (x_i - c)(x_i - c)^T``) or 0 (not computed).
    s2_diag : ndarray, shape (k, d) or (0, d), float64
        OUT: ``sum_i resp_ij (x_i - c_j)^2``, or not computed when it has 0 rows.
    """
    nc, p_nk, p_s1, p_full, p_diag = _moments_prepare(X, resp, shift, nk, s1, s2_full, s2_diag)
    for c in prange(nc):
        _moments_work(c, c + 1, X, resp, shift, nk, s1, s2_full, s2_diag, p_nk, p_s1, p_full,
                      p_diag)
    _moments_finish(X, resp, shift, nk, s1, s2_full, s2_diag, p_nk, p_s1, p_full, p_diag)


run_on_threads(weighted_moments, _moments_prepare, _moments_work, _moments_finish)
