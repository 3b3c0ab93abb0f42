"""Large data on one machine: MiniBatchKMeans (fastem and scikit-learn), online EM throughput,
and the anonymous memory of a fit on a memory-mapped file.

* ``TimeMiniBatchKMeansFit`` / ``TimeSklearnMiniBatchKMeansFit``: ``fit`` on n=1e6 (regular
  profile), d=32, k=64 blobs, batch_size=1024, max_iter=100, random_state=0 (scikit-learn with
  n_init=1, as fastem's 'auto' for k-means++); ``track_inertia_ratio`` is fastem's final
  inertia over scikit-learn's (same seed, both on all of X).
* ``TimePartialFitPass``: one pass of ``partial_fit`` over n rows in 1000-row chunks
  (GaussianMixture(8, full), d=10; BernoulliMixture(10), d=64 uint8), and
  ``TimeBatchEMIteration`` one EM iteration of ``fit`` over the same rows (the difference of
  fits with max_iter=2 and 1 from the same initial parameters), for the ratio.
* ``TrackMemmapAnonymousBytesPerRow``: peak ``RssAnon`` growth per row during ``fit`` on a
  float32 memmap (d=32), measured in a child process (anonymous pages only: the page cache of
  the mapped file does not count). Linux only.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastem import BernoulliMixture, GaussianMixture, MiniBatchKMeans

from . import common   # the peer: common.SklearnMiniBatchKMeans, imported on first use
from .common import require_sklearn, rows


def _blobs(n, d, k, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-10, 10, size=(k, d))
    return centers[rng.randint(k, size=n)] + rng.normal(size=(n, d))


class _MiniBatchCase:
    """Parameters of the mini-batch classes below (benchmark methods live in the subclasses:
    a method asv finds but a subclass cannot run would show as failed, not skipped)."""

    params = [["float32", "float64"]]
    param_names = ["dtype"]
    timeout = 600
    number = 1
    repeat = (1, 5, 60.0)


class TimeMiniBatchKMeansFit(_MiniBatchCase):
    def setup(self, dtype):
        self.X = _blobs(rows(1_000_000), 32, 64).astype(dtype)
        MiniBatchKMeans(64, random_state=0, max_iter=1).fit(self.X[:20_000])

    def time_fit(self, dtype):
        MiniBatchKMeans(64, batch_size=1024, max_iter=100, random_state=0).fit(self.X)

    def track_inertia_ratio(self, dtype):
        require_sklearn()
        ours = MiniBatchKMeans(64, batch_size=1024, max_iter=100, random_state=0).fit(self.X)
        theirs = common.SklearnMiniBatchKMeans(64, batch_size=1024, max_iter=100,
                                               random_state=0, n_init=1).fit(self.X)
        return ours.inertia_ / theirs.inertia_


class TimeSklearnMiniBatchKMeansFit(_MiniBatchCase):
    def setup(self, dtype):
        require_sklearn()
        self.X = _blobs(rows(1_000_000), 32, 64).astype(dtype)

    def time_fit(self, dtype):
        common.SklearnMiniBatchKMeans(64, batch_size=1024, max_iter=100, random_state=0,
                                      n_init=1).fit(self.X)


def _online_case(model):
    n = rows(1_000_000)
    rng = np.random.RandomState(0)
    if model == "gaussian_full":
        k, d = 8, 10
        means = rng.normal(scale=1.5, size=(k, d))
        X = means[rng.randint(k, size=n)] + rng.normal(size=(n, d))
        start = GaussianMixture(k, max_iter=2, random_state=0).fit(X[:20_000])
        init = dict(weights_init=start.weights_, means_init=start.means_,
                    precisions_init=start.precisions_)
        return X, lambda **kw: GaussianMixture(k, **init, **kw)
    k, d = 10, 64
    theta = rng.beta(0.7, 0.7, size=(k, d))
    X = (rng.uniform(size=(n, d)) < theta[rng.randint(k, size=n)]).astype(np.uint8)
    start = BernoulliMixture(k, max_iter=1, random_state=0).fit(X[:20_000])
    init = dict(weights_init=start.weights_, means_init=start.means_)
    return X, lambda **kw: BernoulliMixture(k, **init, **kw)


class _OnlineCase:
    """Data and set-up of the two classes below (see :class:`_MiniBatchCase`)."""

    params = [["gaussian_full", "bernoulli"]]
    param_names = ["model"]
    timeout = 600
    number = 1
    repeat = (1, 5, 60.0)

    def setup(self, model):
        self.X, self.make = _online_case(model)
        self.make().partial_fit(self.X[:1000])


class TimePartialFitPass(_OnlineCase):
    def time_partial_fit_pass(self, model):
        est = self.make()
        for start in range(0, len(self.X), 1000):
            est.partial_fit(self.X[start:start + 1000])


class TimeBatchEMIteration(_OnlineCase):
    def setup(self, model):
        super().setup(model)
        self.make(max_iter=1).fit(self.X)

    def track_seconds_per_iteration(self, model):
        t0 = time.perf_counter()
        self.make(max_iter=1, tol=0.0).fit(self.X)
        t1 = time.perf_counter()
        self.make(max_iter=2, tol=0.0).fit(self.X)
        return (time.perf_counter() - t1) - (t1 - t0)

    track_seconds_per_iteration.unit = "seconds"


_MEASURE = """
import gc, json, sys, threading, time, warnings
import numpy as np, fastem
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
X = np.load(sys.argv[1], mmap_mode="r")
name, params = json.loads(sys.argv[2])
warnings.simplefilter("ignore")
getattr(fastem, name)(**params).fit(X[:50_000]); gc.collect()
base, peak, done = anon(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon()); time.sleep(0.001)
th = threading.Thread(target=sample); th.start()
t0 = time.perf_counter(); getattr(fastem, name)(**params).fit(X); t = time.perf_counter() - t0
done.set(); th.join()
print(json.dumps([max(peak[0], anon()) - base, t]))
"""


def write_blob_memmap(path, n, d=32):
    """A float32 .npy file of 16 blobs, written in chunks (no n x d array in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=10.0, size=(16, d)).astype(np.float32)
    for s in range(0, n, 1 << 20):
        e = min(n, s + (1 << 20))
        out[s:e] = centers[rng.integers(16, size=e - s)] + rng.standard_normal(
            (e - s, d), dtype=np.float32)
    out.flush()


