"""Current-window summaries: mergeable, built from raw columns without raising.

:class:`FeatureWindow` summarises one feature on its reference's bins or vocabulary;
:class:`DatasetWindow` holds one per feature plus the prediction and schema violations. Both
merge exactly (counts) or to rounding (moments), which is what rolling windows, processes and
replicas rely on. The drift evaluation (:mod:`mlprobe._drift_eval`) reads them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from ._feature_input import Columns, text_numbers, to_columns
from ._feature_profile import FeatureProfile, NumericProfile
from ._profile import ReferenceProfile
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
        with np.errstate(over="ignore", invalid="ignore"):  # see _sum_sq_dev
            mean, m2 = v.mean(), _sum_sq_dev(v)
        self.add_sorted(v, lo, hi, mean, m2)

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

    def to_dict(self, *, arrays: bool = False) -> dict[str, Any]:
        """Return a dict of the raw summary: JSON-ready, or with ``arrays=True`` compact (count
        arrays as numpy arrays, no reference data: what processes exchange, see
        :meth:`from_dict`)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "missing": self.missing,
                               "invalid": self.invalid, "out_of_range": self.out_of_range}
        if not arrays:
            for attr in ("moments", "bins", "categories", "sketch"):
                v = getattr(self, attr)
                if v is not None:
                    out[attr] = v.to_dict()
            return out
        if self.moments is not None:
            out["moments"] = self.moments.to_dict()
        if self.bins is not None:
            out["bins"] = {"counts": self.bins.counts.copy(),
                           "outer_sums": self.bins.outer_sums.copy()}
        if self.categories is not None:
            out["categories"] = {"counts": self.categories.counts.copy()}
        if self.sketch is not None:
            out["sketch"] = self.sketch.to_dict(arrays=True)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], like: FeatureWindow) -> FeatureWindow:
        """Rebuild a window from :meth:`to_dict` output (either form), on the reference data of
        ``like`` (an empty window of the same feature: its bins, vocabulary and sketch
        setting).

        Raises:
            ValueError: the dict describes another feature or other bins, or is malformed.
        """
        if data.get("name") != like.name or data.get("kind") != like.kind:
            raise ValueError(f"a window of {data.get('name')!r} cannot be read as one of "
                             f"{like.name!r}")
        out = like.copy()
        out.missing, out.invalid = int(data["missing"]), int(data["invalid"])
        out.out_of_range = int(data["out_of_range"])
        if out.moments is not None:
            out.moments = Moments.from_dict(data["moments"])
        if out.bins is not None:
            out.bins.counts = _counts(data["bins"]["counts"], out.bins.counts.shape)
            sums = np.asarray(data["bins"].get("outer_sums", (0.0, 0.0)), dtype=np.float64)
            if sums.shape != (2,):
                raise ValueError("outer_sums must hold two numbers")
            out.bins.outer_sums = sums.copy()
        if out.categories is not None:
            out.categories.counts = _counts(data["categories"]["counts"],
                                            out.categories.counts.shape)
        if out.sketch is not None:
            out.sketch = QuantileSketch.from_dict(data["sketch"])
        return out


