"""The ``fastem`` command line (also ``python -m fastem COMMAND``).

::

    fastem fit DATA --model {kmeans,minibatch-kmeans,gmm,bmm} -k K --out MODEL [--labels FILE]
    fastem predict MODEL DATA --out LABELS [--proba]
    fastem select DATA --model gmm -k 1:10 [--covariance full,diag | all] [--criterion bic]
    fastem info MODEL
    fastem warmup [--jobs N]
    fastem demo [--quick]

DATA is ``.npy`` (memory-mapped, never read whole), ``.csv`` / ``.tsv`` / ``.txt`` (numeric
columns; a header line is detected; ``--columns`` picks columns by name or 0-based index) or
``.npz`` (``--array NAME``, the only array, or a sparse matrix saved by
``scipy.sparse.save_npz``). User errors (unreadable files, non-numeric columns, NaN, wrong
shapes, bad options) print one line ``fastem: error: ...`` and exit with status 2; a fit
prints a live progress line on stderr (plain lines when stderr is not a terminal; none with
``--quiet``) and a summary.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

from .estimators import ESTIMATORS, SHORT_NAMES

#: the subcommands (``python -m fastem`` with anything else runs the demo)
COMMANDS = ("fit", "predict", "select", "info", "warmup", "demo")
COVARIANCES = ("full", "tied", "diag", "spherical")
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}


class UserError(Exception):
    """A mistake in the command or the data: one line on stderr, exit status 2."""


# ----------------------------------------------------------------------------------- data
def read_data(path, columns=None, array=None, delimiter=None):
    """The rows of DATA as a 2-D array (a read-only memmap for ``.npy`` without
    ``--columns``) or a CSR matrix (``.npz`` holding one); raises :class:`UserError`."""
    suffix = os.path.splitext(path)[1].lower()
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a data file")
    if suffix == ".npy":
        X = _read_npy(path)
    elif suffix == ".npz":
        X = _read_npz(path, array)
    elif suffix in TEXT_SUFFIXES:
        return _read_text(path, columns, delimiter or TEXT_SUFFIXES[suffix])
    else:
        raise UserError(f"{path}: unknown data format {suffix or '(no suffix)'!r}; use .npy, "
                        ".npz, .csv, .tsv or .txt")
    if columns is not None:
        X = X[:, _column_indices(columns, None, X.shape[1], path)]
    return X


def _read_npy(path):
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        raise UserError(f"{path}: not a .npy array file, or one of Python objects (fastem "
                        "never loads pickled data)") from None
    except OSError as e:
        raise UserError(f"{path}: unreadable .npy file ({e})") from None
    return _checked_matrix(X, path)


def _read_npz(path, name):
    import zipfile
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a readable .npz archive (not a zip file)")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            if "__fastem__" in files:
                raise UserError(f"{path}: this is a fastem model file, not data")
            if {"format", "data", "indices", "indptr", "shape"} <= set(files) and name is None:
                import scipy.sparse as sp
                return sp.load_npz(path).tocsr()
            if name is None:
                if len(files) != 1:
                    raise UserError(f"{path}: holds {len(files)} arrays ({', '.join(files)}); "
                                    "choose one with --array NAME")
                name = files[0]
            if name not in files:
                raise UserError(f"{path}: no array named {name!r} (it holds: "
                                f"{', '.join(files) or 'nothing'})")
            X = data[name]
    except (zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: not a readable .npz archive ({e})") from None
    except ValueError as e:
        raise UserError(f"{path}: unreadable array ({e})") from None
    return _checked_matrix(X, f"{path}[{name}]")


def _checked_matrix(X, where):
    if X.dtype.kind not in "biuf":
        raise UserError(f"{where}: dtype {X.dtype} is not numeric")
    if X.ndim != 2:
        hint = " (one feature: reshape it to (n, 1))" if X.ndim == 1 else ""
        raise UserError(f"{where}: expected a 2-D array (rows x features), got shape "
                        f"{X.shape}{hint}")
    return X


def _split(line, delimiter):
    fields = line.rstrip("\r\n").split(delimiter)
    return [f.strip().strip('"').strip("'") for f in fields]


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_text(path, columns, delimiter):
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable text file ({e})") from None
    if not first.strip():
        raise UserError(f"{path}: empty file")
    fields = _split(first, delimiter) if delimiter else first.split()
    has_header = not all(_is_number(v) for v in fields)
    names = fields if has_header else None
    usecols = _column_indices(columns, names, len(fields), path) if columns is not None \
        else list(range(len(fields)))
    try:
        # usecols only when chosen: without it loadtxt also rejects rows of another width
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "input contained no data": checked below
            X = np.loadtxt(path, delimiter=delimiter, skiprows=int(has_header),
                           usecols=usecols if columns is not None else None,
                           dtype=np.float64, ndmin=2, comments=None, encoding="utf-8")
    except ValueError:
        raise UserError(_diagnose_text(path, delimiter, has_header, names, usecols)) from None
    if X.shape[0] == 0:
        raise UserError(f"{path}: no data rows")
    bad = np.isnan(X)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise UserError(f"{path}: NaN in line {row + 1 + int(has_header)}, column "
                        f"{_column_name(names, usecols[col])}; remove or impute missing values")
    return X


def _column_name(names, j):
    return f"{names[j]!r}" if names is not None else str(j)


def _diagnose_text(path, delimiter, has_header, names, usecols):
    """The first field that does not parse as a number, as a one-line message."""
    width = len(names) if names is not None else None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if number == 1 and has_header:
                continue
            if not line.strip():
                continue
            fields = _split(line, delimiter) if delimiter else line.split()
            if width is None:
                width = len(fields)
            if len(fields) != width:
                return (f"{path}: line {number} has {len(fields)} fields, expected {width}")
            for j in usecols:
                if not _is_number(fields[j]):
                    what = "empty field" if not fields[j] else f"{fields[j]!r} is not a number"
                    hint = "; choose numeric columns with --columns" if fields[j] else \
                        "; remove or impute missing values"
                    return (f"{path}: line {number}, column {_column_name(names, j)}: "
                            f"{what}{hint}")
    return f"{path}: could not read the numbers"


def _column_indices(columns, names, width, path):
    """``--columns a,b`` / ``0,2`` (names need a header) as column indices."""
    chosen = []
    for item in (c.strip() for c in columns.split(",")):
        if names is not None and item in names:
            chosen.append(names.index(item))
        elif item.lstrip("-").isdigit() and -width <= int(item) < width:
            chosen.append(int(item) % width)
        else:
            known = f" (columns: {', '.join(names)})" if names is not None else \
                f" (0 to {width - 1})"
            raise UserError(f"{path}: no column {item!r}{known}")
    if not chosen:
        raise UserError("--columns is empty")
    return chosen


# ---------------------------------------------------------------------------- progress
class ProgressLine:
    """The live progress line of a fit on ``stream``: iteration, objective, change,
    ms/iteration and the time left to ``max_iter``; rewritten in place on a terminal (at
    most 10 times a second), plain lines at most once a second otherwise."""

    def __init__(self, stream=None, quiet=False):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_shown = 0.0
        self.width = 0
        self.seconds = []

    def __call__(self, p):
        if self.quiet:
            return
        self.seconds.append(p.seconds)
        now = time.perf_counter()
        every = 0.1 if self.tty else 1.0
        if p.iteration != 1 and not p.converged and p.iteration != p.max_iter \
                and now - self.last_shown < every:
            return
        self.last_shown = now
        sign, name = (-1, p.objective_name[1:]) if p.objective_name.startswith("-") else \
            (1, p.objective_name)
        recent = self.seconds[-20:]
        ms = 1e3 * sum(recent) / len(recent)
        eta = (p.max_iter - p.iteration) * ms / 1e3
        restart = f"init {p.restart}/{p.n_restarts} " if p.n_restarts > 1 else ""
        change = "" if p.change != p.change else f"  change {sign * p.change:+.3g}"
        text = (f"{restart}iter {p.iteration}/{p.max_iter}  {name} {sign * p.objective:.8g}"
                f"{change}  {ms:.1f} ms/iter  ETA {_duration(eta)}"
                f"{'  converged' if p.converged else ''}")
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty and self.width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def _duration(seconds):
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# ---------------------------------------------------------------------------- commands
def _estimator(args, k):
    cls = ESTIMATORS[SHORT_NAMES[args.model]]
    params = {"n_clusters" if args.model.endswith("kmeans") else "n_components": k}
    if args.covariance is not None:
        if args.model != "gmm":
            raise UserError("--covariance applies to --model gmm only")
        params["covariance_type"] = args.covariance
    for option, name in (("max_iter", "max_iter"), ("n_init", "n_init"), ("tol", "tol"),
                         ("random_state", "random_state")):
        value = getattr(args, option, None)
        if value is not None:
            params[name] = value
    return cls(**params)


def _summary(model, X, seconds):
    n, d = X.shape
    parts = [f"{type(model).__name__} on {n:,} x {d} {X.dtype}", f"{seconds:.3f} s",
             f"{model.n_iter_} iterations"]
    if hasattr(model, "converged_"):
        parts.append("converged" if model.converged_ else "did not converge")
        parts.append(f"lower bound {model.lower_bound_:.6g}")
    else:
        parts.append(f"inertia {model.inertia_:.6g}")
    return "fitted " + ", ".join(parts)


def cmd_fit(args):
    from .em import report_progress
    X = read_data(args.data, args.columns, args.array, args.delimiter)
    model = _estimator(args, args.k)
    line = ProgressLine(quiet=args.quiet)
    t0 = time.perf_counter()
    try:
        with report_progress(line):
            model.fit(X)
    finally:
        line.close()
    seconds = time.perf_counter() - t0
    model.save(args.out)
    if args.labels:
        _write_rows(args.labels, model.predict(X), proba=False)
    if not args.quiet:
        print(_summary(model, X, seconds) + f"; saved to {args.out}", file=sys.stderr)
    return 0


def _load_model(path):
    """(estimator, metadata) of a model file; one read."""
    from .persistence import load_with_metadata
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    return load_with_metadata(path)


def cmd_predict(args):
    model, _ = _load_model(args.model_file)
    X = read_data(args.data, args.columns, args.array, args.delimiter)
    if args.proba:
        if not hasattr(model, "predict_proba"):
            raise UserError(f"--proba needs a mixture model; {type(model).__name__} gives "
                            "labels only")
        out = model.predict_proba(X)
    else:
        out = model.predict(X)
    _write_rows(args.out, out, proba=args.proba)
    if not args.quiet:
        print(f"wrote {out.shape[0]:,} {'rows of probabilities' if args.proba else 'labels'} "
              f"to {args.out}", file=sys.stderr)
    return 0


def _write_rows(path, values, proba):
    """Labels or probabilities: ``.npy`` binary, anything else text (CSV with a header for
    probabilities; ``-`` is stdout)."""
    if path.lower().endswith(".npy"):
        np.save(path, values)
        return
    stream = sys.stdout if path == "-" else open(path, "w", encoding="utf-8")
    try:
        if proba:
            stream.write(",".join(f"component{j}" for j in range(values.shape[1])) + "\n")
            np.savetxt(stream, values, delimiter=",", fmt="%.10g")
        else:
            np.savetxt(stream, values, fmt="%d")
    finally:
        if stream is not sys.stdout:
            stream.close()


def parse_k(text):
    """``5``, ``1:10`` (inclusive), ``2:20:2`` or ``2,4,8`` as a list of positive ints."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1 or stop < start:
                raise ValueError
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid -k {text!r}: use K, START:STOP (inclusive), START:STOP:STEP or K1,K2,...") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"invalid -k {text!r}: numbers of components are >= 1")
    return values


