"""The BernoulliMixture estimator: parameter checks and wiring only."""
from ..kernels import bernoulli_estep, bernoulli_estep_csr
from ..models.bernoulli import INIT_PARAMS, BernoulliMixtureModel, BernoulliParams
from ..validation import check_binary_array, check_float, check_init_array
from ._mixture import BaseMixture


class BernoulliMixture(BaseMixture):
    """Mixture of multivariate Bernoulli distributions (binary data), fitted by EM.

    ``p(x) = sum_c pi_c prod_j theta_cj^x_j (1 - theta_cj)^(1 - x_j)``, fitted on fused,
    deterministic Numba kernels; dense input costs one pass over X per iteration and CSR input
    costs O(nnz k), never O(n d).

    Parameters
    ----------
    n_components : int, default=1
    alpha : float, default=1e-2
        Additive smoothing of the success probabilities: ``theta_cj = (sum_i w_i r_ic x_ij +
        alpha) / (N_c + 2 alpha)``, the MAP estimate under a Beta(alpha + 1, alpha + 1) prior.
        ``alpha = 0`` is plain maximum likelihood (theta may then be exactly 0 or 1; a row
        that is impossible under a component gets log-probability -inf there, never NaN).
        The default is a pseudo-count of 1/100 observation per feature: negligible next to
        any component with more than a few members (theta moves by < 0.01 / N_c), yet it keeps
        every theta strictly inside (0, 1), so one unusual pixel never makes a row impossible
        under a component and the log-likelihood stays finite for new data.
    tol : float, default=1e-3
        Stop when the lower bound (mean log-likelihood) changes by less than ``tol``.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; the one with the highest lower bound is kept.
    init_params : {'kmeans', 'random', 'random_from_data'}, default='kmeans'
        'kmeans': fastem's KMeans on the binary rows (as float32; on a random subsample of
        16 MiB of float32 rows when X is larger, so X is never copied to float as a
        whole), then one M-step from its hard labels; 'random': random responsibilities;
        'random_from_data': ``n_components`` distinct rows (drawn in proportion to
        ``sample_weight``) as the initial components, smoothed by ``alpha``.
    weights_init : array of shape (n_components,), default=None
    means_init : array of shape (n_components, n_features), default=None
        Initial success probabilities, in [0, 1].
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
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
        Success probabilities theta.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean (weighted) log-likelihood at the last E-step of the best initialisation.
    lower_bounds_ : list of float
        ``lower_bound_`` at every iteration of the best initialisation.
    n_features_in_ : int

    Notes
    -----
    Input must be binary: any value other than 0 and 1 (NaN included, also among CSR data)
    raises ValueError. Dense bool, integer, float32 and float64 C-contiguous arrays are used as
    given (a uint8 array stays uint8; nothing is converted to float64). scipy.sparse input is
    converted to CSR once if it is in another format (and copied once if it has duplicate or
    unsorted entries). ``sample_weight`` weights the E and M steps and the initialisation;
    integer weights give the same fit as repeated rows. Results are bitwise identical for any
    number of threads. With ``alpha > 0`` EM increases the penalised log-likelihood, so the
    log-likelihood in ``lower_bounds_`` may dip by a tiny amount near convergence.
    """

    def __init__(self, n_components=1, *, alpha=1e-2, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", weights_init=None, means_init=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, learning_decay=0.7,
                 learning_offset=10.0):
        self.n_components = n_components
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    @classmethod
    def _validate_data(cls, X, name="X"):
        # a classmethod: Dask workers run it on blocks without a copy of the estimator
        return check_binary_array(X, name=name, estimator_name=cls.__name__)

    def _check_model_params(self, X):
        """Hyper-parameters checked against the data (an array or a row source)."""
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {self.init_params!r}.")
        check_float(self.alpha, "alpha", low=0.0)
        k, d = self.n_components, X.shape[1]
        self._means_init = None
        self._weights_init = self._checked_weights_init()
        if self.means_init is not None:
            m = check_init_array(self.means_init, "means_init", (k, d))
            if (m < 0).any() or (m > 1).any():
                raise ValueError("means_init holds success probabilities and must lie in [0, 1].")
            self._means_init = m

    def _restored_model(self):
        if (self.means_ < 0).any() or (self.means_ > 1).any():
            raise ValueError("means_ holds success probabilities and should lie in [0, 1]")
        model = BernoulliMixtureModel(self.n_components, float(self.alpha), self.init_params)
        return model, BernoulliParams(self.weights_, self.means_)

    def _estep_kernel(self, source):
        """(estimator, kind, E-step kernel) of a fit: what ``compile_ahead`` compiles."""
        if source.sparse:
            return "bernoulli", "csr", bernoulli_estep_csr
        return "bernoulli", "dense", bernoulli_estep

    def _make_model(self):
        return BernoulliMixtureModel(self.n_components, float(self.alpha), self.init_params,
                                     self._weights_init, self._means_init,
                                     kmeans_fit=self._kmeans_fit)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

