"""Encode model inputs into compact fixed-width rows on arrival, keeping nothing of the caller's.

A buffered row is bytes: the numeric features as little-endian doubles, then one ``uint32``
code per categorical feature (the encodings of :mod:`mlprobe._value_codes`), padded to a
multiple of 8 bytes. So a request's payload (a 100 kB string in a categorical feature, a dict
of extra fields) is never kept alive by the buffer, and the buffer's size in bytes is known
exactly (:attr:`RowCodec.row_bytes` per row).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._profile import ReferenceProfile
from ._value_codes import (
    INVALID,
    MISSING,
    category_codes,
    category_counts,
    numeric_column,
    to_float,
    value_coder,
)

__all__ = ["RowCodec"]

_NAN = float("nan")
_ABSENT = object()


def _make_row_packer(numeric: Sequence[str], categorical: Sequence[str],
                     coders: Sequence[Callable[[Any], Any]], pack: Callable[..., bytes]
                     ) -> Callable[[dict[str, Any]], bytes]:
    """Build ``row -> bytes`` for a dict row with every feature present and numbers that pack.

    ``coders[j]`` maps the j-th categorical value to its code. The function is generated so
    that it does one subscript per feature and one ``pack`` call, with no loop, no
    star-unpacking and no intermediate tuple: it runs once per request. Only identifiers
    appear in the generated source; feature names and coders are passed in as closure
    variables, so nothing from a profile is ever compiled. It raises (KeyError; struct.error
    for a None code or a value that is not a number; whatever a hostile value raises) when
    the row needs the general encoder.
    """
    keys = [f"k{i}" for i in range(len(numeric))]
    cats = [f"c{j}" for j in range(len(categorical))]
    funcs = [f"f{j}" for j in range(len(categorical))]
    args = ", ".join([*keys, *cats, *funcs, "pack"])
    body = ", ".join([f"row[{k}]" for k in keys] + [f"{f}(row[{c}])" for f, c in zip(funcs, cats)])
    source = (f"def _make({args}):\n"
              f"    def pack_row(row):\n"
              f"        return pack({body})\n"
              f"    return pack_row\n")
    namespace: dict[str, Any] = {}
    exec(compile(source, "<mlprobe row packer>", "exec"), namespace)  # noqa: S102 - see above
    return namespace["_make"](*numeric, *categorical, *coders, pack)  # type: ignore[no-any-return]


class RowCodec:
    """Encodes rows and columns of one profile's features (see the module docstring).

    Args:
        profile: the reference profile; fixes the features, their order and vocabularies.
    """

    def __init__(self, profile: ReferenceProfile) -> None:
        features = profile.features
        self.names = tuple(features)
        self.numeric = tuple(n for n, f in features.items() if f.kind == "numeric")
        self.categorical = tuple(n for n, f in features.items() if f.kind != "numeric")
        vocabularies = [features[n].empty_counts().vocabulary  # type: ignore[union-attr]
                        for n in self.categorical]
        self.indexes = tuple({level: i for i, level in enumerate(v)} for v in vocabularies)
        self.sizes = tuple(len(v) for v in vocabularies)
        # Rows are padded to a multiple of 8 bytes (and never empty), so a buffer of rows is
        # at once a (rows, width) float64 matrix and a (rows, 2 * width) uint32 matrix: the
        # flush reads feature columns as strided views, with no per-row work.
        size = 8 * len(self.numeric) + 4 * len(self.categorical)
        pad = 8 - size % 8 if size % 8 or not size else 0
        layout = struct.Struct(f"<{len(self.numeric)}d{len(self.categorical)}I{pad}x")
        self.row_bytes = layout.size
        self._pack = layout.pack
        self._missing_row: bytes | None = None
        self._width = layout.size // 8
        # Two generated packers: the first looks levels up directly (a value outside the
        # vocabulary gives None, which struct refuses); the second resolves every value fully
        # (unseen, missing, ints and floats by their level key, hostile values as invalid),
        # for rows whose numbers are clean but whose categories are not all known strings.
        self.pack_row = _make_row_packer(self.numeric, self.categorical,
                                         [index.get for index in self.indexes], self._pack)
        self.pack_row_resolving = _make_row_packer(
            self.numeric, self.categorical,
            [value_coder(index, size) for index, size in zip(self.indexes, self.sizes)], self._pack)
        prediction = profile.prediction
        self.prediction_index: tuple[dict[str, int], int] | None = None
        if prediction is not None and prediction.kind != "numeric":
            levels = prediction.empty_counts().vocabulary  # type: ignore[union-attr]
            self.prediction_index = ({level: i for i, level in enumerate(levels)}, len(levels))

    # -- one row at a time (request path) ---------------------------------------------------

    def encode_row(self, row: dict[Any, Any], violations: Counter[str]) -> bytes | None:
        """Encode one dict row, counting what does not fit; None if it cannot be read."""
        if len(row) == len(self.names):
            try:
                return self.pack_row(row)
            except Exception:  # noqa: BLE001 - not the common case: resolve it
                pass
            try:
                return self.pack_row_resolving(row)
            except Exception:  # noqa: BLE001 - absent keys or odd numbers: one by one
                pass
        return self.encode_dict_row(row, violations)

    def encode_dict_row(self, row: dict[Any, Any], violations: Counter[str]) -> bytes | None:
        """Encode a dict row value by value (absent and extra keys, odd values)."""
        try:
            present = 0
            numbers = []
            for name in self.numeric:
                value = row.get(name, _ABSENT)
                if value is _ABSENT:
                    numbers.append(_NAN)
                    continue
                present += 1
                number, wrong = to_float(value)
                numbers.append(number)
                if wrong:
                    violations["wrong_type"] += 1
            codes = []
            for name, index, size in zip(self.categorical, self.indexes, self.sizes):
                value = row.get(name, _ABSENT)
                if value is _ABSENT:
                    codes.append(size + MISSING)
                    continue
                present += 1
                codes.append(self.code(value, index, size))
            absent = len(self.names) - present
            extra = len(row) - present
        except Exception:  # noqa: BLE001 - a key whose __eq__ raises: the row is unreadable
            violations["unreadable_input"] += 1
            return self.missing_row()
        if absent:
            violations["missing_feature"] += absent
        if extra:
            violations["unexpected_feature"] += extra
        return self._pack(*numbers, *codes)

    def encode_sequence_row(self, row: Sequence[Any], violations: Counter[str]) -> bytes | None:
        """Encode one positional row (a list, tuple or 1-D array in feature order)."""
        try:
            values = list(row)
        except Exception:  # noqa: BLE001 - an array-like whose iteration raises
            violations["unreadable_input"] += 1
            return self.missing_row()
        if len(values) != len(self.names):
            violations["wrong_width"] += 1
            return self.missing_row()
        return self.encode_row(dict(zip(self.names, values)), violations)

    def missing_row(self) -> bytes:
        """A row in which every feature is missing: what a row that cannot be aligned with the
        features counts as (the one counting rule of :mod:`mlprobe._feature_input`, so
        serving, ``probe.observe`` and the CLI count such rows alike)."""
        row = self._missing_row
        if row is None:
            row = self._missing_row = self._pack(
                *([_NAN] * len(self.numeric)), *(size + MISSING for size in self.sizes))
        return row

    @staticmethod
    def code(value: Any, index: dict[str, int], size: int) -> int:
        """The categorical code of one value (see the module docstring); never raises."""
        return value_coder(index, size)(value)

    # -- whole columns (batches) ------------------------------------------------------------

    def encode_columns(self, columns: dict[str, Any], rows: int, violations: Counter[str]
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Encode aligned columns: a ``(numeric, rows)`` float64 block and ``(categorical,
        rows)`` uint32 codes, both C-ordered and owned."""
        numbers = self.encode_numeric(columns, rows, violations)
        codes = np.empty((len(self.categorical), rows), dtype=np.uint32)
        if rows:
            for j, (name, index, size) in enumerate(zip(self.categorical, self.indexes,
                                                        self.sizes)):
                codes[j] = category_codes(columns[name], rows, index, size)
        return numbers, codes

    def encode_numeric(self, columns: dict[str, Any], rows: int, violations: Counter[str]
                       ) -> np.ndarray:
        """The ``(numeric, rows)`` float64 block of aligned columns (C-ordered, owned)."""
        numbers = np.empty((len(self.numeric), rows), dtype=np.float64)
        if rows:
            for i, name in enumerate(self.numeric):
                numbers[i], wrong = numeric_column(columns[name], rows)
                if wrong:
                    violations["wrong_type"] += wrong
        return numbers

    def count_categories(self, columns: dict[str, Any], rows: int) -> list[np.ndarray]:
        """Per categorical feature, the count of each code (what a batch ingested at once
        needs: tallying distinct values is cheaper than coding every row)."""
        return [category_counts(columns[name], rows, index, size) if rows else
                np.zeros(size + INVALID + 1, dtype=np.int64)
                for name, index, size in zip(self.categorical, self.indexes, self.sizes)]

    def to_bytes(self, numbers: np.ndarray, codes: np.ndarray) -> bytes:
        """Rows of an encoded ``(numeric, rows)`` block and ``(categorical, rows)`` codes as
        buffer bytes (the layout :meth:`from_bytes` reads)."""
        rows = numbers.shape[1]
        out = np.zeros((rows, self._width), dtype=np.float64)
        out[:, :len(self.numeric)] = numbers.T
        n = 2 * len(self.numeric)
        out.view(np.uint32)[:, n:n + len(self.categorical)] = codes.T
        return out.tobytes()

    def from_bytes(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Views of buffer bytes: ``(rows, numeric)`` float64 and ``(rows, categorical)``
        uint32 codes (read-only, strided: column ``i`` is feature ``i``)."""
        rows = len(data) // self.row_bytes
        numbers = np.frombuffer(data, dtype=np.float64).reshape(rows, self._width)
        n = 2 * len(self.numeric)
        codes = numbers.view(np.uint32)[:, n:n + len(self.categorical)]
        return numbers[:, :len(self.numeric)], codes
