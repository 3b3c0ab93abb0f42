"""Bernoulli mixtures: log-pmf of binary rows and the fused E-step, dense and CSR.

Component c has success probabilities ``theta[c]`` (one per feature). For a binary row x::

    log p(x | c) = sum_j x_j log theta_cj + (1 - x_j) log(1 - theta_cj)
                 = sum_{j: x_j = 1} W_jc  +  sum_j log(1 - theta_cj),
    W_jc = log theta_cj - log(1 - theta_cj)                     (the log-odds)

so a row costs one pass over its non-zero entries: a dense row is scanned once, 8 entries at
a time, for its non-zero positions, and a CSR row costs O(nnz), never O(d). The log-odds are
kept transposed, ``WT`` of shape (d, kp) with k padded to a multiple of ``LANES`` (one vector register), so adding feature
j's contribution to all k components is a few SIMD adds into register accumulators; the
M-step statistics ``sum_i w_i r_ic x_ij`` are accumulated the same way into a (d, kp) table.

Edge values (``0 * log 0 = 0``, no NaN, no fastmath assumptions): ``theta = 0`` gives
``W = -inf`` (a row with x_j = 1 is impossible) and no constant term; ``theta = 1`` gives
``W = 0``, no constant term and a *required* feature: the row is impossible (-inf) unless
x_j != 0. Infinities never meet, so -inf is the only non-finite value that can appear.

X may be bool, any integer type, float32 or float64, used as given (no copy, no conversion).
It must be binary: every non-zero entry is read as 1 (fastem's estimators reject any other
value before calling a kernel). CSR input is ``(data, indices, indptr)`` with int32 or int64
indices; explicit zeros and unsorted indices are allowed (sums then follow the stored order,
so the last bits can differ from a sorted matrix's). Statistics accumulate in float64
in per-chunk partials (a chunk is a run of whole row blocks; ``_blocks.n_partials`` decides
how many from n and the table size only) that are
summed in chunk order: results are bitwise identical for any number of threads.
"""
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._blocks import block_bounds, chunk_bounds, fold_rows, n_blocks, n_partials
from ._jit import kernel, run_on_threads
from ._simd import LANES, _is_c_array, _splat
from .responsibilities import normalize_log_row

#: Entries of a dense row examined per step of the non-zero scan (a byte mask; the scan writes
#: up to this many positions past the last non-zero, so position buffers have d + SCAN_WIDTH).
SCAN_WIDTH = 8

#: Values per block in the binary check.
CHECK_BLOCK = 1 << 16


# ------------------------------------------------------------------ SIMD building blocks
# Why intrinsics: the per-row work is "add rows idx[0..cnt) of a (d, kp) table into kp
# accumulators" (E-step) and "add a kp vector into rows idx[0..cnt) of a table" (M-step).
# Written as Numba loops, LLVM keeps the accumulators in memory (a loop-carried dependency
# through the store buffer) and the scalar scan for non-zero positions costs ~4 operations per
# entry. Emitting the vector IR directly keeps the accumulators in SIMD registers (two
# interleaved sets hide the add latency) and scans 8 entries per step with a 256-entry table
# of bit positions. The code is target-independent LLVM IR (no x86 intrinsics), so it runs
# wherever Numba does; a vector is ``LANES`` float64 (one register of the target's class, from
# the table in ``_target``; components are padded to a multiple of it).

