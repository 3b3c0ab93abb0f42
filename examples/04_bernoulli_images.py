"""A Bernoulli mixture learns binary image patterns: noisy vertical bars, horizontal bars
and checkerboards (10 x 10 pixels, 15% of the bits flipped), shown next to the true
patterns; and ten components of the binarised handwritten digits.

    python examples/04_bernoulli_images.py [--out DIR] [--small]
"""
import numpy as np

from _common import options, save

SIDE = 10
FLIP = 0.15


def patterns():
    """The three true 10 x 10 patterns (0/1), flattened."""
    rows, cols = np.indices((SIDE, SIDE))
    vertical = (cols // 2) % 2 == 0
    horizontal = (rows // 2) % 2 == 0
    checkerboard = ((rows // 2) + (cols // 2)) % 2 == 0
    return np.array([vertical, horizontal, checkerboard], dtype=float).reshape(3, -1)


def main(argv=None):
    args = options(__doc__.splitlines()[0], argv)
    import matplotlib.pyplot as plt

    from fastem import BernoulliMixture
    from fastem.datasets import load_digits_binary
    from fastem.plotting import plot_components, plot_images

    rng = np.random.RandomState(0)
    n = 600 if args.small else 3000
    truth = patterns()
    z = rng.randint(0, 3, n)
    flips = rng.rand(n, SIDE * SIDE) < FLIP
    images = np.logical_xor(truth[z] > 0.5, flips).astype(np.uint8)

    model = BernoulliMixture(3, n_init=3, random_state=0).fit(images)
    # a pixel of a pattern is 1 with probability 1 - FLIP where it is on, FLIP where off
    expected = FLIP + (1 - 2 * FLIP) * truth
    distance = np.abs(expected[:, None, :] - model.means_[None, :, :]).mean(axis=2)
    match = distance.argmin(axis=1)   # the closest learned component of every pattern
    for name, j, d in zip(("vertical bars", "horizontal bars", "checkerboard"), match,
                          distance.min(axis=1)):
        print(f"{name:<16} -> component {j} (weight {model.weights_[j]:.2f}), mean "
              f"|theta - expected theta| = {d:.3f}")

    digits, digit = load_digits_binary()
    digit_model = BernoulliMixture(10, n_init=1 if args.small else 3,
                                   random_state=0).fit(digits)
    print(f"digits: 10 components, lower bound {digit_model.lower_bound_:.3f}")

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.5),
                             gridspec_kw={"width_ratios": [1.2, 0.45, 0.45, 1.6]})
    plot_images(images[:9], (SIDE, SIDE), ax=axes[0], n_cols=3)
    axes[0].set_title(f"training images ({FLIP:.0%} bits flipped)")
    plot_images(truth, (SIDE, SIDE), ax=axes[1], n_cols=1)
    axes[1].set_title("true patterns")
    plot_images(model.means_[match], (SIDE, SIDE), ax=axes[2], n_cols=1,
                labels=[f"{w:.2f}" for w in model.weights_[match]])
    axes[2].set_title("learned theta")
    plot_components(digit_model, (8, 8), ax=axes[3], n_cols=5)
    axes[3].set_title("binarised digits: 10 components")
    path = save(fig, args.out, "04_bernoulli_images.png")
    print(f"picture: {path}")
    return {"distance": distance.min(axis=1), "match": match, "model": model,
            "digits": digit_model, "picture": path}


if __name__ == "__main__":
    main()
