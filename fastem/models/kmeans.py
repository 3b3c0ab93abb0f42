"""k-means as a (hard) EM model (layer 2): seeding, Lloyd E/M steps, empty clusters.

Parameters are the centres, held in float64; the E-step hands them to the kernels in X's
dtype. ``stats.objective`` is ``-inertia`` so the driver maximises it like a log-likelihood.
"""
import math
import threading
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..kernels.csr_distances import csr_column_sums
from ..kernels.distances import pairwise_sqdist, squared_row_distances
from ..kernels.group_bounds import fill_groups
from ..kernels import (bounded_full_step, bounded_full_step_csr, bounded_objective,
                       bounded_step, bounded_step_csr, draw_by_potential,
                       elkan_full_step_csr, elkan_step_csr, float32_shadow,
                       group_bounded_full_step, group_bounded_step,
                       kmeanspp_potentials, kmeanspp_potentials_kept, lloyd_step,
                       lloyd_step_csr, nearest_centers, nearest_centers_csr,
                       potential_block_sums, seed_potentials, seed_potentials_csr,
                       seed_potentials_kept, seed_update, seed_update_csr,
                       seed_update_kept, sqdist_to_centers,
                       sqdist_to_centers_csr, update_min_sqdist)
from ..kernels._blocks import n_blocks
from ..kernels._jit import hot_threads, thread_cap
from ..kernels._simd import FEW_CENTERS, SEARCH_BYTES
from ..kernels._target import (LIGHT_PASS_PARALLEL_MIN_ROWS, PRUNED_SEEDING_MANY_CENTERS,
                               PRUNED_SEEDING_MANY_CENTERS_MIN_FEATURES,
                               PRUNED_SEEDING_MIN_FEATURES, SEEDING_PARALLEL_MIN_ROWS,
                               SHADOW_MIN_FEATURES, YINYANG_MIN_TABLE_BYTES)
from ..sources import ArraySource, RowSource, is_file_backed, sum_chunks
from ..validation import issparse, read_only
from .mixture import overflow_error


@dataclass
class LloydStats:
    """Sufficient statistics of one Lloyd pass (for the centres that produced them)."""

    sums: np.ndarray      # (k, d) float64, sum of w*x per cluster
    weights: np.ndarray   # (k,) float64, sum of w per cluster
    inertia: float        # of the input centres
    n_changed: int        # labels that changed in this pass (-1: not tracked, Dask source)
    objective: float      # -inertia
    relocated: int = 0    # empty clusters re-seeded by the M-step


def prunes_seeding(source, n_clusters):
    """Whether k-means++ prunes with the triangle inequality on this source and number of
    clusters: CSR rows always, dense rows as measured in ``kernels/_target.py``."""
    d = source.n_features
    return (source.sparse or d >= PRUNED_SEEDING_MIN_FEATURES
            or (d >= PRUNED_SEEDING_MANY_CENTERS_MIN_FEATURES
                and n_clusters >= PRUNED_SEEDING_MANY_CENTERS))


def default_local_trials(n_clusters):
    """Candidates per greedy k-means++ step: ``2 + int(ln k)`` (as scikit-learn)."""
    return 2 + int(math.log(n_clusters))


def seeding_potentials_kernel(source, n_clusters):
    """The potentials kernel :func:`kmeans_plusplus` runs on a dense source."""
    keep = keeps_candidate_distances(source, default_local_trials(n_clusters))
    if prunes_seeding(source, n_clusters):
        return seed_potentials_kept if keep else seed_potentials
    return kmeanspp_potentials_kept if keep else kmeanspp_potentials