def _make_row_update(n_vec, scatter):
    """Intrinsic over the table rows ``idx[start:stop]`` and columns ``col0 + [0, LANES n_vec)``.

    gather (scatter=False): ``vec[cols] = sum_t table[idx[t], cols]``, t in increasing order
    alternating between two accumulators (even t, odd t) that are added at the end;
    scatter (scatter=True): ``table[idx[t], cols] += vec[cols]`` for every t.
    ``table`` is a C-contiguous (d, kp) float64 array with kp a multiple of LANES; ``idx`` an int32
    or int64 array; ``vec`` a float64 array of length >= kp.
    """
    @intrinsic
    def row_update(typingctx, table, idx, start, stop, col0, vec):
        if not (_is_c_array(table, 2, types.float64) and _is_c_array(idx, 1)
                and isinstance(idx.dtype, types.Integer) and _is_c_array(vec, 1, types.float64)):
            return None
        sig = types.void(table, idx, start, stop, col0, vec)

        def codegen(context, builder, signature, args):
            tab_v, idx_v, start_v, stop_v, col_v, vec_v = args
            i64 = ir.IntType(64)
            vtype = ir.VectorType(ir.DoubleType(), LANES)
            ta = context.make_array(table)(context, builder, tab_v)
            ia = context.make_array(idx)(context, builder, idx_v)
            va = context.make_array(vec)(context, builder, vec_v)
            kp = builder.extract_value(ta.shape, 1)
            lo = context.cast(builder, start_v, signature.args[2], types.int64)
            hi = context.cast(builder, stop_v, signature.args[3], types.int64)
            col = context.cast(builder, col_v, signature.args[4], types.int64)

            def vector_at(base, offset):
                return builder.bitcast(builder.gep(base, [offset]), vtype.as_pointer())

            def row_base(t):  # offset of table[idx[t], col]
                j = builder.load(builder.gep(ia.data, [t]))
                j = builder.sext(j, i64) if j.type.width < 64 else j
                return builder.add(builder.mul(j, kp), col)

            def lane(v):
                return ir.Constant(i64, LANES * v)

            if scatter:
                add = [builder.load(vector_at(va.data, builder.add(col, lane(v))), align=8)
                       for v in range(n_vec)]
                with cgutils.for_range_slice(builder, lo, hi, ir.Constant(i64, 1),
                                             intp=i64) as (t, _):
                    base = row_base(t)
                    for v in range(n_vec):
                        ptr = vector_at(ta.data, builder.add(base, lane(v)))
                        builder.store(builder.fadd(builder.load(ptr, align=8), add[v]), ptr,
                                      align=8)
                return context.get_dummy_value()

            zero = ir.Constant(vtype, [0.0] * LANES)
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(n_vec)]
                   for _ in range(2)]

            def accumulate(which, t):
                base = row_base(t)
                for v in range(n_vec):
                    x = builder.load(vector_at(ta.data, builder.add(base, lane(v))), align=8)
                    builder.store(builder.fadd(builder.load(acc[which][v]), x), acc[which][v])

            count = builder.sub(hi, lo)
            with cgutils.for_range(builder, builder.ashr(count, ir.Constant(i64, 1)),
                                   intp=i64) as loop:
                t0 = builder.add(lo, builder.shl(loop.index, ir.Constant(i64, 1)))
                accumulate(0, t0)
                accumulate(1, builder.add(t0, ir.Constant(i64, 1)))
            odd = builder.icmp_signed("!=", builder.and_(count, ir.Constant(i64, 1)),
                                      ir.Constant(i64, 0))
            with builder.if_then(odd):
                accumulate(0, builder.sub(hi, ir.Constant(i64, 1)))
            for v in range(n_vec):
                total = builder.fadd(builder.load(acc[0][v]), builder.load(acc[1][v]))
                builder.store(total, vector_at(va.data, builder.add(col, lane(v))), align=8)
            return context.get_dummy_value()

        return sig, codegen

    return row_update


_gather_1, _gather_2, _gather_4 = (_make_row_update(v, False) for v in (1, 2, 4))
_scatter_1, _scatter_2, _scatter_4 = (_make_row_update(v, True) for v in (1, 2, 4))


def _bit_positions():
    """(256, 8) int32: row m lists the positions of the set bits of m, then zeros."""
    table = np.zeros((256, 8), dtype=np.int32)
    for m in range(256):
        bits = [b for b in range(8) if m >> b & 1]
        table[m, :len(bits)] = bits
    return table


_BIT_POSITIONS = _bit_positions()


