"""Register-blocked SIMD building blocks, written as LLVM vector IR through ``@intrinsic``.

Why an intrinsic: the hot loop of k-means is a small matrix product (rows x centres over the
features) followed by an argmin. LLVM's loop vectoriser keeps the accumulators of such a loop
in memory and its SLP vectoriser does not pack loop-carried scalars, so plain Numba code runs
at scalar speed (about 3x slower than a BLAS-based Lloyd step). Here the accumulators are
explicit SIMD registers: a tile of ``n_rows`` rows x ``n_vec`` vectors of centres is updated
with one broadcast-FMA per feature, the running minimum and its index stay in registers, and
a single horizontal reduction per row ends the search.

Arithmetic, per row x and centre j (``half_norms[j] = ||c_j||^2 / 2``)::

    score_j = half_norms[j] - sum_f x_f * CT[f, j]        (= (||x - c_j||^2 - ||x||^2) / 2)
    label   = the smallest j with the smallest score_j    (numpy.argmin's tie rule)

``CT`` is the transposed centre matrix (d x kp) in X's dtype, padded with zero columns up to
a multiple of the tile width and stored in *panels* of one tile width ``w``: an array of shape
(kp / w * d, w) whose row ``p * d + f`` holds feature f of columns ``p * w ... p * w + w - 1``
(with one panel, kp = w, this is the plain (d, kp) transpose). A tile then reads its centres
as one contiguous stream of ``d * w`` values instead of d pieces ``kp`` values apart: at
high d or many centres the strided reads cost 15-30% (TLB and prefetch misses; measured on
KMeans d=64 k=1024 and d=128 k=256). The padded ``half_norms`` are +inf so padding never wins.
The functions are private building blocks of :mod:`fastem.kernels.distances`.
"""
import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import kernel
from ._target import (DEEP_MIN_BYTES, FEW_MIN_FEATURES, HAS_FMA, SHORT_ROW_FEATURES,
                      TILES, RowDot)

#: float64 lanes of the Bernoulli accumulators (``bernoulli.py``).
LANES = TILES["lanes"]
#: float64 lanes of the short-vector helpers below (``axpy``, ``dot``, ``sqdist``,
#: ``axpy_sqdist``).
HELPER_LANES = TILES["helper_lanes"]
#: Independent accumulators of the reductions among them (``dot``, ``sqdist``).
HELPER_CHAINS = TILES["helper_chains"]


def _splat(builder, value, vtype):
    undef = ir.Constant(vtype, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vtype.count), [0] * vtype.count)
    return builder.shuffle_vector(first, undef, zeros)


def _is_c_array(t, ndim=None, dtype=None, floating=False):
    """Whether Numba type ``t`` is a C-contiguous array of ``ndim`` dimensions (any if None)
    and ``dtype`` (any if None), or of any float dtype when ``floating``."""
    return (isinstance(t, types.Array) and t.layout == "C"
            and (ndim is None or t.ndim == ndim)
            and (dtype is None or t.dtype == dtype)
            and (not floating or isinstance(t.dtype, types.Float)))


def _llvm_suffix(L, scalar_bits):
    return "v%d%s" % (L, "f64" if scalar_bits == 64 else "f32")


#: Fast-math flags of the helpers' own float operations. Numba adds its fastmath flags
#: (``reassoc`` among them) only to float operations that have none, and to every call that
#: returns a float scalar; with ``reassoc`` LLVM may reorder a sum differently in each kernel
#: that inlines the helper (measured: ``seed_update`` and ``update_min_sqdist`` gave
#: different ``sqdist`` bits for the AVX2 class). ``nsz`` allows no reordering, so the
#: helpers' sums keep the order written here wherever they are inlined.
ORDERED = ("nsz",)


def _fma(builder, vtype):
    """``muladd(a, b, c) = a * b + c`` on float vectors of type ``vtype``.

    One ``llvm.fma`` (a single rounding) where the target has a fused multiply-add; a
    multiply and an add otherwise (``llvm.fma`` would become a call into libm there).
    """
    if not HAS_FMA:
        return lambda args: builder.fadd(builder.fmul(args[0], args[1], flags=ORDERED),
                                         args[2], flags=ORDERED)
    bits = 64 if isinstance(vtype.element, ir.DoubleType) else 32
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vtype, [vtype] * 3),
        "llvm.fma." + _llvm_suffix(vtype.count, bits))
    return lambda args: builder.call(fma, args)


