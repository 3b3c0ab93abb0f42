"""Register-blocked nearest-centre search, written as LLVM vector IR through ``@intrinsic``.

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

``CT`` is the (d, kp) transposed centre matrix in X's dtype, padded with zero columns up to a
multiple of the tile width; the padded ``half_norms`` are +inf so padding never wins.
The functions are private building blocks of :mod:`fastem.kernels.distances`.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

def _splat(builder, value, vtype):
    undef = ir.Constant(vtype, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vtype.count), [0] * vtype.count)
    return builder.shuffle_vector(first, undef, zeros)


def _is_float_c_array(t, ndim):
    return (isinstance(t, types.Array) and t.ndim == ndim and t.layout == "C"
            and isinstance(t.dtype, types.Float))


def make_nearest_rows(n_rows, n_vec, vector_bytes):
    """Build an intrinsic ``nearest_rows(X, row0, row_last, CT, half_norms, out, out_offset)``.

    Vectors are ``vector_bytes`` wide (64: AVX-512, LLVM splits them on narrower CPUs).

    For the ``n_rows`` rows ``min(row0 + m, row_last)`` of the C-contiguous float array ``X``
    it writes the index of the nearest centre to ``out[row - out_offset]`` (int32 array).
    ``CT.shape[1]`` must be a multiple of ``n_vec * vector_bytes / X.itemsize``.
    """
    @intrinsic
    def nearest_rows(typingctx, X, row0, row_last, CT, half_norms, out, out_offset):
        if not (_is_float_c_array(X, 2) and _is_float_c_array(CT, 2)
                and _is_float_c_array(half_norms, 1) and CT.dtype == X.dtype
                and half_norms.dtype == X.dtype and isinstance(out, types.Array)
                and out.ndim == 1 and out.dtype == types.int32):
            return None
        sig = types.void(X, row0, row_last, CT, half_norms, out, out_offset)

        def codegen(context, builder, signature, args):
            Xv, row0v, lastv, CTv, hnv, outv, offv = args
            i32, i64 = ir.IntType(32), ir.IntType(64)
            scalar = context.get_value_type(X.dtype)
            L = vector_bytes // (X.dtype.bitwidth // 8)
            width = n_vec * L
            vtype = ir.VectorType(scalar, L)
            itype = ir.VectorType(i32, L)
            vptr = vtype.as_pointer()
            align = X.dtype.bitwidth // 8
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vtype, [vtype] * 3),
                "llvm.fma.v%d%s" % (L, "f64" if X.dtype.bitwidth == 64 else "f32"))

            xa = context.make_array(X)(context, builder, Xv)
            ca = context.make_array(CT)(context, builder, CTv)
            ha = context.make_array(half_norms)(context, builder, hnv)
            oa = context.make_array(out)(context, builder, outv)
            d = builder.extract_value(xa.shape, 1)
            kp = builder.extract_value(ca.shape, 1)
            row0i = context.cast(builder, row0v, signature.args[1], types.int64)
            lasti = context.cast(builder, lastv, signature.args[2], types.int64)
            offi = context.cast(builder, offv, signature.args[6], types.int64)

            def vload(base, offset):
                return builder.load(builder.bitcast(builder.gep(base, [offset]), vptr), align=align)

            rows, xrows, best, best_idx, acc = [], [], [], [], []
            for m in range(n_rows):
                r = builder.add(row0i, ir.Constant(i64, m))
                r = builder.select(builder.icmp_signed("<", r, lasti), r, lasti)
                rows.append(r)
                xrows.append(builder.gep(xa.data, [builder.mul(r, d)]))
                best.append(cgutils.alloca_once_value(builder, ir.Constant(vtype, [float("inf")] * L)))
                best_idx.append(cgutils.alloca_once_value(builder, ir.Constant(itype, [0] * L)))
                acc.append([cgutils.alloca_once(builder, vtype) for _ in range(n_vec)])
            lane_ids = ir.Constant(itype, list(range(L)))

            with cgutils.for_range_slice(builder, ir.Constant(i64, 0), kp,
                                         ir.Constant(i64, width), intp=i64) as (j0, _):
                for v in range(n_vec):
                    h = vload(ha.data, builder.add(j0, ir.Constant(i64, v * L)))
                    for m in range(n_rows):
                        builder.store(h, acc[m][v])
                # acc[m][v] -= x[m, f] * CT[f, j0 + v*L : j0 + (v+1)*L]  for every feature f
                with cgutils.for_range(builder, d, intp=i64) as loop:
                    f = loop.index
                    cbase = builder.add(builder.mul(f, kp), j0)
                    cvec = [vload(ca.data, builder.add(cbase, ir.Constant(i64, v * L)))
                            for v in range(n_vec)]
                    for m in range(n_rows):
                        xneg = _splat(builder, builder.fneg(builder.load(builder.gep(xrows[m], [f]))), vtype)
                        for v in range(n_vec):
                            builder.store(builder.call(fma, [xneg, cvec[v], builder.load(acc[m][v])]),
                                          acc[m][v])
                # lane-wise running minimum; strict '<' keeps the earliest index in each lane
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

            # horizontal reduction: smallest score, ties to the smallest index
            suffix = "v%d%s" % (L, "f64" if X.dtype.bitwidth == 64 else "f32")
            reduce_min = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(scalar, [vtype]), "llvm.vector.reduce.fmin." + suffix)
            reduce_smin = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(i32, [itype]), "llvm.vector.reduce.smin.v%di32" % L)
            int_max = ir.Constant(itype, [2**31 - 1] * L)
            for m in range(n_rows):
                bv, bi = builder.load(best[m]), builder.load(best_idx[m])
                lowest = _splat(builder, builder.call(reduce_min, [bv]), vtype)
                candidates = builder.select(builder.fcmp_ordered("==", bv, lowest), bi, int_max)
                builder.store(builder.call(reduce_smin, [candidates]),
                              builder.gep(oa.data, [builder.sub(rows[m], offi)]))
            return context.get_dummy_value()

        return sig, codegen

    return nearest_rows


#: The three register tiles, by number of centres handled per pass (for f64 / f32):
#: 8 rows x 1 half vector (4 / 8 centres), 8 rows x 1 vector (8 / 16), 4 rows x 2 vectors (16 / 32).
#: Each keeps 8 accumulators in registers; the narrowest that covers k wastes the least work.
nearest_rows_narrow = make_nearest_rows(8, 1, 32)
nearest_rows_medium = make_nearest_rows(8, 1, 64)
nearest_rows_wide = make_nearest_rows(4, 2, 64)