def kmeans_plusplus(X, sample_weight, n_clusters, rng, n_local_trials=None, prune=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, greedy variant).

    Each new centre is the best of ``n_local_trials`` (default ``2 + int(log(k))``) candidates
    drawn with probability proportional to ``w * D(x)^2``; "best" = lowest resulting potential.
    Dense rows prune with the triangle inequality where :func:`prunes_seeding` says so
    (``prune`` overrides it), else they take the plain passes (every distance); both give
    the same centres, bit for bit.

    Parameters
    ----------
    X : ndarray of shape (n, d) or :class:`fastem.sources.RowSource`
        One pass over X per centre for in-memory rows: the candidates' potentials (pruned:
        skipping the rows that the triangle inequality proves cannot get closer; Raff 2021:
        a row whose nearest centre lies at least twice its distance from the new point)
        keep, per candidate, the rows it would bring closer and their distances (room for
        (m, n) float64 and int32, at most the size of X; see
        :func:`keeps_candidate_distances`), and the chosen centre's update, fused with the
        sampling's block sums, applies its list instead of reading X. A source that streams
        its chunks takes a second pass over X for the update. Besides, one float64 distance
        and one int32 nearest-centre index per row in memory, and for pruned float64 rows of
        ``SHADOW_MIN_FEATURES`` features or more a float32 copy of X
        (:func:`seeding_shadow`, half of X) that rules out most kept pairs without reading
        X. The chosen centres are bitwise those of the unpruned search. On a Dask source
        this is k-means|| (:meth:`fastem._dask.DaskSource.kmeans_parallel`), whose last step
        is this greedy seeding on the weighted candidates.
    sample_weight : ndarray of shape (n,) or None
        Ignored for a source (it carries its weights).
    n_clusters : int
    rng : numpy.random.RandomState
    n_local_trials : int, optional
        Candidates per step (default :func:`default_local_trials`).
    prune : bool, optional
        Force the pruned (True) or plain (False) passes on dense rows; CSR rows always
        prune. Default: :func:`prunes_seeding`.

    Returns
    -------
    centers : ndarray, shape (k, d), X's dtype
    indices : ndarray, shape (k,), int64 - rows of X chosen as centres
    """
    source = X if isinstance(X, RowSource) else ArraySource(X, sample_weight)
    if source.distributed:
        return source.kmeans_parallel(n_clusters, rng)
    n, d = source.n_rows, source.n_features
    if n_local_trials is None:
        n_local_trials = default_local_trials(n_clusters)
    centers = np.empty((n_clusters, d), dtype=source.dtype)
    indices = np.empty(n_clusters, dtype=np.int64)
    block_sums = [np.empty(n_blocks(r.stop - r.start)) for r in source.chunk_slices()]
    # the first centre: a row drawn with probability proportional to w (D = 1 for all rows)
    closest = np.ones(n)
    for (rows, w), sums in zip(source.weight_chunks(), block_sums):
        potential_block_sums(w, closest[rows], sums)
    _draw(source, closest, block_sums, 1, rng, indices[:1])
    centers[0] = take_dense(source, indices[:1])[0]
    closest[:] = np.inf
    # the triangle-inequality tests need each row's nearest centre so far and the
    # centre-candidate distances
    pruned = prunes_seeding(source, n_clusters) if prune is None else (prune or source.sparse)
    # the rows each candidate would bring closer, per block (kmeanspp_potentials_kept)
    kept = ((np.empty((n_local_trials, n), np.int32), np.empty((n_local_trials, n)),
             np.empty((n_local_trials, n_blocks(n)), np.int64))
            if keeps_candidate_distances(source, n_local_trials) else None)
    nearest = np.zeros(n, dtype=np.int32) if pruned or kept is not None else None
    shadow, row_norms = seeding_shadow(source) if pruned else no_shadow(d)
    potentials, part = np.empty(n_local_trials), np.empty(n_local_trials)

    def potentials_of(candidates, gaps):
        """Each candidate's potential (and, kept, its distances), summed over the chunks."""
        m = len(candidates)
        if kept is not None:   # one dense chunk: the kernel writes the potentials
            lists = [a[:m] for a in kept]
            if pruned:
                seed_potentials_kept(source.in_memory, unit, candidates, gaps, closest,
                                     nearest, potentials[:m], *lists, shadow, row_norms)
            else:
                kmeanspp_potentials_kept(source.in_memory, unit, candidates, closest,
                                         potentials[:m], *lists)
            return potentials[:m]
        potentials[:m] = 0.0
        for rows, Xc, w in source.chunks():
            if issparse(Xc):
                seed_potentials_csr(Xc.data, Xc.indices, Xc.indptr, w, candidates, gaps,
                                    closest[rows], nearest[rows], part[:m])
            elif pruned:   # a shadow exists only for rows in memory: then one chunk
                seed_potentials(Xc, w, candidates, gaps, closest[rows], nearest[rows],
                                part[:m], shadow, row_norms)
            else:
                kmeanspp_potentials(Xc, w, candidates, closest[rows], part[:m])
            potentials[:m] += part[:m]
        return potentials[:m]

    # every step hands its kernels to the pool and back: below SEEDING_PARALLEL_MIN_ROWS rows
    # that costs more than it shares, and the update from the kept lists is a light pass
    # (LIGHT_PASS_PARALLEL_MIN_ROWS)
    step_threads = None if source.n_rows >= SEEDING_PARALLEL_MIN_ROWS else 1
    update_threads = None if n >= LIGHT_PASS_PARALLEL_MIN_ROWS else 1
    with thread_cap(step_threads), hot_threads():
        if kept is not None:
            # one chunk; the first centre too takes the kept path (its distances: closest is
            # +inf, so nothing is pruned), so no other kernel is compiled
            unit = next(source.weight_chunks())[1]
            potentials_of(centers[:1], np.zeros((1, 1)))
            with thread_cap(update_threads):
                seed_update_kept(unit, *(a[0] for a in kept), 0, closest, nearest,
                                 block_sums[0])
        else:
            _add_center(source, centers, 0, np.zeros(1), closest, nearest, block_sums, pruned)
        candidate_ids = np.empty(n_local_trials, dtype=np.int64)
        for c in range(1, n_clusters):
            # candidates with probability w * D(x)^2, via per-block sums (no n-long cumsum)
            _draw(source, closest, block_sums, n_local_trials, rng, candidate_ids)
            candidates = take_dense(source, candidate_ids)
            gaps = None
            if pruned:
                # squared distances chosen centre - candidate: rows whose nearest centre is at
                # least twice their distance away from a candidate skip it (seed_potentials)
                gaps = np.empty((c, n_local_trials))
                pairwise_sqdist(centers[:c], candidates, gaps)
            best = int(np.argmin(potentials_of(candidates, gaps)))
            centers[c], indices[c] = candidates[best], candidate_ids[best]
            if kept is not None:   # the update from the kept lists
                with thread_cap(update_threads):
                    seed_update_kept(unit, *(a[best] for a in kept), c, closest, nearest,
                                     block_sums[0])
            else:
                _add_center(source, centers, c, gaps[:, best].copy() if pruned else None,
                            closest, nearest, block_sums, pruned)
    return centers, indices


def seeding_shadow(source):
    """``(shadow, row_norms)`` for the pruned k-means++ potentials (:func:`seed_potentials`):
    X rounded to float32 and its rows' norms, for in-memory float64 rows of at least
    ``SHADOW_MIN_FEATURES`` features whose entries float32 can hold (n x d float32 and n
    float64 more in memory: half of X); else empty arrays (no shadow)."""
    X = source.in_memory
    if (X is None or source.sparse or X.dtype != np.float64
            or source.n_features < SHADOW_MIN_FEATURES or is_file_backed(X)):
        return no_shadow(source.n_features)
    shadow, row_norms = np.empty(X.shape, np.float32), np.empty(X.shape[0])
    float32_shadow(X, shadow, row_norms)
    if not row_norms.max(initial=0.0) < SHADOW_MAX_NORM:
        return no_shadow(source.n_features)
    return shadow, row_norms


def no_shadow(n_features):
    """The empty ``(shadow, row_norms)`` of :func:`seed_potentials` (no shadow)."""
    return np.empty((0, n_features), np.float32), np.empty(0)


#: Rows whose norm exceeds this would not survive the rounding to float32 (max 3.4e38).
SHADOW_MAX_NORM = 1e37


def keeps_candidate_distances(source, n_candidates):
    """Whether k-means++ keeps each step's improving rows for the update
    (:func:`kmeans_plusplus`): dense in-memory rows, and the room for every candidate's
    list ((m, n) float64 distances and int32 rows: the first steps improve most rows) no
    larger than X itself."""
    return (not source.sparse and source.in_memory is not None
            and n_candidates * 12 <= source.n_features * source.dtype.itemsize)


