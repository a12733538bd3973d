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

__all__ = ["DatasetWindow", "FeatureWindow"]


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
                 "invalid", "out_of_range", "_lo", "_hi")

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
        if isinstance(ref, NumericProfile):
            self.moments = Moments()
            self.bins = ref.empty_bins()
            self.sketch = QuantileSketch() if sketch else None
            self._lo, self._hi = ref.min, ref.max
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
        """Fold already-clean finite float64 values in (the serving side's buffered path)."""
        assert self.moments is not None and self.bins is not None
        self.missing += missing
        self.invalid += invalid
        if values.size == 0:
            return
        # One sort serves the bins (searchsorted per edge), the range check and the sketch.
        v = np.sort(values)
        self.moments.update(v)
        self.bins.update_sorted(v)
        if self.sketch is not None:
            self.sketch.update(v)
        if math.isfinite(self._lo):
            below = int(np.searchsorted(v, self._lo, side="left"))
            above = v.size - int(np.searchsorted(v, self._hi, side="right"))
            self.out_of_range += below + above

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
        """Return an independent copy."""
        out = FeatureWindow.__new__(FeatureWindow)
        for attr in self.__slots__:
            v = getattr(self, attr)
            setattr(out, attr, v.copy() if hasattr(v, "copy") and not isinstance(v, str) else v)
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

    def merge(self, other: DatasetWindow) -> DatasetWindow:
        """Add another window into this one, in place; returns ``self``."""
        for n, w in self.features.items():
            w.merge(other.features[n])
        if self.prediction is not None and other.prediction is not None:
            self.prediction.merge(other.prediction)
        self.schema_violations.update(other.schema_violations)
        self.rows += other.rows
        return self