@functools.lru_cache(maxsize=None)
def make_tile_kernel(tile_shape, reduction):
    """Build an intrinsic ``tile(X, row0, row_last, CT, bias, out, out_offset)``.

    For the ``n_rows`` rows ``r = min(row0 + m, row_last)`` of the C-contiguous float array
    ``X`` (n, d) it forms, tile by tile over the columns of ``CT`` (d x kp: in panels of the
    tile's width, see the module docstring, except for ``'subtract'``, which takes the plain
    (d, kp) array)::

        z_j = bias[j] - sum_f X[r, f] * CT[f, j]

    and writes ``out[r - out_offset]``:

    * ``reduction='argmin'``: the smallest j minimising z_j (int32 ``out``);
    * ``reduction='argmin2'``: the same, and how far the second-smallest z_j (over every
      other column: 0 on a tie) lies above the smallest, in ``gap[r - out_offset]``
      (float64; the intrinsic then takes this eighth argument; a C-contiguous (m, 2)
      ``gap`` receives the smallest and the second-smallest z_j themselves);
    * ``reduction='sumsq'``: ``sum_j z_j^2`` (float64 ``out``); zero-padded columns add 0.
      The intrinsic then takes an eighth argument ``spans`` (int64, (kp / w, 2)): panel p
      sums over the features ``spans[p, 0] <= f < spans[p, 1]`` only (the caller
      guarantees that CT is zero outside them: triangular Cholesky factors);
    * ``reduction='argmin_part'``: 'argmin' over the panels ``p_lo <= p < p_hi`` only, for
      searches that keep a block of centres in cache across many rows (``distances``'s deep
      search). The intrinsic then takes four more arguments ``p_lo, p_hi, lanes, state_offset``:
      ``lanes`` (a tuple of two C-contiguous (m, L) arrays, X's dtype and int32) holds each
      row's lane-wise best scores and their columns at ``r - state_offset`` between calls. A
      call from ``p_lo = 0`` starts afresh; one that ends at the last panel writes ``out``
      as 'argmin' does, any other stores the lanes. Every score and every comparison is the
      one 'argmin' makes, in the same order, so the labels are 'argmin''s bit for bit;
    * ``reduction='argmin2_part'``: the same for 'argmin2': ``lanes`` also holds the lane-wise
      runner-up scores (a third (m, L) array of X's dtype), and the call that ends at the
      last panel writes 'argmin2''s label and ``gap`` (then the twelfth argument);
    * ``reduction='subtract'``: ``out[r - out_offset, j] -= z_j`` for every column (2-D float64
      ``out`` of width kp, X of dtype float64) - with ``bias = 0`` this accumulates the matrix
      product ``X @ CT`` into ``out``.

    ``tile_shape`` is a :class:`fastem.kernels._target.Tile` (rows, vectors, vector bytes)
    from the table of machine-dependent choices; ``kp`` must be a multiple of
    ``vectors * vector_bytes / X.itemsize``. The same (tile, reduction) always returns the
    same intrinsic.
    """
    n_rows, n_vec, vector_bytes = tile_shape
    searching = reduction in ("argmin", "argmin2", "argmin_part", "argmin2_part")
    partial = reduction in ("argmin_part", "argmin2_part")
    top2 = reduction in ("argmin2", "argmin2_part")
    gap_arg = 11 if partial else 7   # where 'argmin2' kernels take ``gap``
    out_dtype = types.int32 if searching else types.float64
    out_ndim = 2 if reduction == "subtract" else 1

    def typed(X, CT, bias, out):
        return (_is_c_array(X, 2, floating=True) and _is_c_array(CT, 2, floating=True)
                and _is_c_array(bias, 1, floating=True) and CT.dtype == X.dtype
                and bias.dtype == X.dtype and isinstance(out, types.Array)
                and out.ndim == out_ndim and out.dtype == out_dtype
                and (reduction != "subtract" or (X.dtype == types.float64 and out.layout == "C")))

    def codegen(context, builder, signature, args):
        Xv, row0v, lastv, CTv, biasv, outv, offv = args[:7]
        X, CT, bias, out = (signature.args[i] for i in (0, 3, 4, 5))
        i32, i64 = ir.IntType(32), ir.IntType(64)
        bits = X.dtype.bitwidth
        scalar = context.get_value_type(X.dtype)
        L = vector_bytes // (bits // 8)
        width = n_vec * L
        vtype = ir.VectorType(scalar, L)
        itype = ir.VectorType(i32, L)
        vptr = vtype.as_pointer()
        align = bits // 8
        suffix = _llvm_suffix(L, bits)
        fma = _fma(builder, vtype)

        xa = context.make_array(X)(context, builder, Xv)
        ca = context.make_array(CT)(context, builder, CTv)
        ba = context.make_array(bias)(context, builder, biasv)
        oa = context.make_array(out)(context, builder, outv)
        d = builder.extract_value(xa.shape, 1)
        # every reduction but 'subtract' takes CT in panels of ``width`` columns:
        # (kp / width * d, width), panel p's row p * d + f holding feature f of columns
        # p * width ... (p + 1) * width - 1
        panelled = reduction != "subtract"
        if panelled:
            kp = builder.mul(builder.udiv(builder.extract_value(ca.shape, 0), d),
                             ir.Constant(i64, width))
        else:
            kp = builder.extract_value(ca.shape, 1)
        # 'sumsq': per panel, the features [spans[p, 0], spans[p, 1]) outside which CT is zero
        spans = (context.make_array(signature.args[7])(context, builder, args[7])
                 if reduction == "sumsq" else None)
        row0i = context.cast(builder, row0v, signature.args[1], types.int64)
        lasti = context.cast(builder, lastv, signature.args[2], types.int64)
        offi = context.cast(builder, offv, signature.args[6], types.int64)

        def vload(base, offset):
            return builder.load(builder.bitcast(builder.gep(base, [offset]), vptr), align=align)

        rows, xrows, best, best_idx, runner_up, sumsq, acc = [], [], [], [], [], [], []
        for m in range(n_rows):
            r = builder.add(row0i, ir.Constant(i64, m))
            r = builder.select(builder.icmp_signed("<", r, lasti), r, lasti)
            rows.append(r)
            xrows.append(builder.gep(xa.data, [builder.mul(r, d)]))
            if searching:
                best.append(cgutils.alloca_once_value(
                    builder, ir.Constant(vtype, [float("inf")] * L)))
                best_idx.append(cgutils.alloca_once_value(builder, ir.Constant(itype, [0] * L)))
                if top2:
                    runner_up.append(cgutils.alloca_once_value(
                        builder, ir.Constant(vtype, [float("inf")] * L)))
            else:
                sumsq.append(cgutils.alloca_once_value(builder, ir.Constant(vtype, [0.0] * L)))
            acc.append([cgutils.alloca_once(builder, vtype) for _ in range(n_vec)])
        lane_ids = ir.Constant(itype, list(range(L)))

        j_first, j_stop = ir.Constant(i64, 0), kp
        if partial:
            p_lo, p_hi, state_off = (context.cast(builder, args[i], signature.args[i], types.int64)
                                     for i in (7, 8, 10))
            state_types = signature.args[9]
            lane_arrays = [context.make_array(t)(context, builder, v) for t, v in
                           zip(state_types, cgutils.unpack_tuple(builder, args[9],
                                                                 len(state_types)))]
            lane_best, lane_col = lane_arrays[:2]
            j_first = builder.mul(p_lo, ir.Constant(i64, width))
            j_stop = builder.mul(p_hi, ir.Constant(i64, width))
            is_last = builder.icmp_signed(">=", j_stop, kp)
            ivptr = itype.as_pointer()

            def state_at(m, data, ptr_type):
                slot = builder.mul(builder.sub(rows[m], state_off), ir.Constant(i64, L))
                return builder.bitcast(builder.gep(data, [slot]), ptr_type)

            with builder.if_then(builder.icmp_signed(">", p_lo, ir.Constant(i64, 0))):
                for m in range(n_rows):
                    builder.store(builder.load(state_at(m, lane_best.data, vptr), align=align),
                                  best[m])
                    builder.store(builder.load(state_at(m, lane_col.data, ivptr), align=4),
                                  best_idx[m])
                    if top2:
                        builder.store(builder.load(state_at(m, lane_arrays[2].data, vptr),
                                                   align=align), runner_up[m])

        with cgutils.for_range_slice(builder, j_first, j_stop,
                                     ir.Constant(i64, width), intp=i64) as (j0, _):
            for v in range(n_vec):
                h = vload(ba.data, builder.add(j0, ir.Constant(i64, v * L)))
                for m in range(n_rows):
                    builder.store(h, acc[m][v])
            # acc[m][v] -= x[m, f] * CT[f, j0 + v*L : j0 + (v+1)*L]  for every feature f
            # (of this panel's span, 'sumsq')
            if spans is not None:
                at = builder.mul(builder.udiv(j0, ir.Constant(i64, width)), ir.Constant(i64, 2))
                f_first = builder.load(builder.gep(spans.data, [at]))
                f_stop = builder.load(builder.gep(spans.data,
                                                  [builder.add(at, ir.Constant(i64, 1))]))
            else:
                f_first, f_stop = ir.Constant(i64, 0), d
            with cgutils.for_range_slice(builder, f_first, f_stop, ir.Constant(i64, 1),
                                         intp=i64) as (f, _):
                if panelled:
                    cbase = builder.add(builder.mul(j0, d), builder.mul(f, ir.Constant(i64, width)))
                else:
                    cbase = builder.add(builder.mul(f, kp), j0)
                cvec = [vload(ca.data, builder.add(cbase, ir.Constant(i64, v * L)))
                        for v in range(n_vec)]
                for m in range(n_rows):
                    xneg = _splat(builder, builder.fneg(builder.load(builder.gep(xrows[m], [f]))), vtype)
                    for v in range(n_vec):
                        builder.store(fma([xneg, cvec[v], builder.load(acc[m][v])]),
                                      acc[m][v])
            if searching:
                # lane-wise running minimum; strict '<' keeps the earliest index per lane
                j0_32 = builder.trunc(j0, i32)
                for v in range(n_vec):
                    ids = builder.add(_splat(builder, builder.add(j0_32, ir.Constant(i32, v * L)), itype),
                                      lane_ids)
                    for m in range(n_rows):
                        a = builder.load(acc[m][v])
                        b = builder.load(best[m])
                        lt = builder.fcmp_ordered("<", a, b)
                        builder.store(builder.select(lt, a, b), best[m])
                        builder.store(builder.select(lt, ids, builder.load(best_idx[m])), best_idx[m])
                        if top2:
                            # the lane's runner-up: the old best when a wins, else min(a, it)
                            r = builder.load(runner_up[m])
                            r = builder.select(builder.fcmp_ordered("<", a, r), a, r)
                            builder.store(builder.select(lt, b, r), runner_up[m])
            elif reduction == "sumsq":
                for m in range(n_rows):
                    for v in range(n_vec):
                        a = builder.load(acc[m][v])
                        builder.store(fma([a, a, builder.load(sumsq[m])]), sumsq[m])
            else:
                out_cols = builder.extract_value(oa.shape, 1)
                for m in range(n_rows):
                    orow = builder.gep(oa.data, [builder.mul(builder.sub(rows[m], offi), out_cols)])
                    for v in range(n_vec):
                        ptr = builder.bitcast(builder.gep(orow, [builder.add(j0, ir.Constant(i64, v * L))]), vptr)
                        builder.store(builder.fsub(builder.load(ptr, align=align),
                                                   builder.load(acc[m][v])), ptr, align=align)

        if partial:
            with builder.if_then(builder.not_(is_last)):
                for m in range(n_rows):
                    builder.store(builder.load(best[m]), state_at(m, lane_best.data, vptr),
                                  align=align)
                    builder.store(builder.load(best_idx[m]), state_at(m, lane_col.data, ivptr),
                                  align=4)
                    if top2:
                        builder.store(builder.load(runner_up[m]),
                                      state_at(m, lane_arrays[2].data, vptr), align=align)
            finished = builder.append_basic_block("lanes_final")
            done = builder.append_basic_block("lanes_done")
            builder.cbranch(is_last, finished, done)
            builder.position_at_end(finished)
        if searching:
            # horizontal: smallest score, ties to the smallest index. The lane bests never
            # hold a NaN (they start at +inf and take a score only when it compares '<'), so
            # an ordered '<' butterfly gives the minimum llvm.vector.reduce.fmin would; that
            # intrinsic's NaN-aware lowering cost AVX2 code more than the FMAs of a d = 8 row
            # (float32 search, 1e6 x 8, k = 8, one thread: 9.0 -> 4.7 ms).
            int_max = ir.Constant(itype, [2**31 - 1] * L)
            zero32 = ir.Constant(i32, 0)
            for m in range(n_rows):
                bv, bi = builder.load(best[m]), builder.load(best_idx[m])
                lowest = _lane_minimum(builder, bv, builder.fcmp_ordered)
                candidates = builder.select(builder.fcmp_ordered("==", bv, lowest), bi, int_max)
                winners = _lane_minimum(builder, candidates, builder.icmp_signed)
                builder.store(builder.extract_element(winners, zero32),
                              builder.gep(oa.data, [builder.sub(rows[m], offi)]))
                if top2:
                    # second-smallest score: the other lanes' bests and every runner-up
                    others = builder.select(builder.icmp_signed("==", bi, winners),
                                            ir.Constant(vtype, [float("inf")] * L), bv)
                    second = _lane_minimum(builder, builder.select(
                        builder.fcmp_ordered("<", others, builder.load(runner_up[m])),
                        others, builder.load(runner_up[m])), builder.fcmp_ordered)
                    _store_gap(context, builder, signature, args, builder.sub(rows[m], offi),
                               builder.extract_element(lowest, zero32),
                               builder.extract_element(second, zero32), gap_arg)
            if partial:
                builder.branch(done)
                builder.position_at_end(done)
        elif reduction == "sumsq":
            reduce_add = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(scalar, [scalar, vtype]),
                "llvm.vector.reduce.fadd." + suffix)
            for m in range(n_rows):
                total = builder.call(reduce_add, [ir.Constant(scalar, 0.0), builder.load(sumsq[m])])
                if bits != 64:
                    total = builder.fpext(total, ir.DoubleType())
                builder.store(total, builder.gep(oa.data, [builder.sub(rows[m], offi)]))
        return context.get_dummy_value()

    if reduction == "sumsq":
        @intrinsic
        def tile(typingctx, X, row0, row_last, CT, bias, out, out_offset, spans):
            if not (typed(X, CT, bias, out) and _is_c_array(spans, 2, types.int64)):
                return None
            return types.void(X, row0, row_last, CT, bias, out, out_offset, spans), codegen
        return tile
    if reduction == "argmin2_part":
        @intrinsic
        def tile_part2(typingctx, X, row0, row_last, CT, bias, out, out_offset, p_lo, p_hi,
                       lanes, state_offset, gap):
            if not (typed(X, CT, bias, out) and isinstance(lanes, types.BaseTuple)
                    and len(lanes) == 3 and _is_c_array(lanes[0], 2, X.dtype)
                    and _is_c_array(lanes[1], 2, types.int32)
                    and _is_c_array(lanes[2], 2, X.dtype) and isinstance(gap, types.Array)
                    and gap.dtype == types.float64 and (gap.ndim == 1 or _is_c_array(gap, 2))):
                return None
            return types.void(X, row0, row_last, CT, bias, out, out_offset, p_lo, p_hi,
                              lanes, state_offset, gap), codegen
        return tile_part2
    if partial:
        @intrinsic
        def tile_part(typingctx, X, row0, row_last, CT, bias, out, out_offset, p_lo, p_hi,
                      lanes, state_offset):
            if not (typed(X, CT, bias, out) and isinstance(lanes, types.BaseTuple)
                    and len(lanes) == 2 and _is_c_array(lanes[0], 2, X.dtype)
                    and _is_c_array(lanes[1], 2, types.int32)):
                return None
            return types.void(X, row0, row_last, CT, bias, out, out_offset, p_lo, p_hi,
                              lanes, state_offset), codegen
        return tile_part
    return _row_kernel_intrinsic(reduction, typed, codegen)


