"""Turn one raw column into clean values plus data-quality counts, without raising.

These are the per-column pieces both the profile builder and the serving side use:
numeric columns become finite float64 values with counts of missing (None/NaN/empty) and
invalid (±inf, non-numeric strings, other objects) entries; categorical columns become a
tally of non-missing values with a count of missing ones.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Any, NamedTuple

import numpy as np

__all__ = ["NumericColumn", "coerce_numeric", "is_missing", "tally_categorical"]

_MISSING_STRINGS = frozenset({"", "na", "nan", "null", "none", "n/a", "<na>"})


class NumericColumn(NamedTuple):
    """A numeric column split into finite values and bad-entry counts."""

    values: np.ndarray
    missing: int
    invalid: int


def is_missing(value: object) -> bool:
    """Return True for None, float NaN, pandas NA/NaT-like scalars and numpy NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (np.floating, np.datetime64, np.timedelta64)):
        return bool(np.isnan(value))
    # pandas.NA and NaT without importing pandas
    return type(value).__name__ in ("NAType", "NaTType")


def _is_text(value: object) -> bool:
    try:
        return isinstance(value, (str, bytes))
    except Exception:  # noqa: BLE001 - a hostile __class__: not text
        return False


def _length_or_one(column: object) -> int:
    try:
        n = len(column)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - no length, or a lying __len__
        return 1
    return n if isinstance(n, int) and n >= 0 else 1


def _parse_one(value: object, parse_strings: bool) -> tuple[float, int]:
    # Returns (value, kind) with kind 0 = ok, 1 = missing, 2 = invalid; never raises, so one
    # hostile value (a __float__, __eq__ or __class__ that raises) costs that value only.
    try:
        return _parse_one_unguarded(value, parse_strings)
    except Exception:  # noqa: BLE001
        return math.nan, 2


def _parse_one_unguarded(value: object, parse_strings: bool) -> tuple[float, int]:
    if is_missing(value):
        return math.nan, 1
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        try:
            f = float(value)
        except OverflowError:  # an int beyond the float range
            return math.nan, 2
        return (f, 0) if math.isfinite(f) else (math.nan, 2)
    if isinstance(value, (str, bytes)):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        text = text.strip()
        if text.lower() in _MISSING_STRINGS:
            return math.nan, 1
        if not parse_strings:
            return math.nan, 2
        try:
            f = float(text)
        except ValueError:
            return math.nan, 2
        return (f, 0) if math.isfinite(f) else (math.nan, 2)
    return math.nan, 2


def coerce_numeric(column: Any, *, parse_strings: bool = False) -> NumericColumn:
    """Split a column into finite float64 values and counts of missing / invalid entries.

    Numeric and boolean arrays take a vectorised path (NaN is missing, ±inf invalid). Object
    or string arrays first try numpy's own float conversion; only when that fails (strings,
    odd objects) are entries inspected one by one, which is the slow path for dirty data.

    Args:
        column: 1-D array-like.
        parse_strings: Parse numeric-looking strings (``"1.5"``) as numbers, as a CSV reader
            must; when False any string that is not a missing marker is invalid.

    Returns:
        ``NumericColumn(values, missing, invalid)``; never raises on bad entries.
    """
    try:
        a = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
    except Exception:  # noqa: BLE001 - an array-like that cannot be read: all of it invalid
        return NumericColumn(np.zeros(0), 0, _length_or_one(column))
    if a.ndim != 1:
        a = a.reshape(-1)
    kind = a.dtype.kind
    if kind in "fiub":
        f = a.astype(np.float64, copy=False)
        finite = np.isfinite(f)
        if finite.all():
            return NumericColumn(f, 0, 0)
        nan = np.isnan(f)
        n_nan = int(nan.sum())
        return NumericColumn(f[finite], n_nan, int(f.size - n_nan - finite.sum()))
    if kind == "O" and not any(_is_text(v) for v in a[:64].tolist()):
        try:
            f = a.astype(np.float64)
        except Exception:  # noqa: BLE001 - a value that is not a number (or whose __float__
            pass  # raises): inspect them one by one below
        else:
            # None and NaN both became NaN here: both are missing.
            finite = np.isfinite(f)
            n_nan = int(np.isnan(f).sum())
            return NumericColumn(f[finite], n_nan, int(f.size - n_nan - finite.sum()))
    if kind in "OUS":
        parsed = [_parse_one(v, parse_strings) for v in a.tolist()]
        vals = np.fromiter((p[0] for p in parsed), dtype=np.float64, count=len(parsed))
        kinds = np.fromiter((p[1] for p in parsed), dtype=np.int8, count=len(parsed))
        return NumericColumn(vals[kinds == 0], int((kinds == 1).sum()), int((kinds == 2).sum()))
    # datetimes, complex and anything else are not numeric features
    return NumericColumn(np.zeros(0), 0, int(a.size))