@intrinsic
def _scan_row(typingctx, X, i, idx, positions):
    """Positions of the non-zero entries of ``X[i]`` into ``idx``, increasing; returns count.

    Eight entries per step: compare against zero, turn the 8 lanes into a byte m, store
    ``positions[m] + j`` (8 int32, some unused) at ``idx[count]`` and advance count by
    popcount(m). ``idx`` is int32 with at least ``d + 8`` entries.
    """
    if not (_is_c_array(X, 2) and _is_c_array(idx, 1, types.int32)
            and _is_c_array(positions, 2, types.int32)
            and isinstance(X.dtype, (types.Integer, types.Float, types.Boolean))):
        return None
    sig = types.int64(X, i, idx, positions)

    def codegen(context, builder, signature, args):
        x_v, i_v, idx_v, pos_v = args
        i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
        xa = context.make_array(X)(context, builder, x_v)
        ia = context.make_array(idx)(context, builder, idx_v)
        pa = context.make_array(positions)(context, builder, pos_v)
        etype = context.get_data_type(X.dtype)
        is_float = isinstance(X.dtype, types.Float)
        d = builder.extract_value(xa.shape, 1)
        row = builder.gep(xa.data, [builder.mul(
            context.cast(builder, i_v, signature.args[1], types.int64), d)])
        xvec, ivec = ir.VectorType(etype, 8), ir.VectorType(i32, 8)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i8, [i8]),
                                               "llvm.ctpop.i8")
        count = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))

        def nonzero(value, vtype):
            if is_float:
                return builder.fcmp_unordered("!=", value, ir.Constant(vtype, None))
            return builder.icmp_unsigned("!=", value, ir.Constant(vtype, None))

        groups = builder.udiv(d, ir.Constant(i64, 8))
        with cgutils.for_range(builder, groups, intp=i64) as loop:
            j0 = builder.shl(loop.index, ir.Constant(i64, 3))
            x = builder.load(builder.bitcast(builder.gep(row, [j0]), xvec.as_pointer()),
                             align=1)
            mask = builder.bitcast(nonzero(x, xvec), i8)
            entry = builder.shl(builder.zext(mask, i64), ir.Constant(i64, 3))
            pos = builder.load(builder.bitcast(builder.gep(pa.data, [entry]),
                                               ivec.as_pointer()), align=4)
            pos = builder.add(pos, _splat(builder, builder.trunc(j0, i32), ivec))
            c = builder.load(count)
            builder.store(pos, builder.bitcast(builder.gep(ia.data, [c]), ivec.as_pointer()),
                          align=4)
            builder.store(builder.add(c, builder.zext(builder.call(ctpop, [mask]), i64)), count)
        with cgutils.for_range_slice(builder, builder.shl(groups, ir.Constant(i64, 3)), d,
                                     ir.Constant(i64, 1), intp=i64) as (j, _):
            c = builder.load(count)
            builder.store(builder.trunc(j, i32), builder.gep(ia.data, [c]))
            hit = nonzero(builder.load(builder.gep(row, [j])), etype)
            builder.store(builder.add(c, builder.zext(hit, i64)), count)
        return builder.load(count)

    return sig, codegen


@kernel
def _gather(table, idx, start, stop, acc):
    """acc[:kp] = sum of rows idx[start:stop] of the (d, kp) table (fixed order)."""
    kp = table.shape[1]
    col = 0
    while kp - col >= 4 * LANES:
        _gather_4(table, idx, start, stop, col, acc)
        col += 4 * LANES
    if kp - col >= 2 * LANES:
        _gather_2(table, idx, start, stop, col, acc)
        col += 2 * LANES
    if kp - col >= LANES:
        _gather_1(table, idx, start, stop, col, acc)


@kernel
def _scatter(table, idx, start, stop, vec):
    """table[idx[t], :] += vec[:kp] for t in [start, stop)."""
    kp = table.shape[1]
    col = 0
    while kp - col >= 4 * LANES:
        _scatter_4(table, idx, start, stop, col, vec)
        col += 4 * LANES
    if kp - col >= 2 * LANES:
        _scatter_2(table, idx, start, stop, col, vec)
        col += 2 * LANES
    if kp - col >= LANES:
        _scatter_1(table, idx, start, stop, col, vec)


@kernel
def _explicit_zeros(data, start, stop):
    """Whether the CSR row ``data[start:stop]`` stores a zero (vectorised count)."""
    zeros = 0
    for p in range(start, stop):
        zeros += data[p] == 0
    return zeros > 0