def _lane_minimum(builder, v, compare):
    """``v`` with every lane set to its smallest lane (no NaN lanes): a butterfly, each step
    a swap of lane halves and a packed min (``compare``: ``builder.fcmp_ordered`` or
    ``builder.icmp_signed``)."""
    i32 = ir.IntType(32)
    L = v.type.count
    width = L
    while width > 1:
        width //= 2
        swapped = builder.shuffle_vector(
            v, v, ir.Constant(ir.VectorType(i32, L), [lane ^ width for lane in range(L)]))
        v = builder.select(compare("<", swapped, v), swapped, v)
    return v


def _store_gap(context, builder, signature, args, at, first, second, gap_arg=7):
    """``gap[at] = second - first`` in float64 (``gap``: argument ``gap_arg`` of an 'argmin2'
    kernel, the eighth but in 'argmin2_part'; the scores in X's dtype); a 2-D ``gap`` (m, 2)
    takes both scores instead, ``gap[at] = (first, second)`` (exact: float64 holds any score
    of X's dtype)."""
    if first.type != ir.DoubleType():
        first = builder.fpext(first, ir.DoubleType())
        second = builder.fpext(second, ir.DoubleType())
    gap = context.make_array(signature.args[gap_arg])(context, builder, args[gap_arg])
    if signature.args[gap_arg].ndim == 2:
        at = builder.mul(at, ir.Constant(at.type, 2))
        builder.store(first, builder.gep(gap.data, [at]))
        builder.store(second, builder.gep(gap.data, [builder.add(at, ir.Constant(at.type, 1))]))
    else:
        builder.store(builder.fsub(second, first), builder.gep(gap.data, [at]))


