"""Every SIMD tile class is correct, not only the host's.

Each class of ``fastem.kernels._target.TILE_TABLE`` runs in a child process with its own empty
Numba cache:

* classes the host can execute are selected the way a user would, through Numba's target
  (``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=`` for AVX2, ``NUMBA_CPU_NAME=generic`` for SSE2
  without FMA, the host itself for its own class), so the instructions are that class's too;
* classes of other architectures (NEON) and the portable fallback are forced with
  ``FASTEM_SIMD_CLASS`` on the host's instructions, which exercises their tile shapes,
  paddings and lane counts.

The child compares every SIMD kernel with the NumPy twins in ``tests/naive*.py`` on shapes
that reach every tile (k below, at and above each tile width, d with ragged tails), float32
and float64, calls them from a user ``@njit`` function, checks that one and two threads give
bitwise the same statistics, that the pruned k-means++ kernels give the unpruned ones'
distances and sums bit for bit, that a float64 search screened in float32 gives the plain
float64 search's labels bit for bit, and fits each estimator once.
"""
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from fastem.kernels import _target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent("""
    import sys, warnings
    import numba
    import numpy as np
    import scipy.sparse as sp
    from numba import njit
    warnings.simplefilter("ignore")
    from fastem import BernoulliMixture, GaussianMixture, KMeans
    from fastem.kernels import (_target, bernoulli_estep, bernoulli_estep_csr, gaussian_estep_diag,
                                gaussian_estep_full, gaussian_log_pdf_full, lloyd_step,
                                nearest_centers)
    from tests import naive, naive_bernoulli, naive_gaussian
    from tests.test_kernels import check_screened_search, check_short_vector_helpers
    from tests.test_kmeans_algorithms import (
        test_float32_shadow_never_skips_a_pair_that_improves as check_shadow,
        test_group_bounded_iterations_equal_lloyds as check_group_bounds,
        test_group_search_breaks_ties_like_lloyd as check_group_ties,
        test_pruned_seeding_kernels_equal_the_unpruned_ones_bitwise as check_pruned_seeding)

    expected = sys.argv[1]
    assert _target.SIMD_CLASS == expected, (_target.describe(), expected)
    print(_target.describe())
    rng = np.random.RandomState(0)

    def close(a, b, tol, what):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a - b).max()) / scale
        assert err <= tol, (what, err)

    @njit
    def user_lloyd(X, w, centers, labels, sums, weights):
        return lloyd_step(X, w, centers, labels, sums, weights)

    def twice(f, *args):
        # bitwise equal on one and on two threads
        numba.set_num_threads(1)
        first = [np.copy(a) for a in f(*args)]
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        second = f(*args)
        for a, b in zip(first, second):
            assert np.array_equal(a, b), f.__name__
        return second

    check_short_vector_helpers()
    check_screened_search()  # float32 screening keeps the float64 labels (FMA or not)
    check_pruned_seeding()   # the helpers' sums keep their order in every kernel (ORDERED)
    for d, offset, scale in ((64, 0.0, 1.0), (129, 1e6, 1e-3), (64, 0.0, 1e-40)):
        check_shadow(d, offset, scale)   # the float32 shadow's bound, with this class's sums
    # Yinyang's group tables give Lloyd's scores with this class's tile widths (a padded
    # last group included)
    check_group_ties()
    check_group_bounds(6000, 12, 37, np.float64, True)

    n = 5000 + 13                       # three row blocks, the last one partial
    for dtype in (np.float64, np.float32):
        for d in (1, 7, 33):
            for k in (3, 9, 17, 40, 150):
                C = rng.normal(scale=3.0, size=(k, d))
                X = (C[rng.randint(k, size=n)] + rng.normal(size=(n, d))).astype(dtype)
                centers = C.astype(dtype)
                w = rng.uniform(0.5, 2.0, size=n)
                labels = np.empty(n, np.int32); sq = np.empty(n)
                nearest_centers(X, centers, labels, sq)
                ref_labels, ref_sq = naive.nearest_centers(X.astype(np.float64), centers.astype(np.float64))
                # the same labels up to near-ties; a different label is never a worse centre
                agree = np.mean(labels == ref_labels)
                assert agree >= (0.9999 if dtype == np.float64 else 0.999), ("labels", dtype, d, k, agree)
                tol = 1e-9 if dtype == np.float64 else 1e-4
                assert np.all(sq <= ref_sq + tol * (1.0 + ref_sq + (X.astype(np.float64) ** 2).sum(axis=1))), \
                    ("nearest", dtype, d, k)
                close(sq[labels == ref_labels], ref_sq[labels == ref_labels], 1e-9, "sqdist")

                def step(X=X, w=w, centers=centers, k=k, d=d):
                    lab = np.full(len(X), -1, np.int32); sums = np.empty((k, d)); wts = np.empty(k)
                    inertia, changed = user_lloyd(X, w, centers, lab, sums, wts)
                    return lab, sums, wts, np.array([inertia, changed])
                lab, sums, wts, scalars = twice(step)
                r_lab, r_sums, r_w, r_inertia, _ = naive.lloyd_step(X, w, centers.astype(np.float64), lab)
                same = lab == r_lab
                if same.all():
                    close(sums, r_sums, 1e-10, "lloyd sums")
                    close(wts, r_w, 1e-12, "lloyd weights")
                    close(scalars[0], r_inertia, 1e-10, "inertia")

    def reference_estep(log_prob, w, X, means):
        # (nk, s1, s2 about the means, weighted log-likelihood) from the (n, k) log-densities
        lse = naive_gaussian.logsumexp_rows(log_prob)
        resp = np.exp(log_prob - lse[:, None]) * w[:, None]
        return (*naive_gaussian.moments(X, resp, means), float(w @ lse))

    n = 3000 + 5
    for d in (2, 5, 9, 20):
        for k in (1, 3, 16):
            means = rng.normal(scale=2.0, size=(k, d))
            X = means[rng.randint(k, size=n)] + rng.normal(size=(n, d))
            w = rng.uniform(0.5, 2.0, size=n)
            A = rng.normal(size=(k, d, d)) / np.sqrt(d)
            covs = A @ A.transpose(0, 2, 1) + np.eye(d)
            pc = np.array([np.linalg.inv(np.linalg.cholesky(c)).T for c in covs])
            const = np.log(np.full(k, 1.0 / k)) + np.log(np.abs([np.linalg.det(p) for p in pc])) \\
                - 0.5 * d * np.log(2 * np.pi)
            for dtype in (np.float64, np.float32):
                Xd = X.astype(dtype)
                out = np.empty((n, k))
                gaussian_log_pdf_full(Xd, means, pc, const, out)
                close(out, naive_gaussian.log_pdf_prec_chol(Xd, means, pc, const), 1e-10, "log pdf full")

                def full(Xd=Xd, w=w, means=means, pc=pc, const=const, k=k, d=d):
                    nk, s1, s2 = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
                    ll = gaussian_estep_full(Xd, w, means, pc, const, means, nk, s1, s2)
                    return nk, s1, s2, np.array([ll])
                nk, s1, s2, ll = twice(full)
                r_nk, r_s1, r_s2, r_ll = reference_estep(
                    naive_gaussian.log_pdf_prec_chol(Xd, means, pc, const), w, Xd, means)
                close(nk, r_nk, 1e-10, "nk"); close(s1, r_s1, 1e-9, "s1"); close(s2, r_s2, 1e-9, "s2")
                close(ll[0], r_ll, 1e-10, "loglik")

                prec = rng.uniform(0.5, 2.0, size=(k, d))
                const_d = np.log(np.full(k, 1.0 / k)) + np.log(prec).sum(axis=1) - 0.5 * d * np.log(2 * np.pi)

                def diag(Xd=Xd, w=w, means=means, prec=prec, const_d=const_d, k=k, d=d):
                    nk, s1, s2 = np.empty(k), np.empty((k, d)), np.empty((k, d))
                    ll = gaussian_estep_diag(Xd, w, means, prec, const_d, means, nk, s1, s2)
                    return nk, s1, s2, np.array([ll])
                nk, s1, s2, ll = twice(diag)
                r_nk, r_s1, r_s2, r_ll = reference_estep(
                    naive_gaussian.log_pdf_prec_diag(Xd, means, prec, const_d), w, Xd, means)
                close(nk, r_nk, 1e-10, "nk diag"); close(s1, r_s1, 1e-9, "s1 diag")
                close(s2, np.einsum("jff->jf", r_s2), 1e-9, "s2 diag")
                close(ll[0], r_ll, 1e-10, "loglik diag")

    n, d = 4100, 70
    for k in (1, 3, 9, 40):
        B = (rng.uniform(size=(n, d)) < 0.2).astype(np.uint8)
        theta = rng.uniform(0.05, 0.95, size=(k, d))
        logw = np.log(np.full(k, 1.0 / k))
        w = rng.uniform(0.5, 2.0, size=n)
        r_nk, r_sx, r_ll = naive_bernoulli.estep(B, w, theta, logw)
        S = sp.csr_matrix(B)
        for name, f in (("dense", lambda: bernoulli_estep(B, w, theta, logw, nk, sx)),
                        ("csr", lambda: bernoulli_estep_csr(S.data, S.indices, S.indptr, w,
                                                           theta, logw, nk, sx))):
            nk, sx = np.empty(k), np.empty((k, d))
            ll = f()
            close(nk, r_nk, 1e-10, "bernoulli nk " + name)
            close(sx, r_sx, 1e-10, "bernoulli sx " + name)
            close(ll, r_ll, 1e-10, "bernoulli ll " + name)

    X = np.concatenate([rng.normal(-4, 1, (400, 3)), rng.normal(4, 1, (400, 3))])
    assert len(set(KMeans(2, random_state=0).fit(X).labels_[[0, 799]])) == 2
    for ct in ("full", "tied", "diag", "spherical"):
        gm = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
        assert np.isfinite(gm.lower_bound_) and np.allclose(np.sort(gm.means_[:, 0]), [-4, 4], atol=0.3), ct
    bm = BernoulliMixture(2, random_state=0).fit((X > 0).astype(np.uint8))
    assert np.isfinite(bm.lower_bound_)
    print("ok")
""")


