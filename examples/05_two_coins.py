"""The two-coin problem (Do & Batzoglou 2008, "What is the expectation maximization
algorithm?"): sets of tosses, each made with one of two coins of unknown bias; which coin
made each set, and how biased is each? Every set is a row of 0/1 tosses, so the answer is a
two-component Bernoulli mixture: the posterior of a row says which coin, and a component's
success probabilities (one per toss position, all estimating the same bias) give the bias.
It is checked against the textbook EM of the binomial mixture, whose bias is shared by all
tosses of a coin.

    python examples/05_two_coins.py [--out DIR] [--small]
"""
import numpy as np

from _common import options, save

TRUE_BIAS = (0.80, 0.35)


def binomial_mixture_em(heads, tosses, bias, n_iter=200):
    """The textbook two-coin EM on heads counts: E-step posteriors of coin A from the
    binomial likelihoods ``b^h (1 - b)^(t - h)`` (equal priors, as in the paper), M-step
    ``b_c = sum_i r_ic h_i / sum_i r_ic t``."""
    bias = np.array(bias, dtype=float)
    for _ in range(n_iter):
        log_lik = heads[:, None] * np.log(bias) + (tosses - heads)[:, None] * np.log1p(-bias)
        r = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        bias = (r * heads[:, None]).sum(axis=0) / (r.sum(axis=0) * tosses)
    return bias, r


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv)
    import matplotlib.pyplot as plt

    from fastem import BernoulliMixture

    rng = np.random.RandomState(1)
    n_sets, tosses = (200, 20) if args.small else (1000, 20)
    coin = rng.randint(0, 2, n_sets)
    X = (rng.rand(n_sets, tosses) < np.array(TRUE_BIAS)[coin][:, None]).astype(np.uint8)

    # start both methods from the paper's guesses: coin A 0.6, coin B 0.5 for every toss
    start = np.repeat([[0.6], [0.5]], tosses, axis=1)
    model = BernoulliMixture(2, means_init=start, weights_init=[0.5, 0.5], alpha=0.0,
                             tol=1e-8, random_state=0).fit(X)
    bias = model.means_.mean(axis=1)         # the per-position estimates, averaged
    which = model.predict(X)
    accuracy = np.mean(which == coin)
    textbook, _ = binomial_mixture_em(X.sum(axis=1), tosses, (0.6, 0.5))
    print(f"{n_sets} sets of {tosses} tosses; true biases A {TRUE_BIAS[0]}, B {TRUE_BIAS[1]}")
    print(f"  BernoulliMixture: A {bias[0]:.3f}, B {bias[1]:.3f} (weights "
          f"{model.weights_[0]:.2f} / {model.weights_[1]:.2f}), {model.n_iter_} iterations")
    print(f"  textbook two-coin EM (one shared bias per coin): A {textbook[0]:.3f}, "
          f"B {textbook[1]:.3f}")
    print(f"  coin of each set recovered for {accuracy:.1%} of the sets")

    heads = X.sum(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    bins = np.arange(tosses + 2) - 0.5
    for c, name in enumerate("AB"):
        axes[0].hist(heads[which == c], bins=bins, alpha=0.6,
                     label=f"sets given to coin {name} (bias {bias[c]:.2f})")
    axes[0].set_xlabel(f"heads in {tosses} tosses")
    axes[0].set_ylabel("sets")
    axes[0].set_title(f"which coin? {accuracy:.0%} of the sets recovered")
    axes[0].legend(loc="upper left", fontsize=8)
    positions = np.arange(1, tosses + 1)
    for c, name in enumerate("AB"):
        axes[1].plot(positions, model.means_[c], marker="o", label=f"coin {name}: theta per toss")
        axes[1].axhline(TRUE_BIAS[c], linestyle="--", color=f"C{c}",
                        label=f"true bias {TRUE_BIAS[c]}")
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("toss position")
    axes[1].set_ylabel("P(heads)")
    axes[1].set_title("each toss position estimates its coin's bias")
    axes[1].legend(fontsize=8, loc="center right")
    path = save(fig, args.out, "05_two_coins.png")
    print(f"picture: {path}")
    return {"bias": bias, "textbook": textbook, "accuracy": accuracy, "picture": path}


if __name__ == "__main__":
    main()
