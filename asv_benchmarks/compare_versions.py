"""Two versions of fastem's Lloyd step in ONE process, taking turns: a kernel change timed
on a VM whose speed wanders.

    python asv_benchmarks/compare_versions.py --base HEAD~1
    python asv_benchmarks/compare_versions.py --base HEAD --shapes 128:8:float32 --threads 1

Between separate processes this repository's 2-core VMs moved by up to +-30%, more than most
kernel changes. Here ``git archive BASE fastem`` is unpacked into a temporary directory as
the package ``fastem_base`` (fastem imports its own modules relatively, so the copy is
self-contained and compiles into cache entries of its own), the working tree's ``fastem``
is the other version, and every round times a Lloyd step of each (the best of ``--repeat``
calls), the version that goes first alternating from round to round: with a fixed order
the first one measured 3-8% faster in an A/A run (``--base HEAD`` on a clean tree), which
alternating removes. Prints, per shape, the median over the rounds of each version and
their ratio. Shapes ``d:k:dtype``; X takes ``--mb`` megabytes (the KMeans sweep's rows
are 128-256 MB, which is where memory traffic shows).
"""
import argparse
import importlib
import io
import pathlib
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import best_of, cpu_name, init_centers, make_data  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE_PACKAGE = "fastem_base"


def load_base(rev, into):
    """fastem as of git revision ``rev``, imported as :data:`BASE_PACKAGE` from ``into``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "fastem"], cwd=ROOT,
                             check=True, capture_output=True).stdout
    # extraction filters exist from Python 3.10.12 / 3.11.4 on (the archive is this repository's)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, **safe)
    (pathlib.Path(into) / "fastem").rename(pathlib.Path(into) / BASE_PACKAGE)
    sys.path.insert(0, str(into))
    return importlib.import_module(BASE_PACKAGE)


def lloyd_call(package, X, centers, threads):
    """A no-argument callable running one Lloyd step of ``package`` on its own buffers."""
    kernels = importlib.import_module(package.__name__ + ".kernels")
    cap = importlib.import_module(package.__name__ + ".kernels._jit").thread_cap
    n, d = X.shape
    k = centers.shape[0]
    args = (X, np.ones(n), centers, np.full(n, -1, np.int32), np.zeros((k, d)), np.zeros(k))

    def call():
        with cap(threads):
            kernels.lloyd_step(*args)

    call()   # compile (or load) and settle the labels
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--shapes", default="128:8:float32,512:8:float32,128:8:float64",
                        help="comma-separated d:k:dtype")
    parser.add_argument("--mb", type=float, default=128.0, help="megabytes of X per shape")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per call (default: all)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import fastem
    print(f"CPU: {cpu_name()}; base = {args.base}, new = working tree ({ROOT}); "
          f"{args.rounds} rounds, each the best of {args.repeat}; threads: "
          f"{args.threads or 'all'}\n")
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(args.base, tmp)
        print("| shape (d:k:dtype, n) | base ms | new ms | new / base |")
        print("|---|---:|---:|---:|")
        for spec in args.shapes.split(","):
            d, k, dtype = spec.split(":")
            d, k, dtype = int(d), int(k), np.dtype(dtype)
            n = max(k, int(args.mb * 2**20 / (d * dtype.itemsize)))
            X = make_data(n, d, dtype)
            centers = init_centers(X, k)
            calls = {"base": lloyd_call(base, X, centers, args.threads),
                     "new": lloyd_call(fastem, X, centers, args.threads)}
            times = {"base": [], "new": []}
            for r in range(args.rounds):
                for name in (("base", "new") if r % 2 == 0 else ("new", "base")):
                    times[name].append(best_of(calls[name], args.repeat))
            b, w = (float(np.median(times[name])) * 1e3 for name in ("base", "new"))
            print(f"| {spec}, {n:,} | {b:.2f} | {w:.2f} | {w / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
