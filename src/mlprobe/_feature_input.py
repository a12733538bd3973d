"""Map a model input to the reference's feature columns, once per batch, without raising.

Rows are matched to features by name (dict rows, dicts of columns, DataFrames) or by position
(arrays, lists of rows). Whatever does not fit the schema is counted by kind and dropped:

- ``missing_feature``: a named input lacks a reference feature (its values count as missing);
- ``unexpected_feature``: a named input has a column the reference does not know;
- ``wrong_width``: a positional row or array has another number of columns;
- ``wrong_type``: an input that is not rows at all, or a value of the wrong type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

__all__ = ["Columns", "to_columns", "tuple_getter"]

Columns = dict[str, Any]
"""Feature name -> 1-D column (ndarray or list), all of one length."""

_ROW_SEQUENCES = (list, tuple)


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


def to_columns(batch: Any, names: Sequence[str], violations: Counter[str]
               ) -> tuple[Columns, int]:
    """Return ``(columns, rows)`` for the reference features, counting schema violations."""
    kind = type(batch)
    if kind is dict:
        if batch and all(isinstance(v, (list, tuple, np.ndarray)) for v in batch.values()):
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
        if isinstance(first, (list, tuple, np.ndarray)):
            return _from_sequence_rows(batch, names, violations)
        return _from_sequence_rows([batch], names, violations)  # one positional row
    if hasattr(batch, "columns") and hasattr(batch, "to_numpy"):  # DataFrame (duck-typed)
        columns = {str(c): batch[c].to_numpy() for c in batch.columns}
        return _from_named_columns(columns, names, violations)
    violations["wrong_type"] += 1
    return {}, 0


def _from_array(array: np.ndarray, names: Sequence[str], violations: Counter[str]
                ) -> tuple[Columns, int]:
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        violations["wrong_type"] += 1
        return {}, 0
    if array.shape[1] != len(names):
        violations["wrong_width"] += array.shape[0]
        return {}, 0
    return {name: array[:, j] for j, name in enumerate(names)}, array.shape[0]


def _from_sequence_rows(rows: Sequence[Any], names: Sequence[str], violations: Counter[str]
                        ) -> tuple[Columns, int]:
    width = len(names)
    good = [r for r in rows if isinstance(r, (list, tuple, np.ndarray)) and len(r) == width]
    if len(good) != len(rows):
        violations["wrong_width"] += len(rows) - len(good)
    if not good:
        return {}, 0
    table = np.empty((len(good), width), dtype=object)
    table[:] = [list(r) for r in good] if not isinstance(good[0], list) else good
    return {name: table[:, j] for j, name in enumerate(names)}, len(good)


def _from_dict_rows(rows: Sequence[Any], names: Sequence[str], violations: Counter[str]
                    ) -> tuple[Columns, int]:
    expected = set(names)
    getter = itemgetter(*names)
    table = np.empty((len(rows), len(names)), dtype=object)
    n = 0
    for row in rows:
        if not isinstance(row, dict):
            violations["wrong_type"] += 1
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
        n += 1
    return {name: table[:n, j] for j, name in enumerate(names)}, n


def _from_named_columns(columns: dict[str, Any], names: Sequence[str], violations: Counter[str]
                        ) -> tuple[Columns, int]:
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        violations["wrong_width"] += max(lengths)  # ragged columns: rows cannot be aligned
        return {}, 0
    n = lengths.pop() if lengths else 0
    out: Columns = {}
    for name in names:
        column = columns.get(name)
        if column is None:
            violations["missing_feature"] += n  # counted per row, as for dict rows
            column = np.full(n, None, dtype=object)
        out[name] = column
    extra = len(set(columns).difference(names))
    if extra:
        violations["unexpected_feature"] += extra * n
    return out, n
