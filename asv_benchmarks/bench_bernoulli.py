"""BernoulliMixture benchmarks: fastem next to two NumPy EMs (the peers).

Data (:func:`make_binary_data`): rows drawn from a 16-component Bernoulli mixture whose success
probabilities average ``density`` (15 % unless stated), generated in row chunks as C-contiguous
uint8 (0/1); the CSR form is ``scipy.sparse.csr_matrix`` of it (uint8 data, int32 indices).
Parameters evaluated: k rows of X smoothed towards 1/2 (fixed seed), equal weights.

Grid (``n, d, k``): n in {1e5, 1e6} x d in {64, 784} x k in {10, 32}, plus the must-have point
(n=200_000, d=784, k=10); other points of the cartesian product are skipped. The NumPy peers
need X as float64 (8x the uint8 size), so they skip the n=1e6, d=784 points (6.3 GB).

What "one EM iteration" is here: the model's ``e_step`` (one fused pass: log-probabilities,
responsibilities, N_k, sum r x, log-likelihood) plus ``m_step`` (theta, pi), exactly what the
driver runs per iteration. The peers do the same work vectorised in NumPy:

* ``TimeNumpyNaiveEMIteration`` - ``X @ log(theta).T + (1 - X) @ log(1 - theta).T`` on
  float64 X, log-sum-exp, ``resp.T @ X``: the straightforward form;
* ``TimeNumpyLogOddsEMIteration`` - ``X @ (log theta - log(1 - theta)).T + sum log(1 - theta)``
  (one matmul for the E-step), log-sum-exp, ``resp.T @ X``: the smarter form.

Compilation is not timed: every ``setup`` runs the timed call once on a slice with the same
Numba types. ``PeakMem*`` benchmarks report the process's peak RSS around a default fit;
``PeakMemBernoulliBaseline`` is the same process with the data only (subtract it).
"""
import numpy as np
import scipy.sparse as sp

from fastem.sources import ArraySource
from fastem import BernoulliMixture
from fastem.models.bernoulli import BernoulliMixtureModel, BernoulliParams

from .common import PROFILE, rows, skip_unless

#: Fixed seeds: data, and the rows used as initial parameters.
DATA_SEED = 0
INIT_SEED = 1
N_SOURCES = 16
DENSITY = 0.15

GRID_POINTS = frozenset(
    [(rows(n), d, k) for n in (100_000, 1_000_000) for d in (64, 784) for k in (10, 32)]
    + [(rows(200_000), 784, 10)])
GRID_PARAMS = [[rows(100_000), rows(200_000), rows(1_000_000)], [64, 784], [10, 32]]
if PROFILE == "fast":  # the must-have point only
    GRID_POINTS = frozenset([(rows(200_000), 784, 10)])
    GRID_PARAMS = [[rows(200_000)], [784], [10]]
GRID_PARAM_NAMES = ["n", "d", "k"]

#: Peers need a float64 copy of X: at most this many bytes of it.
PEER_MAX_BYTES = 2 * 2**30

#: Rows used to warm up (compile or cache-load) in ``setup``: same Numba types as X.
WARMUP_ROWS = 8192


def make_binary_data(n, d, density=DENSITY, seed=DATA_SEED):
    """(n, d) C-contiguous uint8 0/1 rows of a 16-component Bernoulli mixture."""
    rng = np.random.default_rng(seed)
    a = 0.5
    theta = rng.beta(a, a * (1.0 - density) / density, size=(N_SOURCES, d))
    X = np.empty((n, d), dtype=np.uint8)
    source = rng.integers(N_SOURCES, size=n)
    chunk = 32_768
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        X[start:stop] = rng.random((stop - start, d), dtype=np.float32) < theta[source[start:stop]]
    return X


