"""fastem vs scikit-learn GaussianMixture: seconds per EM iteration and peak memory of a fit.

Run from the repository root (takes minutes of every core at the default size)::

    python asv_benchmarks/compare_gmm.py                    # n=1e6, d=16, k=16
    python asv_benchmarks/compare_gmm.py --n 20000 --d 4 --k 4 --repeats 1   # quick check

Prints a markdown table: one row per covariance type and dtype.

Same data and start as ``bench_gmm.py``: :func:`common.make_anisotropic_data` (seed 0) and
:func:`common.gmm_inits` (uniform weights, k distinct rows as means, unit precisions, all
float64) given as ``weights_init``/``means_init``/``precisions_init``, ``tol=0``.
scikit-learn uses ``init_params='random_from_data'`` (it always runs an initial M-step from
responsibilities, even with all three inits given; this is its cheapest way, no k-means).

* **s/iter** - in this process: ``[t(fit, max_iter=3) - t(fit, max_iter=1)] / 2`` per repeat
  (per-fit overheads cancel), the median over ``--repeats`` repeats. Each library is warmed
  up first by a fit on a row slice (Numba compile / cache load, lazy imports).
* **peak MB** - peak RSS of a ``max_iter=3`` fit above its floor, each in a fresh
  subprocess: ``peak(child that builds X, warms up and fits) - peak(child that builds X and
  warms up only)``, same library, covariance type and dtype. Each child reports its own
  high-water mark, ``VmHWM`` from ``/proc/self/status`` (``getrusage().ru_maxrss`` elsewhere).
  Not ``ru_maxrss`` on Linux: across fork/vfork + exec it starts from the *parent's* peak
  (this process, which holds X and both libraries), so both children would report the same
  number; ``RUSAGE_CHILDREN`` in the parent has that problem too, and is moreover the
  maximum over all children reaped so far. RSS sees every
  allocation (NumPy, Numba NRT, BLAS buffers), which ``tracemalloc`` would not. The Numba
  cache is filled in this process first, so no child compiles. The warm-up fit is on a
  small slice (2048 rows); 0 means the fit never rose above the floor (tiny ``--n``, where
  the imports dominate the peak).

On a machine shared with other work, a parallel kernel slows down several-fold whenever a
core is taken away from one of its threads; use ``--repeats`` > 3 there, or an idle machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


from asv_benchmarks.common import (COVARIANCE_TYPES, DTYPES, SklearnGaussianMixture,  # noqa: E402
                                   gmm_inits, make_anisotropic_data)

M1, M2 = 1, 3
MEM_MAX_ITER = 3
WARMUP_ROWS = 32_768      # timing warm-up: 16 row blocks, the multi-block code paths
MEM_WARMUP_ROWS = 2_048   # memory children: loads the kernels, small next to any real fit

_MEM_CHILD = r"""
import json, resource, sys, warnings
root, lib, mode, ct, dtype, n, d, k, max_iter, warmup_rows = sys.argv[1:]
n, d, k, max_iter, warmup_rows = int(n), int(d), int(k), int(max_iter), int(warmup_rows)
sys.path.insert(0, root)
from asv_benchmarks.common import gmm_inits, make_anisotropic_data
if lib == "fastem":
    from fastem import GaussianMixture as GM
    extra = {}
else:
    from sklearn.mixture import GaussianMixture as GM
    extra = {"init_params": "random_from_data"}
X = make_anisotropic_data(n, d, dtype)
w, m, p = gmm_inits(X, k, ct)

def est():
    return GM(k, covariance_type=ct, tol=0.0, max_iter=max_iter, weights_init=w,
              means_init=m, precisions_init=p, random_state=0, **extra)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est().fit(X[:warmup_rows])  # kernels loaded / lazy imports done, as in the timing
    if mode == "fit":
        est().fit(X)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak *= 1 if sys.platform == "darwin" else 1024
