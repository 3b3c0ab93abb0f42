"""airspeed velocity (asv) benchmarks for fastem, with scikit-learn as the peer baseline.

Modules
-------
bench_kmeans
    Lloyd iteration (kernel, estimator with ``max_iter=1``, per-iteration fit difference),
    the assignment kernel ``nearest_centers``, k-means++ seeding, a default fit and the peak
    memory of a fit. Every fastem benchmark class has a scikit-learn twin whose name starts
    with ``Sklearn``; the twins are skipped (``NotImplementedError`` in ``setup``) when
    scikit-learn is not installed, so one ``asv run`` shows both side by side.
bench_gmm
    GaussianMixture for each covariance type: one fused EM step, the per-iteration fit
    difference (fastem and scikit-learn), the Gaussian kernels, peak memory of a fit and the
    cold compile time.
bench_bernoulli
    BernoulliMixture: EM iteration on dense uint8 and CSR input, peak memory, and the NumPy
    EM forms users would write as the peer baselines.
bench_compile
    First contact (issue 9) as ``track_`` benchmarks in fresh processes: import time with and
    without scikit-learn, cold first fit per estimator, everything cold, ``python -m fastem
    warmup`` wall time, warm-cache first-fit overhead (``compile_times.py`` prints them).
compare_kmeans.py, compare_gmm.py, compare_bernoulli.py
    Scripts (not asv benchmarks) that measure fastem and its peer in one process and print
    the markdown tables quoted in the README.

Conventions
-----------
* Data come from :func:`asv_benchmarks.common.make_data` with fixed seeds and are built in
  ``setup``, never timed.
* Numba compilation is not timed: every ``setup`` calls the timed function once on a small
  slice with the same dtypes and array layout (same Numba signature), so the timed call only
  dispatches to compiled code. Compile time has its own benchmarks in ``bench_compile``.
* Parameter grids are a cartesian product in asv, and every combination costs a process even
  when ``setup`` skips it (``NotImplementedError``): the k-means grids therefore take the
  wanted (n, d, k) points as one parameter (:data:`asv_benchmarks.common.GRID_POINTS`); the
  Gaussian and Bernoulli grids skip unwanted points in ``setup`` (none in the ``fast`` profile).

Run (from the repository root)::

    asv machine --yes                          # once
    asv run --python=same --quick              # smoke run, current environment
    asv run --python=same                      # full run, current environment
    asv continuous main HEAD                   # compare two commits in virtualenvs
"""
