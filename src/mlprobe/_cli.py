"""The ``mlprobe`` command line: build a reference profile, evaluate drift of a batch.

(``mlprobe rules`` and ``mlprobe dashboard`` are dispatched from here too; their code is in
:mod:`mlprobe._cli_ops`.)

``mlprobe profile DATA -o PROFILE.json`` reads CSV (stdlib ``csv``, in chunks) or Parquet
(when pyarrow is installed) and writes a :class:`~mlprobe._profile.ReferenceProfile`.
Memory: the profile needs exact reference quantiles, so numeric columns are held as float64
arrays (8 bytes per cell: ~800 MB for 100M cells) and categorical columns as interned
strings; sample very large files before profiling.

``mlprobe drift PROFILE.json CURRENT`` streams the current file chunk by chunk into mergeable
window summaries (constant memory) and prints the evaluation. Exit codes (also in ``--help``):
0 normally, 1 when ``--fail-on`` is crossed by any drift, data-quality or model-quality
status, 2 on usage, input or profile errors (a one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._cli_io import CliError, csv_field_limit, emit, read_table
from ._cli_ops import add_commands as add_ops_commands
from ._cli_quality import BatchQuality, markdown_section
from ._cli_report import markdown
from ._drift_eval import evaluate_dataset
from ._drift_report import STATUS_RANK, worst
from ._drift_spec import DriftSpec
from ._feature_input import text_numbers
from ._profile import ReferenceProfile
from ._profile_format import ProfileLimits
from ._quality_spec import QualitySpec
from ._version import __version__
from ._window import DatasetWindow
from .errors import MlprobeError

__all__ = ["main"]


EXIT_CODES = """\
exit codes:
  0  done; nothing reached the --fail-on level
  1  mlprobe drift: a drift, data-quality or model-quality status reached the --fail-on level
  2  usage error, unreadable input, or an invalid profile (one line on stderr)
"""


def _looks_numeric(cells: Sequence[str]) -> bool:
    # A column is numeric when >= 95% of its non-empty cells in the first chunk parse as
    # numbers; so one stray "oops" does not turn a numeric feature categorical.
    values = [c for c in cells if c.strip()]
    if not values:
        return True
    parsed, _ = text_numbers(values)
    return float(np.mean(np.isfinite(parsed))) >= 0.95


def _check_output(path: str) -> None:
    """Fail before the (long) profiling when the output cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"-o {path!r} is a directory; give a file name")
    if not os.path.isdir(directory):
        raise CliError(f"-o {path!r}: directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise CliError(f"-o {path!r}: directory {directory!r} is not writable")


def _unique_header(header: list[str], path: str) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise CliError(f"{path!r} has two columns named {name!r}; rename one")
        seen.add(name)


def _cmd_profile(args: argparse.Namespace) -> int:
    _check_output(args.output)
    header, chunks = read_table(args.data, progress=args.progress or sys.stderr.isatty(),
                                encoding=args.encoding)
    _unique_header(header, args.data)
    for flag, names in (("--target", [args.target]), ("--prediction", [args.prediction]),
                        ("--categorical", args.categorical), ("--exclude", args.exclude),
                        ("--sensitive", args.sensitive)):
        missing = [n for n in names if n is not None and n not in header]
        if missing:
            raise CliError(f"{flag}: no column {missing[0]!r} in {args.data!r} "
                           f"(columns: {', '.join(header)})")
    skip = set(args.exclude) | {args.target, args.prediction}
    features = [h for h in header if h not in skip]
    if not features:
        raise CliError("no feature columns left after --target/--prediction/--exclude")
    numeric: dict[str, bool] = {}
    parts: dict[str, list[np.ndarray]] = {h: [] for h in header if h not in set(args.exclude)}
    intern: dict[str, str] = {}
    for chunk in chunks:
        columns, _, _ = chunk.columns(None)  # strict: a ragged row is an error here
        for name in parts:
            cells = columns[name]
            if name not in numeric:
                # a typed (Parquet) column is numeric by its dtype; CSV text is sniffed
                numeric[name] = name not in args.categorical and (
                    cells.dtype.kind in "fiub" if not chunk.text else _looks_numeric(cells))
            if not chunk.text:
                parts[name].append(cells)
            elif numeric[name]:
                parts[name].append(text_numbers(cells)[0])
            else:
                parts[name].append(np.asarray([intern.setdefault(c, c) for c in cells],
                                              dtype=object))  # one object per level
    cols = {n: np.concatenate(p) if p else np.zeros(0) for n, p in parts.items()}
    categorical = [n for n in features if not numeric.get(n, True)]
    quality = None
    if args.task or args.positive_label is not None or args.threshold is not None:
        if not (args.target and args.prediction):
            raise CliError("--task, --positive-label and --threshold describe the reference "
                           "quality: give --target and --prediction too")
        quality = QualitySpec(task=args.task, positive_label=args.positive_label,
                              threshold=0.5 if args.threshold is None else args.threshold)
    profile = ReferenceProfile.from_data(
        {n: cols[n] for n in features},
        y=cols[args.target] if args.target else None,
        predictions=cols[args.prediction] if args.prediction else None,
        categorical=categorical, n_bins=args.bins, max_categories=args.max_categories,
        sensitive=args.sensitive, target_name=args.target, prediction_name=args.prediction,
        quality=quality)
    try:
        profile.save(args.output)
    except OSError as exc:
        raise CliError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    size = os.path.getsize(args.output)
    print(f"profiled {profile.n_rows} rows, {len(features)} features "
          f"({len(categorical)} categorical) -> {args.output} ({size / 1024:.1f} KiB)",
          file=sys.stderr)
    if profile.quality is not None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in profile.quality.metrics.items()
                          if k in ("accuracy", "roc_auc", "f1", "f1_macro", "rmse", "mae"))
        print(f"reference quality ({profile.quality.task}, {profile.quality.pairs} pairs): "
              f"{shown}", file=sys.stderr)
    return 0