def _counts(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    counts = np.array(values, dtype=np.int64)  # a copy: the window owns its counts
    if counts.shape != shape:
        raise ValueError(f"expected {shape[0]} counts, got shape {counts.shape}")
    return counts


def _sum_sq_dev(v: np.ndarray) -> float:
    # Finite values beyond ~1e154 overflow their squares (and beyond ~1e308 their sums): the
    # moments become inf, which the exposition and the drift statistics handle; numpy's
    # overflow warning is silenced by the callers, since a warning here would surface in the
    # user's process (and fail a batch under -W error).
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
    with np.errstate(over="ignore", invalid="ignore"):  # see _sum_sq_dev
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
        target: Also summarise the labels (``mlprobe drift --target``) when the profile has
            a target.
    """

    def __init__(self, profile: ReferenceProfile, *, sketch: bool = False,
                 target: bool = False) -> None:
        self.features = {n: FeatureWindow(f, sketch=sketch) for n, f in profile.features.items()}
        self.prediction = (FeatureWindow(profile.prediction, sketch=sketch)
                           if profile.prediction is not None else None)
        self.target = (FeatureWindow(profile.target)
                       if target and profile.target is not None else None)
        self.schema_violations: Counter[str] = Counter()
        self.rows = 0
        self._names = tuple(self.features)

    def update(self, batch: Any, predictions: Any = None, *, targets: Any = None,
               text: bool = False) -> None:
        """Fold a raw batch in (any input :func:`mlprobe._feature_input.to_columns` reads);
        never raises.

        Columns map by name (mappings, frames) or by position (arrays). Violations are counted
        by kind, once per row, in the vocabulary of :mod:`mlprobe._feature_input`.

        Args:
            batch: The inputs.
            predictions: Model outputs of the same rows (1-D), for prediction drift.
            targets: Labels of the same rows (1-D), for label drift (with ``target=True``).
            text: The columns hold CSV text: numbers are parsed from it.
        """
        columns, rows = to_columns(batch, self._names, self.schema_violations)
        self.add_columns(columns, rows, text=text)
        for window, values in ((self.prediction, predictions), (self.target, targets)):
            if values is not None and window is not None:
                if text and window.kind == "numeric":
                    values = text_numbers(values)[0]
                elif text:
                    values = _text_levels(values)
                window.update(np.asarray(values).reshape(-1) if not isinstance(values, list)
                              else values)

    def add_columns(self, columns: Columns, rows: int, *, text: bool = False) -> None:
        """Fold aligned columns in (as :func:`~mlprobe._feature_input.to_columns` returns them).

        Clean numeric arrays are folded as one block (one sort for all of them); other columns
        per feature, vectorised per column. A value of a numeric feature that is not a number
        counts as invalid and as a ``wrong_type`` schema violation.
        """
        self.rows += rows
        violations = self.schema_violations
        block_windows: list[FeatureWindow] = []
        block_columns: list[np.ndarray] = []
        for name, column in columns.items():
            feature = self.features[name]
            if feature.kind != "numeric":
                feature.update(column)
                continue
            if text:
                column, wrong = text_numbers(column)
                if wrong:
                    violations["wrong_type"] += wrong
            if (type(column) is np.ndarray and column.ndim == 1
                    and column.dtype.kind in "fiub"):
                block_windows.append(feature)
                block_columns.append(column)
                continue
            invalid_before = feature.invalid
            feature.update(column)
            invalid = feature.invalid - invalid_before
            if invalid:  # dirty column: tell non-numbers from ±inf (the rare, slow case)
                wrong = invalid - _non_finite_numbers(column)
                if wrong > 0:
                    violations["wrong_type"] += wrong
        if block_columns:
            block = np.stack(block_columns)  # a new array: it may be sorted in place
            update_numeric_block(block_windows, block.astype(np.float64, copy=False),
                                 owned=True)

    def add_unaligned(self, rows: int) -> None:
        """Count ``rows`` rows whose values could not be aligned with features (their schema
        violation is counted where they were read): every feature is missing in them."""
        if rows:
            self.add_columns({name: np.full(rows, None, dtype=object) for name in self._names},
                             rows)

    def copy(self) -> DatasetWindow:
        """Return an independent copy (cheaper than building a window from the profile)."""
        out = DatasetWindow.__new__(DatasetWindow)
        out.features = {n: w.copy() for n, w in self.features.items()}
        out.prediction = self.prediction.copy() if self.prediction is not None else None
        out.target = self.target.copy() if self.target is not None else None
        out.schema_violations = Counter(self.schema_violations)
        out.rows = self.rows
        out._names = self._names
        return out

    def to_dict(self, *, arrays: bool = False) -> dict[str, Any]:
        """Return a dict of the raw summaries (see :meth:`FeatureWindow.to_dict`)."""
        return {"features": {n: w.to_dict(arrays=arrays) for n, w in self.features.items()},
                "prediction": (self.prediction.to_dict(arrays=arrays)
                               if self.prediction is not None else None),
                "target": self.target.to_dict(arrays=arrays) if self.target is not None else None,
                "schema_violations": dict(self.schema_violations), "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any], like: DatasetWindow) -> DatasetWindow:
        """Rebuild a window from :meth:`to_dict` output, on the reference data of ``like``
        (an empty window of the same profile and settings).

        Raises:
            ValueError: the dict holds other features than ``like`` or is malformed.
        """
        features = data["features"]
        if set(features) != set(like.features):
            raise ValueError("the window's features differ from the profile's")
        out = DatasetWindow.__new__(DatasetWindow)
        out.features = {n: FeatureWindow.from_dict(features[n], w)
                        for n, w in like.features.items()}
        out.prediction = out.target = None
        for attr in ("prediction", "target"):
            mine, theirs = getattr(like, attr), data.get(attr)
            if (mine is None) != (theirs is None):
                raise ValueError(f"the window's {attr} does not match the profile's")
            if mine is not None:
                setattr(out, attr, FeatureWindow.from_dict(theirs, mine))
        out.schema_violations = Counter({str(k): int(v)
                                         for k, v in data["schema_violations"].items()})
        out.rows = int(data["rows"])
        out._names = like._names
        return out

    def merge(self, other: DatasetWindow) -> DatasetWindow:
        """Add another window into this one, in place; returns ``self``."""
        for n, w in self.features.items():
            w.merge(other.features[n])
        for mine, theirs in ((self.prediction, other.prediction), (self.target, other.target)):
            if mine is not None and theirs is not None:
                mine.merge(theirs)
        self.schema_violations.update(other.schema_violations)
        self.rows += other.rows
        return self


_NUMBER_TYPES = (bool, np.bool_, int, float, np.integer, np.floating)


def _text_levels(cells: list[str]) -> list[Any]:
    """CSV cells of a class column, as the profile saw them: ``mlprobe profile`` parses a
    numeric-looking label or prediction column, so "1", "1.0" and "1e0" are all level "1"."""
    out: list[Any] = []
    for cell in cells:
        try:
            out.append(float(cell))
        except ValueError:
            out.append(cell)
    return out


def _non_finite_numbers(column: Any) -> int:
    """How many entries are numbers but ±inf or beyond the float range (invalid, yet not
    of the wrong type)."""
    values = column.tolist() if isinstance(column, np.ndarray) else column
    n = 0
    for v in values:
        if isinstance(v, _NUMBER_TYPES):
            try:
                f = float(v)
            except OverflowError:
                n += 1
                continue
            n += f == math.inf or f == -math.inf
    return n
