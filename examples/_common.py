"""Helpers shared by the examples: command-line options, the output folder, scores."""
import argparse
import os

import numpy as np


#: where the README's pictures live (``python examples/make_pictures.py`` rewrites them)
PICTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                        "examples")


def options(description, argv=None, extra=None):
    """``--out DIR`` (default: docs/examples), ``--small`` (a quick run, as in the tests)
    and whatever ``extra(parser)`` adds; also selects matplotlib's Agg backend when there is
    no display (:func:`use_agg_when_headless`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=PICTURES,
                        help="folder for the picture (default: docs/examples)")
    parser.add_argument("--small", action="store_true", help="small sizes, for a quick run")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    use_agg_when_headless()
    return args


def use_agg_when_headless():
    """Draw without a display when there is none (CI, ssh): the examples only save PNGs."""
    import matplotlib
    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")


def save(fig, out, name):
    """Save ``fig`` as ``out/name`` and return the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path


def adjusted_rand_index(truth, labels):
    """Hubert & Arabie's adjusted Rand index from the contingency table:
    ``(sum_ij C(n_ij, 2) - E) / (mean(sum_i C(a_i, 2), sum_j C(b_j, 2)) - E)`` with
    ``E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2)``."""
    _, t = np.unique(truth, return_inverse=True)
    _, l = np.unique(labels, return_inverse=True)
    table = np.zeros((t.max() + 1, l.max() + 1))
    np.add.at(table, (t, l), 1)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, rows, cols = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / pairs(np.array([len(t)], dtype=float))
    return float((index - expected) / ((rows + cols) / 2 - expected))
