"""Current-window summaries: mergeable, built from raw columns without raising.

:class:`FeatureWindow` summarises one feature on its reference's bins or vocabulary;
:class:`DatasetWindow` holds one per feature plus the prediction and schema violations. Both
merge exactly (counts) or to rounding (moments), which is what rolling windows, processes and
replicas rely on. The drift evaluator (:mod:`mlprobe._drift`) reads them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._profile import FeatureProfile, NumericProfile, ReferenceProfile, as_columns
from .stats import BinnedCounts, CategoryCounts, Moments, QuantileSketch
from .stats._coerce import coerce_numeric, tally_categorical

__all__ = ["DatasetWindow", "FeatureWindow", "update_numeric_block"]


class FeatureWindow:
    """Mergeable current summary of one feature, on the reference's bins / vocabulary.

    Numeric: :class:`Moments`, :class:`BinnedCounts` on the reference edges, optionally a
    :class:`QuantileSketch`, and counts of missing, invalid and out-of-reference-range
    values. Categorical: :class:`CategoryCounts` on the reference vocabulary (values outside
    it are ``unseen``) and a missing count.

    Args:
        ref: The feature's reference profile.
        sketch: Also keep a quantile sketch (numeric only).
    """

    __slots__ = ("name", "kind", "moments", "bins", "categories", "sketch", "missing",
                 "invalid", "out_of_range", "_lo", "_hi", "_probes")

    def __init__(self, ref: FeatureProfile, *, sketch: bool = False) -> None:
        self.name = ref.name
        self.kind = ref.kind
        self.missing = 0
        self.invalid = 0
        self.out_of_range = 0
        self.moments: Moments | None = None
        self.bins: BinnedCounts | None = None
        self.categories: CategoryCounts | None = None
        self.sketch: QuantileSketch | None = None
        self._lo = self._hi = math.nan
        self._probes: np.ndarray | None = None
        if isinstance(ref, NumericProfile):
            self.moments = Moments()
            self.bins = ref.empty_bins()
            self.sketch = QuantileSketch() if sketch else None
            self._lo, self._hi = ref.min, ref.max
            self._probes = ref.search_points
        else:
            self.categories = ref.empty_counts()

    @property
    def count(self) -> int:
        """Valid (non-missing, non-invalid) values counted."""
        if self.moments is not None:
            return self.moments.count
        assert self.categories is not None
        return self.categories.total

    @property
    def rows(self) -> int:
        """All rows seen, including missing and invalid ones."""
        return self.count + self.missing + self.invalid

    def update(self, column: Any) -> None:
        """Fold one raw column in (vectorised; bad entries are counted, never raised)."""
        if self.categories is not None:
            tally, missing = tally_categorical(column)
            self.missing += missing
            self.categories.update_counts(tally)
            return
        col = coerce_numeric(column)
        self.update_numeric(col.values, col.missing, col.invalid)

    def update_numeric(self, values: np.ndarray, missing: int = 0, invalid: int = 0) -> None:
        """Fold already-clean finite float64 values in, with counts of the dropped ones.

        (The serving side folds whole numeric blocks with :func:`update_numeric_block`.)
        """
        assert self.moments is not None and self.bins is not None
        self.missing += missing
        self.invalid += invalid
        if values.size == 0:
            return
        v = np.sort(values)
        lo, hi = float(v[0]), float(v[-1])
        self.add_sorted(v, lo, hi, v.mean(), _sum_sq_dev(v))

    def add_sorted(self, v: np.ndarray, lo: float, hi: float, mean: float, m2: float) -> None:
        """Fold a sorted, non-empty batch of finite values in, with its moments precomputed.

        One ``searchsorted`` of the sorted batch finds every bin edge and both ends of the
        reference range; the sketch reuses the known extremes.
        """
        assert self.moments is not None and self.bins is not None and self._probes is not None
        self.moments.add_summary(int(v.size), float(mean), float(m2), lo, hi)
        below = np.searchsorted(v, self._probes, side="left")
        n_edges = self.bins.edges.size
        self.bins.add_sorted(v, below[:n_edges])
        if below.size > n_edges:  # a reference range: #{v < min} and #{v <= max}
            self.out_of_range += int(below[n_edges]) + v.size - int(below[n_edges + 1])
        if self.sketch is not None:
            self.sketch.update_sorted(v)

    def add_missing(self, n: int) -> None:
        """Count ``n`` rows in which the feature was absent."""
        self.missing += n

    def merge(self, other: FeatureWindow) -> FeatureWindow:
        """Add another window of the same feature into this one, in place; returns ``self``."""
        if other.name != self.name or other.kind != self.kind:
            raise ValueError("cannot merge windows of different features")
        self.missing += other.missing
        self.invalid += other.invalid
        self.out_of_range += other.out_of_range
        for attr in ("moments", "bins", "categories", "sketch"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if mine is not None and theirs is not None:
                mine.merge(theirs)
        return self

    def copy(self) -> FeatureWindow:
        """Return an independent copy (reference data is shared: it is never mutated).

        Spelled out rather than looped over the slots: windows are copied from an empty
        template once per flush and per scrape, for every feature.
        """
        out = FeatureWindow.__new__(FeatureWindow)
        out.name, out.kind = self.name, self.kind
        out.missing, out.invalid, out.out_of_range = self.missing, self.invalid, self.out_of_range
        out._lo, out._hi, out._probes = self._lo, self._hi, self._probes
        out.moments = self.moments.copy() if self.moments is not None else None
        out.bins = self.bins.copy() if self.bins is not None else None
        out.categories = self.categories.copy() if self.categories is not None else None
        out.sketch = self.sketch.copy() if self.sketch is not None else None
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the raw summary."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "missing": self.missing,
                               "invalid": self.invalid, "out_of_range": self.out_of_range}
        for attr in ("moments", "bins", "categories", "sketch"):
            v = getattr(self, attr)
            if v is not None:
                out[attr] = v.to_dict()
        return out


def _sum_sq_dev(v: np.ndarray) -> float:
    # einsum, not np.dot: np.dot goes to BLAS, and OpenBLAS runs long vectors on its own
    # thread pool, whose spinning threads took milliseconds per call on a busy 2-core host
    # (and took CPU from the request threads).
    d = v - v.mean()
    return float(np.einsum("i,i->", d, d))


def update_numeric_block(windows: list[FeatureWindow], block: np.ndarray, *,
                         owned: bool = False) -> None:
    """Fold a ``(features, rows)`` float64 block into numeric windows, one row per window.

    Vectorised across features: one sort of the whole block, and the moments of every
    feature along one axis. NaN counts as missing and ±inf as invalid, exactly as
    :meth:`FeatureWindow.update` counts them (features with such values take that path).
    ``owned=True`` says the block is a C-ordered float64 array nobody else holds, so it is
    sorted in place instead of copied.
    """
    if block.shape[1] == 0:
        return
    finite = np.isfinite(block)
    if not finite.all():
        clean = finite.all(axis=1)
        for i in np.flatnonzero(~clean).tolist():
            windows[i].update(block[i])
        windows = [w for w, ok in zip(windows, clean.tolist()) if ok]
        if not windows:
            return
        block = block[clean]
    s = block if owned and block.flags.c_contiguous else np.array(block, dtype=np.float64,
                                                                  order="C")
    s.sort(axis=1)
    means = s.mean(axis=1)
    d = s - means[:, None]
    m2 = np.einsum("ij,ij->i", d, d).tolist()
    for w, v, lo, hi, mean, sq in zip(windows, s, s[:, 0].tolist(), s[:, -1].tolist(),
                                      means.tolist(), m2):
        w.add_sorted(v, lo, hi, mean, sq)


class DatasetWindow:
    """Current summaries of every profiled feature, plus prediction and schema violations.

    Args:
        profile: The reference profile that fixes the schema.
        sketch: Keep quantile sketches for numeric features.
    """

    def __init__(self, profile: ReferenceProfile, *, sketch: bool = False) -> None:
        self.features = {n: FeatureWindow(f, sketch=sketch) for n, f in profile.features.items()}
        self.prediction = (FeatureWindow(profile.prediction, sketch=sketch)
                           if profile.prediction is not None else None)
        self.schema_violations: Counter[str] = Counter()
        self.rows = 0

    def update(self, batch: Any, predictions: Any = None) -> None:
        """Fold a raw batch in (dict of columns, 2-D array, or DataFrame); never raises.

        Columns map by name (mappings, frames) or by position (arrays, whose width must equal
        the number of features). Violations are counted by kind: ``missing_feature`` and
        ``unexpected_feature`` (per column per batch), ``wrong_width`` (array of the wrong
        width), ``ragged_rows`` / ``unreadable_batch`` (input that is not a table), and
        ``length_mismatch`` (a column of another length than the batch). A missing feature's
        rows count as missing values of that feature.
        """
        names = list(self.features)
        try:
            if isinstance(batch, Mapping) or hasattr(batch, "columns"):
                cols = as_columns(batch)
            else:
                arr = np.asarray(batch)
                if arr.ndim == 1 and arr.dtype == object and len(arr) and hasattr(arr[0], "__len__"):
                    self.schema_violations["ragged_rows"] += 1
                    return
                if arr.ndim == 1:
                    arr = arr.reshape(-1, 1) if len(names) == 1 else arr.reshape(1, -1)
                if arr.ndim != 2:
                    self.schema_violations["unreadable_batch"] += 1
                    return
                if arr.shape[1] != len(names):
                    self.schema_violations["wrong_width"] += 1
                    return
                cols = {n: arr[:, i] for i, n in enumerate(names)}
        except (ValueError, TypeError):
            self.schema_violations["ragged_rows"] += 1
            return
        n_rows = max((len(c) for c in cols.values()), default=0)
        self.rows += n_rows
        for name, col in cols.items():
            win = self.features.get(name)
            if win is None:
                self.schema_violations["unexpected_feature"] += 1
            elif len(col) != n_rows:
                self.schema_violations["length_mismatch"] += 1
                win.add_missing(n_rows)
            else:
                win.update(col)
        for name in names:
            if name not in cols:
                self.schema_violations["missing_feature"] += 1
                self.features[name].add_missing(n_rows)
        if predictions is not None and self.prediction is not None:
            self.prediction.update(np.asarray(predictions).reshape(-1))

    def copy(self) -> DatasetWindow:
        """Return an independent copy (cheaper than building a window from the profile)."""
        out = DatasetWindow.__new__(DatasetWindow)
        out.features = {n: w.copy() for n, w in self.features.items()}
        out.prediction = self.prediction.copy() if self.prediction is not None else None
        out.schema_violations = Counter(self.schema_violations)
        out.rows = self.rows
        return out

    def merge(self, other: DatasetWindow) -> DatasetWindow:
        """Add another window into this one, in place; returns ``self``."""
        for n, w in self.features.items():
            w.merge(other.features[n])
        if self.prediction is not None and other.prediction is not None:
            self.prediction.merge(other.prediction)
        self.schema_violations.update(other.schema_violations)
        self.rows += other.rows
        return self
