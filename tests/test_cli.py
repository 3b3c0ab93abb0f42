"""The ``fastem`` command line: fit / predict / select / info on every data format, one-line
errors with status 2, the progress line. Most runs call ``fastem.cli.main`` in-process; a few
run ``python -m fastem`` as users do."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import fastem
from fastem.cli import ProgressLine, main, parse_k
from fastem.em import Progress


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(80, 3) + c for c in ([0, 0, 0], [6, 0, 0], [0, 6, 3])])


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err):
    assert status == 2
    assert err.startswith("fastem: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_fit_predict_round_trip_csv(tmp_path, capsys, blobs):
    data = tmp_path / "d.csv"
    np.savetxt(data, blobs, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
    model, labels = tmp_path / "m.fastem", tmp_path / "train.txt"
    status, out, err = run(capsys, "fit", data, "--model", "gmm", "-k", 3, "--covariance",
                           "diag", "--random-state", 0, "--out", model, "--labels", labels)
    assert status == 0, err
    assert "iter 1/100" in err and "fitted GaussianMixture on 240 x 3" in err
    expected = fastem.GaussianMixture(3, covariance_type="diag", random_state=0).fit(blobs)
    loaded = fastem.load(model)
    assert np.array_equal(loaded.means_, expected.means_)
    assert np.array_equal(np.loadtxt(labels, dtype=int), expected.predict(blobs))
    status, _, err = run(capsys, "predict", model, data, "--out", tmp_path / "p.csv", "--proba")
    assert status == 0, err
    proba = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert np.allclose(proba, expected.predict_proba(blobs), rtol=1e-9, atol=1e-300)
    assert open(tmp_path / "p.csv").readline().strip() == "component0,component1,component2"
    status, _, _ = run(capsys, "predict", model, data, "--out", tmp_path / "l.npy", "-q")
    assert np.array_equal(np.load(tmp_path / "l.npy"), expected.predict(blobs))


@pytest.mark.parametrize("model_name, cls, size", [
    ("kmeans", fastem.KMeans, "n_clusters"), ("minibatch-kmeans", fastem.MiniBatchKMeans,
                                              "n_clusters"),
    ("gmm", fastem.GaussianMixture, "n_components")])
def test_every_dense_model_from_npy(tmp_path, capsys, blobs, model_name, cls, size):
    data = tmp_path / "d.npy"
    np.save(data, blobs.astype(np.float32))
    status, _, err = run(capsys, "fit", data, "--model", model_name, "-k", 3,
                         "--random-state", 1, "--max-iter", 50, "--n-init", 2,
                         "--out", tmp_path / "m", "-q")
    assert status == 0 and err == ""
    loaded = fastem.load(tmp_path / "m")
    expected = cls(**{size: 3}, random_state=1, max_iter=50, n_init=2).fit(
        np.load(data))
    assert type(loaded) is cls
    assert np.array_equal(loaded.predict(blobs.astype(np.float32)),
                          expected.predict(blobs.astype(np.float32)))


def test_bernoulli_from_sparse_npz_and_named_array(tmp_path, capsys):
    rng = np.random.RandomState(0)
    B = (rng.rand(200, 10) < np.where(np.arange(200) % 2, 0.8, 0.1)[:, None]).astype(np.uint8)
    sp.save_npz(tmp_path / "s.npz", sp.csr_matrix(B))
    status, _, err = run(capsys, "fit", tmp_path / "s.npz", "--model", "bmm", "-k", 2,
                         "--random-state", 0, "--out", tmp_path / "b", "-q")
    assert status == 0, err
    expected = fastem.BernoulliMixture(2, random_state=0).fit(sp.csr_matrix(B))
    assert np.array_equal(fastem.load(tmp_path / "b").means_, expected.means_)
    np.savez(tmp_path / "two.npz", bits=B, other=np.zeros(3))
    status, _, err = run(capsys, "predict", tmp_path / "b", tmp_path / "two.npz", "--array",
                         "bits", "--out", tmp_path / "l.txt", "-q")
    assert status == 0, err
    assert np.array_equal(np.loadtxt(tmp_path / "l.txt", dtype=int), expected.predict(B))
    status, _, err = run(capsys, "predict", tmp_path / "b", tmp_path / "two.npz",
                         "--out", tmp_path / "l.txt")
    assert "--array" in one_line_error(status, err)


def test_text_formats_header_detection_and_columns(tmp_path, capsys, blobs):
    expected = fastem.KMeans(3, random_state=0).fit(blobs[:, [0, 2]]).predict(blobs[:, [0, 2]])
    np.savetxt(tmp_path / "plain.csv", blobs, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "tabs.tsv", blobs, delimiter="\t", fmt="%.17g",
               header="x\ty\tz", comments="")
    with open(tmp_path / "names.csv", "w") as f:
        f.write("x,label,z\n")
        for row in blobs:
            f.write(f"{float(row[0])!r},group,{float(row[2])!r}\n")
    for path, columns in (("plain.csv", "0,2"), ("tabs.tsv", "x,z"), ("names.csv", "x,z"),
                          ("tabs.tsv", "0,-1")):
        status, _, err = run(capsys, "fit", tmp_path / path, "--model", "kmeans", "-k", 3,
                             "--random-state", 0, "--columns", columns, "--out",
                             tmp_path / "m", "--labels", tmp_path / "l.npy", "-q")
        assert status == 0, (path, err)
        assert np.array_equal(np.load(tmp_path / "l.npy"), expected), path
    status, _, err = run(capsys, "fit", tmp_path / "names.csv", "--model", "kmeans", "-k", 3,
                         "--out", tmp_path / "m")
    assert "line 2, column 'label': 'group' is not a number" in one_line_error(status, err)


@pytest.mark.parametrize("content, argv, message", [
    ("a,b\n1,2\n3,\n", [], "line 3, column 'b': empty field"),
    ("a,b\n1,2\n3,nan\n", [], "NaN in line 3, column 'b'"),
    ("1,2\n3,4,5\n", [], "line 2 has 3 fields, expected 2"),
    ("", [], "empty file"),
    ("a,b\n", [], "no data rows"),
    ("a,b\n1,2\n", ["--columns", "c"], "no column 'c'"),
    ("a,b\n1,2\n3,4\n", ["-k", 5], "n_samples=2 should be >= n_components=5"),
    ("a,b\n1,2\n3,4\n", ["--covariance", "round"], "covariance_type must be one of"),
    ("a,b\n1,2\n3,4\n", ["-k", 0], "-k: 0 is not >= 1"),
    ("a,b\n1,2\n3,4\n", ["--max-iter", "x"], "'x' is not an integer"),
])
def test_user_errors_are_one_line(tmp_path, capsys, content, argv, message):
    (tmp_path / "d.csv").write_text(content)
    args = ["fit", tmp_path / "d.csv", "--model", "gmm", "--out", tmp_path / "m"]
    if "-k" not in argv:
        args += ["-k", 1]
    status, _, err = run(capsys, *args, *argv)
    assert message in one_line_error(status, err)
    assert not (tmp_path / "m").exists()


def test_file_errors_are_one_line(tmp_path, capsys, blobs):
    np.save(tmp_path / "vec.npy", blobs[:, 0])
    np.save(tmp_path / "obj.npy", np.array([{}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "str.npy", np.array([["a"]]))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    (tmp_path / "d.xlsx").write_bytes(b"junk")
    cases = [(tmp_path / "missing.csv", "no such file"),
             (tmp_path, "is a directory"),
             (tmp_path / "vec.npy", "expected a 2-D array"),
             (tmp_path / "obj.npy", "never loads pickled data"),
             (tmp_path / "str.npy", "is not numeric"),
             (tmp_path / "junk.npz", "not a readable .npz"),
             (tmp_path / "d.xlsx", "unknown data format")]
    for path, message in cases:
        status, _, err = run(capsys, "fit", path, "--model", "gmm", "-k", 1, "--out",
                             tmp_path / "m")
        assert message in one_line_error(status, err), path
    np.save(tmp_path / "ok.npy", blobs)
    run(capsys, "fit", tmp_path / "ok.npy", "--model", "kmeans", "-k", 2, "--out",
        tmp_path / "m", "-q")
    for argv, message in [(["predict", tmp_path / "ok.npy", tmp_path / "ok.npy"],
                           "not a fastem model file"),
                          (["predict", tmp_path / "m", tmp_path / "vec.npy"], "2-D"),
                          (["predict", tmp_path / "m", tmp_path / "ok.npy", "--proba"],
                           "--proba needs a mixture"),
                          (["info", tmp_path / "nope"], "no such file"),
                          (["fit", tmp_path / "m", "--model", "gmm", "-k", 1, "--out",
                            tmp_path / "m2"], "unknown data format"),
                          (["select", tmp_path / "ok.npy", "--model", "gmm", "-k", "3:1"],
                           "invalid -k"),
                          (["fit"], "required"),
                          (["bogus"], "invalid choice")]:
        if argv[0] == "predict":
            argv = argv + ["--out", tmp_path / "o.npy"]
        status, _, err = run(capsys, *argv)
        assert message in one_line_error(status, err), argv


def test_select_prints_the_table_and_saves_the_best(tmp_path, capsys, blobs):
    np.save(tmp_path / "d.npy", blobs)
    status, out, err = run(capsys, "select", tmp_path / "d.npy", "--model", "gmm", "-k",
                           "1:5", "--covariance", "full,diag", "--random-state", 0,
                           "--out", tmp_path / "best", "--table", tmp_path / "t.csv")
    assert status == 0, err
    expected = fastem.select_model(blobs, "gmm", range(1, 6), ["full", "diag"],
                                   random_state=0)
    assert out.strip().splitlines()[0].split() == [c for c in expected.columns]
    assert len(out.strip().splitlines()) == 11 and "<- best" in out
    assert "best by bic: {'n_components': 3" in err
    assert np.array_equal(fastem.load(tmp_path / "best").means_,
                          expected.best_estimator.means_)
    table = np.genfromtxt(tmp_path / "t.csv", delimiter=",", names=True, dtype=None,
                          encoding="utf-8")
    assert np.array_equal(table["bic"], [r["bic"] for r in expected.table])
    status, out, _ = run(capsys, "select", tmp_path / "d.npy", "--model", "kmeans", "-k",
                         "2,3,4,6", "--criterion", "silhouette", "-q")
    assert status == 0 and "silhouette" in out.splitlines()[0]


def test_info_describes_the_model(tmp_path, capsys, blobs):
    fastem.GaussianMixture(3, random_state=0).fit(blobs).save(tmp_path / "g")
    status, out, _ = run(capsys, "info", tmp_path / "g")
    assert status == 0
    assert "GaussianMixture(n_components=3, random_state=0)" in out
    assert f"saved by fastem {fastem.__version__}" in out
    assert "3 components, 3 features" in out and "weight" in out


def test_progress_line_plain_and_terminal():
    plain = io.StringIO()
    line = ProgressLine(plain)
    for i in range(1, 4):
        line(Progress(1, 1, i, 10, -100.0 / i, np.nan if i == 1 else 1.0, 0.002,
                      "-inertia", i == 3))
    line.close()
    rows = plain.getvalue().splitlines()
    assert rows[0].startswith("iter 1/10  inertia 100")
    assert rows[-1].endswith("converged") and "\r" not in plain.getvalue()

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    line = ProgressLine(tty)
    line(Progress(2, 3, 1, 5, -1.5, np.nan, 0.01, "lower bound", False))
    line.close()
    assert tty.getvalue().startswith("\rinit 2/3 iter 1/5  lower bound -1.5")
    assert tty.getvalue().endswith("\n")
    quiet = io.StringIO()
    ProgressLine(quiet, quiet=True)(Progress(1, 1, 1, 5, 0.0, np.nan, 0.01, "x", False))
    assert quiet.getvalue() == ""


def test_commands_constant_matches_the_parser():
    from fastem.cli import COMMANDS, build_parser
    choices = [a for a in build_parser()._actions if getattr(a, "choices", None)][0].choices
    assert tuple(choices) == COMMANDS


def test_npy_data_stays_memory_mapped(tmp_path, blobs):
    from fastem.cli import read_data
    np.save(tmp_path / "d.npy", blobs)
    X = read_data(str(tmp_path / "d.npy"))
    assert isinstance(X, np.memmap) and not X.flags.writeable


def test_parse_k():
    assert parse_k("5") == [5]
    assert parse_k("1:4") == [1, 2, 3, 4]
    assert parse_k("2:10:4") == [2, 6, 10]
    assert parse_k("2,4,8") == [2, 4, 8]


def test_python_dash_m_runs_the_command_line(tmp_path, blobs):
    np.save(tmp_path / "d.npy", blobs)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-m", "fastem", "fit", str(tmp_path / "d.npy"),
                           "--model", "kmeans", "-k", "3", "--random-state", "0", "--out",
                           str(tmp_path / "m")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "fitted KMeans on 240 x 3 float64" in done.stderr
    done = subprocess.run([sys.executable, "-m", "fastem", "predict", str(tmp_path / "m"),
                           str(tmp_path / "nope.npy"), "--out", "-"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"fastem: error: {tmp_path / 'nope.npy'}: no such file"
    done = subprocess.run([sys.executable, "-m", "fastem", "--help"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0 and "fit" in done.stdout and "select" in done.stdout


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "fastem")
    if not os.path.exists(script):   # e.g. a source checkout run without installing
        pytest.fail(f"the fastem console script is not installed next to {sys.executable}; "
                    "pip install the package")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"fastem {fastem.__version__}"
