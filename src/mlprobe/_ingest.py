"""Fold encoded rows into a new window, in steps short enough to pause between.

:func:`ingest_steps` is a generator: it builds the window of one flush piece by piece and
yields after every step that holds the GIL for more than a few tens of microseconds (joining
a thousand buffered rows, one numeric feature, a few categorical ones). The background
flusher pauses at each yield, so a request thread waits for at most one step, never for a
whole flush; a scrape runs it straight through. The numbers are exactly those of
:meth:`FeatureWindow.update` on the raw values: each numeric column is sorted once, checked
for NaN and infinities at its two ends, and folded in with :meth:`FeatureWindow.add_sorted`
(its sliced form, on the encodings of :mod:`mlprobe._value_codes`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from ._flusher import COLLECT_BUDGET_S
from ._row_codec import RowCodec
from ._value_codes import INVALID, MISSING, category_codes
from ._window import DatasetWindow, FeatureWindow

__all__ = ["Encoded", "ingest_steps", "run_steps"]

JOIN_PARTS = 512
"""Buffered row objects joined per step (10-30 µs)."""


class Encoded:
    """Encoded rows ready to ingest: either buffer ``parts`` (bytes in the row layout, joined
    and read in steps) or ``numbers`` (``(rows, numeric)`` float64) and ``codes``
    (``(rows, categorical)`` uint32) arrays; plus the schema violations counted while
    encoding and the buffered predictions."""

    __slots__ = ("code_counts", "codes", "numbers", "parts", "predictions", "violations")

    def __init__(self, *, parts: list[bytes] | None = None, numbers: np.ndarray | None = None,
                 codes: np.ndarray | None = None,
                 code_counts: list[np.ndarray] | None = None,
                 violations: Counter[str] | None = None,
                 predictions: Sequence[Any] = ()) -> None:
        self.parts = parts
        self.numbers = numbers
        self.codes = codes
        self.code_counts = code_counts  # instead of codes: per feature, the count per code
        self.violations = violations if violations is not None else Counter()
        self.predictions = predictions


def ingest_steps(template: DatasetWindow, codec: RowCodec, data: Encoded
                 ) -> Generator[None, None, DatasetWindow]:
    """Build the window of ``data`` (a copy of ``template`` plus the rows), yielding between
    steps; the generator's return value is the window."""
    if data.parts is not None:
        joined = yield from _join_steps(data.parts)
        numbers, codes = codec.from_bytes(joined)
    else:
        assert data.numbers is not None
        numbers, codes = data.numbers, data.codes
    delta = DatasetWindow.__new__(DatasetWindow)
    delta.features = {}
    delta.prediction = None
    # Serving never sees labels: the target window stays empty (the CLI fills it).
    delta.target = template.target.copy() if template.target is not None else None
    delta._names = template._names
    delta.schema_violations = Counter(data.violations)
    delta.rows = numbers.shape[0]  # (rows, numeric), even with no numeric feature
    features = delta.features
    for i, name in enumerate(codec.numeric):
        window = features[name] = template.features[name].copy()
        if delta.rows:
            yield from _numeric_steps(window, numbers[:, i])
    for j, (name, size) in enumerate(zip(codec.categorical, codec.sizes)):
        window = features[name] = template.features[name].copy()
        if delta.rows:
            counts = (data.code_counts[j] if data.code_counts is not None
                      else np.bincount(codes[:, j], minlength=size + INVALID + 1))
            invalid = _add_code_counts(window, counts, size)
            if invalid:
                delta.schema_violations["wrong_type"] += invalid
        yield
    delta.features = {name: features[name] for name in codec.names}  # the profile's order
    if template.prediction is not None:
        delta.prediction = template.prediction.copy()
        if data.predictions:
            yield
            _add_predictions(delta.prediction, codec, data.predictions)
    return delta


def run_steps(steps: Generator[None, None, DatasetWindow], pause: Callable[[], None],
              budget: float, hurried: Callable[[], bool]) -> DatasetWindow:
    """Run ``steps`` to the end, calling ``pause()`` once they have held the interpreter for
    ``budget`` seconds in a row (``COLLECT_BUDGET_S`` while ``hurried()``); return the window.

    Steps are 5-30 µs, so a request thread waiting for the GIL is held up by about the
    budget at most. Finite values near the double range (1e308) overflow sums and squares:
    the window's moments then become infinite, as the arithmetic says, without numpy's
    warning (under ``-W error`` that warning is an exception that would lose the flush).
    ``np.errstate`` is thread-local (a context variable): no other thread is affected.
    """
    clock = time.perf_counter
    with np.errstate(over="ignore", invalid="ignore"):
        held_since = clock()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            elapsed = clock() - held_since
            if elapsed >= budget and (not hurried() or elapsed >= COLLECT_BUDGET_S):
                pause()
                held_since = clock()


def _join_steps(parts: list[bytes]) -> Generator[None, None, bytes]:
    if len(parts) <= JOIN_PARTS:
        return b"".join(parts)
    chunks = []
    for start in range(0, len(parts), JOIN_PARTS):
        chunks.append(b"".join(parts[start:start + JOIN_PARTS]))
        yield
    return b"".join(chunks)


def _numeric_steps(window: FeatureWindow, column: np.ndarray) -> Generator[None, None, None]:
    """Fold one column of doubles in, in three steps (sort; moments and bins; sketch).

    NaN is missing and ±inf invalid, as in :meth:`FeatureWindow.update`. Finite values beyond
    about 1e154 overflow the sum of squared deviations (near 1e308 the sum itself): the
    moments then become infinite, as the arithmetic says (the caller silences numpy's
    warning, which ``-W error`` would turn into an exception).
    """
    values = np.sort(column)  # a contiguous copy; numpy sorts without holding the GIL
    yield
    lo, hi = float(values[0]), float(values[-1])
    if not (math.isfinite(lo) and math.isfinite(hi)):  # sorted: -inf first, +inf/NaN last
        window.update(values)
        return
    mean = values.mean()
    deviations = values - mean
    m2 = float(np.einsum("i,i->", deviations, deviations))  # not BLAS: see _sum_sq_dev
    # The sketch is updated in its own step: detached while add_sorted counts the moments,
    # bins and range (the window is this flush's private delta, so nobody else sees it).
    sketch, window.sketch = window.sketch, None
    window.add_sorted(values, lo, hi, float(mean), m2)
    window.sketch = sketch
    if sketch is not None:
        yield
        sketch.update_sorted(values)


def _add_code_counts(window: FeatureWindow, counts: np.ndarray, size: int) -> int:
    """Add counts per code to a categorical window; return how many were invalid."""
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
        with np.errstate(over="ignore", invalid="ignore"):  # see _numeric_steps
            window.update(values)
        return
    assert codec.prediction_index is not None
    index, size = codec.prediction_index
    if values.dtype != np.uint32:  # the monitor buffers codes; anything else is encoded here
        values = category_codes(values, values.size, index, size)
    _add_code_counts(window, np.bincount(values, minlength=size + INVALID + 1), size)
