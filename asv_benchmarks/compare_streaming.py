"""Large data on one machine: MiniBatchKMeans vs scikit-learn, online EM throughput and quality,
and the anonymous memory of fits on a memory-mapped file.

    python asv_benchmarks/compare_streaming.py [--quick] [--memmap-rows N]

Three tables (fastem and scikit-learn in one process, default environment):

1. MiniBatchKMeans on n=1e6, d=32, k=64 blobs (batch_size=1024, max_iter=100; scikit-learn
   with n_init=1 like fastem's 'auto' for k-means++): fit seconds and final inertia on all of
   X, per seed (5 seeds), medians and the ratios.
2. One pass of ``partial_fit`` over 1e6 rows in 1000-row chunks from a generator, against one
   batch EM iteration over the same rows (median of 3 x [t(max_iter=4) - t(max_iter=1)] / 3
   from the same initial parameters), and the held-out mean log-likelihood of the pass
   against batch EM to convergence (default tol) from the same initial parameters:
   GaussianMixture(8, full) on an overlapping d=10 mixture, BernoulliMixture(10) on d=64.
3. Peak anonymous memory (RssAnon, sampled every ms in a child process) of fits on a float32
   memmap, d=32 (default 4e6 rows): bytes per row.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from fastem import BernoulliMixture, GaussianMixture, MiniBatchKMeans

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asv_benchmarks.bench_streaming import (MEMMAP_SPECS, anonymous_peak,  # noqa: E402
                                            write_blob_memmap)
from asv_benchmarks.common import cpu_name  # noqa: E402

warnings.simplefilter("ignore")


def blobs(n, d, k, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-10, 10, size=(k, d))
    return centers[rng.randint(k, size=n)] + rng.normal(size=(n, d))


def table_minibatch(n, seeds):
    from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
    X = blobs(n, 32, 64)
    MiniBatchKMeans(64, random_state=0, max_iter=1).fit(X[:20_000])     # kernels loaded
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        ours = MiniBatchKMeans(64, batch_size=1024, max_iter=100, random_state=seed).fit(X)
        t1 = time.perf_counter()
        theirs = SkMiniBatchKMeans(64, batch_size=1024, max_iter=100, random_state=seed,
                                   n_init=1).fit(X)
        t2 = time.perf_counter()
        rows.append((seed, t1 - t0, ours.inertia_, ours.n_steps_, t2 - t1, theirs.inertia_,
                     theirs.n_steps_))
        print(f"  seed {seed}: fastem {t1 - t0:7.3f} s  inertia {ours.inertia_:.6g} "
              f"({ours.n_steps_} steps) | scikit-learn {t2 - t1:7.3f} s  inertia "
              f"{theirs.inertia_:.6g} ({theirs.n_steps_} steps)", flush=True)
    med = [statistics.median(r[i] for r in rows) for i in range(1, 7)]
    print(f"  median: fastem {med[0]:.3f} s, inertia {med[1]:.6g}; scikit-learn {med[3]:.3f} s,"
          f" inertia {med[4]:.6g} -> speed-up {med[3] / med[0]:.1f}x, inertia ratio "
          f"{med[1] / med[4]:.4f}")


def overlapping_gaussian(n, seed):
    rng = np.random.RandomState(0)
    k, d = 8, 10
    means = rng.normal(scale=1.5, size=(k, d))
    A = rng.normal(size=(k, d, d)) * 0.4
    chol = np.linalg.cholesky(np.einsum("kij,klj->kil", A, A) + 0.5 * np.eye(d))
    pi = rng.dirichlet(np.full(k, 5.0))
    r = np.random.RandomState(seed)
    z = r.choice(k, size=n, p=pi)
    return means[z] + np.einsum("nij,nj->ni", chol[z], r.normal(size=(n, d)))


def bernoulli_data(n, seed):
    rng = np.random.RandomState(0)
    theta = rng.beta(0.7, 0.7, size=(10, 64))
    pi = rng.dirichlet(np.full(10, 5.0))
    r = np.random.RandomState(seed)
    z = r.choice(10, size=n, p=pi)
    return (r.uniform(size=(n, 64)) < theta[z]).astype(np.uint8)


def table_online(n, repeat=3):
    cases = []
    X, H = overlapping_gaussian(n, 1), overlapping_gaussian(100_000, 2)
    s = GaussianMixture(8, max_iter=2, random_state=0).fit(X[:20_000])
    cases.append(("GaussianMixture(8, full), d=10", GaussianMixture, 8, X, H,
                  dict(weights_init=s.weights_, means_init=s.means_,
                       precisions_init=s.precisions_)))
    B, HB = bernoulli_data(n, 1), bernoulli_data(100_000, 2)
    s = BernoulliMixture(10, max_iter=1, random_state=0).fit(B[:20_000])
    cases.append(("BernoulliMixture(10), d=64", BernoulliMixture, 10, B, HB,
                  dict(weights_init=s.weights_, means_init=s.means_)))
    for title, cls, k, data, held, init in cases:
        passes, iters = [], []
        for _ in range(repeat):
            model = cls(k, **init)
            t0 = time.perf_counter()
            for start in range(0, len(data), 1000):
                model.partial_fit(data[start:start + 1000])
            passes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cls(k, max_iter=1, **init).fit(data)
            t1 = time.perf_counter()
            cls(k, max_iter=4, tol=0.0, **init).fit(data)
            iters.append(((time.perf_counter() - t1) - (t1 - t0)) / 3)
        batch = cls(k, **init).fit(data)
        tight = cls(k, tol=1e-6, max_iter=1000, **init).fit(data)
        p, it = statistics.median(passes), statistics.median(iters)
        print(f"  {title}: pass {p:.3f} s, batch iteration {it:.3f} s -> {p / it:.2f}x; "
              f"held-out ll online {model.score(held):.4f}, batch (tol 1e-3, "
              f"{batch.n_iter_} it) {batch.score(held):.4f} -> gap "
              f"{batch.score(held) - model.score(held):.4f}; batch tol 1e-6 "
              f"({tight.n_iter_} it) {tight.score(held):.4f}", flush=True)


def table_memmap(n):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "X.npy")
        write_blob_memmap(path, n)
        for label, (name, params) in MEMMAP_SPECS.items():
            anon, seconds = anonymous_peak(path, name, params)
            print(f"  {label} {params}: +{anon / 2**20:.0f} MiB anonymous = "
                  f"{anon / n:.1f} bytes/row, fit {seconds:.1f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e5 rows, 2 seeds")
    parser.add_argument("--memmap-rows", type=int, default=4_000_000)
    parser.add_argument("--only", choices=["minibatch", "online", "memmap"])
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    print(f"CPU: {cpu_name()}; numpy {np.__version__}")
    if args.only in (None, "minibatch"):
        print(f"\n1. MiniBatchKMeans, n={n:,} d=32 k=64 float64")
        table_minibatch(n, range(2 if args.quick else 5))
    if args.only in (None, "online"):
        print(f"\n2. partial_fit pass over {n:,} rows in 1000-row chunks vs batch EM")
        table_online(n)
    if args.only in (None, "memmap"):
        print(f"\n3. fits on a float32 memmap, {args.memmap_rows:,} x 32")
        table_memmap(args.memmap_rows)


if __name__ == "__main__":
    main()