def _row_kernel_intrinsic(reduction, typed, codegen):
    """The intrinsic ``(X, row0, row_last, table, bias, out, out_offset)`` of a tile or
    few-centre kernel, plus a float64 ``gap`` (1-D, or (m, 2) for both scores) for
    ``'argmin2'``: ``typed(X, table,
    bias, out)`` checks the argument types, ``codegen`` emits the code."""
    if reduction == "argmin2":
        @intrinsic
        def kernel_rows(typingctx, X, row0, row_last, table, bias, out, out_offset, gap):
            if not (typed(X, table, bias, out) and isinstance(gap, types.Array)
                    and gap.dtype == types.float64
                    and (gap.ndim == 1 or _is_c_array(gap, 2))):
                return None
            return types.void(X, row0, row_last, table, bias, out, out_offset, gap), codegen
        return kernel_rows

    @intrinsic
    def kernel_rows(typingctx, X, row0, row_last, table, bias, out, out_offset):
        if not typed(X, table, bias, out):
            return None
        return types.void(X, row0, row_last, table, bias, out, out_offset), codegen
    return kernel_rows


@functools.lru_cache(maxsize=None)
def make_row_dot_kernel(shape, reduction):
    """Build an intrinsic ``search(X, row0, row_last, CR, bias, out, out_offset[, gap])``
    for a handful of centres: the search of :func:`make_tile_kernel` with the vector lanes
    along the features instead of the centres.

    For the ``shape.rows`` rows ``r = min(row0 + m, row_last)`` and the ``shape.centers``
    rows j of ``CR`` ((K, d), C-contiguous, X's dtype; padding rows have ``bias = +inf``)::

        z_j = bias[j] - dot(X[r], CR[j])

    the dot product as ``L`` lane-wise FMA chains over the features (full vectors, then one
    masked tail) added by a fixed tree of lane halves. ``reduction`` 'argmin' writes the
    smallest j with the smallest z_j (int32 ``out``), 'argmin2' also the gap to the second
    smallest (float64 ``gap``), as the tile kernels do. With k <= K centres a tile wastes
    ``1 - k / lanes`` of every FMA on padding columns; here every lane does useful work, so a
    row costs ``K d / L`` FMAs instead of d. Rounding differs from the tiles' one chain per
    centre (same error bound, see ``bounds``); a CPU class uses one or the other for a given
    k, d and dtype (``search_tile``), so labels never depend on anything else.
    """
    n_rows, n_centers, vector_bytes = shape
    out_dtype = types.int32

    def typed(X, CR, bias, out):
        return (_is_c_array(X, 2, floating=True) and _is_c_array(CR, 2, floating=True)
                and _is_c_array(bias, 1, floating=True) and CR.dtype == X.dtype
                and bias.dtype == X.dtype and isinstance(out, types.Array)
                and out.ndim == 1 and out.dtype == out_dtype)

    def codegen(context, builder, signature, args):
        Xv, row0v, lastv, CRv, biasv, outv, offv = args[:7]
        X = signature.args[0]
        i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
        bits = X.dtype.bitwidth
        scalar = context.get_value_type(X.dtype)
        L = vector_bytes // (bits // 8)
        vtype = ir.VectorType(scalar, L)
        vptr = vtype.as_pointer()
        align = bits // 8
        fma = _fma(builder, vtype)
        mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vtype, [vptr, i32, ir.VectorType(i1, L), vtype]),
            "llvm.masked.load.%s.p0%s" % (_llvm_suffix(L, bits), _llvm_suffix(L, bits)))
        zero = ir.Constant(vtype, [0.0] * L)

        xa = context.make_array(X)(context, builder, Xv)
        ca = context.make_array(signature.args[3])(context, builder, CRv)
        ba = context.make_array(signature.args[4])(context, builder, biasv)
        oa = context.make_array(signature.args[5])(context, builder, outv)
        d = builder.extract_value(xa.shape, 1)
        row0i = context.cast(builder, row0v, signature.args[1], types.int64)
        lasti = context.cast(builder, lastv, signature.args[2], types.int64)
        offi = context.cast(builder, offv, signature.args[6], types.int64)

        rows, xrows, crows, acc = [], [], [], []
        for m in range(n_rows):
            r = builder.add(row0i, ir.Constant(i64, m))
            rows.append(builder.select(builder.icmp_signed("<", r, lasti), r, lasti))
            xrows.append(builder.gep(xa.data, [builder.mul(rows[m], d)]))
            acc.append([cgutils.alloca_once_value(builder, zero) for _ in range(n_centers)])
        for j in range(n_centers):
            crows.append(builder.gep(ca.data, [builder.mul(ir.Constant(i64, j), d)]))

        def body(t, mask):
            def load(base):
                ptr = builder.bitcast(builder.gep(base, [t]), vptr)
                if mask is None:
                    return builder.load(ptr, align=align)
                return builder.call(mload, [ptr, ir.Constant(i32, align), mask, zero])
            cvec = [load(c) for c in crows]
            for m in range(n_rows):
                xv = load(xrows[m])
                for j in range(n_centers):
                    builder.store(fma([xv, cvec[j], builder.load(acc[m][j])]), acc[m][j])

        _vector_loop(builder, d, L, body)

        inf = ir.Constant(scalar, float("inf"))
        totals = _lane_sums(builder, [builder.load(acc[m][j])
                                      for m in range(n_rows) for j in range(n_centers)])
        biases = [builder.load(builder.gep(ba.data, [ir.Constant(i64, j)]))
                  for j in range(n_centers)]
        for m in range(n_rows):
            scores = [builder.fsub(biases[j], totals[m * n_centers + j], flags=ORDERED)
                      for j in range(n_centers)]
            # smallest score, ties to the smallest index (strict '<', as the tiles)
            best, best_j = inf, ir.Constant(i32, 0)
            for j in range(n_centers):
                lt = builder.fcmp_ordered("<", scores[j], best)
                best = builder.select(lt, scores[j], best)
                best_j = builder.select(lt, ir.Constant(i32, j), best_j)
            builder.store(best_j, builder.gep(oa.data, [builder.sub(rows[m], offi)]))
            if reduction == "argmin2":
                second = inf
                for j in range(n_centers):
                    other = builder.icmp_signed("!=", best_j, ir.Constant(i32, j))
                    lt = builder.and_(other, builder.fcmp_ordered("<", scores[j], second))
                    second = builder.select(lt, scores[j], second)
                _store_gap(context, builder, signature, args, builder.sub(rows[m], offi),
                           best, second)
        return context.get_dummy_value()

    return _row_kernel_intrinsic(reduction, typed, codegen)


