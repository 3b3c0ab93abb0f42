"""Small dense linear algebra for the M-step, in serial Numba code.

The M-step factors k covariance matrices of size d x d per iteration. Calling LAPACK through
SciPy for them wakes OpenBLAS's thread pool between two of fastem's parallel kernels; on few
cores the two pools then spin against each other (measured on 2 cores: a 272-row
GaussianMixture fit 40x slower). These loops never leave the calling thread. They cost
2/3 d^3 flops per component, small next to an E-step's n k d^2 unless n is a few d.
"""
import numpy as np

from ._jit import kernel
from ._simd import dot

#: float64 machine epsilon as a module constant (frozen into the kernel): ``np.finfo``
#: inside a kernel makes every process that loads it from the cache import
#: ``numba.np.arraymath`` and with it ``scipy.linalg`` (0.3 s of a warm first fit).
FLOAT64_EPS = float(np.finfo(np.float64).eps)
#: Inner products of at least this many terms run as ``_simd.dot`` (independent FMA chains);
#: shorter ones as a plain loop, whose single chain costs less than the vector loop's set-up
#: and tail (measured when the tail was one masked vector). Zen 3 VM (AVX2), 16 factors +
#: inverses, plain / all ``dot``: d=16 35 / 65 us, d=64 1.05 / 1.09 ms, d=128 6.5 / 4.5 ms;
#: 4 at d=256 11.4 / 5.8 ms.
DOT_MIN_TERMS = 32


@kernel
def precision_cholesky_factors(covariances, out):
    """Upper-triangular precision Cholesky factors of symmetric positive definite matrices.

    For each ``Sigma_j = L_j L_j^T`` (Cholesky, L_j lower triangular) writes
    ``out[j] = (L_j^{-1})^T``, so that ``out[j] @ out[j].T = Sigma_j^{-1}`` (scikit-learn's
    ``precisions_cholesky_`` for full and tied covariances).

    Parameters
    ----------
    covariances : ndarray, shape (m, d, d), float64
        Only the lower triangle is read.
    out : ndarray, shape (m, d, d), float64
        OUT.

    Returns
    -------
    int
        -1 on success, else the index of the first matrix that is not numerically positive
        definite: a pivot that is not finite or not above ``d * eps`` times its diagonal
        entry (what is left of it is rounding noise); ``out`` is then incomplete.
    """
    m, d = covariances.shape[0], covariances.shape[1]
    tiny = d * FLOAT64_EPS
    chol = np.empty((d, d))
    for j in range(m):
        a = covariances[j]
        for r in range(d):
            for c in range(r + 1):
                # rows of L are contiguous: long inner products as SIMD dot products
                if c >= DOT_MIN_TERMS:
                    s = a[r, c] - dot(chol, r * d, chol, c * d, c)
                else:
                    s = a[r, c]
                    for t in range(c):
                        s -= chol[r, t] * chol[c, t]
                if r == c:
                    # numerically singular: the pivot is lost in the rounding of a[r, r]
                    # comparisons only (NaN fails the first, +inf the second): under
                    # fastem's fast-math flags np.isfinite of a helper's sum said True
                    # for +inf
                    if not (s > tiny * a[r, r]) or not (s < np.inf):
                        return j
                    chol[r, r] = np.sqrt(s)
                else:
                    chol[r, c] = s / chol[c, c]
        # U = (L^{-1})^T, row c of U = column c of L^{-1}, by forward substitution
        # (rows of U and of L are contiguous: SIMD dot products again)
        u = out[j]
        for c in range(d):
            for r in range(c):
                u[c, r] = 0.0
            u[c, c] = 1.0 / chol[c, c]
            for r in range(c + 1, d):
                if r - c >= DOT_MIN_TERMS:
                    s = -dot(chol, r * d + c, u, c * d + c, r - c)
                else:
                    s = 0.0
                    for t in range(c, r):
                        s -= chol[r, t] * u[c, t]
                u[c, r] = s / chol[r, r]
    return -1


#: Side of the square tiles in which :func:`full_covariances` visits entry (f, g) and its
#: mirror (g, f) together: both tiles' rows stay in L1 (32 x 32 float64 = 8 KB each).
SYMMETRIC_TILE = 32


@kernel
def full_covariances(s2, nk, delta, reg, out):
    """Covariances from second moments about a shift, symmetrised, in one pass.

    ``out[j] = (A_j + A_j^T) / 2 + reg I`` with ``A_j = s2[j] / nk[j] - delta_j delta_j^T``:
    the M-step's ``Sigma_j = s2_j / N_j - delta_j delta_j^T`` (``delta_j = s1_j / N_j``, the
    mean's offset from the shift), made exactly symmetric and regularised. Entry (f, g) and
    its mirror are visited together in ``SYMMETRIC_TILE`` squares, so neither array is read
    or written with a stride of a whole row per entry.

    Parameters
    ----------
    s2 : ndarray, shape (k, d, d), float64
    nk : ndarray, shape (k,), float64
    delta : ndarray, shape (k, d), float64
    reg : float
        Added to every diagonal entry.
    out : ndarray, shape (k, d, d), float64
        OUT (may not be ``s2``).

    Returns
    -------
    bool
        Whether every entry of ``out`` is finite.
    """
    k, d = delta.shape
    b = SYMMETRIC_TILE
    upper = np.empty((b, b))   # A's tile (f0.., g0..), row-major
    lower = np.empty((b, b))   # A's tile (g0.., f0..), row-major
    poison = 0.0   # stays 0 while every entry is finite: inf * 0 and NaN * 0 are NaN
    for j in range(k):
        n = nk[j]
        for f0 in range(0, d, b):
            nf = min(b, d - f0)
            for g0 in range(f0, d, b):
                ng = min(b, d - g0)
                # both tiles of A row by row (contiguous: vectorised), then each entry of
                # out from the two, the mirror read across the small tiles in L1
                for a in range(nf):
                    for c in range(ng):
                        upper[a, c] = (s2[j, f0 + a, g0 + c] / n
                                       - delta[j, f0 + a] * delta[j, g0 + c])
                for c in range(ng):
                    for a in range(nf):
                        lower[c, a] = (s2[j, g0 + c, f0 + a] / n
                                       - delta[j, g0 + c] * delta[j, f0 + a])
                for a in range(nf):
                    for c in range(ng):
                        v = 0.5 * (upper[a, c] + lower[c, a])
                        out[j, f0 + a, g0 + c] = v
                        poison += v * 0.0
                for c in range(ng):
                    for a in range(nf):
                        out[j, g0 + c, f0 + a] = 0.5 * (upper[a, c] + lower[c, a])
        for f in range(d):
            out[j, f, f] += reg
            poison += out[j, f, f] * 0.0
    return poison == 0.0
