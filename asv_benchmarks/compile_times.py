"""First-contact costs as a table (issue 9), measured in fresh processes with empty caches::

    python asv_benchmarks/compile_times.py

Prints the import time (with and without scikit-learn importable), each estimator's cold
first fit (import included), everything of all estimators in one process, the wall time of
``python -m fastem warmup``, and each estimator's warm-cache first-fit overhead. The same
measurements are the ``track_`` benchmarks of ``bench_compile.py`` (asv).
"""
import os
import platform

try:  # imported by asv's benchmark discovery (a package module)
    from .bench_compile import FIRST_FITS, cold_everything, first_fits, import_time, warmup_wall
except ImportError:  # run as a script
    from bench_compile import FIRST_FITS, cold_everything, first_fits, import_time, warmup_wall

TARGETS = {"import": 0.7, "import without scikit-learn": 0.6, "kmeans": 6.0, "gmm_full": 10.0,
           "bernoulli": 8.0, "everything": 45.0, "warmup": 30.0, "warm overhead": 0.3}


def main():
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    rows = [("import numpy, fastem", import_time(), TARGETS["import"]),
            ("same, scikit-learn not importable", import_time(block_sklearn=True),
             TARGETS["import without scikit-learn"])]
    fits = {name: first_fits(name) for name in FIRST_FITS}
    for name, code in FIRST_FITS.items():
        rows.append((f"cold: import + {code}", fits[name][0], TARGETS[name]))
    rows.append(("cold: everything, both dtypes, dense + CSR", cold_everything(),
                 TARGETS["everything"]))
    rows.append(("python -m fastem warmup (empty cache)", warmup_wall(), TARGETS["warmup"]))
    for name, code in FIRST_FITS.items():
        rows.append((f"warm: first minus later {code}", fits[name][1], TARGETS["warm overhead"]))
    print(f"{'step':<62}{'seconds':>9}{'target':>8}")
    for label, seconds, target in rows:
        flag = "" if seconds <= target else "  (over)"
        print(f"{label:<62}{seconds:>9.2f}{target:>8.1f}{flag}")


if __name__ == "__main__":
    main()
