"""The EM driver (layer 3): the one loop every model is fitted with.

A *model* (layer 2, :mod:`fastem.models`) supplies the steps; this module owns restarts
(``n_init``), the iteration limit, convergence, warm starts, verbose progress and history::

    params = model.initialize(source, rng)        # or the warm-start parameters
    repeat up to max_iter times:
        stats  = model.e_step(source, params)     # one fused pass; stats.objective is the
                                                  # objective of `params` (higher is better)
        new    = model.m_step(source, params, stats)
        done   = model.has_converged(params, new, stats, history, tol)
        params = new
    params, objective = model.finalize(source, params, stats, converged)

``source`` (:class:`fastem.sources.RowSource`) holds the rows and their weights, in memory,
in a memory-mapped file or in chunks; the model sums its chunk statistics with
:func:`fastem.sources.sum_chunks`, so this loop does not know where the rows live.

The restart with the highest final objective wins (ties: the earliest). A model may also
offer ``events(stats) -> list of str`` (e.g. empty clusters re-seeded, components that lost
their mass); with ``verbose >= 1`` the driver prints them as they happen.

Progress observers (the command line's live progress line) register with
:func:`report_progress`; the driver calls them once per iteration of the fit made in that
context (not of fits nested in an initialisation, such as GaussianMixture's k-means).
"""
import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

_progress_callback = contextvars.ContextVar("fastem_progress_callback", default=None)


@dataclass
class Progress:
    """One iteration of a fit, as reported to a :func:`report_progress` callback."""

    restart: int           # 1-based
    n_restarts: int
    iteration: int         # 1-based
    max_iter: int
    objective: float       # of the parameters the iteration started from (higher is better)
    change: float          # objective minus the previous iteration's (NaN on the first)
    seconds: float         # wall time of this iteration
    objective_name: str
    converged: bool


@contextmanager
def report_progress(callback):
    """``with report_progress(f):`` fits in this context call ``f(Progress)`` after every
    iteration (EM and Lloyd iterations; mini-batch steps with the smoothed batch inertia)."""
    token = _progress_callback.set(callback)
    try:
        yield
    finally:
        _progress_callback.reset(token)


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


def fit_em(model, source, *, n_init, max_iter, tol, rng, verbose=0,
           verbose_interval=1, init_params=None, objective_name="objective",
           on_initialized=None):
    """Fit ``model`` by EM with ``n_init`` restarts and return the best :class:`EMResult`.

    Parameters
    ----------
    model : object with ``initialize``, ``e_step``, ``m_step``, ``has_converged``, ``finalize``
    source : fastem.sources.RowSource
    n_init, max_iter : int
    tol : float
        Passed to ``model.has_converged`` unchanged (its meaning is the model's).
    rng : numpy.random.RandomState
    verbose : int
        0 silent, 1 one line per restart, 2 one line per ``verbose_interval`` iterations.
    init_params : optional
        Parameters to start from instead of ``model.initialize`` (warm start / user init).
    on_initialized : callable, optional
        Called once, after the first initialisation (e.g. to wait for the kernels of the
        iterations that a helper process compiles meanwhile).
    """
    best = None
    progress = _progress_callback.get()
    for run in range(n_init):
        t_run = time.perf_counter()
        if init_params is not None:
            params = init_params
        else:
            with report_progress(None):   # nested fits (initialisations) report nothing
                params = model.initialize(source, rng)
        if on_initialized is not None:
            on_initialized()
            on_initialized = None
        history = []
        converged = False
        stats = None
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            t_iter = time.perf_counter()
            stats = model.e_step(source, params)
            history.append(stats.objective)
            new_params = model.m_step(source, params, stats)
            converged = model.has_converged(params, new_params, stats, history, tol)
            params = new_params
            change = history[-1] - history[-2] if len(history) > 1 else float("nan")
            if progress is not None:
                progress(Progress(run + 1, n_init, n_iter, max_iter, history[-1], change,
                                  time.perf_counter() - t_iter, objective_name, converged))
            if verbose >= 2 and (n_iter % verbose_interval == 0 or converged):
                print(f"  init {run + 1} iter {n_iter:4d}  {objective_name} {history[-1]: .8g}  "
                      f"change {change: .3g}  {1e3 * (time.perf_counter() - t_iter):.2f} ms/iter")
            if verbose:
                for event in getattr(model, "events", _no_events)(stats):
                    print(f"  init {run + 1} iter {n_iter:4d}  {event}")
            if converged:
                break
        params, objective = model.finalize(source, params, stats, converged)
        if verbose:
            state = "converged" if converged else "did not converge"
            print(f"Initialization {run + 1}: {state} after {n_iter} iterations, "
                  f"{objective_name} {objective:.8g}, {time.perf_counter() - t_run:.3f} s")
        if best is None or objective > best.objective:
            best = EMResult(params, objective, n_iter, converged, history, stats)
    return best