def _add_center(source, centers, c, gaps, closest, nearest, block_sums, pruned):
    """Fold centre ``c`` into every row's closest distance (and, ``pruned``, nearest centre:
    ``gaps`` are then its squared distances to the earlier centres), and refresh the
    sampling's block sums. The plain passes give the same distances, bit for bit."""
    for (rows, Xc, w), sums in zip(source.chunks(), block_sums):
        if issparse(Xc):
            seed_update_csr(Xc.data, Xc.indices, Xc.indptr, w, centers[c:c + 1], c, gaps,
                            closest[rows], nearest[rows], sums)
        elif pruned:
            seed_update(Xc, w, centers[c], c, gaps, closest[rows], nearest[rows], sums)
        else:
            update_min_sqdist(Xc, centers[c], closest[rows])
            potential_block_sums(w, closest[rows], sums)


def take_dense(source, ids):
    """Rows ``ids`` of the source as a dense C-contiguous array (CSR rows densified)."""
    rows = source.take(ids)
    return rows.toarray() if issparse(rows) else np.ascontiguousarray(rows)


def assign_nearest(X, centers, labels, sqdist):
    """Nearest centre (int32) and squared distance (float64) of every row, dense or CSR."""
    if issparse(X):
        nearest_centers_csr(X.data, X.indices, X.indptr, centers, labels, sqdist)
    else:
        nearest_centers(X, centers, labels, sqdist)


def all_sqdist(X, centers, out):
    """``out[i, j] = ||x_i - c_j||^2`` (float64), dense or CSR."""
    if issparse(X):
        sqdist_to_centers_csr(X.data, X.indices, X.indptr, centers, out)
    else:
        sqdist_to_centers(X, centers, out)


def fused_lloyd(X, w, centers, labels, sums, weights):
    """The fused Lloyd kernel for a dense or CSR chunk: (inertia, n_changed)."""
    if issparse(X):
        return lloyd_step_csr(X.data, X.indices, X.indptr, w, centers, labels, sums, weights)
    return lloyd_step(X, w, centers, labels, sums, weights)


def _draw(source, closest, block_sums, n_draws, rng, out):
    """``out[t]``: the row where the running sum of ``w * closest`` over all chunks (in row
    order) reaches ``u_t`` times its total, ``u_t`` uniform - i.e. rows drawn with probability
    proportional to ``w * closest``. One :func:`draw_by_potential` call per chunk that holds a
    draw; ``block_sums`` (one array per chunk) holds the per-block sums of ``w * closest``."""
    if len(block_sums) == 1:   # one chunk (in-memory rows): no chunk to pick
        targets = rng.uniform(size=n_draws) * float(block_sums[0].sum())
        draw_by_potential(next(source.weight_chunks())[1], closest, block_sums[0], targets,
                          out)
        return
    bounds = np.cumsum([sums.sum() for sums in block_sums])
    targets = rng.uniform(size=n_draws) * bounds[-1]
    which = np.minimum(np.searchsorted(bounds, targets, side="left"), len(bounds) - 1)
    local = np.empty(n_draws, dtype=np.int64)
    for i, (rows, w) in enumerate(source.weight_chunks()):
        mine = np.flatnonzero(which == i)
        if mine.size:
            before = bounds[i - 1] if i else 0.0
            draw_by_potential(w, closest[rows], block_sums[i], targets[mine] - before,
                              local[:mine.size])
            out[mine] = rows.start + local[:mine.size]


def initial_centers(init, source, n_clusters, rng):
    """float64 centres from ``init``: 'k-means++', 'random', an array (copied) or a function
    of the random state (a user's callable bound to X, see the KMeans estimator)."""
    if isinstance(init, np.ndarray):
        centers = init
    elif callable(init):
        centers = init(rng)
    elif init == "k-means++":
        centers, _ = kmeans_plusplus(source, None, n_clusters, rng)
    else:
        centers = random_centers(source, n_clusters, rng)
    return np.array(centers, dtype=np.float64)


def mean_feature_variance(source, fused=False):
    """Mean over the features of X's column variances (scikit-learn's ``tol`` scale).

    Sums about the first row (sparse data: about 0, the value of most entries), so data far
    from the origin keep their precision. With ``fused``, one pass of the fused Lloyd kernel
    with that row as the only centre gives ``sum x`` and ``sum ||x - s||^2`` (the mean of the
    column variances is ``(sum ||x - s||^2 / n - ||mean - s||^2) / d``): ~10x faster than
    NumPy on large X, for models that compile that kernel anyway. Otherwise NumPy in
    4096-row pieces (no n x d temporary and no kernel to compile for a number that only
    scales the tolerance).
    """
    shift = (np.zeros(source.n_features) if source.sparse
             else np.asarray(source.take([0])[0], dtype=np.float64))
    n, d = source.n_rows, source.n_features
    with np.errstate(over="ignore", invalid="ignore"):
        if fused:
            shift = shift.astype(source.dtype)
            s1, total = sum_chunks(source, partial(_fused_shifted_sums, shift))
            offset = s1 / n - shift.astype(np.float64)
            return float(max(total / n - offset @ offset, 0.0) / d)
        s1, s2 = sum_chunks(source, partial(_shifted_column_sums, shift))
        mean = s1 / n
        return float(np.maximum(s2 / n - mean * mean, 0.0).mean())


def _fused_shifted_sums(shift, rows, X, w):
    """Chunk statistics ``(sum_i x_i, sum_i ||x_i - shift||^2)`` (unweighted) from the
    fused Lloyd kernel with ``shift`` as the only centre."""
    n = X.shape[0]
    sums, weights = np.empty((1, X.shape[1])), np.empty(1)
    # read-only unit weights: the same kernel specialisation as a fit's validated weights
    total, _ = fused_lloyd(X, read_only(np.ones(n)), shift[None, :], _scratch_labels(n),
                           sums, weights)
    return sums[0], float(total)


def _shifted_column_sums(shift, rows, X, w):
    """Chunk statistics ``(sum_i (x_i - shift), sum_i (x_i - shift)^2)`` per feature
    (CSR chunks: shift 0)."""
    if issparse(X):
        return csr_column_sums(X.data, X.indices, X.shape[1])
    s1, s2 = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, X.shape[0], 4096):
            dev = np.subtract(X[start:start + 4096], shift, dtype=np.float64)
            s1 += dev.sum(axis=0)
            s2 += np.einsum("ij,ij->j", dev, dev)
    return s1, s2