def _lane_sums(builder, vectors):
    """The sum of the lanes of each vector (float, 2^q lanes), by one fixed tree: the upper
    half of the lanes added to the lower half until one lane is left. All vectors go
    through it together, so that every add is a full vector: a pair of vectors holding G
    sums of p lanes each becomes one vector of 2G sums of p / 2 lanes (two shuffles, one
    add), instead of narrowing each vector on its own (a shuffle pair and an add per
    vector and level). Each sum sees the same adds in the same order either way."""
    i32 = ir.IntType(32)
    L = vectors[0].type.count
    zero = ir.Constant(vectors[0].type, [0.0] * L)
    work = [(v, [n]) for n, v in enumerate(vectors)]   # (vector, the sums it holds)
    p = L
    while p > 1:
        half, groups = p // 2, L // p
        lo = [base + g * p + q for base in (0, L) for g in range(groups) for q in range(half)]
        lo_mask = ir.Constant(ir.VectorType(i32, L), lo)
        hi_mask = ir.Constant(ir.VectorType(i32, L), [t + half for t in lo])
        paired = []
        for t in range(0, len(work), 2):
            x, x_ids = work[t]
            y, y_ids = work[t + 1] if t + 1 < len(work) else (zero, [None] * groups)
            paired.append((builder.fadd(builder.shuffle_vector(x, y, lo_mask),
                                        builder.shuffle_vector(x, y, hi_mask), flags=ORDERED),
                           x_ids + y_ids))
        work, p = paired, half
    sums = [None] * len(vectors)
    for v, ids in work:
        for lane, n in enumerate(ids):
            if n is not None:
                sums[n] = builder.extract_element(v, ir.Constant(i32, lane))
    return sums


def _flat_f64_loader(context, builder, arytype, aryval, offset, L):
    """Closures loading from ``aryval`` (flat index relative to ``offset``) as float64:
    ``load(t)`` the <L x double> of elements t..t+L-1, ``load.scalar(t)`` element t."""
    src = context.get_value_type(arytype.dtype)
    sptr = ir.VectorType(src, L).as_pointer()
    align = arytype.dtype.bitwidth // 8
    base = builder.gep(context.make_array(arytype)(context, builder, aryval).data, [offset])
    wide = arytype.dtype.bitwidth == 64

    def load(t):
        v = builder.load(builder.bitcast(builder.gep(base, [t]), sptr), align=align)
        return v if wide else builder.fpext(v, ir.VectorType(ir.DoubleType(), L))

    def load_scalar(t):
        v = builder.load(builder.gep(base, [t]))
        return v if wide else builder.fpext(v, ir.DoubleType())

    load.scalar = load_scalar
    return load, base


def _helper_operands(context, builder, signature, args, arrays, length):
    """The set-up the short-vector helpers share: ``HELPER_LANES``, the vector ``fma``, one
    float64 loader ``(load, base)`` per ``(array, offset)`` pair of argument positions in
    ``arrays``, and argument ``length`` as an int64."""
    def int64(i):
        return context.cast(builder, args[i], signature.args[i], types.int64)

    L = HELPER_LANES
    loaders = [_flat_f64_loader(context, builder, signature.args[a], args[a], int64(o), L)
               for a, o in arrays]
    return L, _fma(builder, ir.VectorType(ir.DoubleType(), L)), loaders, int64(length)


def _f64_scalar_fma(builder):
    """``muladd(a, b, c)`` on float64 scalars: one lane of :func:`_fma`, rounded as the
    vector lanes are (a one-lane vector: Numba adds its fastmath flags to calls returning a
    float scalar, see :data:`ORDERED`)."""
    one = ir.VectorType(ir.DoubleType(), 1)
    fma = _fma(builder, one)
    zero = ir.Constant(ir.IntType(32), 0)

    def fma1(args):
        vectors = [builder.insert_element(ir.Constant(one, ir.Undefined), a, zero)
                   for a in args]
        return builder.extract_element(fma(vectors), zero)

    return fma1


def _f64_vector_store(builder, base, L):
    """Closure storing a <L x double> at ``base + t`` (flat index): the write-back of the
    float64 accumulators of :func:`axpy` and :func:`axpy_sqdist`."""
    vptr = ir.VectorType(ir.DoubleType(), L).as_pointer()

    def store(value, t):
        builder.store(value, builder.bitcast(builder.gep(base, [t]), vptr), align=8)

    return store


def _f64_scalar_axpy(builder, a, x, ybase, t):
    """``y[t] += a * x`` on one float64 at ``ybase + t``, rounded as one lane of the vector
    update."""
    ptr = builder.gep(ybase, [t])
    builder.store(_f64_scalar_fma(builder)([a, x, builder.load(ptr)]), ptr)


def _f64_accumulator(builder, L, chains):
    """``chains`` zeroed <L x double> accumulators (allocas) and ``total(first, rest,
    tail_term)``: their lane-wise sum in chain order, then its horizontal sum in lane order
    ``((0 + l_0) + l_1) + ...`` after the scalar tail of :func:`_chained_vector_loop`: lane
    q < rest first becomes ``tail_term(first + q, l_q)``, the value a masked vector step
    would leave in it (which adds +0.0 to the other lanes), so the sum is that of full
    vectors plus one masked step, bit for bit."""
    vtype = ir.VectorType(ir.DoubleType(), L)
    accs = [cgutils.alloca_once_value(builder, ir.Constant(vtype, [0.0] * L))
            for _ in range(chains)]

    def total(first, rest, tail_term):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        lanes = builder.load(accs[0])
        for acc in accs[1:]:
            lanes = builder.fadd(lanes, builder.load(acc), flags=ORDERED)
        s = ir.Constant(ir.DoubleType(), 0.0)
        for q in range(L):
            lane = builder.extract_element(lanes, ir.Constant(i32, q))
            before = builder.block
            with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(i64, q))):
                term = tail_term(builder.add(first, ir.Constant(i64, q)), lane)
                after = builder.block
            lane_q = builder.phi(ir.DoubleType())
            lane_q.add_incoming(lane, before)
            lane_q.add_incoming(term, after)
            s = builder.fadd(s, lane_q, flags=ORDERED)
        return s

    return accs, total