@dataclass
class MiniBatchResult:
    """Outcome of :func:`fit_minibatch`."""

    n_steps: int
    ewa_inertia: float  # the last batch's inertia when only one step ran


def fit_minibatch(model, source, *, n_steps, batch_size, tol, max_no_improvement, rng,
                  verbose=0):
    """Mini-batch steps on batches drawn uniformly with replacement from ``source``, stopped
    by scikit-learn's rules (``MiniBatchKMeans``):

    * the mean batch inertia (per row, under the centres before the step) is smoothed by an
      exponentially weighted average with ``alpha = min(1, 2 batch_size / (n + 1))``; the
      first step is left out (its centres are the initial ones);
    * stop when the squared centre change of a step is at most ``tol`` (an absolute value;
      0 disables the test), or when the smoothed inertia has not reached a new minimum for
      ``max_no_improvement`` consecutive steps (None disables it).

    ``model`` offers ``step(X_batch, w_batch, rng) -> batch inertia`` and ``centers``.
    """
    n = source.n_rows
    progress = _progress_callback.get()
    alpha = min(1.0, batch_size * 2.0 / (n + 1))
    ewa = ewa_min = None
    no_improvement = 0
    step = 0
    for step in range(1, n_steps + 1):
        t_step = time.perf_counter()
        ids = rng.randint(0, n, batch_size)
        X = source.take(ids)
        before = model.centers.copy() if tol > 0 else None
        inertia = model.step(X, source.weights(ids), rng) / batch_size
        if step == 1:
            continue
        previous = ewa
        ewa = inertia if ewa is None else ewa * (1 - alpha) + inertia * alpha
        if progress is not None:
            progress(Progress(1, 1, step, n_steps, -ewa,
                              float("nan") if previous is None else previous - ewa,
                              time.perf_counter() - t_step, "-smoothed batch inertia", False))
        if verbose:
            print(f"Minibatch step {step}/{n_steps}: mean batch inertia {inertia:.6g}, "
                  f"ewa inertia {ewa:.6g}")
        if tol > 0 and float(((model.centers - before) ** 2).sum()) <= tol:
            if verbose:
                print(f"Converged (small centres change) at step {step}/{n_steps}")
            break
        if ewa_min is None or ewa < ewa_min:
            no_improvement, ewa_min = 0, ewa
        else:
            no_improvement += 1
        if max_no_improvement is not None and no_improvement >= max_no_improvement:
            if verbose:
                print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            break
    return MiniBatchResult(step, ewa if ewa is not None else inertia)


def stepwise_rate(n_updates, learning_offset, learning_decay):
    """Step size of online EM for the ``n_updates``-th update after the first chunk:
    ``rho_t = (t + learning_offset) ** -learning_decay`` (Cappe & Moulines 2009; any decay in
    (0.5, 1] satisfies sum rho = inf, sum rho^2 < inf)."""
    return float((n_updates + learning_offset) ** -learning_decay)


def stepwise_em_update(model, running, stats, chunk_weight, rho):
    """Online EM's statistics update ``S_t = (1 - rho) S_{t-1} + rho s_t / W_t``, with
    ``s_t`` the chunk's statistics and ``W_t`` its total weight (``running`` None: the first
    chunk, ``S_1 = s_1 / W_1``). The model re-derives its parameters from ``S_t``."""
    if running is None:
        return model.combine_stats(None, 0.0, stats, 1.0 / chunk_weight)
    return model.combine_stats(running, 1.0 - rho, stats, rho / chunk_weight)
