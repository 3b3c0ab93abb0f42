"""Run every example at full size and write its picture to docs/examples/ (the README's
pictures):  python examples/make_pictures.py [--out DIR]"""
import argparse
import glob
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    sys.path.insert(0, HERE)
    from _common import PICTURES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=PICTURES)
    out = parser.parse_args().out
    for path in sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        print(f"== {name}")
        t0 = time.perf_counter()
        importlib.import_module(name).main(["--out", out])
        print(f"   ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
