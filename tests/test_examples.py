"""Every example in examples/ runs (small sizes, Agg backend) and shows what it claims."""
import importlib
import os
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")


@pytest.fixture(scope="module")
def examples():
    sys.path.insert(0, EXAMPLES)
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(EXAMPLES)


def run(examples, name, tmp_path):
    result = examples(name).main(["--small", "--out", str(tmp_path)])
    assert os.path.getsize(result["picture"]) > 5000
    assert os.path.dirname(result["picture"]) == str(tmp_path)
    import matplotlib.pyplot as plt
    plt.close("all")
    return result


def test_every_example_is_tested():
    scripts = sorted(f[:-3] for f in os.listdir(EXAMPLES) if f[:2].isdigit())
    tested = sorted(n[len("test_"):] for n in globals() if n.startswith("test_0"))
    assert [s.split("_", 1)[0] for s in scripts] == [t.split("_", 1)[0] for t in tested]


def test_01_kmeans_vs_gmm(examples, tmp_path):
    from sklearn.metrics import adjusted_rand_score
    from _common import adjusted_rand_index
    ari = run(examples, "01_kmeans_vs_gmm", tmp_path)["ari"]
    assert ari["GaussianMixture (full)"] > 0.9 > 0.5 > ari["KMeans"]
    rng = np.random.RandomState(0)
    a, b = rng.randint(0, 3, 200), rng.randint(0, 4, 200)
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert adjusted_rand_index(a, a) == pytest.approx(1.0)


def test_02_iris_and_faithful(examples, tmp_path):
    from fastem.datasets import load_iris
    result = run(examples, "02_iris_and_faithful", tmp_path)
    table = result["table"]
    _, species, _, _ = load_iris()
    assert table.sum() == 150 and np.array_equal(table.sum(axis=1), np.bincount(species))
    assert len(set(table.argmax(axis=1))) == 3      # every species has its own component
    assert result["agreement"] > 0.9
    eruptions = np.sort(result["faithful"].means_[:, 0])
    assert eruptions[0] == pytest.approx(2.0, abs=0.2) and eruptions[1] == pytest.approx(4.3, abs=0.2)


def test_03_model_selection(examples, tmp_path):
    result = run(examples, "03_model_selection", tmp_path)["result"]
    assert result.best_params == {"n_components": 3, "covariance_type": "full"}
    assert len(result.table) == 8 * 4


def test_04_bernoulli_images(examples, tmp_path):
    result = run(examples, "04_bernoulli_images", tmp_path)
    assert sorted(result["match"]) == [0, 1, 2]      # one component per pattern
    assert result["distance"].max() < 0.05


def test_05_two_coins(examples, tmp_path):
    result = run(examples, "05_two_coins", tmp_path)
    assert result["bias"] == pytest.approx([0.80, 0.35], abs=0.03)
    assert result["textbook"] == pytest.approx(result["bias"], abs=0.01)
    assert result["accuracy"] > 0.95


def test_06_initialisation(examples, tmp_path):
    result = run(examples, "06_initialisation", tmp_path)
    finals = result["finals"]
    assert np.median(finals["kmeans"]) > np.median(finals["random"])
    assert np.median(finals["k-means++"]) > np.median(finals["random_from_data"]) - 1e-3
    assert "singular" in result["error"] and "reg_covar" in result["error"]
    assert result["reg_fit"].covariances_[0][2, 2] == pytest.approx(1e-6, rel=1e-3)


def test_07_large_data(examples, tmp_path):
    pytest.importorskip("distributed")
    result = run(examples, "07_large_data", tmp_path)
    km, gm, _ = result["memmap"]
    assert np.allclose(km.cluster_centers_, result["reference"].cluster_centers_, rtol=1e-10)
    kd, gd, _ = result["dask"]   # a 2-process LocalCluster, started and closed by the example
    assert np.allclose(kd.cluster_centers_, km.cluster_centers_, rtol=1e-10)
    assert np.allclose(gd.means_, gm.means_, rtol=1e-10)
