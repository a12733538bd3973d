"""Encode single values and whole columns into the codes feature statistics count.

Numeric values become doubles: a finite double is itself; ``NaN`` means missing (None, NaN,
a missing marker string, an absent feature) and ``+inf`` means invalid (±inf, an int too
large for a double, a string or object that is not a number). Those are exactly the values
the window's numeric update counts as missing and invalid. Values that are not numbers at
all are also counted as ``wrong_type`` schema violations when they are encoded.

Categorical values become codes: for a feature with ``V`` reference levels, ``0 .. V-1`` a
level, ``V`` unseen (``__other__``), ``V+1`` missing (None, NaN, blank string), ``V+2``
invalid (a value whose ``__hash__``, ``__eq__`` or ``__str__`` raises). Matching follows
:func:`~mlprobe.stats.level_key`: ``3``, ``3.0`` and ``"3"`` are one level, an unhashable
value counts by its text, and ``True`` is the level ``"True"`` (Python's equality would put
it with ``1``, as a ``Counter`` over the raw values does offline: mixing booleans with the
integers 0 and 1 in one categorical feature counts them differently there).

Every function here turns one hostile value into one invalid value; none raises on input.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np

from .stats._categorical import level_key
from .stats._coerce import PANDAS_MIN_ROWS, is_missing

__all__ = ["INVALID", "MISSING", "UNSEEN", "category_codes", "category_counts", "classify_input",
           "numeric_column", "to_float", "value_coder"]

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


def value_coder(index: dict[str, int], size: int) -> Callable[[Any], int]:
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
    coder = value_coder(index, size)
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
        codes = _codes_with_pandas(pandas, column, value_coder(index, size), size)
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
    coder = value_coder(index, size)
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