def random_centers(source, n_clusters, rng):
    """``n_clusters`` distinct rows drawn with probability proportional to their weight.

    Weighted sampling without replacement by exponential keys (Efraimidis & Spirakis 2006):
    row i gets ``log(u_i) / w_i`` and the ``n_clusters`` largest keys win. The uniforms are
    drawn in row order chunk by chunk, so the choice does not depend on the chunking and needs
    no n-long array. With fewer rows of positive weight than clusters, rows are drawn with
    replacement among those (scikit-learn's behaviour). On a Dask source every block draws its
    keys from its own stream (seeded by one draw of ``rng`` and the block's first row), so
    the choice depends on the chunking there.
    """
    k = n_clusters
    if source.distributed:
        return np.array(source.take(_distributed_weighted_rows(source, k, rng)))
    if source.positive_weights() < k:
        w = source.sample_weight
        ids = rng.choice(source.n_rows, size=k, replace=True, p=w / w.sum())
    else:
        best_keys, best_ids = np.empty(0), np.empty(0, dtype=np.int64)
        with np.errstate(divide="ignore"):
            for rows, w in source.weight_chunks():
                keys = np.log(rng.uniform(size=rows.stop - rows.start)) / w
                keys[w == 0] = -np.inf
                keys = np.concatenate([best_keys, keys])
                ids = np.concatenate([best_ids, np.arange(rows.start, rows.stop)])
                top = np.argsort(-keys, kind="stable")[:k]
                best_keys, best_ids = keys[top], ids[top]
        ids = best_ids
    return take_dense(source, ids)


def _distributed_weighted_rows(source, k, rng):
    """``random_centers``' rows on a source whose chunks live elsewhere (see there)."""
    if source.positive_weights() < k:
        ids, w = (np.concatenate(part) for part in
                  zip(*source.map_chunks(_positive_weight_rows)))
        return rng.choice(ids, size=k, replace=True, p=w / w.sum())
    seed = int(rng.randint(2**31 - 1))
    found = source.map_chunks(partial(_top_keys, seed, k))
    keys, ids = (np.concatenate(part) for part in zip(*found))
    return ids[np.argsort(-keys, kind="stable")[:k]]


def _top_keys(seed, k, rows, X, w):
    """The ``k`` largest exponential keys ``log(u) / w`` of a chunk and their row numbers."""
    u = np.random.RandomState([seed, rows.start]).uniform(size=rows.stop - rows.start)
    with np.errstate(divide="ignore"):
        keys = np.log(u) / w
    keys[w == 0] = -np.inf
    top = np.argsort(-keys, kind="stable")[:k]
    return keys[top], rows.start + top


def _positive_weight_rows(rows, X, w):
    mine = np.flatnonzero(w > 0)
    return rows.start + mine, w[mine]


_scratch = threading.local()


def _scratch_labels(n):
    """A label buffer of n int32 for this thread, reused between calls (its values are
    irrelevant: the changes it counts are discarded). Fresh pages per call cost page faults
    on every Dask pass."""
    buffer = getattr(_scratch, "labels", None)
    if buffer is None or len(buffer) < n:
        buffer = _scratch.labels = np.empty(n, dtype=np.int32)
    return buffer[:n]


class LloydStatistics:
    """A chunk's Lloyd statistics ``(sums, weights, inertia, n_changed)`` for fixed centres
    (what :func:`fastem.sources.sum_chunks` adds).

    ``labels`` (n,) int32 is the fit's label buffer: each chunk's labels are updated in place
    and the changes counted. None (a Dask source: per-row state stays on the workers'
    blocks, never on the client) uses a throw-away buffer per chunk; ``n_changed`` is then -1.
    """

    def __init__(self, centers, labels=None):
        self.centers = centers
        self.labels = labels

    def __call__(self, rows, X, w):
        k, d = self.centers.shape
        sums, weights = np.empty((k, d)), np.empty(k)
        labels = _scratch_labels(X.shape[0]) if self.labels is None else self.labels[rows]
        inertia, changed = fused_lloyd(X, w, self.centers, labels, sums, weights)
        return sums, weights, float(inertia), int(changed) if self.labels is not None else -1


def _farthest_rows(centers, m, rows, X, w):
    """The rows of a chunk at least as far from their nearest centre as its ``m``-th farthest
    (zero-weight rows at distance -1): (row numbers, squared distances, nearest centres)."""
    labels = np.empty(X.shape[0], dtype=np.int32)
    sqdist = np.empty(X.shape[0])
    assign_nearest(X, centers, labels, sqdist)
    sqdist[w == 0] = -1.0
    keep = np.flatnonzero(sqdist >= np.sort(sqdist)[-min(m, len(sqdist))])
    return rows.start + keep, sqdist[keep], labels[keep]


