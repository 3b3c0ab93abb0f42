"""fastem's public Numba kernels (layer 1).

Every kernel is an ``@njit(cache=True)`` function taking only arrays and scalars, so it can be
called from Python or from your own ``@njit`` code. ``X`` is float32 or float64, C-contiguous,
used as given (read-only arrays included); statistics accumulate in float64; parallel kernels
work over fixed row blocks whose partials are summed in block order, so their results are
bitwise identical for any ``NUMBA_NUM_THREADS``. Called from Python, a parallel kernel runs
its blocks on fastem's thread pool; compiled into your ``@njit`` code, its ``prange`` version
runs on Numba's threading layer (same blocks, same results). Shapes and dtypes are in each
docstring.
The Bernoulli kernels take binary X as given in any of bool, integer, float32 or float64.
"""
from .bernoulli import (
    bernoulli_estep,
    bernoulli_estep_csr,
    bernoulli_log_pmf,
    bernoulli_log_pmf_csr,
)
from .bounds import (bounded_full_step, bounded_full_step_csr, bounded_objective, bounded_step,
                     bounded_step_csr, elkan_full_step_csr, elkan_step_csr)
from .group_bounds import group_bounded_full_step, group_bounded_step
from .csr_distances import (
    lloyd_step_csr,
    nearest_centers_csr,
    seed_potentials_csr,
    seed_update_csr,
    sqdist_to_centers_csr,
)
from .distances import (
    draw_by_potential,
    float32_shadow,
    kmeanspp_potentials,
    kmeanspp_potentials_kept,
    lloyd_step,
    nearest_centers,
    potential_block_sums,
    seed_potentials,
    seed_potentials_kept,
    seed_update,
    seed_update_kept,
    sqdist_to_centers,
    update_min_sqdist,
)
from .gaussian import (
    gaussian_estep_diag,
    gaussian_estep_full,
    gaussian_log_pdf_diag,
    gaussian_log_pdf_full,
    weighted_moments,
)
from .linalg import full_covariances, precision_cholesky_factors
from .moments import all_finite, column_mean_var
from .responsibilities import normalize_log_row, responsibilities

__all__ = [
    "all_finite",
    "bernoulli_estep",
    "bernoulli_estep_csr",
    "bernoulli_log_pmf",
    "bernoulli_log_pmf_csr",
    "bounded_full_step",
    "bounded_full_step_csr",
    "bounded_objective",
    "bounded_step",
    "bounded_step_csr",
    "column_mean_var",
    "draw_by_potential",
    "float32_shadow",
    "elkan_full_step_csr",
    "elkan_step_csr",
    "gaussian_estep_diag",
    "gaussian_estep_full",
    "gaussian_log_pdf_diag",
    "gaussian_log_pdf_full",
    "group_bounded_full_step",
    "group_bounded_step",
    "kmeanspp_potentials",
    "kmeanspp_potentials_kept",
    "lloyd_step",
    "lloyd_step_csr",
    "nearest_centers",
    "nearest_centers_csr",
    "normalize_log_row",
    "potential_block_sums",
    "full_covariances",
    "precision_cholesky_factors",
    "responsibilities",
    "seed_potentials",
    "seed_potentials_kept",
    "seed_potentials_csr",
    "seed_update",
    "seed_update_kept",
    "seed_update_csr",
    "sqdist_to_centers",
    "sqdist_to_centers_csr",
    "update_min_sqdist",
    "weighted_moments",
]