PANDAS_MIN_ROWS = 1024
"""Columns at least this long are tallied with pandas' hash table when pandas is loaded."""


def tally_categorical(column: Any) -> tuple[dict[Any, int], int]:
    """Tally the non-missing values of a column and count the missing ones.

    The tally runs in C: with ``collections.Counter``, or, for long arrays in a process that
    has already imported pandas, with ``pandas.factorize`` (about 1.7 times faster on strings;
    mlprobe never imports pandas itself). Both group values that are equal in Python.
    Missing values (None, NaN, pandas NA, blank strings) are found by looking at the
    *distinct* values only. Unhashable values (lists, dicts) are counted by their ``str``.

    Returns:
        ``(tally, n_missing)``.
    """
    if type(column) is tuple or type(column) is list:
        items = column  # already Python objects (the serving side's buffered rows)
        array = None
    else:
        array = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
        array = array.reshape(-1)
        items = None
    pandas = sys.modules.get("pandas")
    tally: dict[Any, int] | None = None
    missing = 0
    # Only for arrays: turning a list of Python objects into one first costs what it saves.
    if pandas is not None and array is not None and array.size >= PANDAS_MIN_ROWS:
        tally, missing = _tally_with_pandas(pandas, array)
    if tally is None:
        values = items if items is not None else array.tolist()  # type: ignore[union-attr]
        try:
            tally = Counter(values)
        except Exception:  # noqa: BLE001 - an unhashable or hostile value: one by one
            tally = _tally_one_by_one(values)
    # Only the empty string counts as missing among strings: "None" or "NA" can be real
    # levels of a categorical feature (unlike in a numeric one).
    for key in [k for k in tally if _is_missing_level(k)]:
        missing += tally.pop(key)
    return tally, missing


INVALID_LEVEL = "__other__"
"""Tally key of values that cannot be counted as themselves (their ``__hash__``, ``__eq__``
or ``__str__`` raises): the overflow level, so they count as unseen, one value each."""


def _tally_one_by_one(values: list[Any]) -> Counter[Any]:
    """Tally values one at a time: an unhashable value counts under its ``str``, and a value
    that cannot be counted at all under :data:`INVALID_LEVEL`; never raises."""
    tally: Counter[Any] = Counter()
    for value in values:
        try:
            tally[value] += 1
        except TypeError:  # unhashable (a list, a dict): by its string form
            try:
                tally[str(value)] += 1
            except Exception:  # noqa: BLE001
                tally[INVALID_LEVEL] += 1
        except Exception:  # noqa: BLE001 - a __hash__ or __eq__ that raises
            tally[INVALID_LEVEL] += 1
    return tally


def _is_missing_level(key: object) -> bool:
    try:
        return is_missing(key) or (isinstance(key, str) and not key.strip())
    except Exception:  # noqa: BLE001 - a hostile value is not missing (it is counted)
        return False


def _tally_with_pandas(pandas: Any, array: np.ndarray) -> tuple[dict[Any, int] | None, int]:
    """``(tally, n_missing)`` from ``pandas.factorize``; ``(None, 0)`` if it cannot."""
    try:
        codes, uniques = pandas.factorize(array)
    except Exception:  # noqa: BLE001 - unhashable values, or an old pandas: use Counter
        return None, 0
    counts = np.bincount(codes + 1, minlength=len(uniques) + 1).tolist()
    # factorize gives -1 (counted first here) to None, NaN and pandas NA: all missing
    return dict(zip(np.asarray(uniques, dtype=object).tolist(), counts[1:])), counts[0]