class KMeansModel:
    """Lloyd's algorithm in the driver's step protocol.

    Parameters
    ----------
    source : :class:`fastem.sources.RowSource` (for the tolerance scale and the label buffer)
    n_clusters : int
    init : 'k-means++', 'random' or ndarray (k, d)

    Memory: one int32 label per row (two while a restart runs after the best one so far), and
    k-means++'s float64 distance per row while seeding; nothing of size n x d or n x k.
    """

    #: the tol scale from one pass of Lloyd's own kernel (fast; bounded models, whose fits
    #: are long, do not compile that kernel and use NumPy)
    fused_variance = True

    def __init__(self, source, n_clusters, init):
        self.n_clusters = n_clusters
        self.init = init
        # scikit-learn's tol: squared centre shift relative to the mean feature variance
        self.mean_variance = mean_feature_variance(source, fused=self.fused_variance)
        if not np.isfinite(self.mean_variance):
            raise overflow_error("the variance of X")
        self.labels = None

    def initialize(self, source, rng):
        # a fresh buffer per restart: the driver may still hold the best restart's labels
        # (none for a Dask source: its labels are computed lazily from the final centres)
        self.labels = None if source.distributed else np.full(source.n_rows, -1, np.int32)
        self.last_shift = None
        return initial_centers(self.init, source, self.n_clusters, rng)

    def _lloyd_pass(self, source, centers):
        """(sums, weights, inertia, n_changed) of one fused pass over every chunk."""
        return sum_chunks(source, LloydStatistics(centers.astype(source.dtype), self.labels))

    def e_step(self, source, centers):
        sums, weights, inertia, n_changed = self._lloyd_pass(source, centers)
        if not (math.isfinite(inertia) and np.isfinite(sums).all()):
            raise overflow_error("the inertia (weighted sum of squared distances)")
        return LloydStats(sums, weights, inertia, n_changed, -inertia)

    def m_step(self, source, centers, stats):
        if stats.weights.all():   # no empty cluster (weights are >= 0)
            return stats.sums / stats.weights[:, None]
        sums, weights = stats.sums.copy(), stats.weights.copy()
        empty = np.flatnonzero(weights == 0)
        if empty.size:
            stats.relocated = self._relocate_empty(source, centers, sums, weights, empty)
        new = centers.copy()
        filled = weights > 0
        new[filled] = sums[filled] / weights[filled, None]
        return new

    def _relocate_empty(self, source, centers, sums, weights, empty):
        """Move the points farthest from their centres into the empty clusters.

        Deterministic and independent of the row order and of the chunking: candidates are
        ordered by decreasing distance, exact ties (the two points of a two-point cluster are
        equidistant from its mean) by the points' coordinates, then by row index (identical
        points only); zero-weight rows are never used. Only the ``len(empty)`` farthest rows
        of each chunk (ties included) are kept while streaming. Updates ``sums``/``weights``
        in place.
        """
        m = len(empty)
        found = source.map_chunks(partial(_farthest_rows, centers.astype(source.dtype), m))
        rows, sqdist, labels = (np.concatenate(part) for part in zip(*found))
        order = np.argsort(-sqdist, kind="stable")
        # only rows at least as far as the m-th farthest can be moved
        order = order[sqdist[order] >= sqdist[order[min(m, len(order)) - 1]]]
        points = take_dense(source, rows[order]).astype(np.float64)
        keys = tuple(points[:, f] for f in range(points.shape[1] - 1, -1, -1)) \
            + (-sqdist[order],)
        ranked = np.lexsort(keys)
        weights_of = source.weights(rows[order][ranked])
        moved = 0
        for cluster, pos, w in zip(empty, ranked, weights_of):
            if sqdist[order[pos]] < 0:
                break
            old, x = labels[order[pos]], points[pos]
            sums[old] -= w * x
            weights[old] -= w
            sums[cluster] = w * x
            weights[cluster] = w
            moved += 1
        return moved

    def events(self, stats):
        """Verbose reports of the last M-step: empty clusters that were re-seeded."""
        if stats.relocated:
            return [f"{stats.relocated} empty cluster(s) re-seeded with the farthest points"]
        return []

    def has_converged(self, centers, new_centers, stats, history, tol):
        if stats.n_changed == 0 and stats.relocated == 0:
            return True  # strict convergence: the labels are a fixed point
        shift = self.last_shift = float(squared_row_distances(
            np.ascontiguousarray(new_centers), np.ascontiguousarray(centers)).sum())
        # Untracked labels (n_changed -1) give the same stopping iteration: unchanged labels
        # give bitwise unchanged centres (shift 0 <= tol * variance), and a zero shift stops
        # the tracked rule too (as 0 <= tol * variance).
        return shift <= tol * self.mean_variance

    def _labels_fixed(self, stats):
        """The last pass changed no label (so its inertia is that of the final centres)."""
        if stats.relocated:
            return False
        return stats.n_changed == 0 or (stats.n_changed < 0 and self.last_shift == 0.0)

    def finalize(self, source, centers, stats, converged):
        """Make labels and inertia consistent with the final centres."""
        if not (converged and self._labels_fixed(stats)):
            # one more fused pass (the statistics are discarded): the fit compiles and runs
            # the same kernel for its last labels as for every iteration
            inertia = self._lloyd_pass(source, centers)[2]
        else:
            inertia = stats.inertia
        self.inertia = inertia
        labels, self.labels = self.labels, None
        return (centers, labels), -inertia


#: A bounded model re-sums its centre statistics from scratch (a full pass, which also
#: rebuilds every bound) after this many passes that only added the rows that moved ...
RESUM_EVERY = 32
#: ... and falls back to a full pass after a pass that computed more than this fraction of
#: all row-centre scores (the bounds are then too loose to pay for their bookkeeping). A
#: bounded pass costs about that fraction of a full one plus a few per cent of bookkeeping,
#: and the searched rows' bounds come out as tight as a full pass would make them, so only
#: a pass that searched nearly everything calls for one. Measured (AMD Zen 3, AVX2, whole
#: fits from fixed centres): 0.5 instead cost 3-7% at k = 256-1024 (12.6 vs 11.8 s at n=2e5,
#: d=128, k=256 float64), none at k = 64.
FULL_PASS_FRACTION = 0.9


#: 'auto' runs 'hamerly' from this many clusters ...
BOUNDED_MIN_CLUSTERS = 16
#: ... and this many centre coordinates (k x d) on; below, a Lloyd search costs about as
#: much per row as the bound bookkeeping (measured, README "KMeans to convergence").
BOUNDED_MIN_WORK = 256
#: 'auto' runs 'yinyang' on dense rows from this many clusters and
#: :data:`fastem.kernels._target.YINYANG_MIN_TABLE_BYTES` of centres on.
YINYANG_MIN_CLUSTERS = 64
#: 'auto' runs a bounded method only from this many rows per cluster on: with fewer, a fit
#: ends after a few iterations in which the bounds rule out little, and their set-up (a full
#: pass that keeps the two nearest centres; Yinyang's grouping of the centres) is not earned
#: back. Zen 3 VM (AVX2), whole fits from the same centres, default tol, 'auto' / 'lloyd' ms
#: at 4 / 8 rows a cluster: float32 d=512 k=256 18 / 8, 24 / 15; d=512 k=1024 94 / 66,
#: 144 / 276; d=64 k=256 4 / 3, 6 / 7; float64 d=512 k=256 19 / 10, 30 / 18; d=512 k=1024
#: 120 / 67, 192 / 257; d=64 k=1024 27 / 27, 49 / 84. At 16 rows a cluster and more the
#: bounded methods won but for fits of a few ms (to 7.9x at 64 rows a cluster).
BOUNDED_MIN_ROWS_PER_CLUSTER = 8


