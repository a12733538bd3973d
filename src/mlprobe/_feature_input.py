"""The one input adapter: a model input, a CSV chunk or training data -> named columns.

Every path that reads tabular input goes through here, so they agree on what an input means
and on what does not fit:

- **counting mode** (:func:`to_columns`, :func:`text_columns`): serving (``@probe.track``,
  ``probe.observe``) and ``mlprobe drift``. Maps an input to the reference's features, never
  raises, and counts every violation by kind into a ``Counter``.
- **strict mode** (:func:`table_columns`): building a profile. Returns every column of the
  training data and raises :class:`~mlprobe.errors.ConfigurationError` with a clear message
  where counting mode would count.

Inputs: a dict row, a list of dict rows, a dict of columns or a DataFrame (matched to features
by name); a 2-D array, a list of positional rows or one positional row (matched by position);
CSV rows under a header (by the header's names).

Schema violations (``SCHEMA_KINDS``), one vocabulary on every path, each counted **once per
row** it affects:

- ``missing_feature``: a named input lacks a reference feature (per row, per feature); those
  values count as missing.
- ``unexpected_feature``: a named input has a column the reference does not know (per row,
  per column); it is ignored.
- ``wrong_width``: a positional row (or CSV row, or a dict of columns of unequal lengths) with
  another number of values than expected; its values cannot be aligned with features.
- ``unreadable_input``: an input, or an entry of a list of rows, that is not rows or columns
  at all (a scalar, a string, a 3-D array).
- ``wrong_type``: a value of a numeric feature that is not a number (a string that is not a
  missing marker, an object); it counts as invalid. Counted where values are folded in
  (:meth:`mlprobe._window.DatasetWindow.add_columns`).

A row that cannot be aligned (``wrong_width``, ``unreadable_input``) still counts as a row,
with every feature missing: so a broken client shows in each feature's missing share and
data-quality status, and the row totals agree on every path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from .errors import ConfigurationError

__all__ = ["Columns", "MISSING_TEXT", "SCHEMA_KINDS", "table_columns", "text_columns",
           "text_numbers", "to_columns", "tuple_getter"]

Columns = dict[str, Any]
"""Feature name -> 1-D column (ndarray or list), all of one length."""

SCHEMA_KINDS = ("missing_feature", "unexpected_feature", "wrong_width", "unreadable_input",
                "wrong_type")

MISSING_TEXT = frozenset({"", "na", "nan", "null", "none", "n/a", "<na>"})
"""Text that means "no value" in a numeric column (the markers ``stats._coerce`` uses)."""

_SEQUENCES = (list, tuple, np.ndarray)


def tuple_getter(keys: Sequence[str]) -> Any:
    """Return a function mapping a dict row to the tuple of its values at ``keys``.

    ``itemgetter`` does the lookups in C (and raises KeyError for a missing key); with one
    key it returns the bare value and with none it cannot be built, so those are wrapped.
    """
    if len(keys) > 1:
        return itemgetter(*keys)
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    return lambda row: ()


# -- counting mode -----------------------------------------------------------------------------


def to_columns(batch: Any, names: Sequence[str], violations: Counter[str]
               ) -> tuple[Columns, int]:
    """Return ``(columns, rows)`` for the reference features, counting schema violations.

    Every feature in ``names`` gets a column of ``rows`` entries; absent values are ``None``.
    """
    kind = type(batch)
    if kind is dict:
        if batch and all(isinstance(v, _SEQUENCES) for v in batch.values()):
            return _from_named_columns(batch, names, violations)
        return _from_dict_rows([batch], names, violations)
    if kind is np.ndarray:
        return _from_array(batch, names, violations)
    if kind is list or kind is tuple:
        if not batch:
            return {}, 0
        first = batch[0]
        if isinstance(first, dict):
            return _from_dict_rows(batch, names, violations)
        if isinstance(first, _SEQUENCES):
            return _from_sequence_rows(batch, names, violations)
        return _from_sequence_rows([batch], names, violations)  # one positional row
    if hasattr(batch, "columns") and hasattr(batch, "to_numpy"):  # DataFrame (duck-typed)
        return _from_named_columns(_frame_columns(batch), names, violations)
    if isinstance(batch, Mapping):
        return to_columns(dict(batch), names, violations)
    return _unreadable(names, 1, violations)


def text_columns(header: Sequence[str], rows: list[list[str]],
                 violations: Counter[str] | None, *, offset: int = 0
                 ) -> tuple[dict[str, list[str]], int, int]:
    """Name the cells of CSV rows by the header: ``(columns, rows, unaligned rows)``.

    Counting mode (``violations`` given): a row of another width is left out of the columns
    and counted as ``wrong_width``, exactly as a positional row of the wrong width; the
    caller adds it as a row with every feature missing
    (:meth:`~mlprobe._window.DatasetWindow.add_unaligned`). Strict mode
    (``violations=None``, profile building) raises
    :class:`~mlprobe.errors.ConfigurationError` naming the row (``offset`` rows came before).
    """
    width = len(header)
    bad = [i for i, r in enumerate(rows) if len(r) != width]
    if bad:
        if violations is None:
            i = bad[0]
            raise ConfigurationError(
                f"data row {offset + i + 1} has {len(rows[i])} cells but the header has "
                f"{width}; fix or remove the row ({len(bad)} such rows in this chunk)")
        violations["wrong_width"] += len(bad)
        rows = [r for r in rows if len(r) == width]
    return {name: [r[j] for r in rows] for j, name in enumerate(header)}, len(rows), len(bad)


def text_numbers(cells: Sequence[str]) -> tuple[np.ndarray, int]:
    """Parse CSV cells of a numeric feature: ``(values, wrong_type)``.

    Missing markers become NaN (missing), cells that are not numbers become +inf (invalid)
    and are counted as ``wrong_type``; "inf" or "1e999" are numbers, invalid but not of the
    wrong type.
    """
    try:
        return np.asarray(cells, dtype=np.float64), 0  # numpy parses clean chunks in C
    except (ValueError, TypeError):
        pass
    out = np.empty(len(cells))
    wrong = 0
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell)
        except (ValueError, TypeError):
            if isinstance(cell, str) and cell.strip().lower() in MISSING_TEXT:
                out[i] = np.nan
            else:
                out[i] = np.inf
                wrong += 1
    return out, wrong


def _none_column(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def _unreadable(names: Sequence[str], rows: int, violations: Counter[str]
                ) -> tuple[Columns, int]:
    violations["unreadable_input"] += rows
    return {name: _none_column(rows) for name in names}, rows


def _from_array(array: np.ndarray, names: Sequence[str], violations: Counter[str]
                ) -> tuple[Columns, int]:
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        return _unreadable(names, int(array.shape[0]) if array.ndim else 1, violations)
    n = array.shape[0]
    if array.shape[1] != len(names):
        violations["wrong_width"] += n
        return {name: _none_column(n) for name in names}, n
    return {name: array[:, j] for j, name in enumerate(names)}, n


def _from_sequence_rows(rows: Sequence[Any], names: Sequence[str], violations: Counter[str]
                        ) -> tuple[Columns, int]:
    width = len(names)
    good = [r for r in rows if isinstance(r, _SEQUENCES) and len(r) == width]
    table = np.empty((len(rows), width), dtype=object)  # object arrays start as None
    if len(good) != len(rows):
        unreadable = sum(not isinstance(r, _SEQUENCES) for r in rows)
        if unreadable:
            violations["unreadable_input"] += unreadable
        if len(rows) - len(good) - unreadable:
            violations["wrong_width"] += len(rows) - len(good) - unreadable
    if good:
        table[:len(good)] = [list(r) for r in good] if not isinstance(good[0], list) else good
    return {name: table[:, j] for j, name in enumerate(names)}, len(rows)


def _from_dict_rows(rows: Sequence[Any], names: Sequence[str], violations: Counter[str]
                    ) -> tuple[Columns, int]:
    expected = set(names)
    getter = itemgetter(*names)
    table = np.empty((len(rows), len(names)), dtype=object)  # object arrays start as None
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            violations["unreadable_input"] += 1  # its features stay None: missing
            continue
        try:
            values = getter(row)  # one C call fetches every feature of the row
            complete = True
        except KeyError:
            violations["missing_feature"] += len(expected.difference(row))
            values = tuple(row.get(name) for name in names)
            if len(names) == 1:
                values = values[0]  # match itemgetter's scalar result for one key
            complete = False
        # Every expected key is present and the sizes agree: no key can be unexpected.
        if not complete or len(row) != len(names):
            violations["unexpected_feature"] += len(set(row).difference(expected))
        table[n] = values if len(names) > 1 else (values,)
    return {name: table[:, j] for j, name in enumerate(names)}, len(rows)


def _frame_columns(frame: Any) -> dict[str, Any]:
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def _as_1d(column: Any) -> Any:
    # A 2-D array given as one column holds a vector per row: keep one object per row (not a
    # reshape, which would count several values per row).
    if isinstance(column, np.ndarray) and column.ndim != 1:
        rows = np.empty(column.shape[0] if column.ndim else 1, dtype=object)
        rows[:] = list(column) if column.ndim else [column.item()]
        return rows
    return column


def _from_named_columns(columns: dict[str, Any], names: Sequence[str], violations: Counter[str]
                        ) -> tuple[Columns, int]:
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        n = max(lengths)  # ragged columns: rows cannot be aligned
        violations["wrong_width"] += n
        return {name: _none_column(n) for name in names}, n
    n = lengths.pop() if lengths else 0
    out: Columns = {}
    for name in names:
        column = columns.get(name)
        if column is None:
            violations["missing_feature"] += n
            column = _none_column(n)
        out[name] = _as_1d(column)
    extra = len(set(columns).difference(names))
    if extra:
        violations["unexpected_feature"] += extra * n
    return out, n


# -- strict mode -------------------------------------------------------------------------------


def table_columns(X: Any, feature_names: Sequence[str] | None = None) -> Columns:
    """Return every column of training data ``X`` by name (profile building).

    Args:
        X: A 2-D array or list of positional rows (named ``feature_names`` or ``f0 .. fk-1``),
            a list of dict rows, a dict of columns or a DataFrame (duck-typed).
        feature_names: Names of positional columns; for named inputs, the subset and order
            of the columns to keep.

    Raises:
        ConfigurationError: Where counting mode would count a violation (ragged rows or
            columns, rows without a feature, an input that is not a table), and on duplicate
            or unknown names; the message says what to change.
    """
    if feature_names is not None and (isinstance(feature_names, str)
                                      or not isinstance(feature_names, Sequence)):
        raise ConfigurationError("feature_names must be a list of column names")
    if hasattr(X, "columns") and hasattr(X, "to_numpy") and not isinstance(X, Mapping):
        return _select(_frame_columns(X), [str(c) for c in X.columns], feature_names)
    if isinstance(X, Mapping):
        if X and not all(isinstance(v, _SEQUENCES) for v in X.values()):
            raise ConfigurationError("X is a dict of scalars (one row?): pass a dict of "
                                     "columns, a list of dict rows, a 2-D array or a DataFrame")
        names = [str(k) for k in X]
        return _select({str(k): _as_1d(v) for k, v in X.items()}, names, feature_names)
    if isinstance(X, (list, tuple)) and X and isinstance(X[0], Mapping):
        return _select(*_strict_dict_rows(X), feature_names)
    if isinstance(X, (list, tuple)) and X and not isinstance(X[0], _SEQUENCES):
        raise ConfigurationError("X is a flat list (one row or one column?): pass a list of "
                                 "rows, or a dict {name: column}")
    if isinstance(X, (list, tuple)) and any(len(r) != len(X[0]) for r in X):
        widths = sorted({len(r) for r in X})
        raise ConfigurationError(f"X has rows of different widths {widths}: every row needs "
                                 "one value per feature")
    try:
        array = np.asarray(X) if isinstance(X, np.ndarray) else np.asarray(X, dtype=object)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"X is not a table ({exc})") from None
    if array.ndim == 0:
        raise ConfigurationError("X must be a table (a 2-D array, a list of rows, a dict of "
                                 f"columns or a DataFrame), got {type(X).__name__}")
    if array.ndim == 1:
        raise ConfigurationError(f"X is 1-D, shape {array.shape}: pass a 2-D array (rows x "
                                 "features), e.g. X.reshape(-1, 1) for one feature")
    if array.ndim != 2:
        raise ConfigurationError(f"X must be 2-D (rows x features), got shape {array.shape}")
    if feature_names is None:
        names = [f"f{i}" for i in range(array.shape[1])]
    else:
        names = [str(n) for n in feature_names]
        if len(names) != array.shape[1]:
            raise ConfigurationError(
                f"feature_names has {len(names)} names but X has {array.shape[1]} columns; "
                "pass one name per column")
    _unique(names, "feature_names")
    return {n: array[:, i] for i, n in enumerate(names)}


def _strict_dict_rows(rows: Sequence[Any]) -> tuple[Columns, list[str]]:
    names = [str(k) for k in rows[0]]
    keys = list(rows[0])
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or len(row) != len(keys) or any(k not in row
                                                                        for k in keys):
            raise ConfigurationError(f"row {i} of X does not have the keys of row 0 "
                                     f"({names[:5]}{'...' if len(names) > 5 else ''}); every "
                                     "dict row needs the same features")
    table = np.empty((len(rows), len(keys)), dtype=object)
    table[:] = [[row[k] for k in keys] for row in rows]
    return {n: table[:, j] for j, n in enumerate(names)}, names


def _unique(names: Sequence[str], what: str) -> None:
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigurationError(f"{what} must be unique; rename the duplicated columns "
                                 f"{dupes[:5]}")


def _select(columns: Columns, names: list[str], feature_names: Sequence[str] | None) -> Columns:
    _unique(names, "feature names")
    if feature_names is None:
        return columns
    wanted = [str(n) for n in feature_names]
    unknown = [n for n in wanted if n not in columns]
    if unknown:
        raise ConfigurationError(f"feature_names {unknown} are not columns of X")
    _unique(wanted, "feature_names")
    return {n: columns[n] for n in wanted}
