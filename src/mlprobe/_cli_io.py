"""Reading data files for the CLI: CSV in bounded chunks, or Parquet, with one-line errors.

CSV is read with the stdlib ``csv`` module in chunks of at most ``CHUNK_ROWS`` rows and
``CHUNK_BYTES`` bytes, so memory stays bounded whatever the file holds. The encoding is UTF-8
(a byte-order mark is skipped) unless the file starts with a UTF-16 byte-order mark or
``--encoding`` says otherwise. Every way a file can fail to read (a missing file, bytes that
are not the encoding, a field over ``MAX_FIELD_CHARS``, a NUL byte, a broken Parquet file)
becomes a :class:`CliError`: one line, exit code 2.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._feature_input import text_columns

__all__ = ["CHUNK_BYTES", "CHUNK_ROWS", "Chunk", "CliError", "MAX_FIELD_CHARS",
           "csv_field_limit", "emit", "read_table"]

CHUNK_ROWS = 50_000
CHUNK_BYTES = 32 * 1024 * 1024
MAX_FIELD_CHARS = 16 * 1024 * 1024
"""Longest CSV field read (csv's own default is 131,072): long text cells are read, a field
of more than 16 Mi characters is a broken file (an unclosed quote, usually)."""


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


@contextlib.contextmanager
def csv_field_limit(limit: int | None = None) -> Iterator[None]:
    """Raise csv's (process-wide) field size limit to ``MAX_FIELD_CHARS`` for one command."""
    previous = csv.field_size_limit(limit or MAX_FIELD_CHARS)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


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


@dataclass
class Chunk:
    """A block of rows of a data file: CSV text rows, or typed Parquet columns."""

    header: list[str]
    rows: list[list[str]] | None = None
    typed: dict[str, np.ndarray] | None = None
    offset: int = 0
    """Data rows before this chunk (for messages)."""

    @property
    def text(self) -> bool:
        """True when the cells are CSV text (numbers still to be parsed)."""
        return self.rows is not None

    def columns(self, violations: Counter[str] | None) -> tuple[dict[str, Any], int, int]:
        """``(cells by column name, rows, unaligned rows)``: a CSV row of the wrong width is
        counted and left out (or, with ``violations=None``, refused) by the input adapter."""
        if self.typed is not None:
            n = len(next(iter(self.typed.values()))) if self.typed else 0
            return dict(self.typed), n, 0
        assert self.rows is not None
        return text_columns(self.header, self.rows, violations, offset=self.offset)


def _encoding(path: str, requested: str | None) -> str:
    if requested:
        try:
            codecs.lookup(requested)
        except LookupError:
            raise CliError(f"--encoding: unknown encoding {requested!r}") from None
        return requested
    with open(path, "rb") as fh:
        start = fh.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"  # UTF-8, skipping a byte-order mark (Excel writes one)


def _describe(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _csv_chunks(path: str, progress: bool, encoding: str | None
                ) -> tuple[list[str], Iterator[Chunk]]:
    # The header is read on its own so that a usage error found after it (an unknown
    # --target, say) never leaves the file open; the generator reopens the file.
    try:
        enc = _encoding(path, encoding)
        with open(path, newline="", encoding=enc) as fh:
            header = next(csv.reader(fh), None)
    except OSError as exc:
        raise CliError(f"cannot read {path!r}: {exc.strerror or _describe(exc)}") from None
    except UnicodeError as exc:
        raise _decode_error(path, enc, exc) from None
    except csv.Error as exc:
        raise CliError(f"{path!r} line 1: {_describe(exc)}") from None
    if not header:
        raise CliError(f"{path!r} is empty: expected a header row")
    header[0] = header[0].lstrip("\ufeff")  # a byte-order mark kept by an explicit encoding

    def chunks() -> Iterator[Chunk]:
        bar = _Progress(os.path.getsize(path), progress, os.path.basename(path))
        size = [0]
        try:
            with open(path, newline="", encoding=enc) as fh:

                def lines() -> Iterator[str]:
                    for line in fh:
                        bar.advance(len(line))
                        size[0] += len(line)
                        yield line

                reader = csv.reader(lines())
                next(reader, None)
                offset = 0
                while True:
                    size[0] = 0
                    rows: list[list[str]] = []
                    for row in reader:
                        rows.append(row)
                        if len(rows) >= CHUNK_ROWS or size[0] >= CHUNK_BYTES:
                            break
                    if not rows:
                        return
                    yield Chunk(header, rows=rows, offset=offset)
                    offset += len(rows)
        except UnicodeError as exc:
            raise _decode_error(path, enc, exc) from None
        except csv.Error as exc:
            raise CliError(f"{path!r} line {reader.line_num}: {_describe(exc)}") from None
        except OSError as exc:
            raise CliError(f"cannot read {path!r}: {exc.strerror or _describe(exc)}") from None
        finally:
            bar.close()

    return header, chunks()


def _decode_error(path: str, encoding: str, exc: UnicodeError) -> CliError:
    where = f" at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
    return CliError(f"{path!r} is not {encoding} text{where}; pass --encoding with the file's "
                    "encoding (e.g. --encoding latin-1 or --encoding utf-16)")


def _parquet(path: str) -> tuple[list[str], Iterator[Chunk]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CliError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
        cols = {str(n): table.column(n).to_numpy(zero_copy_only=False)
                for n in table.column_names}
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors have no common base class
        raise CliError(f"cannot read {path!r} as Parquet: {_describe(exc)}") from None
    header = list(cols)
    return header, iter([Chunk(header, typed=cols)])


def read_table(path: str, *, progress: bool, encoding: str | None = None
               ) -> tuple[list[str], Iterator[Chunk]]:
    """The header and an iterator of chunks of a CSV or Parquet file (by its extension)."""
    if path.lower().endswith((".parquet", ".pq")):
        return _parquet(path)
    return _csv_chunks(path, progress, encoding)

def emit(text: str) -> None:
    """Print the report; a reader that went away (``| head``) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        try:  # keep the interpreter's final flush from failing again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