def choose_algorithm(algorithm, n_clusters, source):
    """The k-means method a fit runs: ``algorithm`` itself, or for 'auto':

    * 'lloyd' when the rows live on a Dask cluster (per-row bounds would have to stay on the
      workers), when two float32 bounds per row would take more memory than dense X
      (``n_features * itemsize < 8``), when the search is cheap: fewer than
      :data:`BOUNDED_MIN_CLUSTERS` clusters or ``n_clusters * n_features < BOUNDED_MIN_WORK``,
      or when there are fewer than :data:`BOUNDED_MIN_ROWS_PER_CLUSTER` rows per cluster;
    * else 'elkan' for CSR X whose k float32 bounds per row take no more memory than its
      rows (a sparse search is memory-bound, so ruling out centres one by one pays);
    * else 'yinyang' for dense X from :data:`YINYANG_MIN_CLUSTERS` clusters and
      ``YINYANG_MIN_TABLE_BYTES`` of centres on (``k d itemsize``: 64 KiB on AVX-512, 16 KiB
      on narrower classes; ``kernels/_target.py``), when its group bounds fit
      (:func:`yinyang_group_size`);
    * else 'hamerly'.

    'elkan' on dense X runs 'hamerly' (per-centre bounds are implemented for CSR rows
    only; Yinyang's group bounds are their dense counterpart); 'yinyang' runs 'hamerly' when
    fewer than two groups fit, and on CSR X what 'auto' would run there ('elkan' or
    'hamerly'). Every method is exact, so only the speed differs.
    """
    itemsize = np.dtype(source.dtype).itemsize
    if algorithm == "auto":
        if (source.distributed
                or (not source.sparse and source.n_features * itemsize < 8)
                or n_clusters < BOUNDED_MIN_CLUSTERS
                or n_clusters * source.n_features < BOUNDED_MIN_WORK
                or source.n_rows < BOUNDED_MIN_ROWS_PER_CLUSTER * n_clusters):
            return "lloyd"
        if source.sparse:
            return "elkan" if _elkan_bounds_fit(n_clusters, source) else "hamerly"
        if (n_clusters >= YINYANG_MIN_CLUSTERS
                and n_clusters * source.n_features * itemsize >= YINYANG_MIN_TABLE_BYTES
                and yinyang_group_size(n_clusters, source.n_features, itemsize)):
            return "yinyang"
        return "hamerly"
    if algorithm == "elkan" and not source.sparse:
        return "hamerly"
    if algorithm == "yinyang":
        if source.sparse:
            return "elkan" if _elkan_bounds_fit(n_clusters, source) else "hamerly"
        if not yinyang_group_size(n_clusters, source.n_features, itemsize):
            return "hamerly"
    return algorithm


def _elkan_bounds_fit(n_clusters, source):
    """Whether k float32 bounds per row take no more memory than the CSR rows in memory
    (False for CSR chunks streamed from elsewhere)."""
    sparse_rows = getattr(source, "X", None)
    return sparse_rows is not None and 4 * n_clusters * source.n_rows <= (
        sparse_rows.data.nbytes + sparse_rows.indices.nbytes)


class BoundedFullStatistics:
    """A chunk's :func:`fastem.kernels.bounded_full_step` (``_csr`` for CSR chunks; labels
    and bounds in place)."""

    kernels = bounded_full_step, bounded_full_step_csr

    def __init__(self, centers, labels, upper, lower, *groups):
        self.args = (centers, *groups)
        self.rows = labels, upper, lower
        self.running = ()

    def __call__(self, rows, X, w):
        dense, csr = self.kernels
        per_row = [a[rows] for a in self.rows]
        if issparse(X):
            return csr(X.data, X.indices, X.indptr, w, *self.args, *per_row, *self.running)
        return dense(X, w, *self.args, *per_row, *self.running)


class BoundedStatistics(BoundedFullStatistics):
    """A chunk's :func:`fastem.kernels.bounded_step` (``_csr`` for CSR chunks): the rows that
    move update the running ``sums`` and ``moments`` in place, chunk after chunk; returns
    (n_changed, n_scored)."""

    kernels = bounded_step, bounded_step_csr

    def __init__(self, centers, drift, shift, labels, upper, lower, sums, moments, *groups):
        self.args = (centers, drift, shift, *groups)
        self.rows = labels, upper, lower
        self.running = sums, moments