@kernel
def _compact_row(data, indices, start, stop, idx):
    """Columns of the non-zero stored values of a CSR row into ``idx``; returns the count."""
    cnt = 0
    for p in range(start, stop):
        idx[cnt] = indices[p]
        cnt += data[p] != 0
    return cnt


# ------------------------------------------------------------------ parameters, one row

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
def _row_log_prob(WT, const, required, n_required, pos, start, stop, acc, row):
    """row[c] = const[c] + sum of WT[pos[start:stop], c]; -inf if a required feature is absent.

    ``acc`` is a (kp,) scratch array; ``required`` has 0 rows when no theta equals 1.
    """
    _gather(WT, pos, start, stop, acc)
    k = row.shape[0]
    for c in range(k):
        row[c] = acc[c] + const[c]
    if required.shape[0] > 0:
        _gather(required, pos, start, stop, acc)
        for c in range(k):
            if acc[c] < n_required[c]:
                row[c] = -np.inf


@kernel
def _accumulate_row(w, lse, row, r, c_nk):
    """r[:k] = w * responsibilities; c_nk += r. Returns w * lse (0 when w == 0)."""
    k = row.shape[0]
    for c in range(k):
        rc = w * row[c]
        r[c] = rc
        c_nk[c] += rc
    return w * lse if w != 0.0 else 0.0


@kernel
def _unpad_stats(p_nk, p_sT, p_ll, nk, sx):
    """Fold chunk partials in chunk order; (d, kp) statistics to (k, d). Returns the ll."""
    k, d = sx.shape
    kp = p_sT.shape[2]
    nk_p = np.empty(kp)
    sT = np.empty((d, kp))
    fold_rows(p_nk, nk_p)
    fold_rows(p_sT.reshape(p_sT.shape[0], -1), sT.reshape(-1))
    for c in range(k):
        nk[c] = nk_p[c]
        for j in range(d):
            sx[c, j] = sT[j, c]
    total = np.empty(1)
    fold_rows(p_ll, total)
    return total[0]


# ------------------------------------------------------------------ public kernels


@kernel
def _log_pmf_prepare(X, theta, log_weights, out):
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    return n_blocks(X.shape[0]), WT, const, required, n_required


@kernel
def _log_pmf_work(lo, hi, X, theta, log_weights, out, WT, const, required, n_required):
    n, d = X.shape
    pos = np.empty(d + SCAN_WIDTH, dtype=np.int32)
    acc = np.empty(WT.shape[1])
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            cnt = _scan_row(X, i, pos, _BIT_POSITIONS)
            _row_log_prob(WT, const, required, n_required, pos, 0, cnt, acc, out[i])


@kernel(parallel=True)
def bernoulli_log_pmf(X, theta, log_weights, out):
    """Weighted log-probabilities of dense binary rows under every component.

    Parameters
    ----------
    X : ndarray, shape (n, d), bool, any integer dtype, float32 or float64, C-contiguous
        Binary data, used as given (no conversion, no copy); non-zero entries count as 1.
    theta : ndarray, shape (k, d), float64
        Success probabilities in [0, 1]; 0 and 1 are allowed (``0 * log 0 = 0``).
    log_weights : ndarray, shape (k,), float64
        Added to each column: ``log pi_c`` (zeros for plain log-pmfs; -inf allowed).
    out : ndarray, shape (n, k), float64
        OUT: ``log_weights[c] + sum_j x_ij log theta_cj + (1 - x_ij) log(1 - theta_cj)``;
        -inf where row i is impossible under component c.
    """
    nb, WT, const, required, n_required = _log_pmf_prepare(X, theta, log_weights, out)
    for b in prange(nb):
        _log_pmf_work(b, b + 1, X, theta, log_weights, out, WT, const, required, n_required)


run_on_threads(bernoulli_log_pmf, _log_pmf_prepare, _log_pmf_work, None)




@kernel
def _log_pmf_csr_prepare(data, indices, indptr, theta, log_weights, out):
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    return n_blocks(indptr.shape[0] - 1), WT, const, required, n_required


