"""The raw, mergeable state of one model's instruments.

:class:`ProbeState` is what ``ProbeSource.state()`` (:mod:`mlprobe._probe_source`) returns:
a copy of every count (calls, errors, latency, rows and bytes histograms, score histograms,
predicted classes) and the feature monitor's windowed state. States of several processes
merge exactly (:meth:`ProbeState.merge`), travel as plain data (:meth:`ProbeState.to_dict`,
:meth:`ProbeSource.state_from_dict`), and report the same families the source does: the
source's own ``collect_into`` is ``self.state().collect_into``.

Label tables (error types, score outputs, classes) merge by union and are capped again,
keeping the values seen first (:mod:`mlprobe._label_table`): a merged state is as bounded as
one process's, and the same whichever process merges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _exact
from ._drift_report import worst
from ._feature_metrics import collect_feature_metrics, drift_report
from ._feature_state import FeatureState
from ._instruments import CallState
from ._label_table import OVERFLOW, capped, merge_first_seen
from ._quality import QualityMonitor
from ._quality_metrics import QualityView, collect_quality, quality_document, quality_view
from ._quality_spec import QualitySpec
from ._registry import FamilyBuilder
from .snapshot import HistogramSample, LabelSet, Sample

if TYPE_CHECKING:
    from ._drift_report import DriftReport
    from ._probe_source import ProbeSource
    from ._window import DatasetWindow

__all__ = ["ProbeConfig", "ProbeState", "histogram_from_data", "int_counts"]


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Validated settings of a probe; two probes with the same key must agree on them."""

    latency_buckets: tuple[float, ...]
    rows_buckets: tuple[float, ...]
    bytes_buckets: tuple[float, ...]
    score_buckets: tuple[float, ...]
    max_classes: int
    max_error_types: int
    max_outputs: int
    sensitive: frozenset[str] = frozenset()
    """Features whose raw values stay in the process (the profile's and the probe's)."""
    quality: QualitySpec | None = None
    """How outcomes are joined and model quality measured (None: off)."""


