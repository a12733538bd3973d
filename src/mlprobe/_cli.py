"""The ``mlprobe`` command line: build a reference profile, evaluate drift of a batch.

``mlprobe profile DATA -o PROFILE.json`` reads CSV (stdlib ``csv``, in chunks) or Parquet
(when pyarrow is installed) and writes a :class:`~mlprobe._profile.ReferenceProfile`.
Memory: the profile needs exact reference quantiles, so numeric columns are held as float64
arrays (8 bytes per cell: ~800 MB for 100M cells) and categorical columns as interned
strings; sample very large files before profiling.

``mlprobe drift PROFILE.json CURRENT`` streams the current file chunk by chunk into mergeable
window summaries (constant memory) and prints the evaluation. Exit codes: 0 normally, 1 when
``--fail-on`` is crossed by the dataset verdict or any feature/prediction status, 2 on usage,
input or profile errors (a one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ._drift import DatasetWindow, DriftReport, DriftSpec, evaluate_dataset
from ._profile import ReferenceProfile
from .errors import MlprobeError

__all__ = ["main"]

CHUNK_ROWS = 50_000
_RANK = {"ok": 0, "warning": 1, "critical": 2}


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class _Progress:
    """A minimal stderr progress bar (stdlib only), redrawn at most every 1%."""

    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self.total, self.enabled, self.label = max(total, 1), enabled, label
        self.done = 0
        self._shown = -1

    def advance(self, n: int) -> None:
        self.done += n
        pct = min(100, self.done * 100 // self.total)
        if self.enabled and pct != self._shown:
            self._shown = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:3d}%")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _parse_floats(cells: Sequence[str]) -> np.ndarray:
    """Parse a chunk of CSV cells: numbers, NaN for missing, +inf for unparseable (invalid)."""
    try:
        # numpy parses a list of numeric strings in C; falls back only for dirty chunks
        return np.asarray(cells, dtype=np.float64)
    except ValueError:
        out = np.full(len(cells), np.inf)
        for i, cell in enumerate(cells):
            text = cell.strip()
            if not text or text.lower() in ("na", "nan", "null", "none", "n/a", "<na>"):
                out[i] = np.nan
                continue
            try:
                out[i] = float(text)
            except ValueError:
                pass
        return out


def _looks_numeric(cells: Sequence[str]) -> bool:
    # A column is numeric when >= 95% of its non-empty cells in the first chunk parse as
    # numbers; so one stray "oops" does not turn a numeric feature categorical.
    values = [c for c in cells if c.strip()]
    if not values:
        return True
    parsed = _parse_floats(values)
    return float(np.mean(np.isfinite(parsed))) >= 0.95


def _csv_chunks(path: str, progress: bool) -> tuple[list[str], Iterator[list[list[str]]]]:
    # The header is read on its own so that a usage error found after it (an unknown
    # --target, say) never leaves the file open; the generator reopens the file.
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except OSError as exc:
        raise CliError(f"cannot read {path!r}: {exc.strerror}") from exc
    if not header:
        raise CliError(f"{path!r} is empty: expected a header row")
    width = len(header)

    def chunks() -> Iterator[list[list[str]]]:
        bar = _Progress(os.path.getsize(path), progress, os.path.basename(path))
        with open(path, newline="", encoding="utf-8") as fh:

            def lines() -> Iterator[str]:
                for line in fh:
                    bar.advance(len(line))
                    yield line

            reader = csv.reader(lines())
            next(reader, None)
            try:
                while True:
                    rows = [r for _, r in zip(range(CHUNK_ROWS), reader)]
                    if not rows:
                        return
                    # ragged rows are padded / cut to the header width (absent cells = missing)
                    yield [r if len(r) == width else (r + [""] * width)[:width] for r in rows]
            finally:
                bar.close()

    return header, chunks()


def _table_chunks(path: str, progress: bool) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """Yield ``{column: cells}`` chunks from a CSV or Parquet file."""
    if path.lower().endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise CliError("reading Parquet needs pyarrow: pip install pyarrow") from exc
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {path!r}: {exc}") from exc
        cols = {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}
        return list(cols), iter([cols])
    header, rows = _csv_chunks(path, progress)

    def columns() -> Iterator[dict[str, Any]]:
        for chunk in rows:
            yield {name: [r[i] for r in chunk] for i, name in enumerate(header)}

    return header, columns()


def _convert(cells: Any, numeric: bool) -> np.ndarray:
    if isinstance(cells, np.ndarray):  # Parquet columns are typed already
        return cells
    if numeric:
        return _parse_floats(cells)
    return np.asarray(cells, dtype=object)


def _cmd_profile(args: argparse.Namespace) -> int:
    header, chunks = _table_chunks(args.data, args.progress or sys.stderr.isatty())
    for flag, names in (("--target", [args.target]), ("--prediction", [args.prediction]),
                        ("--categorical", args.categorical), ("--exclude", args.exclude)):
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
        for name in parts:
            cells = chunk[name]
            if name not in numeric:
                # a typed (Parquet) column is numeric by its dtype; CSV text is sniffed
                typed = isinstance(cells, np.ndarray)
                numeric[name] = name not in args.categorical and (
                    cells.dtype.kind in "fiub" if typed else _looks_numeric(cells))
            if not numeric[name] and not isinstance(cells, np.ndarray):
                cells = [intern.setdefault(c, c) for c in cells]  # one object per level
            parts[name].append(_convert(cells, numeric[name]))
    cols = {n: np.concatenate(p) if p else np.zeros(0) for n, p in parts.items()}
    categorical = [n for n in features if not numeric.get(n, True)]
    profile = ReferenceProfile.from_data(
        {n: cols[n] for n in features},
        y=cols[args.target] if args.target else None,
        predictions=cols[args.prediction] if args.prediction else None,
        categorical=categorical, n_bins=args.bins, max_categories=args.max_categories)
    profile.save(args.output)
    size = os.path.getsize(args.output)
    print(f"profiled {profile.n_rows} rows, {len(features)} features "
          f"({len(categorical)} categorical) -> {args.output} ({size / 1024:.1f} KiB)",
          file=sys.stderr)
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    profile = ReferenceProfile.load(args.profile)
    header, chunks = _table_chunks(args.current, args.progress)
    if args.prediction and args.prediction not in header:
        raise CliError(f"--prediction: no column {args.prediction!r} in {args.current!r}")
    skip = set(args.exclude) | {args.target}
    window = DatasetWindow(profile)
    for chunk in chunks:
        batch = {}
        for name in header:
            if name in skip or name == args.prediction:
                continue
            ref = profile.features.get(name)
            batch[name] = _convert(chunk[name], ref is not None and ref.kind == "numeric")
        preds = None
        if args.prediction and profile.prediction is not None:
            preds = _convert(chunk[args.prediction], profile.prediction.kind == "numeric")
        window.update(batch, predictions=preds)
    spec = DriftSpec(min_count=args.min_count) if args.min_count else DriftSpec()
    report = evaluate_dataset(profile, window, spec)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        print(_markdown(report))
    if args.fail_on and _RANK.get(report.worst_status, -1) >= _RANK[args.fail_on]:
        return 1
    return 0


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _markdown(report: DriftReport) -> str:
    d = report.to_dict()
    share = d["drift_share"]
    lines = [
        f"# Drift report: **{d['status']}**", "",
        f"{d['n_drifted']} of {d['n_evaluated']} evaluated features drifted "
        f"(share {_fmt(share)}{', importance-weighted' if d['drift_share_weighted'] else ''}); "
        f"{d['rows']} rows.",
    ]
    if d["schema_violations"]:
        lines.append("Schema violations: " + ", ".join(
            f"{k} {v}" for k, v in sorted(d["schema_violations"].items())))
    lines += ["", "| feature | type | status | psi | ks | wasserstein/σ | js | linf | "
              "missing share | quality |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = list(report.features.values())
    if report.prediction is not None:
        rows.append(report.prediction)
    for f in rows:
        s = f.statistics
        lines.append(
            f"| {f.name} | {f.kind} | {f.status} | {_fmt(s.get('psi'))} | {_fmt(s.get('ks'))} | "
            f"{_fmt(s.get('wasserstein'))} | {_fmt(s.get('js'))} | {_fmt(s.get('linf'))} | "
            f"{_fmt(f.quality.get('missing_share'))} | {f.quality_status} |")
    lines += ["", "PSI: reference deciles (categorical: levels + __other__), eps 1e-4, natural "
              "log. KS: 100 reference-quantile bins (error bound in the JSON output). "
              "Wasserstein: normalised by the reference population std. JS: distance, base "
              f"{report.spec.js_base:g}."]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mlprobe", description="mlprobe offline tools: reference "
                                 "profiles and batch drift checks.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile", help="build a reference profile from training data")
    p.add_argument("data", help="CSV file (or .parquet with pyarrow installed)")
    p.add_argument("-o", "--output", required=True, help="profile JSON to write")
    p.add_argument("--target", help="label column")
    p.add_argument("--prediction", help="model output column")
    p.add_argument("--categorical", nargs="+", default=[], metavar="COL",
                   help="columns to treat as categorical (default: non-numeric columns)")
    p.add_argument("--exclude", nargs="+", default=[], metavar="COL", help="columns to skip")
    p.add_argument("--bins", type=int, default=100, help="fine bins per numeric feature")
    p.add_argument("--max-categories", type=int, default=50, help="levels kept per feature")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a tty")
    p.set_defaults(func=_cmd_profile)
    d = sub.add_parser("drift", help="evaluate drift of a data file against a profile")
    d.add_argument("profile", help="profile JSON written by `mlprobe profile`")
    d.add_argument("current", help="CSV file (or .parquet with pyarrow installed)")
    d.add_argument("--format", choices=("json", "markdown"), default="markdown")
    d.add_argument("--fail-on", choices=("warning", "critical"),
                   help="exit 1 when any status reaches this level")
    d.add_argument("--prediction", help="model output column in CURRENT")
    d.add_argument("--target", help="label column in CURRENT (ignored)")
    d.add_argument("--exclude", nargs="+", default=[], metavar="COL", help="columns to skip")
    d.add_argument("--min-count", type=int, help="values a feature needs for a status")
    d.add_argument("--progress", action="store_true", help="show a progress bar")
    d.set_defaults(func=_cmd_drift)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 drift over --fail-on, 2 error)."""
    try:
        args = _parser().parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # argparse usage errors and --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    except (CliError, MlprobeError) as exc:
        print(f"mlprobe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