def _chained_vector_loop(builder, n, L, accs, body):
    """Run ``body(t, acc)`` over the full vectors of [0, n): in steps of ``len(accs) L``,
    vector c of a step into ``accs[c]`` (independent FMA chains: one chain is bound by the
    FMA latency), then the remaining full vectors into ``accs[0]``. Returns the tail's
    start and length, left to the caller."""
    i64 = ir.IntType(64)
    step = L * len(accs)
    n_steps = builder.mul(builder.udiv(n, ir.Constant(i64, step)), ir.Constant(i64, step))
    with cgutils.for_range_slice(builder, ir.Constant(i64, 0), n_steps,
                                 ir.Constant(i64, step), intp=i64) as (t, _):
        for c, acc in enumerate(accs):
            body(builder.add(t, ir.Constant(i64, c * L)), acc)
    n_full = builder.mul(builder.udiv(n, ir.Constant(i64, L)), ir.Constant(i64, L))
    with cgutils.for_range_slice(builder, n_steps, n_full, ir.Constant(i64, L),
                                 intp=i64) as (t, _):
        body(t, accs[0])
    return n_full, builder.sub(n, n_full)


def _full_vector_loop(builder, n, L, body):
    """Run ``body(t)`` for t = 0, L, 2L, ... while t + L <= n; return the tail's start and
    length (``n mod L``), left to the caller."""
    i64 = ir.IntType(64)
    n_full = builder.mul(builder.udiv(n, ir.Constant(i64, L)), ir.Constant(i64, L))
    with cgutils.for_range_slice(builder, ir.Constant(i64, 0), n_full,
                                 ir.Constant(i64, L), intp=i64) as (t, _):
        body(t)
    return n_full, builder.sub(n, n_full)


def _vector_loop(builder, n, L, body):
    """Run ``body(t, mask)`` over [0, n) in steps of L: full vectors, then one masked tail.
    (Not for float64 accumulators in memory: the next masked load of a masked store's
    address waits for the store to retire; :func:`axpy` and kin finish one element at a
    time instead.)"""
    i64 = ir.IntType(64)
    n_full, rest = _full_vector_loop(builder, n, L, lambda t: body(t, None))
    with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(i64, 0))):
        lanes = ir.Constant(ir.VectorType(i64, L), list(range(L)))
        body(n_full, builder.icmp_signed("<", lanes, _splat(builder, rest, ir.VectorType(i64, L))))


@intrinsic
def axpy(typingctx, a, x, x_off, y, y_off, length):
    """``y[y_off + t] += a * x[x_off + t]`` for t < length (flat indices, float64 maths).

    ``x``: C-contiguous float32/float64 array of any dimension; ``y``: C-contiguous float64.
    Full vectors of ``HELPER_LANES`` float64, then the tail one element at a time (LLVM's own
    vectoriser leaves loops shorter than its unroll width scalar; a masked vector tail
    stalls the next call on the same ``y``: ``_vector_loop``).
    """
    if not (_is_c_array(x, floating=True) and _is_c_array(y, floating=True) and y.dtype == types.float64):
        return None
    sig = types.void(a, x, x_off, y, y_off, length)

    def codegen(context, builder, signature, args):
        L, fma, ((load_x, _), (load_y, ybase)), n = _helper_operands(
            context, builder, signature, args, ((1, 2), (3, 4)), 5)
        store_y = _f64_vector_store(builder, ybase, L)
        a64 = context.cast(builder, args[0], signature.args[0], types.float64)
        asplat = _splat(builder, a64, ir.VectorType(ir.DoubleType(), L))

        def body(t):
            store_y(fma([asplat, load_x(t), load_y(t)]), t)

        first, rest = _full_vector_loop(builder, n, L, body)
        with cgutils.for_range(builder, rest, intp=ir.IntType(64)) as loop:
            t = builder.add(first, loop.index)
            _f64_scalar_axpy(builder, a64, load_x.scalar(t), ybase, t)
        return context.get_dummy_value()

    return sig, codegen


def _pairwise_reduction(accumulate, doc):
    """An intrinsic ``(x, x_off, y, y_off, length) -> float64`` summing
    ``accumulate(x[x_off + t], y[y_off + t])`` over t < length (flat indices, float32/64
    inputs, float64 maths): ``HELPER_CHAINS`` accumulators of ``HELPER_LANES`` lanes, i.e.
    that many independent FMA chains (full vectors, then the tail one element at a time into
    the lanes: ``_f64_accumulator``) and one horizontal sum in lane order.
    ``accumulate(builder, fma, xv, yv, acc)`` adds one vector (or one float64) of terms to
    the accumulator ``acc``."""
    @intrinsic
    def reduction(typingctx, x, x_off, y, y_off, length):
        if not (_is_c_array(x, floating=True) and _is_c_array(y, floating=True)):
            return None
        sig = types.float64(x, x_off, y, y_off, length)

        def codegen(context, builder, signature, args):
            L, fma, ((load_x, _), (load_y, _)), n = _helper_operands(
                context, builder, signature, args, ((0, 1), (2, 3)), 4)
            accs, total = _f64_accumulator(builder, L, HELPER_CHAINS)
            fma1 = _f64_scalar_fma(builder)

            def body(t, acc):
                builder.store(accumulate(builder, fma, load_x(t), load_y(t),
                                         builder.load(acc)), acc)

            def tail_term(t, lane):
                return accumulate(builder, fma1, load_x.scalar(t), load_y.scalar(t), lane)

            first, rest = _chained_vector_loop(builder, n, L, accs, body)
            return total(first, rest, tail_term)

        return sig, codegen

    reduction.__doc__ = doc
    return reduction


def _squared_difference(builder, fma, xv, cv, acc):
    diff = builder.fsub(xv, cv, flags=ORDERED)
    return fma([diff, diff, acc])


#: ``sqdist(x, x_off, c, c_off, length)``: ``sum_t (x[x_off + t] - c[c_off + t])^2``.
sqdist = _pairwise_reduction(
    _squared_difference,
    "``sum_t (x[x_off + t] - c[c_off + t])^2`` in float64 (flat indices, float32/64 inputs).")
#: ``dot(x, x_off, y, y_off, length)``: ``sum_t x[x_off + t] * y[y_off + t]``; its
#: independent chains are the point (a plain loop is one chain of dependent adds, four
#: cycles per term, which LLVM may not reorder).
dot = _pairwise_reduction(
    lambda builder, fma, xv, yv, acc: fma([xv, yv, acc]),
    "``sum_t x[x_off + t] * y[y_off + t]`` in float64 (flat indices, float32/64 inputs).")


