"""Encode model inputs into compact fixed-width rows as they arrive, keeping nothing of the caller's.

A buffered row is bytes: the numeric features as little-endian doubles, then one ``uint32``
code per categorical feature. So a request's payload (a 100 kB string in a categorical
feature, a dict of extra fields) is never kept alive by the buffer, and the buffer's size in
bytes is known exactly (:attr:`RowCodec.row_bytes` per row).

Numeric values: a finite double is itself; ``NaN`` means missing (None, NaN, a missing marker
string, an absent feature) and ``+inf`` means invalid (±inf, an int too large for a double, a
string or object that is not a number). Those are exactly the values the window's numeric
update counts as missing and invalid. Values that are not numbers at all are also counted as
``wrong_type`` schema violations when they are encoded.

Categorical codes of a feature with ``V`` reference levels: ``0 .. V-1`` a level,
``V`` unseen (``__other__``), ``V+1`` missing (None, NaN, blank string), ``V+2`` invalid
(a value whose ``__hash__``, ``__eq__`` or ``__str__`` raises). Matching follows
:func:`~mlprobe.stats.level_key`: ``3``, ``3.0`` and ``"3"`` are one level, an unhashable
value counts by its text, and ``True`` is the level ``"True"`` (Python's equality would put
it with ``1``, as a ``Counter`` over the raw values does offline: mixing booleans with the
integers 0 and 1 in one categorical feature counts them differently there).

Every function here turns one hostile value into one invalid value; none raises on input.
"""

from __future__ import annotations

import math
import struct
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from ._profile import ReferenceProfile
from .stats._categorical import level_key
from .stats._coerce import PANDAS_MIN_ROWS, is_missing

__all__ = ["INVALID", "MISSING", "UNSEEN", "RowCodec", "category_codes", "category_counts",
           "classify_input"]

UNSEEN, MISSING, INVALID = 0, 1, 2
"""Offsets past a feature's vocabulary size: its unseen, missing and invalid codes."""

_NAN = math.nan
_INF = math.inf
_ABSENT = object()
_MISSING_STRINGS = frozenset({"", "na", "nan", "null", "none", "n/a", "<na>"})
_NUMBER_TYPES = (bool, np.bool_, int, float, np.integer, np.floating)


def to_float(value: Any) -> tuple[float, bool]:
    """Encode one numeric-feature value: ``(double, is_wrong_type)``; never raises."""
    if type(value) is float:
        return value, False
    if value is None:
        return _NAN, False
    try:
        if isinstance(value, _NUMBER_TYPES):
            try:
                f = float(value)
            except OverflowError:  # an int beyond the double range: a number, but invalid
                return _INF, False
            return (f if f == f else _NAN), False
        if is_missing(value):
            return _NAN, False
        if isinstance(value, (str, bytes)):
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return (_NAN, False) if text.strip().lower() in _MISSING_STRINGS else (_INF, True)
        f = float(value)  # Decimal, Fraction and other objects that are numbers
        if type(f) is not float:
            return _INF, True
        return (f if f == f else _NAN), False
    except Exception:  # noqa: BLE001 - a hostile __float__/__class__: one invalid value
        return _INF, True


def _slow_code(value: Any, index: dict[str, int], size: int) -> int:
    """The code of a value the direct dictionary lookup did not find; never raises."""
    try:
        if is_missing(value) or (isinstance(value, str) and not value.strip()):
            return size + MISSING
        code = index.get(level_key(value))
        return size + UNSEEN if code is None else code
    except Exception:  # noqa: BLE001 - hostile __hash__/__eq__/__str__: one invalid value
        return size + INVALID