def anonymous_peak(path, name, params):
    """(peak RssAnon growth in bytes, fit seconds) of ``fastem.<name>(**params).fit`` on the
    memmap at ``path``, in a child process whose kernels are loaded first."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, path, json.dumps([name, params])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


MEMMAP_SPECS = {
    "KMeans": ("KMeans", {"n_clusters": 16, "random_state": 0}),
    "MiniBatchKMeans": ("MiniBatchKMeans", {"n_clusters": 16, "random_state": 0}),
    "GaussianMixture-diag": ("GaussianMixture", {"n_components": 16, "covariance_type": "diag",
                                                 "random_state": 0}),
    "GaussianMixture-full": ("GaussianMixture", {"n_components": 8, "covariance_type": "full",
                                                 "random_state": 0, "max_iter": 10}),
}


class TrackMemmapAnonymousBytesPerRow:
    params = [list(MEMMAP_SPECS)]
    param_names = ["estimator"]
    timeout = 900
    number = 1
    repeat = 1
    unit = "bytes/row"

    def setup_cache(self):
        if not os.path.exists("/proc/self/status"):
            return None
        path = os.path.join(tempfile.mkdtemp(prefix="fastem-asv-"), "X.npy")
        write_blob_memmap(path, rows(4_000_000))
        return path

    def track_peak_anonymous_bytes_per_row(self, path, estimator):
        if path is None:
            raise NotImplementedError("needs /proc/self/status")
        anon, _ = anonymous_peak(path, *MEMMAP_SPECS[estimator])
        return anon / np.load(path, mmap_mode="r").shape[0]