def _role_column(flag: str, given: str | None, stored: str | None, header: list[str],
                 path: str) -> str | None:
    """The column holding the prediction (or target): the flag, else the profile's name."""
    if given is not None:
        if given not in header:
            raise CliError(f"{flag}: no column {given!r} in {path!r}")
        return given
    if stored is not None and stored in header:
        return stored
    if stored is not None:
        print(f"mlprobe: note: the profile's {flag[2:]} column {stored!r} is not in {path!r}; "
              f"no {flag[2:]} drift", file=sys.stderr)
    return None


def _cmd_drift(args: argparse.Namespace) -> int:
    limits = ProfileLimits(max_bytes=args.max_profile_bytes) if args.max_profile_bytes else None
    profile = ReferenceProfile.load(args.profile, limits=limits)
    header, chunks = read_table(args.current, progress=args.progress, encoding=args.encoding)
    _unique_header(header, args.current)
    pred_col = _role_column("--prediction", args.prediction, profile.prediction_name, header,
                            args.current)
    target_col = _role_column("--target", args.target, profile.target_name, header,
                              args.current)
    if target_col is not None and profile.target is None:
        if args.target is not None:
            raise CliError("--target: the profile has no target distribution; build it with "
                           "`mlprobe profile ... --target COLUMN`")
        target_col = None
    if pred_col is not None and profile.prediction is None:
        pred_col = None  # nothing to compare against; the column is simply not a feature
    skip = set(args.exclude) | {c for c in (pred_col, target_col) if c is not None}
    window = DatasetWindow(profile, target=target_col is not None)
    quality = None
    if profile.quality is not None and pred_col is not None and target_col is not None:
        quality = BatchQuality(profile, min_count=args.min_count, drop=args.quality_drop)
    for chunk in chunks:
        columns, rows, unaligned = chunk.columns(window.schema_violations)
        preds = columns[pred_col] if pred_col is not None else None
        targets = columns[target_col] if target_col is not None else None
        batch: Any = {n: c for n, c in columns.items() if n not in skip}
        if not batch:  # only skipped columns: each row lacks every feature
            batch = [{}] * rows
        window.update(batch, predictions=preds, targets=targets, text=chunk.text)
        window.add_unaligned(unaligned)
        if quality is not None:
            quality.update(preds, targets, text=chunk.text)
    spec = DriftSpec(min_count=args.min_count) if args.min_count else DriftSpec()
    report = evaluate_dataset(profile, window, spec)
    model_quality = quality.report() if quality is not None else None
    if args.format == "json":
        doc = report.to_dict()
        if model_quality is not None:
            doc["status"] = worst((doc["status"], model_quality.status))
            doc["model_quality"] = model_quality.to_dict()
        emit(json.dumps(doc, indent=2, allow_nan=False))
    elif args.format == "html":
        from ._cli_ops import html_report

        emit(html_report(profile, window, report, args.current, model_quality))
    else:
        text = markdown(report, prediction=pred_col, target=target_col)
        if model_quality is not None:
            text += "\n" + markdown_section(model_quality)
        emit(text)
    verdict = report.worst_status
    if model_quality is not None:
        verdict = worst((verdict, model_quality.status))
    if args.fail_on and STATUS_RANK.get(verdict, -1) >= STATUS_RANK[args.fail_on]:
        return 1
    return 0



