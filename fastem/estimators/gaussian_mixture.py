"""The GaussianMixture estimator: parameter checks and wiring only."""
import numpy as np

from ..kernels import gaussian_estep_diag, gaussian_estep_full
from ..models.gaussian import COVARIANCE_TYPES, INIT_PARAMS, GaussianMixtureModel, GaussianParams
from ..persistence import restored_array
from ..validation import check_array, check_float, check_init_array
from ._mixture import BaseMixture


class GaussianMixture(BaseMixture):
    """Gaussian mixture fitted by EM on fused, deterministic Numba kernels.

    Parameters follow scikit-learn's ``GaussianMixture``.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Stop when the lower bound (mean log-likelihood) changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the covariance diagonals.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; the one with the highest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        'kmeans' uses fastem's own KMeans (weighted by ``sample_weight``).
    weights_init : array of shape (n_components,), default=None
    means_init : array of shape (n_components, n_features), default=None
    precisions_init : array, default=None
        Shape (k, d, d) full, (d, d) tied, (k, d) diag, (k,) spherical.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        Start from the previous fit's parameters (then ``n_init`` is 1).
    verbose : int, default=0
        1: a line per initialisation; 2: also lower bound, change and ms per iteration.
    verbose_interval : int, default=10
        Iterations between verbose lines.
    learning_decay : float, default=0.7
        Online EM (:meth:`partial_fit`) step ``rho_t = (t + learning_offset) **
        -learning_decay``, in (0.5, 1] (the names of scikit-learn's
        LatentDirichletAllocation). Larger values forget early chunks faster at first but
        average more in the long run; 1 weights every chunk equally (a running mean).
    learning_offset : float, default=10.0
        Non-negative; larger values make the first steps smaller (early chunks, whose
        parameters are still poor, count less).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean (weighted) log-likelihood at the last E-step of the best initialisation.
    lower_bounds_ : list of float
        ``lower_bound_`` at every iteration of the best initialisation.
    n_features_in_ : int

    Notes
    -----
    ``sample_weight`` in ``fit`` weights the E and M steps and the k-means initialisation;
    integer weights give the same fit as repeated rows. float32 X is used as float32 (no
    float64 copy); statistics accumulate in float64.
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, learning_decay=0.7, learning_offset=10.0):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    @classmethod
    def _validate_data(cls, X, name="X"):
        # a classmethod: Dask workers run it on blocks without a copy of the estimator
        return check_array(X, name=name, estimator_name=cls.__name__)

    def _check_model_params(self, X):
        """Hyper-parameters checked against the data (an array or a row source)."""
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {self.covariance_type!r}.")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {self.init_params!r}.")
        check_float(self.reg_covar, "reg_covar", low=0.0)
        k, d = self.n_components, X.shape[1]
        self._means_init = self._precisions_init = None
        self._weights_init = self._checked_weights_init()
        if self.means_init is not None:
            self._means_init = check_init_array(self.means_init, "means_init", (k, d))
        if self.precisions_init is not None:
            shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d),
                     "spherical": (k,)}[self.covariance_type]
            p = check_init_array(self.precisions_init, "precisions_init", shape)
            _check_precisions(p, self.covariance_type)
            self._precisions_init = p

    _saved_attributes = BaseMixture._saved_attributes + (
        "covariances_", "precisions_cholesky_", "precisions_")

    def _restored_model(self):
        ct = self.covariance_type
        if ct not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type {ct!r} is not one of {COVARIANCE_TYPES}")
        k, d = self.means_.shape
        shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[ct]
        covariances = restored_array(self, "covariances_", shape)
        prec_chol = restored_array(self, "precisions_cholesky_", shape)
        restored_array(self, "precisions_", shape)
        if ct in ("diag", "spherical") and (prec_chol <= 0).any():
            raise ValueError("precisions_cholesky_ should be positive")
        if ct in ("full", "tied"):
            diagonals = np.diagonal(prec_chol if ct == "full" else prec_chol[None],
                                    axis1=-2, axis2=-1)
            if (diagonals <= 0).any():
                raise ValueError("precisions_cholesky_ should have a positive diagonal")
        model = GaussianMixtureModel(k, ct, self.reg_covar, self.init_params)
        return model, GaussianParams(self.weights_, self.means_, covariances, prec_chol)

    def _estep_kernel(self, source):
        """(estimator, kind, E-step kernel) of a fit: what ``compile_ahead`` compiles."""
        full = self.covariance_type in ("full", "tied")
        return "gmm", self.covariance_type, gaussian_estep_full if full else gaussian_estep_diag

    def _make_model(self):
        return GaussianMixtureModel(
            self.n_components, self.covariance_type, self.reg_covar, self.init_params,
            self._weights_init, self._means_init, self._precisions_init,
            kmeans_fit=self._kmeans_fit)



def _check_precisions(p, covariance_type):
    """Precisions must be symmetric positive definite (full/tied) or positive (diag/sph.)."""
    if covariance_type in ("diag", "spherical"):
        if (p <= 0).any():
            raise ValueError("precisions_init must be strictly positive.")
        return
    for j, m in enumerate(p if covariance_type == "full" else p[None]):
        if not np.allclose(m, m.T):
            raise ValueError(f"precisions_init[{j}] is not symmetric.")
        if np.linalg.eigvalsh(m).min() <= 0:
            raise ValueError(f"precisions_init[{j}] is not positive definite.")
