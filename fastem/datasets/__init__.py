"""Small real data sets shipped with fastem (public domain) and a blob generator.

* ``load_faithful()`` - Old Faithful geyser, 272 x 2: eruption time and waiting time (min).
* ``load_iris()`` - Fisher's iris, 150 x 4 measurements (cm) and the species as int labels.
* ``load_digits_binary()`` - scikit-learn's 8 x 8 handwritten digits (1797 x 64, BSD-3-Clause,
  from the UCI optical digits data) binarised at > 7 of 16, as uint8, with the digit labels.
"""
from importlib import resources

import numpy as np


def _read_csv(name):
    with resources.files(__name__).joinpath(name).open("r") as fh:
        header = fh.readline().strip().split(",")
        rows = [line.strip().split(",") for line in fh if line.strip()]
    return header, rows


def load_faithful():
    """Old Faithful: (X float64 of shape (272, 2), feature names)."""
    header, rows = _read_csv("faithful.csv")
    return np.array(rows, dtype=np.float64), header


def load_iris():
    """Iris: (X float64 of shape (150, 4), y int64 species codes, feature names, species names)."""
    header, rows = _read_csv("iris.csv")
    species = sorted({r[-1] for r in rows})
    X = np.array([r[:-1] for r in rows], dtype=np.float64)
    y = np.array([species.index(r[-1]) for r in rows], dtype=np.int64)
    return X, y, header[:-1], species


def make_blobs(n_samples, n_features, n_centers, *, spread=10.0, std=1.0, dtype=np.float64,
               random_state=0):
    """Isotropic Gaussian blobs: (X of shape (n_samples, n_features), true labels, centres)."""
    rng = np.random.default_rng(random_state)
    centers = rng.uniform(-spread, spread, size=(n_centers, n_features))
    labels = rng.integers(n_centers, size=n_samples)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float64)
    X *= std
    X += centers[labels]
    return X.astype(dtype, copy=False), labels, centers


def load_digits_binary():
    """Binarised digits: (X uint8 of shape (1797, 64) holding 0/1, y int64 digit labels)."""
    with resources.files(__name__).joinpath("digits_binary.npz").open("rb") as fh:
        data = np.load(fh)
        X = np.unpackbits(data["packed"], axis=1)[:, :int(data["n_features"])]
        return np.ascontiguousarray(X), data["target"].astype(np.int64)