@kernel
def _log_pmf_csr_work(lo, hi, data, indices, indptr, theta, log_weights, out,
                      WT, const, required, n_required):
    n = indptr.shape[0] - 1
    # the same type as indices: one specialisation of _gather / _scatter
    scratch = np.empty(theta.shape[1], dtype=indices.dtype)
    acc = np.empty(WT.shape[1])
    for b in range(lo, hi):
        start, stop = block_bounds(b, n)
        for i in range(start, stop):
            lo_i, hi_i = indptr[i], indptr[i + 1]
            if _explicit_zeros(data, lo_i, hi_i):
                cnt = _compact_row(data, indices, lo_i, hi_i, scratch)
                _row_log_prob(WT, const, required, n_required, scratch, 0, cnt, acc, out[i])
            else:
                _row_log_prob(WT, const, required, n_required, indices, lo_i, hi_i, acc, out[i])


@kernel(parallel=True)
def bernoulli_log_pmf_csr(data, indices, indptr, theta, log_weights, out):
    """Weighted log-probabilities of CSR binary rows under every component, O(nnz k).

    Parameters
    ----------
    data : ndarray, shape (nnz,), bool, any integer dtype, float32 or float64
        Stored values; non-zero values count as 1, explicit zeros are skipped.
    indices : ndarray, shape (nnz,), int32 or int64
        Column of each stored value (no duplicates within a row).
    indptr : ndarray, shape (n + 1,), int32 or int64
        Row i is ``data[indptr[i]:indptr[i + 1]]`` (absolute offsets, so a slice
        ``indptr[a:b + 1]`` selects rows a..b without copying).
    theta : ndarray, shape (k, d), float64
    log_weights : ndarray, shape (k,), float64
    out : ndarray, shape (n, k), float64
        OUT, as in :func:`bernoulli_log_pmf`.
    """
    nb, WT, const, required, n_required = _log_pmf_csr_prepare(
        data, indices, indptr, theta, log_weights, out)
    for b in prange(nb):
        _log_pmf_csr_work(b, b + 1, data, indices, indptr, theta, log_weights, out,
                          WT, const, required, n_required)


run_on_threads(bernoulli_log_pmf_csr, _log_pmf_csr_prepare, _log_pmf_csr_work, None)




@kernel
def _estep_prepare(X, sample_weight, theta, log_weights, nk, sx):
    # written out (not shared with the CSR prepare through a helper kernel): Python-level
    # calls run this as Python, and a helper would be one more kernel to compile
    n, d = X.shape
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    kp = WT.shape[1]
    nc = n_partials(n, d * kp * 8)
    return (nc, WT, const, required, n_required, np.empty((nc, kp)), np.empty((nc, d, kp)),
            np.empty((nc, 1)))


@kernel
def _estep_work(lo, hi, X, sample_weight, theta, log_weights, nk, sx,
                WT, const, required, n_required, p_nk, p_sT, p_ll):
    n, d = X.shape
    k = theta.shape[0]
    kp = WT.shape[1]
    nc = p_nk.shape[0]
    pos = np.empty(d + SCAN_WIDTH, dtype=np.int32)
    acc = np.empty(kp)
    row = np.empty(k)
    r = np.zeros(kp)
    for ch in range(lo, hi):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        ll = 0.0
        for i in range(start, stop):
            cnt = _scan_row(X, i, pos, _BIT_POSITIONS)
            _row_log_prob(WT, const, required, n_required, pos, 0, cnt, acc, row)
            ll += _accumulate_row(sample_weight[i], normalize_log_row(row), row, r, c_nk)
            _scatter(c_sT, pos, 0, cnt, r)
        p_ll[ch, 0] = ll


@kernel
def _estep_finish(X, sample_weight, theta, log_weights, nk, sx,
                  WT, const, required, n_required, p_nk, p_sT, p_ll):
    return _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