def _for_each_short_length(builder, n, pass_of):
    """``pass_of(n)`` (a float64 result), emitted once for each constant length 1 ..
    ``SHORT_ROW_FEATURES`` and once for any other, behind a switch on ``n``: with a constant
    length LLVM folds the loops' bounds and the tail's branches into straight-line code
    (``_target.SHORT_ROW_FEATURES``: a few features a row spent more on that set-up than on
    the arithmetic). Every copy runs the same operations, so the results do not change."""
    i64 = ir.IntType(64)
    merge = builder.append_basic_block("short.merge")
    other = builder.append_basic_block("short.other")
    switch = builder.switch(n, other)
    incoming = []
    for length in range(1, SHORT_ROW_FEATURES + 1):
        block = builder.append_basic_block(f"short.{length}")
        switch.add_case(ir.Constant(i64, length), block)
        builder.position_at_end(block)
        incoming.append((pass_of(ir.Constant(i64, length)), builder.block))
        builder.branch(merge)
    builder.position_at_end(other)
    incoming.append((pass_of(n), builder.block))
    builder.branch(merge)
    builder.position_at_end(merge)
    result = builder.phi(ir.DoubleType())
    for value, block in incoming:
        result.add_incoming(value, block)
    return result


def _make_axpy_sqdist(short, doc):
    """:func:`axpy_sqdist`, or with ``short`` :func:`axpy_sqdist_short` (docstring ``doc``)."""
    @intrinsic
    def helper(typingctx, a, x, x_off, y, y_off, c, c_off, length):
        if not (_is_c_array(x, floating=True) and _is_c_array(c, floating=True)
                and _is_c_array(y, floating=True) and y.dtype == types.float64):
            return None
        sig = types.float64(a, x, x_off, y, y_off, c, c_off, length)

        def codegen(context, builder, signature, args):
            L, fma, ((load_x, _), (load_y, ybase), (load_c, _)), n = _helper_operands(
                context, builder, signature, args, ((1, 2), (3, 4), (5, 6)), 7)
            store_y = _f64_vector_store(builder, ybase, L)
            a64 = context.cast(builder, args[0], signature.args[0], types.float64)
            asplat = _splat(builder, a64, ir.VectorType(ir.DoubleType(), L))
            fma1 = _f64_scalar_fma(builder)

            def body(t, acc):
                xt = load_x(t)
                store_y(fma([asplat, xt, load_y(t)]), t)
                diff = builder.fsub(xt, load_c(t), flags=ORDERED)
                builder.store(fma([diff, diff, builder.load(acc)]), acc)

            def tail_term(t, lane):
                xt = load_x.scalar(t)
                _f64_scalar_axpy(builder, a64, xt, ybase, t)
                diff = builder.fsub(xt, load_c.scalar(t), flags=ORDERED)
                return fma1([diff, diff, lane])

            def pass_of(length):
                accs, total = _f64_accumulator(builder, L, HELPER_CHAINS)
                first, rest = _chained_vector_loop(builder, length, L, accs, body)
                return total(first, rest, tail_term)

            return _for_each_short_length(builder, n, pass_of) if short else pass_of(n)

        return sig, codegen

    helper.__doc__ = doc
    return helper


#: ``axpy_sqdist(a, x, x_off, y, y_off, c, c_off, length)``.
axpy_sqdist = _make_axpy_sqdist(False, """:func:`axpy` and :func:`sqdist` of the same ``x`` in
    one pass: ``y[y_off + t] += a * x[x_off + t]``, returns ``sum_t (x[x_off + t] - c[c_off +
    t])^2``. Each vector of x is loaded (and widened to float64) once instead of twice; the
    arithmetic and the order of both sums are those of the two helpers, so the results are
    the same bit for bit.""")
#: The same for rows of at most ``SHORT_ROW_FEATURES`` features.
axpy_sqdist_short = _make_axpy_sqdist(True, """:func:`axpy_sqdist` compiled once per length
    up to ``SHORT_ROW_FEATURES`` behind a switch (:func:`_for_each_short_length`): the same
    operations, the same bits, without the loops' set-up. Only for loops over such short
    rows: in a loop over longer rows the copies cost 10% (d=16, k=8 float32 Lloyd step).""")


#: Rows per call of :func:`sqdist_rows`: one float64 vector of the class (``lanes``).
ROWS_PER_SQDIST = TILES["lanes"]


@intrinsic
def sqdist_rows(typingctx, xt, c, c_off, length, out, out_off):
    """:func:`sqdist` of ``ROWS_PER_SQDIST`` rows at once, one row per vector lane: ``out[
    out_off + r] = sum_t (xt[t, r] - c[c_off + t])^2`` for r < ``ROWS_PER_SQDIST``, where
    ``xt`` (float64, C-contiguous, ``length`` x ``ROWS_PER_SQDIST``) holds the rows as
    columns. Each lane runs :func:`sqdist`'s operations in its order (feature t goes to the
    accumulator lane and chain it has there, the chains are added in chain order, the tail
    joins its lanes, the lanes are summed in lane order), so every distance has
    :func:`sqdist`'s bits, without one horizontal sum per row: many rows against one
    point (k-means++ candidates) cost a third of the instructions."""
    if not (_is_c_array(xt, ndim=2, dtype=types.float64) and _is_c_array(c, floating=True)
            and _is_c_array(out, dtype=types.float64)):
        return None
    sig = types.void(xt, c, c_off, length, out, out_off)

    def codegen(context, builder, signature, args):
        def int64(i):
            return context.cast(builder, args[i], signature.args[i], types.int64)

        i64 = ir.IntType(64)
        R, L, C = ROWS_PER_SQDIST, HELPER_LANES, HELPER_CHAINS
        vtype = ir.VectorType(ir.DoubleType(), R)
        fma = _fma(builder, vtype)
        load_x, _ = _flat_f64_loader(context, builder, signature.args[0], args[0],
                                     ir.Constant(i64, 0), R)
        load_c, _ = _flat_f64_loader(context, builder, signature.args[1], args[1], int64(2),
                                     1)
        _, obase = _flat_f64_loader(context, builder, signature.args[4], args[4], int64(5), R)
        n = int64(3)
        # slot (chain, lane) of sqdist's accumulators, as a vector over the rows
        slots = [[cgutils.alloca_once_value(builder, ir.Constant(vtype, [0.0] * R))
                  for _ in range(L)] for _ in range(C)]

        def diff_of(t):
            xv = load_x(builder.mul(t, ir.Constant(i64, R)))
            return builder.fsub(xv, _splat(builder, load_c.scalar(t), vtype), flags=ORDERED)

        def add_term(t, slot):
            diff = diff_of(t)
            builder.store(fma([diff, diff, builder.load(slot)]), slot)

        step = L * C
        n_steps = builder.mul(builder.udiv(n, ir.Constant(i64, step)), ir.Constant(i64, step))
        with cgutils.for_range_slice(builder, ir.Constant(i64, 0), n_steps,
                                     ir.Constant(i64, step), intp=i64) as (t, _):
            for chain in range(C):
                for q in range(L):
                    add_term(builder.add(t, ir.Constant(i64, chain * L + q)), slots[chain][q])
        n_full = builder.mul(builder.udiv(n, ir.Constant(i64, L)), ir.Constant(i64, L))
        with cgutils.for_range_slice(builder, n_steps, n_full, ir.Constant(i64, L),
                                     intp=i64) as (t, _):
            for q in range(L):
                add_term(builder.add(t, ir.Constant(i64, q)), slots[0][q])
        rest = builder.sub(n, n_full)
        s = ir.Constant(vtype, [0.0] * R)
        for q in range(L):
            lane = builder.load(slots[0][q])
            for chain in range(1, C):
                lane = builder.fadd(lane, builder.load(slots[chain][q]), flags=ORDERED)
            builder.store(lane, slots[0][q])
            with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(i64, q))):
                add_term(builder.add(n_full, ir.Constant(i64, q)), slots[0][q])
            s = builder.fadd(s, builder.load(slots[0][q]), flags=ORDERED)
        _f64_vector_store(builder, obase, R)(s, ir.Constant(i64, 0))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def add_product(typingctx, acc, a, b):
    """``acc + a * b`` in float64 (a product, then a sum: two roundings) with :data:`ORDERED`
    flags only: Numba's ``reassoc`` never reaches them, so a running sum built from this
    keeps its written order in every kernel (k-means++ potentials: the pruned and plain
    passes must agree bit for bit)."""
    if not all(t == types.float64 for t in (acc, a, b)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], builder.fmul(args[1], args[2], flags=ORDERED),
                            flags=ORDERED)

    return types.float64(acc, a, b), codegen