def initial_params(X, k, seed=INIT_SEED):
    """k rows of X smoothed towards 1/2 (theta in [0.1, 0.9]) and equal weights."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(X.shape[0], size=k, replace=False))
    theta = 0.1 + 0.8 * np.asarray(X[rows].todense() if sp.issparse(X) else X[rows],
                                   dtype=np.float64)
    return BernoulliParams(np.full(k, 1.0 / k), theta)


class _Grid:
    params = GRID_PARAMS
    param_names = GRID_PARAM_NAMES
    timeout = 300

    def _make(self, n, d, k):
        skip_unless((n, d, k), GRID_POINTS)
        self.X = make_binary_data(n, d)
        self.params0 = initial_params(self.X, k)
        self.w = np.ones(n)


class TimeBernoulliEMIteration(_Grid):
    """fastem, dense uint8 X: one EM iteration (fused E-step kernel + M-step)."""

    def _data(self):
        return self.X

    def setup(self, n, d, k):
        self._make(n, d, k)
        self.data = self._data()
        self.model = BernoulliMixtureModel(k, 1e-2, "kmeans")
        small = ArraySource(self.data[:WARMUP_ROWS], self.w[:WARMUP_ROWS])
        self.model.e_step(small, self.params0)  # JIT warm-up
        self.source = ArraySource(self.data, self.w)

    def time_em_iteration(self, n, d, k):
        stats = self.model.e_step(self.source, self.params0)
        self.model.m_step(self.source, self.params0, stats)


class TimeBernoulliEMIterationCSR(TimeBernoulliEMIteration):
    """fastem, CSR X (uint8 data, int32 indices, 15 % dense): one EM iteration."""

    def _data(self):
        return sp.csr_matrix(self.X)


class TimeBernoulliCSRDensity:
    """fastem, CSR X at n=200_000, d=784, k=10 and density 7.5 / 15 / 30 %: one EM iteration.

    The CSR kernels cost O(nnz k): the time should scale with the density.
    """

    params = [[0.075, 0.15, 0.30]]
    param_names = ["density"]
    timeout = 300

    def setup(self, density):
        X = make_binary_data(rows(200_000), 784, density=density)
        self.params0 = initial_params(X, 10)
        self.C = sp.csr_matrix(X)
        self.w = np.ones(X.shape[0])
        self.model = BernoulliMixtureModel(10, 1e-2, "kmeans")
        self.model.e_step(ArraySource(self.C[:WARMUP_ROWS], self.w[:WARMUP_ROWS]), self.params0)
        self.source = ArraySource(self.C, self.w)

    def time_em_iteration(self, density):
        stats = self.model.e_step(self.source, self.params0)
        self.model.m_step(self.source, self.params0, stats)


def numpy_naive_em_iteration(Xf, weights, theta):
    """Peer 1: the straightforward vectorised EM iteration on float64 X."""
    log_prob = Xf @ np.log(theta).T + (1.0 - Xf) @ np.log1p(-theta).T + np.log(weights)
    return _numpy_finish(Xf, log_prob)


def numpy_log_odds_em_iteration(Xf, weights, theta):
    """Peer 2: one matmul for the E-step, ``X @ (log theta - log(1 - theta)).T + const``."""
    log_1m = np.log1p(-theta)
    log_prob = Xf @ (np.log(theta) - log_1m).T + (log_1m.sum(axis=1) + np.log(weights))
    return _numpy_finish(Xf, log_prob)


def _numpy_finish(Xf, log_prob):
    top = log_prob.max(axis=1, keepdims=True)
    resp = np.exp(log_prob - top)
    total = resp.sum(axis=1, keepdims=True)
    resp /= total
    ll = float(np.sum(top[:, 0] + np.log(total[:, 0])))
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    theta = (resp.T @ Xf + 1e-2) / (nk + 2e-2)[:, None]
    return nk / nk.sum(), theta, ll


class TimeNumpyNaiveEMIteration(_Grid):
    """Peer: :func:`numpy_naive_em_iteration` on a float64 copy of X (made in setup)."""

    peer = staticmethod(numpy_naive_em_iteration)

    def setup(self, n, d, k):
        skip_unless((n, d, k), GRID_POINTS)
        if n * d * 8 > PEER_MAX_BYTES:
            raise NotImplementedError("float64 X would not fit the peer's memory budget")
        self._make(n, d, k)
        self.Xf = self.X.astype(np.float64)
        del self.X
        self.time_em_iteration(n, d, k)  # warm-up (BLAS threads, first touch of Xf)

    def time_em_iteration(self, n, d, k):
        self.peer(self.Xf, self.params0.weights, self.params0.means)


class TimeNumpyLogOddsEMIteration(TimeNumpyNaiveEMIteration):
    """Peer: :func:`numpy_log_odds_em_iteration` on a float64 copy of X (made in setup)."""

    peer = staticmethod(numpy_log_odds_em_iteration)


# --------------------------------------------------------------------------- peak memory

MEM_N, MEM_D, MEM_K, MEM_MAX_ITER = rows(200_000), 784, 10, 10


class PeakMemBernoulliFit:
    """Peak RSS around ``BernoulliMixture(10, max_iter=10, random_state=0).fit(X)`` (default
    k-means init), n=200_000, d=784, X dense uint8 (157 MB) or CSR (15 % dense).

    Includes the interpreter, libraries and X; ``PeakMemBernoulliBaseline`` is that floor.
    """

    params = [["dense", "csr"]]
    param_names = ["layout"]
    timeout = 300

    def _estimator(self):
        return BernoulliMixture(MEM_K, max_iter=MEM_MAX_ITER, tol=0.0, random_state=0)

    def setup(self, layout):
        X = make_binary_data(MEM_N, MEM_D)
        self.X = sp.csr_matrix(X) if layout == "csr" else X
        del X
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._estimator().fit(self.X[:WARMUP_ROWS])  # JIT warm-up

    def peakmem_fit(self, layout):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._estimator().fit(self.X)


class PeakMemBernoulliBaseline:
    """Floor for ``PeakMemBernoulliFit``: the same process with the same X, no fit."""

    params = [["dense", "csr"]]
    param_names = ["layout"]

    def setup(self, layout):
        X = make_binary_data(MEM_N, MEM_D)
        self.X = sp.csr_matrix(X) if layout == "csr" else X

    def peakmem_data_only(self, layout):
        pass