@kernel(parallel=True)
def bernoulli_estep(X, sample_weight, theta, log_weights, nk, sx):
    """Fused E-step and sufficient statistics for dense binary X.

    One pass over X: log-probabilities, responsibilities ``r_ic`` (log-sum-exp) and the
    statistics, without an (n, k) temporary or a float copy of X.

    Parameters
    ----------
    X : ndarray, shape (n, d), bool, any integer dtype, float32 or float64, C-contiguous
        Binary data; non-zero entries count as 1.
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
    nc, WT, const, required, n_required, p_nk, p_sT, p_ll = _estep_prepare(
        X, sample_weight, theta, log_weights, nk, sx)
    for ch in prange(nc):
        _estep_work(ch, ch + 1, X, sample_weight, theta, log_weights, nk, sx,
                    WT, const, required, n_required, p_nk, p_sT, p_ll)
    return _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


run_on_threads(bernoulli_estep, _estep_prepare, _estep_work, _estep_finish)




@kernel
def _estep_csr_prepare(data, indices, indptr, sample_weight, theta, log_weights, nk, sx):
    n = indptr.shape[0] - 1
    d = theta.shape[1]
    WT, const, required, n_required = _log_odds_table(theta, log_weights)
    kp = WT.shape[1]
    nc = n_partials(n, d * kp * 8)
    return (nc, WT, const, required, n_required, np.empty((nc, kp)), np.empty((nc, d, kp)),
            np.empty((nc, 1)))


@kernel
def _estep_csr_work(lo, hi, data, indices, indptr, sample_weight, theta, log_weights, nk, sx,
                    WT, const, required, n_required, p_nk, p_sT, p_ll):
    n = indptr.shape[0] - 1
    k, d = theta.shape
    kp = WT.shape[1]
    nc = p_nk.shape[0]
    scratch = np.empty(d, dtype=indices.dtype)
    acc = np.empty(kp)
    row = np.empty(k)
    r = np.zeros(kp)
    for ch in range(lo, hi):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        ll = 0.0
        for i in range(start, stop):
            lo_i, hi_i = indptr[i], indptr[i + 1]
            if _explicit_zeros(data, lo_i, hi_i):
                cnt = _compact_row(data, indices, lo_i, hi_i, scratch)
                _row_log_prob(WT, const, required, n_required, scratch, 0, cnt, acc, row)
                ll += _accumulate_row(sample_weight[i], normalize_log_row(row), row, r, c_nk)
                _scatter(c_sT, scratch, 0, cnt, r)
            else:
                _row_log_prob(WT, const, required, n_required, indices, lo_i, hi_i, acc, row)
                ll += _accumulate_row(sample_weight[i], normalize_log_row(row), row, r, c_nk)
                _scatter(c_sT, indices, lo_i, hi_i, r)
        p_ll[ch, 0] = ll


@kernel
def _estep_csr_finish(data, indices, indptr, sample_weight, theta, log_weights, nk, sx,
                      WT, const, required, n_required, p_nk, p_sT, p_ll):
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
    nc, WT, const, required, n_required, p_nk, p_sT, p_ll = _estep_csr_prepare(
        data, indices, indptr, sample_weight, theta, log_weights, nk, sx)
    for ch in prange(nc):
        _estep_csr_work(ch, ch + 1, data, indices, indptr, sample_weight, theta, log_weights,
                        nk, sx, WT, const, required, n_required, p_nk, p_sT, p_ll)
    return _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


run_on_threads(bernoulli_estep_csr, _estep_csr_prepare, _estep_csr_work, _estep_csr_finish)



# ------------------------------------------------------------------ initialisation, validation


@kernel
def _resp_stats_prepare(X, resp, nk, sx):
    n, d = X.shape
    kp = _padded(resp.shape[1])
    nc = n_partials(n, d * kp * 8)
    return nc, np.empty((nc, kp)), np.empty((nc, d, kp)), np.zeros((nc, 1))


@kernel
def _resp_stats_work(lo, hi, X, resp, nk, sx, p_nk, p_sT, p_ll):
    n, d = X.shape
    k = resp.shape[1]
    nc, kp = p_nk.shape
    pos = np.empty(d + SCAN_WIDTH, dtype=np.int32)
    r = np.zeros(kp)
    for ch in range(lo, hi):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        for i in range(start, stop):
            for c in range(k):
                r[c] = resp[i, c]
                c_nk[c] += r[c]
            cnt = _scan_row(X, i, pos, _BIT_POSITIONS)
            _scatter(c_sT, pos, 0, cnt, r)


@kernel
def _resp_stats_finish(X, resp, nk, sx, p_nk, p_sT, p_ll):
    _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


@kernel(parallel=True)
def _resp_stats(X, resp, nk, sx):
    """nk = sum_i resp_ic, sx = sum_i resp_ic x_ij for dense X and weighted resp (n, k)."""
    nc, p_nk, p_sT, p_ll = _resp_stats_prepare(X, resp, nk, sx)
    for ch in prange(nc):
        _resp_stats_work(ch, ch + 1, X, resp, nk, sx, p_nk, p_sT, p_ll)
    _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


run_on_threads(_resp_stats, _resp_stats_prepare, _resp_stats_work, _resp_stats_finish)




@kernel
def _resp_stats_csr_prepare(data, indices, indptr, resp, nk, sx):
    n = indptr.shape[0] - 1
    k, d = sx.shape
    kp = _padded(k)
    nc = n_partials(n, d * kp * 8)
    return nc, np.empty((nc, kp)), np.empty((nc, d, kp)), np.zeros((nc, 1))


@kernel
def _resp_stats_csr_work(lo, hi, data, indices, indptr, resp, nk, sx, p_nk, p_sT, p_ll):
    n = indptr.shape[0] - 1
    k, d = sx.shape
    nc, kp = p_nk.shape
    scratch = np.empty(d, dtype=indices.dtype)
    r = np.zeros(kp)
    for ch in range(lo, hi):
        start, stop = chunk_bounds(ch, n, nc)
        c_nk, c_sT = p_nk[ch], p_sT[ch]
        c_nk[:] = 0.0
        c_sT[:] = 0.0
        for i in range(start, stop):
            for c in range(k):
                r[c] = resp[i, c]
                c_nk[c] += r[c]
            cnt = _compact_row(data, indices, indptr[i], indptr[i + 1], scratch)
            _scatter(c_sT, scratch, 0, cnt, r)


@kernel
def _resp_stats_csr_finish(data, indices, indptr, resp, nk, sx, p_nk, p_sT, p_ll):
    _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


@kernel(parallel=True)
def _resp_stats_csr(data, indices, indptr, resp, nk, sx):
    """As :func:`_resp_stats` for CSR X (``indptr`` may be a slice; resp has its rows)."""
    nc, p_nk, p_sT, p_ll = _resp_stats_csr_prepare(data, indices, indptr, resp, nk, sx)
    for ch in prange(nc):
        _resp_stats_csr_work(ch, ch + 1, data, indices, indptr, resp, nk, sx, p_nk, p_sT, p_ll)
    _unpad_stats(p_nk, p_sT, p_ll, nk, sx)


run_on_threads(_resp_stats_csr, _resp_stats_csr_prepare, _resp_stats_csr_work, _resp_stats_csr_finish)




@kernel
def _count_prepare(values, counts):
    return ((values.shape[0] + CHECK_BLOCK - 1) // CHECK_BLOCK,)


@kernel
def _count_work(lo, hi, values, counts):
    m = values.shape[0]
    for b in range(lo, hi):
        start = b * CHECK_BLOCK
        stop = min(m, start + CHECK_BLOCK)
        bad = 0
        for p in range(start, stop):
            v = values[p]
            bad += (v != 0) & (v != 1)
        counts[b] = bad


@kernel(parallel=True)
def _count_non_binary(values, counts):
    """counts[b] = number of entries other than 0 and 1 (NaN included) in value block b.

    ``values`` is 1-D (a flat view of X or CSR data); blocks have :data:`CHECK_BLOCK` values.
    No temporaries, so checking a large uint8 array allocates nothing of its size.
    """
    for b in prange(_count_prepare(values, counts)[0]):
        _count_work(b, b + 1, values, counts)


run_on_threads(_count_non_binary, _count_prepare, _count_work, None)