class HamerlyKMeansModel(KMeansModel):
    """Lloyd's iterations with Hamerly's bounds (:mod:`fastem.kernels.bounds`): the same
    labels, iteration by iteration, while searching only the rows whose bounds do not fix
    their label.

    State besides Lloyd's labels: two float32 bounds per row and the running centre
    statistics ``sums`` (k, d) and ``moments`` (k, 2: weight W_j and
    ``Q_j = sum w ||x - m_j||^2`` about ``m_j``, cluster j's centre at the last full pass),
    updated in place by the rows that move (float64 accumulators; re-summed from scratch
    every :data:`RESUM_EVERY` passes), so the statistics an e_step returns hold until the
    next e_step. The objective of a bounded pass is the inertia from these moments,
    ``sum_j Q_j - 2 (c_j - m_j).(S_j - W_j m_j) + W_j ||c_j - m_j||^2`` (small corrections:
    the centres move little between full passes; :func:`fastem.kernels.bounded_objective`).
    """

    full_statistics, step_statistics = BoundedFullStatistics, BoundedStatistics
    fused_variance = False

    #: extra kernel arguments that describe the bounds (:class:`YinyangKMeansModel`'s groups)
    bound_layout = ()

    def initialize(self, source, rng):
        centers = super().initialize(source, rng)
        self._allocate_bounds(source, centers)
        return centers

    def _allocate_bounds(self, source, centers):
        """Fresh bounds for a restart from ``centers``."""
        self.upper = np.empty(source.n_rows, dtype=np.float32)
        self.lower = np.empty(self.lower_shape(source), dtype=np.float32)
        self.bounded_passes = None  # None: the next pass is a full one

    def lower_shape(self, source):
        return (source.n_rows,)

    def _full_pass(self, source, centers):
        sums, moments, changed = sum_chunks(source, self.full_statistics(
            centers, self.labels, self.upper, self.lower, *self.bound_layout))
        self.shift = centers.astype(np.float64)
        self.bounded_passes = 0
        return sums, moments, float(moments[:, 1].sum()), changed

    def _lloyd_pass(self, source, centers):
        sums, moments, inertia, changed = self._full_pass(source, centers.astype(source.dtype))
        return sums, moments[:, 0], inertia, changed

    def e_step(self, source, centers):
        # (k, d) work per pass is kept to a few sweeps: with CSR rows of many features it
        # costs as much as the pass itself once few rows are searched
        centers = np.ascontiguousarray(centers, dtype=source.dtype)   # (kernels: C order)
        if self.bounded_passes is None:
            sums, moments, inertia, n_changed = self._full_pass(source, centers)
            finite = bool(np.isfinite(sums).all())
        else:
            # rounded up by the error of a d-term sum (bounds may only grow by it)
            drift = np.sqrt(squared_row_distances(centers, self.centers)) * (
                1.0 + (centers.shape[1] + 4) * 2.0 ** -52)
            # the running statistics are updated in place (the last pass's LloydStats share
            # them: an iteration uses its statistics before the next e_step)
            sums, moments = self.sums, self.moments
            n_changed, scored = sum_chunks(source, self.step_statistics(
                centers, drift, self.shift, self.labels, self.upper, self.lower, sums,
                moments, *self.bound_layout))
            inertia, finite = bounded_objective(centers, self.shift, sums, moments)
            self.bounded_passes += 1
            if (scored > FULL_PASS_FRACTION * source.n_rows * self.n_clusters
                    or self.bounded_passes >= RESUM_EVERY):
                self.bounded_passes = None
        self.centers, self.sums, self.moments = centers, sums, moments
        if not (math.isfinite(inertia) and finite):
            raise overflow_error("the inertia (weighted sum of squared distances)")
        return LloydStats(sums, moments[:, 0].copy(), inertia, int(n_changed), -inertia)

    def m_step(self, source, centers, stats):
        new = super().m_step(source, centers, stats)
        if stats.relocated:
            self.bounded_passes = None  # relocated rows' labels no longer match the sums
        return new


class ElkanFullStatistics(BoundedFullStatistics):
    """A CSR chunk's :func:`fastem.kernels.elkan_full_step_csr`."""

    kernels = None, elkan_full_step_csr


class ElkanStatistics(BoundedStatistics):
    """A CSR chunk's :func:`fastem.kernels.elkan_step_csr`."""

    kernels = None, elkan_step_csr


class ElkanKMeansModel(HamerlyKMeansModel):
    """:class:`HamerlyKMeansModel` with Elkan's one lower bound per centre (CSR rows): a row
    is scored only against the centres its bounds do not rule out. Bounds: k + 1 float32 per
    row."""

    full_statistics, step_statistics = ElkanFullStatistics, ElkanStatistics

    def lower_shape(self, source):
        return (source.n_rows, self.n_clusters)


class GroupFullStatistics(BoundedFullStatistics):
    """A dense chunk's :func:`fastem.kernels.group_bounded_full_step`."""

    kernels = group_bounded_full_step, None


class GroupStatistics(BoundedStatistics):
    """A dense chunk's :func:`fastem.kernels.group_bounded_step`."""

    kernels = group_bounded_step, None


#: Lloyd iterations over the initial centres that group them for 'yinyang'
#: (:func:`balanced_groups`).
GROUPING_ITERATIONS = 5
#: 'yinyang' keeps about ``YINYANG_GROUPS_PER_ROOT_K * sqrt(k)`` group bounds per row. Fewer,
#: larger groups score more centres per searched row; more groups cost a decay and a test
#: per group, row and pass, which outweighed the scores they save. Whole fits from fixed
#: centres (Intel Xeon VM, 2 threads; groups of equal size, seconds), n=1e5, d=64, k=1024
#: with 32 / 16 / 8 groups: float64 AVX-512 0.94 / 0.83 / 1.01, AVX2 class 1.13 / 1.08 / -,
#: float32 (64 / 32 / 16 / 8 groups) AVX-512 1.13 / 0.74 / 0.59 / 0.66, AVX2 class - / 0.77
#: / 0.70 / 0.83; n=2e5, d=128, k=256 with 16 / 8 / 4 groups: float64 3.27 / 3.24 / 4.13,
#: float32 2.43 each (AVX-512). Yinyang (Ding et al. 2015) suggests k / 10, tuned for
#: scalar distances.
YINYANG_GROUPS_PER_ROOT_K = 0.5