def cmd_select(args):
    from .selection import select_model
    X = read_data(args.data, args.columns, args.array, args.delimiter)
    types = None
    if args.covariance is not None:
        if args.model != "gmm":
            raise UserError("--covariance applies to --model gmm only")
        types = list(COVARIANCES) if args.covariance == "all" else args.covariance.split(",")
        for ct in types:
            if ct not in COVARIANCES:
                raise UserError(f"--covariance {ct!r}: use {', '.join(COVARIANCES)} or all")
    template = _estimator(argparse.Namespace(**{**vars(args), "covariance": None}), 1)
    n_fits = len(args.k) * len(types or [None]) * (1 + (args.cv or 0))
    if not args.quiet:
        print(f"fitting {n_fits} models on {X.shape[0]:,} x {X.shape[1]} ...", file=sys.stderr)
    t0 = time.perf_counter()
    result = select_model(X, template, n_components=args.k, covariance_types=types,
                          criterion=args.criterion, cv=args.cv,
                          random_state=args.random_state)
    print(result)
    if not args.quiet:
        print(f"best by {result.criterion}: {result.best_params} "
              f"({time.perf_counter() - t0:.2f} s)", file=sys.stderr)
    if args.out:
        result.best_estimator.save(args.out)
    if args.table:
        with open(args.table, "w", encoding="utf-8") as f:
            f.write(",".join(result.columns) + "\n")
            for row in result.table:
                f.write(",".join("" if v is None else str(v) for v in row.values()) + "\n")
    return 0