def _coder(index: dict[str, int], size: int) -> Callable[[Any], int]:
    """``value -> code`` for one feature (what :meth:`RowCodec.code` does, as a closure)."""
    get = index.get

    def code(value: Any) -> int:
        try:
            found = get(value)
        except TypeError:  # unhashable (a list, a dict): by its text, as level_key does
            return _slow_code(value, index, size)
        except Exception:  # noqa: BLE001 - hostile __hash__ or __eq__
            return size + INVALID
        return found if found is not None else _slow_code(value, index, size)

    return code


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
        self._width = layout.size // 8
        # Two generated packers: the first looks levels up directly (a value outside the
        # vocabulary gives None, which struct refuses); the second resolves every value fully
        # (unseen, missing, ints and floats by their level key, hostile values as invalid),
        # for rows whose numbers are clean but whose categories are not all known strings.
        self.pack_row = _make_row_packer(self.numeric, self.categorical,
                                         [index.get for index in self.indexes], self._pack)
        self.pack_row_resolving = _make_row_packer(
            self.numeric, self.categorical,
            [_coder(index, size) for index, size in zip(self.indexes, self.sizes)], self._pack)
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
            violations["wrong_type"] += 1
            return None
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
            violations["wrong_type"] += 1
            return None
        if len(values) != len(self.names):
            violations["wrong_width"] += 1
            return None
        return self.encode_row(dict(zip(self.names, values)), violations)

    @staticmethod
    def code(value: Any, index: dict[str, int], size: int) -> int:
        """The categorical code of one value (see the module docstring); never raises."""
        return _coder(index, size)(value)

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


def numeric_column(column: Any, rows: int) -> tuple[np.ndarray, int]:
    """Encode one numeric column: ``(float64 values, wrong_type count)``; never raises."""
    try:
        array = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
        if array.dtype.kind in "fiub" and array.shape == (rows,):
            return array.astype(np.float64), 0
        items = array.reshape(-1).tolist()
    except Exception:  # noqa: BLE001 - an array-like that cannot be read: all invalid
        return np.full(rows, _INF), rows
    if len(items) != rows:
        return np.full(rows, _INF), rows
    if not any(isinstance(v, (str, bytes)) for v in items[:64]):
        try:  # numpy converts numbers and None (to NaN) in C; strings would be parsed
            values = np.array(items, dtype=object).astype(np.float64)
        except Exception:  # noqa: BLE001 - some value is not a number: go one by one
            pass
        else:
            return values, 0
    encoded = [to_float(v) for v in items]
    return (np.fromiter((e[0] for e in encoded), dtype=np.float64, count=rows),
            sum(e[1] for e in encoded))


def category_codes(column: Any, rows: int, index: dict[str, int], size: int) -> np.ndarray:
    """Encode one categorical column to uint32 codes; never raises.

    Numeric and string arrays are encoded per distinct value (``np.unique``); long object
    arrays with ``pandas.factorize`` when pandas is already loaded (as ``tally_categorical``
    does; it groups values equal in Python, such as ``1`` and ``True``, under the first one);
    anything else is looked up value by value in C, and the misses are resolved once per
    distinct ``(type, value)``.
    """
    coder = _coder(index, size)
    try:
        if isinstance(column, np.ndarray) and column.dtype.kind in "biufUS":
            flat = column.reshape(-1)
            if flat.size != rows:
                return np.full(rows, size + INVALID, dtype=np.uint32)
            uniques, inverse = np.unique(flat, return_inverse=True)
            table = np.array([coder(v) for v in uniques.tolist()], dtype=np.uint32)
            return table[inverse.reshape(-1)]
        pandas = sys.modules.get("pandas")
        if (pandas is not None and isinstance(column, np.ndarray) and column.ndim == 1
                and column.size == rows and rows >= PANDAS_MIN_ROWS):
            codes = _codes_with_pandas(pandas, column, coder, size)
            if codes is not None:
                return codes
        items = column.tolist() if isinstance(column, np.ndarray) else list(column)
    except Exception:  # noqa: BLE001 - an array-like that cannot be read: all invalid
        return np.full(rows, size + INVALID, dtype=np.uint32)
    if len(items) != rows:
        return np.full(rows, size + INVALID, dtype=np.uint32)
    unresolved = size + INVALID + 1  # not a code: "look this one up the slow way"
    try:  # the common case in C: known levels (a miss gives ``unresolved``)
        codes = np.fromiter(map(index.get, items, repeat(unresolved)), dtype=np.uint32,
                            count=rows)
    except Exception:  # noqa: BLE001 - one value's __hash__/__eq__ raised: go one by one
        codes = np.full(rows, unresolved, dtype=np.uint32)
    misses = np.flatnonzero(codes == unresolved).tolist()
    if misses:
        memo: dict[tuple[type, Any], int] = {}
        for i in misses:
            value = items[i]
            try:
                key = (type(value), value)
                found = memo.get(key)
                if found is None:
                    found = memo[key] = coder(value)
            except Exception:  # noqa: BLE001 - unhashable or hostile: on its own
                found = coder(value)
            codes[i] = found
    return codes