@intrinsic
def difference(typingctx, a, b):
    """``a - b`` (two floats of one type) with :data:`ORDERED` flags only (never
    reassociated with its neighbours; see :func:`add_product`)."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fsub(args[0], args[1], flags=ORDERED)

    return a(a, b), codegen


@intrinsic
def prefetch(typingctx, x, x_off, length):
    """Ask the CPU to start loading ``x[x_off : x_off + length]`` (flat indices) into its
    caches (``llvm.prefetch``, one per 64-byte line; no effect on results). For rows read in
    an order the hardware prefetcher cannot guess, e.g. the rows that survive a pruning test.
    """
    if not _is_c_array(x):
        return None
    sig = types.void(x, x_off, length)

    def codegen(context, builder, signature, args):
        xv, offv, lenv = args
        i8p, i32, i64 = ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        off, n = (context.cast(builder, v, t, types.int64)
                  for v, t in ((offv, signature.args[1]), (lenv, signature.args[2])))
        data = context.make_array(x)(context, builder, xv).data
        start = builder.bitcast(builder.gep(data, [off]), i8p)
        n_bytes = builder.mul(n, ir.Constant(i64, x.dtype.bitwidth // 8))
        with cgutils.for_range_slice(builder, ir.Constant(i64, 0), n_bytes,
                                     ir.Constant(i64, 64), intp=i64) as (b, _):
            # read access, keep in all cache levels, data cache
            builder.call(fn, [builder.gep(start, [b]), ir.Constant(i32, 0),
                              ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: The three search tiles of the target's class (``_target.TILE_TABLE``), narrowest first;
#: the narrowest that covers k wastes the least work on padding.
nearest_rows_narrow, nearest_rows_medium, nearest_rows_wide = (
    make_tile_kernel(t, "argmin") for t in TILES["search"])
#: The same tiles also returning the runner-up's score gap (bound-based k-means: lower bounds).
top2_rows_narrow, top2_rows_medium, top2_rows_wide = (
    make_tile_kernel(t, "argmin2") for t in TILES["search"])
#: The same tiles reducing to sum_j z_j^2 (Gaussian quadratic forms).
sumsq_rows_narrow, sumsq_rows_medium, sumsq_rows_wide = (
    make_tile_kernel(t, "sumsq") for t in TILES["search"])
#: The search for a few centres (tile id 3 of :func:`search_tile`): the class's ``few``
#: shape; classes without one still build it (never called) so that kernels type-check.
FEW = TILES["few"] or RowDot(4, 2, 16)
FEW_CENTERS = TILES["few"].centers if TILES["few"] else 0
nearest_rows_few = make_row_dot_kernel(FEW, "argmin")
top2_rows_few = make_row_dot_kernel(FEW, "argmin2")
#: The k-means search over many bytes of centres (tile id 4 of :func:`search_tile`): the
#: class's ``deep`` tile; classes without one never select it (the widest tile stands in).
HAS_DEEP = TILES["deep"] is not None
DEEP = TILES["deep"] or TILES["search"][2]
nearest_rows_deep = make_tile_kernel(DEEP, "argmin")
nearest_rows_deep_part = make_tile_kernel(DEEP, "argmin_part")
#: Bytes of one vector of the deep tile (the lanes of ``nearest_rows_deep_part``'s state).
DEEP_VECTOR_BYTES = DEEP.vector_bytes
#: The deep top-2 search per tile (every panel streamed past each tile: the reference the
#: tests hold ``top2_rows_deep_part``'s chunked search to) and in panel chunks.
top2_rows_deep = make_tile_kernel(DEEP, "argmin2")
top2_rows_deep_part = make_tile_kernel(DEEP, "argmin2_part")
#: Rows per call of each search tile (tile ids 0-2, the few-centre search 3, the deep tile
#: 4), and bytes of centres (columns of CT) per pass of tiles 0-2.
SEARCH_ROWS = tuple(t.rows for t in TILES["search"]) + (FEW.rows, DEEP.rows)
SEARCH_BYTES = tuple(t.vectors * t.vector_bytes for t in TILES["search"])
DEEP_BYTES = DEEP.vectors * DEEP.vector_bytes


@kernel
def search_tile(n_columns, itemsize, n_features):
    """The search / sum-of-squares tile for ``n_columns`` columns of ``itemsize``-byte values:
    (tile id, columns per pass). For a k-means search (``n_features``: d of the rows; the
    Gaussian quadratic forms pass 0 and never take tiles 3 or 4): 3, the centres as rows
    with the lanes along the features (:func:`make_row_dot_kernel`), for at most
    ``FEW_CENTERS`` centres from ``FEW_MIN_FEATURES`` features on. Else the narrowest tile
    0/1/2 whose width covers all columns, or the widest (2); in place of the widest, the
    class's deep tile (4) from ``DEEP_MIN_BYTES`` of centres on."""
    if n_columns <= FEW_CENTERS and n_features >= FEW_MIN_FEATURES:
        return 3, FEW_CENTERS
    for tile in range(2):
        width = SEARCH_BYTES[tile] // itemsize
        if n_columns <= width:
            return tile, width
    if HAS_DEEP and n_features > 0 and n_columns * n_features * itemsize >= DEEP_MIN_BYTES:
        return 4, DEEP_BYTES // itemsize
    return 2, SEARCH_BYTES[2] // itemsize


#: Tile accumulating a float64 matrix product (scatter matrices, diagonal quadratic forms):
#: PRODUCT_ROWS rows of the left operand per call, columns padded to PRODUCT_COLS.
matmul_acc_rows = make_tile_kernel(TILES["product"], "subtract")
PRODUCT_ROWS = TILES["product"].rows
PRODUCT_COLS = TILES["product"].vectors * TILES["product"].vector_bytes // 8


@intrinsic
def int64_bits_as_float64(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (vectorisable, unlike a memory view)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen
