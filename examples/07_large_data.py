"""Data larger than memory: fit KMeans and a GaussianMixture on a memory-mapped ``.npy``
file, streamed in chunks (never read whole, no n x k array), and the same fits on a Dask
array held by a local two-worker cluster; both equal the in-memory fit.

    python examples/07_large_data.py [--out DIR] [--small] [--rows N]

The default writes a 2,000,000 x 8 float32 file (64 MB) to a temporary folder; give
``--rows`` to go beyond your RAM (the fit's memory stays one label per row plus a chunk).
"""
import os
import shutil
import tempfile
import time

import numpy as np

from _common import options, save

N_FEATURES = 8


def write_data(path, n_rows, seed=0, block=250_000):
    """Blobs written block by block, so the file can be larger than memory."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-10, 10, (6, N_FEATURES)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(n_rows, N_FEATURES))
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        labels = rng.randint(0, 6, stop - start)
        out[start:stop] = centres[labels] + 2.0 * rng.standard_normal(
            (stop - start, N_FEATURES)).astype(np.float32)
    out.flush()
    del out


def _read_rows(path, start, stop):
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def dask_rows(path, n_rows, chunk_rows):
    """A Dask array whose blocks the workers read from the file themselves (a shared
    filesystem on a real cluster); the client never holds the data."""
    import dask
    import dask.array as da
    blocks = [da.from_delayed(dask.delayed(_read_rows)(path, start, min(start + chunk_rows,
                                                                        n_rows)),
                              shape=(min(start + chunk_rows, n_rows) - start, N_FEATURES),
                              dtype=np.float32)
              for start in range(0, n_rows, chunk_rows)]
    return da.concatenate(blocks)


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv, extra=lambda parser: parser.add_argument(
        "--rows", type=int, help="rows to write (default 2,000,000; 100,000 with --small)"))
    import matplotlib.pyplot as plt

    from fastem import GaussianMixture, KMeans

    n_rows = args.rows or (100_000 if args.small else 2_000_000)
    folder = tempfile.mkdtemp(prefix="fastem-example-")
    try:
        need = n_rows * N_FEATURES * 4
        free = shutil.disk_usage(folder).free
        if need > free // 2:
            raise SystemExit(f"needs {need / 1e6:.0f} MB in {folder}; only {free / 1e6:.0f} MB "
                             "free: give --rows a smaller number")
        path = os.path.join(folder, "blobs.npy")
        write_data(path, n_rows)
        X = np.load(path, mmap_mode="r")   # nothing is read yet
        init = np.ascontiguousarray(X[:: n_rows // 6][:6])
        results = {}
        t0 = time.perf_counter()
        km = KMeans(6, init=init, algorithm="lloyd").fit(X)
        # the mixture starts from the k-means fit: centres, equal weights, pooled variance
        start = dict(weights_init=np.full(6, 1 / 6), means_init=km.cluster_centers_,
                     precisions_init=np.full((6, N_FEATURES),
                                             n_rows * N_FEATURES / km.inertia_))
        gm = GaussianMixture(6, covariance_type="diag", **start).fit(X)
        results["memmap"] = (km, gm, time.perf_counter() - t0)
        print(f"memmap {n_rows:,} x {N_FEATURES} float32 ({need / 1e6:.0f} MB): KMeans "
              f"{km.n_iter_} iterations, GaussianMixture {gm.n_iter_} iterations, "
              f"{results['memmap'][2]:.2f} s")

        km_ref = None
        if need <= 1e9:   # small enough to check against an in-memory fit
            km_ref = KMeans(6, init=init, algorithm="lloyd").fit(np.array(X))
            print(f"  same centres as in memory: "
                  f"{np.allclose(km.cluster_centers_, km_ref.cluster_centers_, rtol=1e-10)}")

        dask_note = "Dask not installed (pip install 'fastem[dask]')"
        try:
            import dask.array as da
            from distributed import Client, LocalCluster
        except ImportError:
            da = None
        if da is not None:
            with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                              processes=True) as cluster, Client(cluster):
                Xd = dask_rows(path, n_rows, chunk_rows=max(n_rows // 8, 1)).persist()
                t0 = time.perf_counter()
                kd = KMeans(6, init=init).fit(Xd)
                gd = GaussianMixture(6, covariance_type="diag", **start).fit(Xd)
                results["dask"] = (kd, gd, time.perf_counter() - t0)
            print("max relative differences (Dask vs memmap): centres "
                  f"{np.abs(kd.cluster_centers_ / km.cluster_centers_ - 1).max():.1e}, means "
                  f"{np.abs(gd.means_ / gm.means_ - 1).max():.1e}; iterations "
                  f"{kd.n_iter_}/{km.n_iter_}, {gd.n_iter_}/{gm.n_iter_}")
            same = (np.allclose(kd.cluster_centers_, km.cluster_centers_, rtol=1e-10)
                    and np.allclose(gd.means_, gm.means_, rtol=1e-10))
            dask_note = (f"Dask, 2 workers: {results['dask'][2]:.2f} s, KMeans centres and "
                         f"GaussianMixture means equal the memmap fits': {same}")
        print(dask_note)

        sample = np.asarray(X[:: max(n_rows // 20_000, 1)])
        fig, ax = plt.subplots(figsize=(7, 5.5))
        ax.hexbin(sample[:, 0], sample[:, 1], gridsize=60, cmap="Greys", mincnt=1)
        for (name, (k, g, seconds)), marker in zip(results.items(), ("X", "o")):
            ax.scatter(k.cluster_centers_[:, 0], k.cluster_centers_[:, 1], marker=marker,
                       s=140 if marker == "X" else 260, facecolors="none" if marker == "o"
                       else "crimson", edgecolors="crimson" if marker == "o" else "black",
                       linewidths=1.5, label=f"KMeans centres, {name} fit ({seconds:.1f} s)")
        ax.set_title(f"{n_rows:,} rows streamed from a memmap"
                     + (" and from a Dask cluster" if "dask" in results else ""))
        ax.set_xlabel("feature 0")
        ax.set_ylabel("feature 1")
        ax.legend(loc="lower left", fontsize=8)
        picture = save(fig, args.out, "07_large_data.png")
        print(f"picture: {picture}")
        return {"memmap": results["memmap"], "dask": results.get("dask"),
                "reference": km_ref, "picture": picture}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