def cmd_info(args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the version is printed below instead
        model, meta = _load_model(args.model_file)
    print(f"{args.model_file}: {model!r}")
    print(f"  saved by fastem {meta['fastem_version']} (model file format "
          f"{meta['format_version']}), {os.path.getsize(args.model_file):,} bytes")
    if not hasattr(model, "n_features_in_"):
        print("  not fitted")
        return 0
    centers = getattr(model, "cluster_centers_", getattr(model, "means_", None))
    print(f"  {centers.shape[0]} components, {model.n_features_in_} features, "
          f"{model.n_iter_} iterations")
    if hasattr(model, "converged_"):
        print(f"  converged: {'yes' if model.converged_ else 'no'}, lower bound "
              f"{model.lower_bound_:.8g}")
    else:
        print(f"  inertia {model.inertia_:.8g}")
    weights = getattr(model, "weights_", None)
    with np.printoptions(precision=4, suppress=True, linewidth=100, threshold=200):
        for j, c in enumerate(centers[:20]):
            w = f"weight {weights[j]:.4f}  " if weights is not None else ""
            print(f"  {j:>3}: {w}{'mean' if weights is not None else 'centre'} "
                  f"{np.array2string(c[:8])}{' ...' if c.shape[0] > 8 else ''}")
        if centers.shape[0] > 20:
            print(f"  ... {centers.shape[0] - 20} more")
    return 0


def cmd_warmup(args):
    from ._warmup import warmup
    warmup(n_jobs=args.jobs)
    return 0


def cmd_demo(args):
    from . import demo
    if args.n_samples < 100:
        raise UserError("--n-samples must be at least 100")
    demo.main(args)
    return 0


# ------------------------------------------------------------------------------ parsing
class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line and status 2, like every other user error
        raise UserError(f"{self.prog}: {message}")


def _number(kind, low):
    """An argparse type: ``kind`` (int or float) at least ``low``."""
    what = "an integer" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"{text} is not >= {low}")
        return value

    return parse