def yinyang_group_size(n_clusters, n_features, itemsize):
    """Centres per group of 'yinyang': k split into about
    ``YINYANG_GROUPS_PER_ROOT_K sqrt(k)`` groups, the size rounded up to whole panels of the
    widest search tile (no padding columns but in the last group), larger when the group
    bounds plus the upper bound (t + 1 float32 per row) would take more memory than a row of
    X; 0 when fewer than 2 groups remain (the method is then Hamerly's)."""
    most_groups = n_features * itemsize // 4 - 1
    if most_groups < 2 or n_clusters <= FEW_CENTERS:
        # (Lloyd's search for at most FEW_CENTERS centres has other bits than group tables)
        return 0
    groups = min(most_groups, max(2, round(YINYANG_GROUPS_PER_ROOT_K * math.sqrt(n_clusters))))
    panel = SEARCH_BYTES[2] // itemsize
    size = -(-n_clusters // groups)
    size = -(-size // panel) * panel
    if -(-n_clusters // size) > most_groups:
        size = -(-n_clusters // most_groups)
    return size if n_clusters > size else 0


def balanced_groups(centers, group_size, iterations=GROUPING_ITERATIONS):
    """Split k centres into groups of nearby centres, at most ``group_size`` each.

    ``iterations`` Lloyd iterations over the centres, started from ``ceil(k / group_size)``
    evenly spaced centres; each assigns the centre-group pairs greedily, in order of
    increasing distance, while the group has room (:func:`fastem.kernels.group_bounds.
    fill_groups`). With k a multiple of ``group_size`` every group is full (whole panels of a
    search tile of that width). Deterministic.

    Returns
    -------
    order : ndarray, shape (k,), int64
        The centres group by group, each group's in increasing index.
    group_start : ndarray, shape (t + 1,), int64
        Group g is ``order[group_start[g]:group_start[g + 1]]``; empty groups are dropped.
    """
    C = np.ascontiguousarray(centers, dtype=np.float64)
    k = len(C)
    t = -(-k // group_size)
    means = C[(np.arange(t) * (k - 1)) // max(1, t - 1)]
    dist = np.empty((k, t))
    for _ in range(iterations):
        pairwise_sqdist(C, means, dist)   # (a kernel: no BLAS threads to spin against ours)
        group = fill_groups(np.argsort(dist, axis=None, kind="stable"), t, group_size)
        counts = np.bincount(group, minlength=t)
        sums = np.zeros_like(means)
        np.add.at(sums, group, C)
        filled = counts > 0
        means[filled] = sums[filled] / counts[filled, None]
    order = np.argsort(group, kind="stable").astype(np.int64)
    counts = np.bincount(group, minlength=t)
    group_start = np.concatenate([[0], np.cumsum(counts[counts > 0])]).astype(np.int64)
    return order, group_start


class YinyangKMeansModel(HamerlyKMeansModel):
    """:class:`HamerlyKMeansModel` with one lower bound per group of nearby centres (dense
    rows; simplified Yinyang, Ding et al. 2015, :mod:`fastem.kernels.group_bounds`): a row
    whose bounds do not settle its label is scored only against its label's group and the
    groups its bounds do not rule out. Groups: :func:`balanced_groups` of each restart's
    initial centres, :func:`yinyang_group_size` centres each (t + 1 float32 bounds per
    row)."""

    full_statistics, step_statistics = GroupFullStatistics, GroupStatistics

    def _allocate_bounds(self, source, centers):
        size = yinyang_group_size(self.n_clusters, source.n_features,
                                  np.dtype(source.dtype).itemsize)
        self.bound_layout = balanced_groups(centers, size)
        super()._allocate_bounds(source, centers)

    def lower_shape(self, source):
        return (source.n_rows, len(self.bound_layout[1]) - 1)


class MiniBatchKMeansModel:
    """Mini-batch k-means (Sculley 2010) with scikit-learn's per-centre learning rate.

    A step assigns a batch to the current centres (the fused Lloyd kernel: the batch's
    per-cluster weighted sums and weights) and moves each centre to the running weighted mean
    of every point it has been given so far::

        counts_j' = counts_j + W_j,   c_j' = (counts_j c_j + S_j) / counts_j'

    i.e. a learning rate ``W_j / counts_j'`` per centre; centres and counts are float64
    whatever X's dtype. Centres whose count falls below ``reassignment_ratio`` times the
    largest are moved to random points of the batch (scikit-learn's rule, see :meth:`step`).
    """

    def __init__(self, n_clusters, init, init_size, reassignment_ratio):
        self.n_clusters = n_clusters
        self.init = init
        self.init_size = init_size
        self.reassignment_ratio = reassignment_ratio
        self.centers = None
        self.counts = None
        self.n_since_reassign = 0

    def initial_centers(self, source, rng):
        """Centres from ``init`` on ``init_size`` rows drawn with replacement (all rows when
        the data have fewer); the rows are drawn uniformly, the seeding is weighted."""
        n = source.n_rows
        if self.init_size < n and isinstance(self.init, str):
            ids = rng.randint(0, n, self.init_size)
            rows = source.take(ids)
            source = ArraySource(rows if issparse(rows) else np.ascontiguousarray(rows),
                                 source.weights(ids))
        return initial_centers(self.init, source, self.n_clusters, rng)

    def start(self, centers):
        self.centers = centers
        self.counts = np.zeros(len(centers))
        self.n_since_reassign = 0

    @staticmethod
    def batch_lloyd(X, w, centers):
        """(sums, weights, inertia) of the in-memory batch ``(X, w)`` assigned to ``centers``:
        the fused Lloyd kernel with a throw-away label buffer."""
        k, d = centers.shape
        labels = np.full(X.shape[0], -1, dtype=np.int32)
        sums, weights = np.empty((k, d)), np.empty(k)
        inertia, _ = fused_lloyd(X, w, centers.astype(X.dtype), labels, sums, weights)
        return sums, weights, float(inertia)

    def step(self, X, w, rng):
        """One mini-batch update from the in-memory batch ``(X, w)``; returns the batch's
        weighted inertia under the centres before the update."""
        sums, weights, inertia = self.batch_lloyd(X, w, self.centers)
        if not (np.isfinite(inertia) and np.isfinite(sums).all()):
            raise overflow_error("the inertia (weighted sum of squared distances)")
        got = weights > 0
        new_counts = self.counts + weights
        self.centers[got] = (self.centers[got] * self.counts[got, None] + sums[got]) \
            / new_counts[got, None]
        self.counts = new_counts
        if self._reassign_now(X.shape[0]):
            self._reassign(X, rng)
        return float(inertia)

    def _reassign_now(self, batch_rows):
        """scikit-learn's schedule: when a centre has count 0, or after 10 k points."""
        self.n_since_reassign += batch_rows
        if (self.counts == 0).any() or self.n_since_reassign >= 10 * self.n_clusters:
            self.n_since_reassign = 0
            return self.reassignment_ratio > 0
        return False

    def _reassign(self, X, rng):
        """Move centres with ``count < ratio * max(count)`` to random batch points (at most
        half the batch); their count becomes the smallest count of the others."""
        low = self.counts < self.reassignment_ratio * self.counts.max()
        if low.sum() > 0.5 * X.shape[0]:
            low[np.argsort(self.counts, kind="stable")[int(0.5 * X.shape[0]):]] = False
        n_low = int(low.sum())
        if n_low == 0 or n_low == len(low):
            return
        picked = rng.choice(X.shape[0], size=n_low, replace=False)
        self.centers[low] = X[picked].toarray() if issparse(X) else X[picked]
        self.counts[low] = self.counts[~low].min()
