"""k-means as a (hard) EM model (layer 2): seeding, Lloyd E/M steps, empty clusters.

Parameters are the centres, held in float64; the E-step hands them to the kernels in X's
dtype. ``stats.objective`` is ``-inertia`` so the driver maximises it like a log-likelihood.
"""
from dataclasses import dataclass

import numpy as np

from ..kernels import (draw_by_potential, kmeanspp_potentials, lloyd_step,
                       nearest_centers, potential_block_sums, update_min_sqdist)
from ..kernels._blocks import n_blocks
from .mixture import overflow_error, row_chunks


@dataclass
class LloydStats:
    """Sufficient statistics of one Lloyd pass (for the centres that produced them)."""

    sums: np.ndarray      # (k, d) float64, sum of w*x per cluster
    weights: np.ndarray   # (k,) float64, sum of w per cluster
    inertia: float        # of the input centres
    n_changed: int        # labels that changed in this pass
    objective: float      # -inertia
    relocated: int = 0    # empty clusters re-seeded by the M-step


def kmeans_plusplus(X, sample_weight, n_clusters, rng, n_local_trials=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, greedy variant).

    Each new centre is the best of ``n_local_trials`` (default ``2 + int(log(k))``) candidates
    drawn with probability proportional to ``w * D(x)^2``; "best" = lowest resulting potential.

    Returns
    -------
    centers : ndarray, shape (k, d), X's dtype
    indices : ndarray, shape (k,), int64 - rows of X chosen as centres
    """
    n, d = X.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, d), dtype=X.dtype)
    indices = np.empty(n_clusters, dtype=np.int64)
    first = rng.choice(n, p=sample_weight / sample_weight.sum())
    centers[0], indices[0] = X[first], first
    closest = np.full(n, np.inf)
    update_min_sqdist(X, centers[0], closest)
    potentials = np.empty(n_local_trials)
    block_sums = np.empty(n_blocks(n))
    candidate_ids = np.empty(n_local_trials, dtype=np.int64)
    for c in range(1, n_clusters):
        # draw candidates with probability w * D(x)^2, via per-block sums (no n-long cumsum)
        potential_block_sums(sample_weight, closest, block_sums)
        targets = rng.uniform(size=n_local_trials) * block_sums.sum()
        draw_by_potential(sample_weight, closest, block_sums, targets, candidate_ids)
        candidates = np.ascontiguousarray(X[candidate_ids])
        kmeanspp_potentials(X, sample_weight, candidates, closest, potentials)
        best = int(np.argmin(potentials))
        centers[c], indices[c] = candidates[best], candidate_ids[best]
        update_min_sqdist(X, centers[c], closest)
    return centers, indices


def mean_feature_variance(X):
    """Mean over the features of X's column variances (scikit-learn's ``tol`` scale).

    float64 sums about the first row (no precision lost for data far from the origin), in
    row chunks of about 8 MiB: no n x d temporary, and no kernel to compile for a number that
    only scales the tolerance.
    """
    n, d = X.shape
    shift = X[0].astype(np.float64)
    s1, s2 = np.zeros(d), np.zeros(d)
    with np.errstate(over="ignore", invalid="ignore"):
        for rows in row_chunks(n, max(1, (1 << 20) // d)):
            dev = X[rows].astype(np.float64) - shift
            s1 += dev.sum(axis=0)
            s2 += np.einsum("ij,ij->j", dev, dev)
        mean = s1 / n
        return float(np.maximum(s2 / n - mean * mean, 0.0).mean())


def random_centers(X, sample_weight, n_clusters, rng):
    """``n_clusters`` distinct rows drawn with probability proportional to their weight."""
    p = sample_weight / sample_weight.sum()
    n_positive = int(np.count_nonzero(p))
    ids = rng.choice(X.shape[0], size=n_clusters, replace=n_positive < n_clusters, p=p)
    return np.array(X[ids])


class KMeansModel:
    """Lloyd's algorithm in the driver's step protocol.

    Parameters
    ----------
    X : ndarray (used for the tolerance scale and the label buffer)
    n_clusters : int
    init : 'k-means++', 'random' or ndarray (k, d)
    """

    def __init__(self, X, n_clusters, init):
        self.n_clusters = n_clusters
        self.init = init
        # scikit-learn's tol: squared centre shift relative to the mean feature variance
        self.mean_variance = mean_feature_variance(X)
        if not np.isfinite(self.mean_variance):
            raise overflow_error("the variance of X")
        self.labels = np.full(X.shape[0], -1, dtype=np.int32)

    def initialize(self, X, sample_weight, rng):
        self.labels[:] = -1
        if isinstance(self.init, np.ndarray):
            return np.array(self.init, dtype=np.float64)
        if self.init == "k-means++":
            centers, _ = kmeans_plusplus(X, sample_weight, self.n_clusters, rng)
        else:
            centers = random_centers(X, sample_weight, self.n_clusters, rng)
        return centers.astype(np.float64)

    def e_step(self, X, sample_weight, centers):
        k, d = centers.shape
        sums = np.empty((k, d))
        weights = np.empty(k)
        inertia, n_changed = lloyd_step(X, sample_weight, centers.astype(X.dtype), self.labels,
                                        sums, weights)
        if not (np.isfinite(inertia) and np.isfinite(sums).all()):
            raise overflow_error("the inertia (weighted sum of squared distances)")
        return LloydStats(sums, weights, inertia, n_changed, -inertia)

    def m_step(self, X, sample_weight, centers, stats):
        sums, weights = stats.sums.copy(), stats.weights.copy()
        empty = np.flatnonzero(weights == 0)
        if empty.size:
            stats.relocated = self._relocate_empty(X, sample_weight, centers, sums, weights, empty)
        new = centers.copy()
        filled = weights > 0
        new[filled] = sums[filled] / weights[filled, None]
        return new

    def _relocate_empty(self, X, sample_weight, centers, sums, weights, empty):
        """Move the points farthest from their centres into the empty clusters.

        Deterministic and independent of the row order: candidates are ordered by decreasing
        distance, exact ties (the two points of a two-point cluster are equidistant from its
        mean) by the points' coordinates, then by row index (identical points only);
        zero-weight rows are never used. Updates ``sums``/``weights`` in place.
        """
        labels = np.empty(X.shape[0], dtype=np.int32)
        sqdist = np.empty(X.shape[0])
        nearest_centers(X, centers.astype(X.dtype), labels, sqdist)
        sqdist[sample_weight == 0] = -1.0
        order = np.argsort(-sqdist, kind="stable")
        # only rows at least as far as the len(empty)-th farthest can be moved
        order = order[sqdist[order] >= sqdist[order[min(len(empty), len(order)) - 1]]]
        keys = tuple(X[order, f] for f in range(X.shape[1] - 1, -1, -1)) + (-sqdist[order],)
        order = order[np.lexsort(keys)]
        moved = 0
        for cluster, row in zip(empty, order):
            if sqdist[row] < 0:
                break
            w, old = sample_weight[row], labels[row]
            x = X[row].astype(np.float64)
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
        shift = float(((new_centers - centers) ** 2).sum())
        return shift <= tol * self.mean_variance

    def finalize(self, X, sample_weight, centers, stats, converged):
        """Make labels and inertia consistent with the final centres."""
        if not (converged and stats.n_changed == 0 and stats.relocated == 0):
            # one more fused pass (the statistics are discarded): the fit compiles and runs
            # the same kernel for its last labels as for every iteration
            k, d = centers.shape
            inertia, _ = lloyd_step(X, sample_weight, centers.astype(X.dtype), self.labels,
                                    np.empty((k, d)), np.empty(k))
            inertia = float(inertia)
        else:
            inertia = stats.inertia
        self.inertia = inertia
        return (centers, self.labels.copy()), -inertia