class ProbeState:
    """Raw counts of one model, mergeable across processes (see the module docstring)."""

    __slots__ = ("calls", "classes", "classes_seen", "errors", "errors_seen", "features",
                 "quality", "scores", "scores_seen", "source")

    def __init__(self, source: ProbeSource, calls: CallState, errors: dict[str, int],
                 errors_seen: dict[str, int], scores: dict[str, list],
                 scores_seen: dict[str, int], classes: dict[str, int],
                 classes_seen: dict[str, int], features: FeatureState | None,
                 quality: QualityMonitor | None = None) -> None:
        self.source = source  # settings, labels and profile (read only)
        self.calls = calls
        self.errors, self.errors_seen = errors, errors_seen
        self.scores, self.scores_seen = scores, scores_seen
        self.classes, self.classes_seen = classes, classes_seen
        self.features = features
        # Model quality: a copy of the version's QualityMonitor (its own, never the live one)
        self.quality = quality

    def merge(self, other: ProbeState) -> ProbeState:
        """Add ``other`` (a state of the same model and settings); returns ``self``.

        Label tables are united and capped again, keeping the values seen first (see
        :mod:`mlprobe._label_table`), so a merged state is as bounded as one process's.
        """
        a, b = self.calls, other.calls
        self.calls = CallState(a.ok + b.ok, a.errors + b.errors, a.in_flight + b.in_flight,
                               _add_hist(a.latency, b.latency), _add_hist(a.rows, b.rows),
                               _add_hist(a.input_bytes, b.input_bytes))
        c = self.source.config
        self.errors, self.errors_seen = _merge_table(
            self.errors, self.errors_seen, other.errors, other.errors_seen, c.max_error_types,
            _add_int)
        self.scores, self.scores_seen = _merge_table(
            self.scores, self.scores_seen, other.scores, other.scores_seen, c.max_outputs,
            _add_hist)
        self.classes, self.classes_seen = _merge_table(
            self.classes, self.classes_seen, other.classes, other.classes_seen, c.max_classes,
            _add_int)
        if self.features is not None and other.features is not None:
            self.features.merge(other.features)
        if self.quality is not None and other.quality is not None:
            self.quality.merge(other.quality)
        return self

    def compacted(self, uid_prefix: str) -> ProbeState:
        """This state with its feature window compacted (see FeatureState.compacted)."""
        if self.features is not None:
            self.features = self.features.compacted(uid_prefix)
        return self

    def archived(self) -> ProbeState:
        """This state as a dead process leaves it: no call is in flight any more."""
        self.calls = self.calls._replace(in_flight=0)
        return self

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data (feature counts as numpy arrays; ``parts``: see FeatureState.to_dict)."""
        calls = self.calls
        return {
            "calls": {"ok": calls.ok, "errors": calls.errors, "in_flight": calls.in_flight,
                      "latency": _plain_hist(calls.latency), "rows": _plain_hist(calls.rows),
                      "input_bytes": _plain_hist(calls.input_bytes)},
            "errors": dict(self.errors), "errors_seen": dict(self.errors_seen),
            "scores": {k: _plain_hist(v) for k, v in self.scores.items()},
            "scores_seen": dict(self.scores_seen),
            "classes": dict(self.classes), "classes_seen": dict(self.classes_seen),
            "features": self.features.to_dict(parts) if self.features is not None else None,
            "quality": self.quality.to_dict() if self.quality is not None else None,
        }

    def evaluate_quality(self) -> QualityView | None:
        """One evaluation of the quality state (None without quality monitoring)."""
        if self.quality is None:
            return None
        source = self.source
        return quality_view(self.quality, source.store, source.quality_reference)

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report the families of this state, as the model's source does."""
        source = self.source
        base = source.labels
        config = source.config
        calls = self.calls
        builder.add("mlprobe_predictions", [
            Sample(base + (("outcome", "ok"),), float(calls.ok)),
            Sample(base + (("outcome", "error"),), float(calls.errors))])
        builder.add("mlprobe_prediction_errors", [
            Sample(base + (("error_type", k),), float(n)) for k, n in sorted(self.errors.items())])
        builder.add("mlprobe_prediction_duration_seconds", [
            _sample(base, config.latency_buckets, calls.latency)])
        # A call that began in a parent process and ended in its forked child leaves the
        # child's count one below zero: a gauge of calls cannot be negative.
        builder.add("mlprobe_predictions_in_flight", [Sample(base, float(max(0, calls.in_flight)))])
        builder.add("mlprobe_batch_rows", [_sample(base, config.rows_buckets, calls.rows)])
        builder.add("mlprobe_input_bytes", [_sample(base, config.bytes_buckets,
                                                    calls.input_bytes)])
        builder.add("mlprobe_prediction_score", [
            _sample(base + (("output", k),), config.score_buckets, v)
            for k, v in sorted(self.scores.items())])
        builder.add("mlprobe_predicted_class", [
            Sample(base + (("class", k),), float(n)) for k, n in sorted(self.classes.items())])
        features = self.features
        view = self.evaluate_quality()
        if view is not None:
            assert self.quality is not None
            collect_quality(builder, base, self.quality, view, overall=features is None)
        if features is not None:
            # Statistics of windows holding values near the double range are infinite or
            # NaN (and exported only where finite); numpy must not warn about them (see
            # FeatureMonitor._ingest). np.errstate is thread-local.
            with np.errstate(all="ignore"):
                window, totals = features.window_and_totals()
                collect_feature_metrics(
                    builder, base, features.monitor.profile, window, totals, features.dropped,
                    source.drift_spec, sensitive=config.sensitive,
                    target=view.labels if view is not None else None,
                    model_quality=view.report.status if view is not None else None)

    def drift_view(self) -> tuple[DatasetWindow | None, DriftReport | None,
                                  dict[str, Any] | None]:
        """(rolling window, its drift report, the model-quality document): what
        :meth:`drift_status` and the status page show. The window carries the labels as its
        target (label drift); window and report are None without a reference profile, the
        document None without quality tracking."""
        source = self.source
        view = self.evaluate_quality()
        model_quality = None
        if view is not None:
            assert self.quality is not None
            model_quality = quality_document(self.quality, source.store, view)
        if self.features is None:
            return None, None, model_quality
        with np.errstate(all="ignore"):  # see collect_into
            window, _ = self.features.window_and_totals()
            if view is not None:
                window.target = view.labels  # label drift against the profile's target
            report = drift_report(self.features.monitor.profile, source.drift_spec, window)
        return window, report, model_quality

    def drift_status(self) -> dict[str, Any]:
        """The JSON-ready drift, data-quality and model-quality document of the rolling
        windows (the overall status is the worst of the three)."""
        source = self.source
        labels = source.labels
        who = {"model": labels[0][1], "model_version": labels[1][1]}
        _, report, model_quality = self.drift_view()
        if report is None:
            detail = "create the Probe with reference=ReferenceProfile to get drift"
            if model_quality is None:
                return {**who, "status": "no_reference", "detail": detail}
            return {**who, "status": model_quality["status"], "detail": detail,
                    "model_quality": model_quality}
        assert self.features is not None
        with np.errstate(all="ignore"):  # see collect_into
            document = report.to_dict()
        for name in source.config.sensitive:  # its entry holds no raw value; say why
            document["features"][name]["sensitive"] = True
        doc = {**who, "window_seconds": self.features.monitor.window_seconds, **document}
        if model_quality is not None:
            doc["status"] = worst((document["status"], model_quality["status"]))
            doc["model_quality"] = model_quality
        return doc


def _sample(labels: LabelSet, bounds: tuple[float, ...], hist: list) -> HistogramSample:
    counts, total = hist
    return HistogramSample(labels, bounds, tuple(counts), _exact.to_float(total))


def _plain_hist(hist: list) -> list:
    return [list(hist[0]), _exact.to_plain(hist[1])]


def _add_int(a: int, b: int) -> int:
    return a + b


def _add_hist(a: list, b: list) -> list:
    # sums exactly: see mlprobe._exact (a histogram's sum is a counter)
    return [[x + y for x, y in zip(a[0], b[0])], _exact.add(a[1], b[1])]


def _merge_table(counts: dict[str, Any], seen: dict[str, int], other: Mapping[str, Any],
                 other_seen: Mapping[str, int], limit: int, add: Any
                 ) -> tuple[dict[str, Any], dict[str, int]]:
    for key, value in other.items():
        counts[key] = add(counts[key], value) if key in counts else value
    merge_first_seen(seen, other_seen)
    merged = capped(counts, seen, limit, frozenset({OVERFLOW}), add)
    if any(key not in merged for key in counts):  # values past the cap: forget when seen
        seen = {k: t for k, t in seen.items() if k in merged}
    return merged, seen


def histogram_from_data(data: Any, bounds: tuple[float, ...]) -> list:
    """``[counts, sum]`` from plain data, checked against ``bounds``."""
    counts, total = data
    counts = [int(n) for n in counts]
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"expected {len(bounds) + 1} bucket counts, got {len(counts)}")
    return [counts, _exact.from_plain(total)]


def int_counts(data: Mapping[Any, Any]) -> dict[str, int]:
    """``{label value: int}`` from plain data (also first-seen tables)."""
    return {str(k): int(v) for k, v in data.items()}