try:  # Linux: this process image's own high-water mark (ru_maxrss can be the parent's, below)
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"maxrss": peak}))
"""


def _estimator(lib, k, covariance_type, inits, max_iter):
    weights, means, precisions = inits
    if lib == "fastem":
        from fastem import GaussianMixture
        cls, extra = GaussianMixture, {}
    else:
        cls, extra = SklearnGaussianMixture, {"init_params": "random_from_data"}
    return cls(k, covariance_type=covariance_type, tol=0.0, max_iter=max_iter,
               weights_init=weights, means_init=means, precisions_init=precisions,
               random_state=0, **extra)


def _fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        est.fit(X)
        elapsed = time.perf_counter() - start
    if est.n_iter_ != est.max_iter:
        raise RuntimeError(f"fit stopped after {est.n_iter_} < max_iter={est.max_iter}")
    return elapsed


def seconds_per_iteration(lib, X, k, covariance_type, repeats):
    """Median over ``repeats`` of ``[t(max_iter=M2) - t(max_iter=M1)] / (M2 - M1)``."""
    inits = gmm_inits(X, k, covariance_type)
    _fit(_estimator(lib, k, covariance_type, inits, M2), X[:WARMUP_ROWS])  # warm-up
    diffs = []
    for _ in range(repeats):
        t1 = _fit(_estimator(lib, k, covariance_type, inits, M1), X)
        t2 = _fit(_estimator(lib, k, covariance_type, inits, M2), X)
        diffs.append((t2 - t1) / (M2 - M1))
    return statistics.median(diffs)


def _child_maxrss(lib, mode, covariance_type, dtype, n, d, k):
    args = [ROOT, lib, mode, covariance_type, dtype, n, d, k, MEM_MAX_ITER,
            max(k, min(MEM_WARMUP_ROWS, n // 4))]
    proc = subprocess.run([sys.executable, "-c", _MEM_CHILD, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["maxrss"]


def peak_bytes_above_floor(lib, covariance_type, dtype, n, d, k):
    floor = _child_maxrss(lib, "data", covariance_type, dtype, n, d, k)
    peak = _child_maxrss(lib, "fit", covariance_type, dtype, n, d, k)
    return peak - floor


def _prime_numba_cache(dtypes, types, d, k):
    """Tiny fastem fits of every measured (type, dtype): fills the on-disk Numba cache so the
    memory children load compiled kernels instead of compiling."""
    X = make_anisotropic_data(max(4 * k, 2048), d, "float64")
    for dtype in dtypes:
        Xd = X.astype(dtype)
        for ct in types:
            _fit(_estimator("fastem", k, ct, gmm_inits(Xd, k, ct), M1), Xd)


def _fmt_s(v):
    return "n/a" if v is None else f"{v:.4f}"


def _fmt_mb(v):
    return "n/a" if v is None else f"{v / 2**20:.1f}"


def _ratio(peer, ours):
    return "n/a" if peer is None or ours is None or ours <= 0 else f"{peer / ours:.2f}x"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows (default 1e6)")
    parser.add_argument("--d", type=int, default=16, help="features (default 16)")
    parser.add_argument("--k", type=int, default=16, help="components (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--types", default=",".join(COVARIANCE_TYPES))
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    types = args.types.split(",")
    unknown = set(dtypes) - set(DTYPES) | set(types) - set(COVARIANCE_TYPES)
    if unknown:
        parser.error(f"unknown dtype / covariance type: {sorted(unknown)}")
    libs = ["fastem"] + (["sklearn"] if SklearnGaussianMixture is not None else [])

    import numba
    import fastem
    versions = f"fastem {getattr(fastem, '__version__', '?')}, numba {numba.__version__}"
    if SklearnGaussianMixture is not None:
        import sklearn
        versions += f", scikit-learn {sklearn.__version__}"
    print(f"GaussianMixture, n={args.n}, d={args.d}, k={args.k}; {versions}; "
          f"{os.cpu_count()} CPUs, {numba.get_num_threads()} Numba threads; "
          f"s/iter = median of {args.repeats} x [t(max_iter={M2}) - t(max_iter={M1})]"
          f"/{M2 - M1}; peak = max RSS of a max_iter={MEM_MAX_ITER} fit above the "
          "data + warm-up floor (fresh subprocesses)\n", file=sys.stderr, flush=True)

    rows = []
    for dtype in dtypes:
        X = make_anisotropic_data(args.n, args.d, dtype)
        for ct in types:
            row = {"type": ct, "dtype": dtype}
            for lib in libs:
                row[f"{lib}_s"] = seconds_per_iteration(lib, X, args.k, ct, args.repeats)
                print(f"  {ct:9s} {dtype}  {lib:7s} {row[f'{lib}_s']:.4f} s/iter",
                      file=sys.stderr, flush=True)
            rows.append(row)
        del X
    if not args.no_memory:
        _prime_numba_cache(dtypes, types, args.d, args.k)
        for row in rows:
            for lib in libs:
                row[f"{lib}_mem"] = peak_bytes_above_floor(lib, row["type"], row["dtype"],
                                                           args.n, args.d, args.k)
                print(f"  {row['type']:9s} {row['dtype']}  {lib:7s} "
                      f"{_fmt_mb(row[f'{lib}_mem'])} MB above floor", file=sys.stderr,
                      flush=True)

    print(f"\n**GaussianMixture, n={args.n}, d={args.d}, k={args.k}** "
          f"(ratio = scikit-learn / fastem; > 1: fastem faster / smaller)\n")
    print("| covariance | dtype | fastem s/iter | sklearn s/iter | ratio "
          "| fastem peak MB | sklearn peak MB | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fs, ss = r.get("fastem_s"), r.get("sklearn_s")
        fm, sm = r.get("fastem_mem"), r.get("sklearn_mem")
        print(f"| {r['type']} | {r['dtype']} | {_fmt_s(fs)} | {_fmt_s(ss)} | {_ratio(ss, fs)} "
              f"| {_fmt_mb(fm)} | {_fmt_mb(sm)} | {_ratio(sm, fm)} |")


if __name__ == "__main__":
    main()