def _host_class():
    return _target.classify(*_target.probe_target(*_target.target_cpu()))


def _class_environments():
    """(class, extra environment) for every class this host can run."""
    host = _host_class()
    envs = []
    x86 = _target.probe_target("generic", "")[0].startswith("x86")
    if x86:
        if host == "avx512":
            envs.append(("avx2", {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}))
        envs.append(("sse", {"NUMBA_CPU_NAME": "generic"}))
    for forced in ("neon", "portable"):
        if forced != host:
            envs.append((forced, {"FASTEM_SIMD_CLASS": forced}))
    return envs


CLASS_ENVIRONMENTS = _class_environments()


def _run_child(simd_class, extra, cache_dir):
    env = {key: value for key, value in os.environ.items()
           if key not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "FASTEM_SIMD_CLASS")}
    env.update(extra)
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["NUMBA_NUM_THREADS"] = "2"
    # the children already compile one per CPU: compile-ahead helpers would only compete
    env["FASTEM_COMPILE_AHEAD"] = "0"
    return subprocess.run([sys.executable, "-c", CHILD, simd_class], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def class_children(tmp_path_factory):
    """Every class's child, started together on the first request, as many at a time as
    there are CPUs: a child spends most of its minute in Numba's single-threaded compiler,
    so on 2 cores two of them run side by side (each test still checks its own child)."""
    pool = ThreadPoolExecutor(max(1, min(len(CLASS_ENVIRONMENTS), os.cpu_count() or 1)))
    futures = {simd_class: pool.submit(_run_child, simd_class, extra,
                                       tmp_path_factory.mktemp(f"cache-{simd_class}"))
               for simd_class, extra in CLASS_ENVIRONMENTS}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("simd_class", [c for c, _ in CLASS_ENVIRONMENTS])
def test_kernels_under_each_simd_class(simd_class, class_children):
    result = class_children[simd_class].result()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


def test_host_class_is_detected_from_the_target():
    """The class follows Numba's target (CPU name and features), not a guess."""
    assert _target.SIMD_CLASS == (os.environ.get("FASTEM_SIMD_CLASS") or _host_class())
    assert _target.classify("x86_64", 64, True) == "avx512"
    assert _target.classify("x86_64", 32, True) == "avx2"
    assert _target.classify("x86_64", 32, False) == "sse"
    assert _target.classify("aarch64", 16, True) == "neon"
    assert _target.classify("riscv64", 16, True) == "portable"
    if _target.probe_target("generic", "")[0].startswith("x86"):
        assert _target.classify(*_target.probe_target("haswell", "")) == "avx2"
        assert _target.classify(*_target.probe_target("generic", "")) == "sse"
        assert _target.classify(*_target.probe_target("skylake-avx512", "")) == "avx512"


def test_every_class_has_consistent_tiles():
    for name, row in _target.TILE_TABLE.items():
        widths = [t.vectors * t.vector_bytes for t in row["search"]]
        assert widths == sorted(widths), name
        for t in row["search"] + (row["product"],) + ((row["deep"],) if row["deep"] else ()):
            # accumulators + operand vectors + one broadcast fit the register file
            registers = 32 if name in ("avx512", "neon") else 16
            split = max(1, t.vector_bytes // register_bytes(name))   # LLVM splits wider vectors
            assert split * (t.rows * t.vectors + t.vectors) + 1 <= registers, (name, t)
        assert 2048 % row["product"].rows == 0, name   # BLOCK_ROWS is a multiple


def register_bytes(name):
    """Register width of a class in bytes."""
    return {"avx512": 64, "avx2": 32}.get(name, 16)
