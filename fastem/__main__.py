"""``python -m fastem``: the demo; ``python -m fastem COMMAND ...``: the ``fastem`` command
line (fit, predict, select, info, warmup, demo; see :mod:`fastem.cli`)."""
import sys

from .cli import COMMANDS, main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        argv = ["demo"] + argv   # python -m fastem [--quick ...] keeps running the demo
    sys.exit(main(argv))