_positive_int, _nonnegative_int, _nonnegative_float = (_number(int, 1), _number(int, 0),
                                                       _number(float, 0.0))


def _data_options(p):
    p.add_argument("--columns", help="comma-separated column names (header) or 0-based "
                   "indices to use (text files; also .npy/.npz columns)")
    p.add_argument("--array", help=".npz: the name of the array to use")
    p.add_argument("--delimiter", help="text files: field separator (default: ',' for .csv, "
                   "tab for .tsv, whitespace for .txt)")


def _fit_options(p):
    p.add_argument("--model", required=True, choices=sorted(SHORT_NAMES))
    p.add_argument("--covariance", help="gmm: full, tied, diag or spherical (select: a "
                   "comma-separated list or 'all')")
    p.add_argument("--max-iter", type=_positive_int)
    p.add_argument("--n-init", type=_positive_int)
    p.add_argument("--tol", type=_nonnegative_float)
    p.add_argument("--random-state", type=_nonnegative_int)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")


def build_parser():
    from ._version import __version__
    parser = _Parser(prog="fastem", description="Fast EM clustering from the shell: KMeans, "
                     "Gaussian and Bernoulli mixtures on fastem's Numba kernels.",
                     epilog="Run 'fastem COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"fastem {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    p = sub.add_parser("fit", help="fit a model to DATA and save it",
                       description="Fit a model to DATA and save it to --out (fastem's model "
                       "file: fastem.load() reads it).")
    p.add_argument("data", metavar="DATA")
    _fit_options(p)
    p.add_argument("-k", type=_positive_int, required=True,
                   help="number of clusters / components")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    p.add_argument("--labels", metavar="FILE", help="also write the training labels "
                   "(.npy, or text; '-' for stdout)")
    _data_options(p)
    p.set_defaults(run=cmd_fit)

    p = sub.add_parser("predict", help="labels (or probabilities) of DATA under MODEL")
    p.add_argument("model_file", metavar="MODEL")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", required=True, metavar="LABELS",
                   help=".npy, or text (CSV for --proba); '-' for stdout")
    p.add_argument("--proba", action="store_true", help="mixtures: component probabilities")
    p.add_argument("-q", "--quiet", action="store_true")
    _data_options(p)
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("select", help="choose the number of components (BIC, AIC, ...)",
                       description="Fit every K (and covariance type) and print the table.")
    p.add_argument("data", metavar="DATA")
    _fit_options(p)
    p.add_argument("-k", type=parse_k, required=True,
                   help="K, START:STOP (inclusive), START:STOP:STEP or K1,K2,...")
    p.add_argument("--criterion", help="bic (default for mixtures), aic or cv; kmeans: "
                   "elbow (default) or silhouette")
    p.add_argument("--cv", type=_positive_int, help="folds for held-out log-likelihood")
    p.add_argument("--out", metavar="MODEL", help="save the best model")
    p.add_argument("--table", metavar="CSV", help="also write the table as CSV")
    _data_options(p)
    p.set_defaults(run=cmd_select)

    p = sub.add_parser("info", help="describe a saved model")
    p.add_argument("model_file", metavar="MODEL")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("warmup", help="compile every kernel into the cache (all cores)")
    p.add_argument("--jobs", type=_positive_int, help="processes (default: one per CPU)")
    p.set_defaults(run=cmd_warmup)

    p = sub.add_parser("demo", help="the demo of 'python -m fastem'")
    from .demo import add_arguments
    add_arguments(p)
    p.set_defaults(run=cmd_demo)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fastem: warning: {message}", file=sys.stderr)


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    show = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return 2
        args = parser.parse_args(argv)
        return args.run(args)
    except BrokenPipeError:
        # the reader went away (e.g. `fastem predict ... --out - | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except UserError as e:
        print(f"fastem: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, MemoryError) as e:
        # the estimators' and loaders' own checks: clear messages, no traceback
        # (FASTEM_TRACEBACK=1 shows it, for bug reports)
        if os.environ.get("FASTEM_TRACEBACK"):
            raise
        print(f"fastem: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastem: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show


def console_main():
    """Entry point of the ``fastem`` console script."""
    sys.exit(main())