def category_counts(column: Any, rows: int, index: dict[str, int], size: int) -> np.ndarray:
    """How many values of a categorical column take each code (``size + 3`` counts); never
    raises. The values are tallied in C (``collections.Counter``, or ``pandas.factorize`` for
    long arrays when pandas is loaded) and each distinct value is coded once."""
    counts = np.zeros(size + INVALID + 1, dtype=np.int64)
    pandas = sys.modules.get("pandas")
    if (pandas is not None and isinstance(column, np.ndarray) and column.dtype.kind == "O"
            and column.ndim == 1 and column.size == rows and rows >= PANDAS_MIN_ROWS):
        codes = _codes_with_pandas(pandas, column, _coder(index, size), size)
        if codes is not None:
            return np.bincount(codes, minlength=counts.size).astype(np.int64)
    if isinstance(column, np.ndarray) and column.dtype.kind != "O":
        return np.bincount(category_codes(column, rows, index, size), minlength=counts.size)
    try:
        items = column.tolist() if isinstance(column, np.ndarray) else list(column)
        tally = Counter(items) if len(items) == rows else None
    except Exception:  # noqa: BLE001 - unhashable or hostile values: code them one by one
        tally = None
    if tally is None:
        return np.bincount(category_codes(column, rows, index, size), minlength=counts.size)
    coder = _coder(index, size)
    for value, n in tally.items():
        counts[coder(value)] += n
    return counts


def _codes_with_pandas(pandas: Any, column: np.ndarray, coder: Callable[[Any], int],
                       size: int) -> np.ndarray | None:
    """Codes from ``pandas.factorize``; None if it cannot (unhashable values, old pandas)."""
    try:
        codes, uniques = pandas.factorize(column)
    except Exception:  # noqa: BLE001 - fall back to the lookup in C
        return None
    # factorize gives -1 to None, NaN and pandas NA: the table's last entry, "missing"
    table = np.array([coder(u) for u in np.asarray(uniques, dtype=object).tolist()]
                     + [size + MISSING], dtype=np.uint32)
    return table[codes]


_COLUMN_TYPES = (list, tuple, np.ndarray)


def classify_input(batch: Any) -> tuple[str, int]:
    """``(shape, rows)``: shape is ``"row"`` (one dict row), ``"rows"`` (a list of dict rows),
    ``"positional row"`` (one list, tuple or 1-D array of values) or ``"table"``. May raise on
    a hostile object (the caller counts it)."""
    kind = type(batch)
    if kind is dict:
        first = next(iter(batch.values()), None)
        if batch and all(isinstance(v, _COLUMN_TYPES) for v in batch.values()):
            return "table", len(first)  # type: ignore[arg-type]
        return "row", 1
    if kind is list or kind is tuple:
        if not batch:
            return "table", 0
        if all(type(row) is dict for row in batch):
            return "rows", len(batch)
        if isinstance(batch[0], (dict, *_COLUMN_TYPES)):
            return "table", len(batch)
        return "positional row", 1
    if kind is np.ndarray:
        return ("positional row", 1) if batch.ndim == 1 else ("table", int(batch.shape[0]))
    return "table", 1
