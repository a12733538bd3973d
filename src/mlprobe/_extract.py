"""Duck-typed adapters from whatever a model takes and returns to sizes, scores and classes.

Supported without configuration: numpy arrays, lists and tuples (of rows or of scalars), dicts of
columns, scalars, bytes/str payloads, and anything shaped like a pandas ``DataFrame`` or
``Series`` (pandas is never imported). Anything else is ignored (nothing is recorded for it);
users pass their own extractors for other types. These functions may raise on exotic objects:
callers run them inside the internal-error guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["OutputValues", "input_size", "output_values"]

_SCALARS = (int, float, bool, np.number, np.bool_)
_ROW_TYPES = (list, tuple, dict, np.ndarray)
_ROW_VALUES = (*_SCALARS, str, bytes)


def input_size(batch: Any) -> tuple[int | None, int | None]:
    """Return ``(rows, bytes)`` of a model input; either is ``None`` when it is not known.

    Bytes are the size of the input's data buffers where the object knows it cheaply (numpy
    ``nbytes``, pandas ``memory_usage`` without ``deep``, the length of bytes or str payloads).
    Python containers of Python objects have no cheap honest size, so their bytes are not
    recorded (``None``) rather than guessed. An input that lies about itself (a ``__len__``,
    ``shape`` or ``memory_usage`` that raises or returns nonsense) has no known size.
    """
    try:
        # (negative sizes from an object that lies are dropped by the recorder)
        return _input_size(batch)
    except Exception:  # noqa: BLE001 - a hostile input object: sizes unknown, nothing raised
        return None, None


def _input_size(batch: Any) -> tuple[int | None, int | None]:
    kind = type(batch)
    if kind is np.ndarray:
        return (int(batch.shape[0]) if batch.ndim else 1), int(batch.nbytes)
    if kind is list or kind is tuple:
        if not batch:
            return 0, None
        return (len(batch) if isinstance(batch[0], _ROW_TYPES) else 1), None
    if kind is dict:
        if not batch:
            return 0, None
        first = next(iter(batch.values()))
        if isinstance(first, _ROW_VALUES):  # a single row: the common case, checked first
            return 1, None
        if isinstance(first, (list, tuple, np.ndarray)) or _is_pandas(first):
            return len(first), None
        return 1, None
    if isinstance(batch, (bytes, bytearray, memoryview)):
        return 1, len(batch)
    if isinstance(batch, str):
        return 1, len(batch.encode("utf-8", "surrogatepass"))
    if isinstance(batch, _SCALARS):
        return 1, None
    if _is_pandas(batch):
        usage = batch.memory_usage(index=False, deep=False)
        return int(batch.shape[0]), int(usage.sum() if hasattr(usage, "sum") else usage)
    shape = getattr(batch, "shape", None)
    if isinstance(shape, tuple):  # other array libraries (torch, jax, cupy, ...)
        rows = int(shape[0]) if shape else 1
        nbytes = getattr(batch, "nbytes", None)
        return rows, (int(nbytes) if isinstance(nbytes, (int, np.integer)) else None)
    return None, None


def _is_pandas(obj: Any) -> bool:
    return hasattr(obj, "to_numpy") and hasattr(obj, "memory_usage") and hasattr(obj, "shape")


class OutputValues:
    """What a model returned, split into scores per output and predicted classes.

    ``scores`` maps an output name to a float array (or a float for one value); ``classes`` is
    a sequence of class labels (strings) or ``None``.
    """

    __slots__ = ("classes", "scores")

    def __init__(self, scores: dict[str, Any], classes: Any) -> None:
        self.scores = scores
        self.classes = classes


_NOTHING = OutputValues({}, None)


def output_values(result: Any, max_outputs: int) -> OutputValues:
    """Split a model's result into scores and classes.

    Floats are scores; integers, booleans and strings are class labels. A 2-D float array of
    shape ``(n, k)`` with ``k > 1`` is read as per-class probabilities: column ``j`` is output
    ``"j"`` (the first ``max_outputs`` columns) and its row-wise argmax is the predicted class.
    A mapping is read as named outputs (``{"churn": scores, ...}``). A list of scores with
    some missing or odd entries keeps its numbers. Never raises: a result that cannot be read
    at all (a hostile ``__array__``, ``__len__`` or mapping) records nothing.
    """
    try:
        return _output_values(result, max_outputs)
    except Exception:  # noqa: BLE001 - a hostile result object: nothing to record
        return _NOTHING


def _output_values(result: Any, max_outputs: int) -> OutputValues:
    kind = type(result)
    if kind is float or isinstance(result, np.floating):
        return OutputValues({"score": float(result)}, None)
    if kind is str or kind is bool or kind is int or isinstance(result, (np.integer, np.bool_)):
        return OutputValues({}, (_safe_label(result),))
    if kind is np.ndarray:
        return _from_array(result, max_outputs)
    if kind is list or kind is tuple:
        if not result:
            return _NOTHING
        if len(result) == 1 and not isinstance(result[0], (list, tuple, dict)):
            return output_values(result[0], max_outputs)
        try:
            array = np.asarray(result)
        except Exception:  # noqa: BLE001 - ragged or exotic: nothing we can read
            return _NOTHING
        return _from_array(array, max_outputs)
    if isinstance(result, Mapping):
        scores: dict[str, Any] = {}
        for name, value in list(result.items())[:max_outputs]:
            part = output_values(value, max_outputs)
            if "score" in part.scores:
                try:
                    scores[str(name)] = part.scores["score"]
                except Exception:  # noqa: BLE001 - a name whose str() raises: that output only
                    continue
        return OutputValues(scores, None)
    if _is_pandas(result):
        return _from_array(result.to_numpy(), max_outputs)
    return _NOTHING


def _from_array(array: np.ndarray, max_outputs: int) -> OutputValues:
    dtype_kind = array.dtype.kind
    if dtype_kind == "f":
        if array.ndim == 0:
            return OutputValues({"score": float(array)}, None)
        if array.ndim == 1:
            return OutputValues({"score": array}, None)
        if array.ndim == 2:
            if array.shape[1] == 1:
                return OutputValues({"score": array[:, 0]}, None)
            scores = {str(j): array[:, j] for j in range(min(array.shape[1], max_outputs))}
            classes = None
            if array.shape[0]:
                # rows that are all NaN have no predicted class
                valid = ~np.isnan(array).all(axis=1)
                classes = np.argmax(np.nan_to_num(array[valid], nan=-np.inf), axis=1)
            return OutputValues(scores, classes)
        return _NOTHING
    if dtype_kind in "iub":
        return OutputValues({}, array.ravel())
    if dtype_kind in "US":
        return OutputValues({}, array.ravel())
    if dtype_kind == "O":
        items = array.ravel().tolist()
        if any(type(v) is float for v in items):
            # scores with some missing or odd entries ([0.2, None, 0.9]): keep the numbers,
            # so one bad entry costs that entry, not the batch
            numbers = [v for v in items if type(v) is float or type(v) is int]
            return OutputValues({"score": np.array(numbers, dtype=np.float64)}, None)
        labels = [v for v in items if type(v) is str or type(v) is int or type(v) is bool]
        return OutputValues({}, labels)
    return _NOTHING


def _label(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


UNREADABLE_CLASS = "__other__"
"""Label of a class whose label cannot be made (its ``str`` raises, an int too long to print):
counted with the overflow classes, one value each."""


def _safe_label(value: Any) -> str:
    try:
        return _label(value)
    except Exception:  # noqa: BLE001 - one unreadable class costs that class only
        return UNREADABLE_CLASS


def class_counts(classes: Any) -> list[tuple[str, int]]:
    """Count class labels, one Python step per distinct label rather than per row."""
    if isinstance(classes, np.ndarray):
        if classes.size == 0:
            return []
        values, counts = np.unique(classes, return_counts=True)
        return [(_safe_label(v), int(n)) for v, n in zip(values.tolist(), counts.tolist())]
    if len(classes) == 1:
        return [(_safe_label(classes[0]), 1)]
    tally: dict[str, int] = {}
    for value in classes:
        key = _safe_label(value)
        tally[key] = tally.get(key, 0) + 1
    return list(tally.items())
