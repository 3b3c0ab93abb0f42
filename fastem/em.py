"""The EM driver (layer 3): the one loop every model is fitted with.

A *model* (layer 2, :mod:`fastem.models`) supplies the steps; this module owns restarts
(``n_init``), the iteration limit, convergence, warm starts, verbose progress and history::

    params = model.initialize(X, w, rng)          # or the warm-start parameters
    repeat up to max_iter times:
        stats  = model.e_step(X, w, params)       # one fused pass; stats.objective is the
                                                  # objective of `params` (higher is better)
        new    = model.m_step(X, w, params, stats)
        done   = model.has_converged(params, new, stats, history, tol)
        params = new
    params, objective = model.finalize(X, w, params, stats, converged)

The restart with the highest final objective wins (ties: the earliest). A model may also
offer ``events(stats) -> list of str`` (e.g. empty clusters re-seeded, components that lost
their mass); with ``verbose >= 1`` the driver prints them as they happen.
"""
import time
from dataclasses import dataclass, field


def _no_events(stats):
    return ()


@dataclass
class EMResult:
    """Outcome of :func:`fit_em` for the best restart."""

    params: object
    objective: float
    n_iter: int
    converged: bool
    history: list = field(default_factory=list)
    final_stats: object = None


def fit_em(model, X, sample_weight, *, n_init, max_iter, tol, rng, verbose=0,
           verbose_interval=1, init_params=None, objective_name="objective"):
    """Fit ``model`` by EM with ``n_init`` restarts and return the best :class:`EMResult`.

    Parameters
    ----------
    model : object with ``initialize``, ``e_step``, ``m_step``, ``has_converged``, ``finalize``
    X : ndarray, shape (n, d)
    sample_weight : ndarray, shape (n,), float64
    n_init, max_iter : int
    tol : float
        Passed to ``model.has_converged`` unchanged (its meaning is the model's).
    rng : numpy.random.RandomState
    verbose : int
        0 silent, 1 one line per restart, 2 one line per ``verbose_interval`` iterations.
    init_params : optional
        Parameters to start from instead of ``model.initialize`` (warm start / user init).
    """
    best = None
    for run in range(n_init):
        t_run = time.perf_counter()
        params = init_params if init_params is not None else model.initialize(X, sample_weight, rng)
        history = []
        converged = False
        stats = None
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            t_iter = time.perf_counter()
            stats = model.e_step(X, sample_weight, params)
            history.append(stats.objective)
            new_params = model.m_step(X, sample_weight, params, stats)
            converged = model.has_converged(params, new_params, stats, history, tol)
            params = new_params
            if verbose >= 2 and (n_iter % verbose_interval == 0 or converged):
                change = history[-1] - history[-2] if len(history) > 1 else float("nan")
                print(f"  init {run + 1} iter {n_iter:4d}  {objective_name} {history[-1]: .8g}  "
                      f"change {change: .3g}  {1e3 * (time.perf_counter() - t_iter):.2f} ms/iter")
            if verbose:
                for event in getattr(model, "events", _no_events)(stats):
                    print(f"  init {run + 1} iter {n_iter:4d}  {event}")
            if converged:
                break
        params, objective = model.finalize(X, sample_weight, params, stats, converged)
        if verbose:
            state = "converged" if converged else "did not converge"
            print(f"Initialization {run + 1}: {state} after {n_iter} iterations, "
                  f"{objective_name} {objective:.8g}, {time.perf_counter() - t_run:.3f} s")
        if best is None or objective > best.objective:
            best = EMResult(params, objective, n_iter, converged, history, stats)
    return best
