"""fastem BernoulliMixture vs two NumPy EMs: seconds per EM iteration, CSR scaling, peak memory.

Run from the repository root (one run at a time; a couple of minutes on 2 cores)::

    python asv_benchmarks/compare_bernoulli.py                      # n=200_000, d=784, k=10
    python asv_benchmarks/compare_bernoulli.py --n 20000 --repeats 3   # quick check

Same data and starting parameters as ``bench_bernoulli.py`` (16-source Bernoulli mixture,
15 % ones, uint8; k rows of X smoothed towards 1/2). Everything below runs in this process,
interleaved, after a warm-up call of each side; each number is the median of ``--repeats``.

* **s/iter** - one EM iteration: fastem's model ``e_step`` + ``m_step`` (fused kernel), on
  dense uint8 X and on CSR X (uint8 data, int32 indices); the NumPy peers on a float64 copy
  of X: "naive" ``X @ log(theta).T + (1 - X) @ log(1 - theta).T`` and "log-odds"
  ``X @ (log theta - log(1 - theta)).T + sum log(1 - theta)``, each followed by log-sum-exp
  and ``resp.T @ X`` (see ``bench_bernoulli.py``).
* **CSR density sweep** - CSR s/iter at 7.5 %, 15 %, 30 % ones (time should follow nnz).
* **peak memory above X** - in a fresh subprocess that loads X from an .npy file: the peak RSS
  (VmHWM) is reset through ``/proc/self/clear_refs`` after X is loaded and the kernels are
  warmed up, then ``BernoulliMixture(k, max_iter=10, tol=0, random_state=0).fit(X)`` (default
  k-means init) runs and ``VmHWM - VmRSS(before fit)`` is reported next to the size of X.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from asv_benchmarks.bench_bernoulli import (initial_params, make_binary_data,  # noqa: E402
                                            numpy_log_odds_em_iteration,
                                            numpy_naive_em_iteration)
from fastem.sources import ArraySource
from fastem.models.bernoulli import BernoulliMixtureModel  # noqa: E402

_MEM_CHILD = r"""
import sys, warnings
import numpy as np, scipy.sparse as sp
from fastem import BernoulliMixture

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
path, layout, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = np.load(path)
if layout == "csr":
    X = sp.csr_matrix(X)
size = X.nbytes if layout == "dense" else X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
warnings.simplefilter("ignore")
BernoulliMixture(k, max_iter=2, tol=0, random_state=0).fit(X[:8192])      # warm-up
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")                                                        # reset VmHWM
before = status("VmRSS:")
BernoulliMixture(k, max_iter=10, tol=0, random_state=0).fit(X)
print(size, status("VmHWM:") - before)
"""


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fastem_iteration(model, X, w, params):
    source = ArraySource(X, w)

    def run():
        stats = model.e_step(source, params)
        model.m_step(source, params, stats)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=784)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    n, d, k, rep = args.n, args.d, args.k, args.repeats

    X = make_binary_data(n, d)
    C = sp.csr_matrix(X)
    w = np.ones(n)
    params = initial_params(X, k)
    model = BernoulliMixtureModel(k, 1e-2, "kmeans")
    print(f"n={n} d={d} k={k}, density {C.nnz / (n * d):.3f}, X uint8 {X.nbytes / 1e6:.0f} MB, "
          f"repeats={rep}, median s/iter")
    sides = {"fastem dense uint8": _fastem_iteration(model, X, w, params),
             "fastem CSR": _fastem_iteration(model, C, w, params)}
    Xf = X.astype(np.float64)
    sides["numpy naive (float64 X)"] = lambda: numpy_naive_em_iteration(Xf, params.weights,
                                                                        params.means)
    sides["numpy log-odds (float64 X)"] = lambda: numpy_log_odds_em_iteration(
        Xf, params.weights, params.means)
    for fn in sides.values():
        fn()                                                    # warm-up
    times = {name: [] for name in sides}
    for _ in range(rep):                                        # interleaved repeats
        for name, fn in sides.items():
            times[name].append(_median_time(fn, 1))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in med.items():
        print(f"  {name:28s} {t:8.4f} s")
    for peer in ("numpy naive (float64 X)", "numpy log-odds (float64 X)"):
        print(f"  speed-up vs {peer}: dense {med[peer] / med['fastem dense uint8']:.1f}x, "
              f"CSR {med[peer] / med['fastem CSR']:.1f}x")
    sides.clear()
    Xf = None  # frees the float64 copy of X used by the NumPy peers before the sweep

    print("CSR density sweep (s/iter):")
    for density in (0.075, 0.15, 0.30):
        Cd = sp.csr_matrix(make_binary_data(n, d, density=density))
        fn = _fastem_iteration(model, Cd, w, initial_params(Cd, k))
        fn()
        print(f"  density {Cd.nnz / (n * d):.3f} nnz {Cd.nnz:>11,d}  {_median_time(fn, rep):.4f} s")

    if args.no_memory:
        return
    print("peak memory of fit above X (fresh process, VmHWM reset after load and warm-up):")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")
        np.save(path, X)
        for layout in ("dense", "csr"):
            proc = subprocess.run([sys.executable, "-c", _MEM_CHILD, path, layout, str(k)],
                                  capture_output=True, text=True, cwd=ROOT,
                                  env=dict(os.environ, PYTHONPATH=ROOT))
            if proc.returncode:
                raise RuntimeError(proc.stderr)
            size, extra = map(int, proc.stdout.split()[-2:])
            print(f"  {layout:5s}: X {size / 1e6:7.1f} MB, fit peak above X "
                  f"{extra / 1e6:6.1f} MB = {extra / size:.3f} x X")


if __name__ == "__main__":
    main()
