"""Fold encoded rows into a new window, in steps short enough to pause between.

:func:`ingest_steps` is a generator: it builds the window of one flush feature by feature and
yields after every step that holds the GIL for more than a few microseconds. The background
flusher pauses at each yield so request threads are never held up for a whole flush; a scrape
runs it straight through. The numbers it computes are exactly those of
:func:`mlprobe._window.update_numeric_block` and :meth:`FeatureWindow.update` (it is their
sliced form, on the encodings of :mod:`mlprobe._row_codec`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from ._row_codec import INVALID, MISSING, RowCodec, category_codes
from ._window import DatasetWindow, FeatureWindow

__all__ = ["Encoded", "ingest_steps"]


class Encoded:
    """Encoded rows ready to ingest: a ``(numeric, rows)`` float64 block (C-ordered, owned:
    it is sorted in place), ``(categorical, rows)`` codes, the schema violations counted while
    encoding, and the buffered predictions."""

    __slots__ = ("codes", "numbers", "predictions", "rows", "violations")

    def __init__(self, numbers: np.ndarray, codes: np.ndarray, rows: int,
                 violations: Counter[str] | None = None,
                 predictions: Sequence[Any] = ()) -> None:
        self.numbers = numbers
        self.codes = codes
        self.rows = rows
        self.violations = violations if violations is not None else Counter()
        self.predictions = predictions


def ingest_steps(template: DatasetWindow, codec: RowCodec, data: Encoded
                 ) -> Generator[None, None, DatasetWindow]:
    """Build the window of ``data`` (a copy of ``template`` plus the rows), yielding between
    steps; the generator's return value is the window."""
    delta = DatasetWindow.__new__(DatasetWindow)
    delta.features = {}
    delta.prediction = None
    delta.schema_violations = Counter(data.violations)
    delta.rows = data.rows
    features = delta.features
    if data.rows:
        yield from _numeric_steps(template, codec.numeric, data.numbers, features)
        for j, (name, size) in enumerate(zip(codec.categorical, codec.sizes)):
            window = features[name] = template.features[name].copy()
            invalid = _add_codes(window, data.codes[j], size)
            if invalid:
                delta.schema_violations["wrong_type"] += invalid
            if j % 8 == 7:
                yield
    for name in codec.names:  # features without rows, and the profile's order for the rest
        window = features.pop(name, None)
        features[name] = template.features[name].copy() if window is None else window
    if template.prediction is not None:
        delta.prediction = template.prediction.copy()
        if data.predictions:
            yield
            _add_predictions(delta.prediction, codec, data.predictions)
    return delta


def _numeric_steps(template: DatasetWindow, names: Sequence[str], block: np.ndarray,
                   out: dict[str, FeatureWindow]) -> Generator[None, None, None]:
    """``update_numeric_block`` over ``block``, one feature per step after one sort of all."""
    if not names:
        return
    windows = [template.features[name].copy() for name in names]
    out.update(zip(names, windows))
    finite = np.isfinite(block)
    if not finite.all():
        clean = finite.all(axis=1)
        for i in np.flatnonzero(~clean).tolist():  # NaN (missing) or inf (invalid) present
            windows[i].update(block[i])
            yield
        windows = [w for w, ok in zip(windows, clean.tolist()) if ok]
        if not windows:
            return
        block = block[clean]  # a new array: ours to sort
    block.sort(axis=1)  # numpy releases the GIL while sorting
    means = block.mean(axis=1)
    deviations = block - means[:, None]
    m2 = np.einsum("ij,ij->i", deviations, deviations).tolist()
    del deviations
    yield
    for w, v, lo, hi, mean, sq in zip(windows, block, block[:, 0].tolist(),
                                      block[:, -1].tolist(), means.tolist(), m2):
        w.add_sorted(v, lo, hi, mean, sq)
        yield


def _add_codes(window: FeatureWindow, codes: np.ndarray, size: int) -> int:
    """Count codes into a categorical window; return how many were invalid."""
    counts = np.bincount(codes, minlength=size + INVALID + 1)
    assert window.categories is not None
    window.categories.counts += counts[:size + 1]  # levels, then unseen (__other__)
    window.missing += int(counts[size + MISSING])
    invalid = int(counts[size + INVALID])
    window.invalid += invalid
    return invalid


def _add_predictions(window: FeatureWindow, codec: RowCodec, predictions: Sequence[Any]) -> None:
    parts = [np.asarray(p).reshape(-1) for p in predictions]
    values = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if window.categories is None:
        window.update(values)
        return
    index, size = codec.prediction_index
    if values.dtype != np.uint32:  # already codes when buffered by the monitor
        values = category_codes(values, values.size, index, size)
    _add_codes(window, values, size)