def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(
        prog="mlprobe", formatter_class=formatter, epilog=EXIT_CODES,
        description="mlprobe offline tools: reference profiles, batch drift checks, Prometheus "
                    "rules and the Grafana dashboard.")
    ap.add_argument("--version", action="version", version=f"mlprobe {__version__}",
                    help="print the version and exit")
    ap.add_argument("--traceback", action="store_true",
                    help="on an unexpected internal error, show the Python traceback")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            help="profile, drift, rules or dashboard (COMMAND --help for "
                            "its options)")
    p = sub.add_parser("profile", help="build a reference profile from training data",
                       formatter_class=formatter, epilog=EXIT_CODES,
                       description="Build a reference profile (JSON, no raw rows) from "
                       "training data.")
    p.add_argument("data", help="training data: CSV with a header row, or .parquet/.pq "
                   "(needs pyarrow)")
    p.add_argument("-o", "--output", required=True, metavar="PROFILE",
                   help="profile JSON to write (replaced atomically)")
    p.add_argument("--target", metavar="COL", help="label column: profiled as the target and "
                   "remembered, so `mlprobe drift` checks label drift on it by default")
    p.add_argument("--prediction", metavar="COL", help="model output column: profiled for "
                   "prediction drift and remembered by name")
    p.add_argument("--categorical", nargs="+", default=[], metavar="COL",
                   help="columns to treat as categorical (default: columns that are not "
                   "numbers in at least 95%% of their cells)")
    p.add_argument("--exclude", nargs="+", default=[], metavar="COL",
                   help="columns to leave out of the profile")
    p.add_argument("--sensitive", nargs="+", default=[], metavar="COL",
                   help="features whose raw values must not leave the serving process: "
                   "category bins exported by index, no min/max/mean/stddev/quantiles "
                   "(see docs/privacy.md)")
    p.add_argument("--bins", type=int, default=100, metavar="N",
                   help="fine bins per numeric feature, 10 to 1000 (default 100; KS error "
                   "bound about 1/N)")
    p.add_argument("--max-categories", type=int, default=50, metavar="N",
                   help="levels kept per categorical feature, up to 1000 (default 50); rarer "
                   "levels count as __other__")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"),
                   help="with --target and --prediction: the model's task for its reference "
                   "quality (default: inferred from the two columns)")
    p.add_argument("--positive-label", metavar="LABEL", help="a binary model's positive class "
                   "(default: the greater of the two labels)")
    p.add_argument("--threshold", type=float, metavar="X", help="a binary score above X "
                   "predicts the positive class (default 0.5)")
    p.add_argument("--encoding", metavar="NAME", help="text encoding of a CSV file (default: "
                   "UTF-8, or UTF-16 when the file starts with its byte-order mark)")
    p.add_argument("--progress", action="store_true",
                   help="show a progress bar even when stderr is not a terminal")
    p.set_defaults(func=_cmd_profile)
    d = sub.add_parser("drift", help="evaluate drift of a data file against a profile",
                       formatter_class=formatter, epilog=EXIT_CODES,
                       description="Evaluate drift and data quality of a data file against a "
                       "reference profile.")
    d.add_argument("profile", help="profile JSON written by `mlprobe profile`")
    d.add_argument("current", help="current data: CSV with a header row, or .parquet/.pq "
                   "(needs pyarrow)")
    d.add_argument("--format", choices=("json", "markdown", "html"), default="markdown",
                   help="report format on stdout (default markdown; html: one self-contained "
                   "page with a chart per column, no external asset)")
    d.add_argument("--fail-on", choices=("warning", "critical"),
                   help="exit 1 when any drift, data-quality or model-quality status "
                   "(dataset, feature, prediction, target, or a metric against the profile's "
                   "reference quality) reaches this level")
    d.add_argument("--prediction", metavar="COL", help="model output column in CURRENT "
                   "(default: the column the profile was built with, when present)")
    d.add_argument("--target", metavar="COL", help="label column in CURRENT: label drift "
                   "against the profile's target, reported next to prediction drift "
                   "(default: the profile's target column, when present)")
    d.add_argument("--exclude", nargs="+", default=[], metavar="COL",
                   help="columns of CURRENT to ignore (not counted as unexpected)")
    d.add_argument("--min-count", type=_positive_int, metavar="N",
                   help="values a feature (and rows a quality check) needs for a status "
                   "(default 1000)")
    d.add_argument("--quality-drop", type=float, nargs=2, metavar=("WARNING", "CRITICAL"),
                   help="relative drop of accuracy-like metrics against the profile's reference "
                   "quality for a warning / critical model-quality status (default 0.02 0.05)")
    d.add_argument("--max-profile-bytes", type=_positive_int, metavar="N",
                   help=f"largest profile file read (default {ProfileLimits().max_bytes})")
    d.add_argument("--encoding", metavar="NAME", help="text encoding of a CSV file (default: "
                   "UTF-8, or UTF-16 when the file starts with its byte-order mark)")
    d.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    d.set_defaults(func=_cmd_drift)
    add_ops_commands(sub, formatter, EXIT_CODES)
    return ap


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 drift over --fail-on, 2 error)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with csv_field_limit():
            return int(args.func(args))
    except (CliError, MlprobeError) as exc:
        print(f"mlprobe: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        print("mlprobe: error: out of memory; sample the data file first", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug in mlprobe: one line unless asked
        if args.traceback:
            raise
        print(f"mlprobe: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug in "
              "mlprobe; rerun with --traceback and report it)", file=sys.stderr)
        return 2
