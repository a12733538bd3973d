"""One model's instruments: the registry source every Probe handle records into.

:class:`ProbeSource` holds the instruments of one ``(model, version)`` in one registry: the
call recorder, score histograms, predicted classes and the feature monitor. The request path
records into them (:meth:`ProbeSource.see_inputs`, :meth:`ProbeSource.observe_outputs`, and the
decorator's calls on ``calls``); the collect path reads them through the state protocol
(:meth:`ProbeSource.state`, see "Mergeable sources" in :mod:`mlprobe._source`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._drift_spec import DriftSpec
from ._extract import class_counts, input_size, output_values
from ._feature_profile import NumericProfile
from ._features import FeatureMonitor
from ._fingerprint import config_fingerprint, profile_document_digest
from ._instruments import BoundedCounter, CallRecorder, CallState, Histogram, LabelledHistograms
from ._outcomes import PredictionStore
from ._probe_quality import NO_ID, record_prediction
from ._probe_state import ProbeConfig, ProbeState, histogram_from_data, int_counts
from ._profile import ReferenceProfile
from ._quality import QualityMonitor
from ._quality_task import QualityTask
from ._registry import FamilyBuilder
from .snapshot import LabelSet

__all__ = ["InputExtractor", "ProbeSource", "ScoreExtractor"]

InputExtractor = Callable[[Any], Any]
"""``inputs=``: maps the model input to ``rows`` or ``(rows, bytes)`` (either may be None)."""
ScoreExtractor = Callable[[Any], Any]
"""``scores=``: maps the model result to something mlprobe reads as scores/classes."""


class ProbeSource:
    """The instruments of one (model, version) in one registry, shared by every handle.

    ``quality``: the resolved quality task (None: no model-quality monitoring); ``store``: the
    model's prediction store, shared by its versions. ``clock``: the feature window's wall
    clock in seconds (tests pass a fake).
    """

    def __init__(self, name: str, version: str, config: ProbeConfig,
                 reference: ReferenceProfile | None, drift: DriftSpec,
                 window_seconds: float, window_buckets: int, *,
                 quality: QualityTask | None = None, store: PredictionStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.labels: LabelSet = (("model", name), ("model_version", version))
        self.drift_spec = drift
        self.features: FeatureMonitor | None = None
        if reference is not None:
            self.features = FeatureMonitor(reference, window_seconds=window_seconds,
                                           sub_buckets=window_buckets, clock=clock)
        # Model quality from outcomes (mlprobe._probe_quality): this version's monitor and
        # the model's prediction store, shared with its other versions.
        self.quality: QualityMonitor | None = None
        self.store = store
        self.quality_reference: dict[str, float] = {}
        if quality is not None:
            self.quality = QualityMonitor(quality, reference.target if reference else None)
            if reference is not None and reference.quality is not None:
                self.quality_reference.update(reference.quality.metrics)
            self.quality_reference.update(quality.spec.reference)
        # Predictions feed prediction drift only when the reference profiled them.
        self._feeds_predictions = reference is not None and reference.prediction is not None
        # What must agree for states of two processes to merge: every setting that shapes
        # the counts (buckets, caps, the profile's bins and vocabularies, the window).
        self._fingerprint = config_fingerprint(
            config.latency_buckets, config.rows_buckets, config.bytes_buckets,
            config.score_buckets, config.max_classes, config.max_error_types,
            config.max_outputs, None if reference is None else profile_document_digest(reference),
            window_seconds, window_buckets, repr(config.quality))
        self.reset()

    def reset(self) -> None:
        """(Re)create every instrument empty."""
        c = self.config
        self.calls = CallRecorder(c.latency_buckets, c.rows_buckets, c.bytes_buckets,
                                  c.max_error_types)
        self.scores = LabelledHistograms(c.score_buckets, c.max_outputs)
        self.single_score: Histogram | None = None  # the common case, resolved on first use
        self.classes = BoundedCounter(c.max_classes)
        if self.features is not None:
            self.features.reset()
        if self.quality is not None:
            self.quality.reset()

    # -- the state protocol (see "Mergeable sources" in mlprobe._source) ---------------------

    def fingerprint(self) -> str:
        """Identifies the settings that shape this source's counts."""
        return self._fingerprint

    def state(self) -> ProbeState:
        """A consistent, independent copy of every count (buffered values ingested first)."""
        calls = self.calls.state()
        errors, errors_seen = self.calls.error_types.state()
        scores, scores_seen = self.scores.state()
        classes, classes_seen = self.classes.state()
        features = self.features.state() if self.features is not None else None
        quality = None
        if self.quality is not None:  # a copy: merging into it leaves the live one alone
            quality = self.quality.copy()
        return ProbeState(self, calls, errors, errors_seen, scores, scores_seen, classes,
                          classes_seen, features, quality)

    def _quality_from_dict(self, data: Mapping[str, Any]) -> QualityMonitor:
        live = self.quality
        assert live is not None
        return QualityMonitor.from_dict(dict(data), live.task, live.target,
                                       clock=live.clock)

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, Any] | None = None) -> ProbeState:
        """Rebuild a state of this model from :meth:`ProbeState.to_dict` output.

        Raises:
            ValueError, KeyError, TypeError: malformed data or counts of other buckets.
        """
        c = self.config
        calls = data["calls"]
        state = ProbeState(
            self,
            CallState(int(calls["ok"]), int(calls["errors"]), int(calls["in_flight"]),
                      histogram_from_data(calls["latency"], c.latency_buckets),
                      histogram_from_data(calls["rows"], c.rows_buckets),
                      histogram_from_data(calls["input_bytes"], c.bytes_buckets)),
            int_counts(data["errors"]), int_counts(data["errors_seen"]),
            {str(k): histogram_from_data(v, c.score_buckets) for k, v in data["scores"].items()},
            int_counts(data["scores_seen"]),
            int_counts(data["classes"]), int_counts(data["classes_seen"]),
            None)
        features = data.get("features")
        if (features is None) != (self.features is None):
            raise ValueError("feature state present in one process only")
        if self.features is not None:
            state.features = self.features.state_from_dict(features, parts)
        quality = data.get("quality")
        if (quality is None) != (self.quality is None):
            raise ValueError("quality state present in one process only")
        if quality is not None:
            state.quality = self._quality_from_dict(quality)
        return state

    def part_from_dict(self, data: dict[str, Any]) -> Any:
        """Rebuild one frozen part of a state (a feature sub-bucket)."""
        if self.features is None:
            raise ValueError("this probe has no feature monitor")
        return self.features.part_from_dict(data)

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report this model's samples."""
        self.state().collect_into(builder)

    def drift_status(self) -> dict[str, Any]:
        """The JSON-ready drift and data-quality document of the rolling window."""
        return self.state().drift_status()

    # -- recording (request path; callers run these inside the internal-error guard) --------

    def see_inputs(self, batch: Any, extractor: InputExtractor | None
                   ) -> tuple[int | None, int | None]:
        """Queue a batch for feature monitoring; return its ``(rows, bytes)``.

        The sizes are returned, not recorded, so a tracked call can record them together with
        its outcome under one lock.
        """
        if self.features is not None and self.features.observe(batch) and extractor is None:
            return 1, None  # one dict row (the monitor has just checked it)
        if extractor is None:
            return input_size(batch)
        measured = extractor(batch)
        rows, nbytes = measured if isinstance(measured, tuple) else (measured, None)
        return _count_or_none(rows), _count_or_none(nbytes)

    def observe_outputs_with_id(self, result: Any, extractor: ScoreExtractor | None,
                                prediction_id: Any = NO_ID) -> None:
        """Record a result, and keep it for its outcome (a probe with quality monitoring)."""
        if extractor is not None:
            result = extractor(result)
        assert self.quality is not None
        record_prediction(self.quality, self.store, result, prediction_id)
        self.observe_outputs(result, None)

    def observe_outputs(self, result: Any, extractor: ScoreExtractor | None) -> None:
        """Record scores and classes of a result."""
        if extractor is not None:
            result = extractor(result)
        if type(result) is float and not self._feeds_predictions:  # fast path: one score
            if math.isfinite(result):
                hist = self.single_score
                if hist is None:
                    hist = self.single_score = self.scores.child("score")
                hist.observe(result)
            return
        values = output_values(result, self.config.max_outputs)
        if self.features is not None:
            self._feed_prediction(self.features, values)
        for output, scores in values.scores.items():
            if type(scores) is float:
                if math.isfinite(scores):
                    self.scores.child(output).observe(scores)
            else:
                self.scores.child(output).observe_array(scores)
        if values.classes is not None:
            add = self.classes.add
            for label, n in class_counts(values.classes):
                add(label, n)

    def _feed_prediction(self, features: FeatureMonitor, values: Any) -> None:
        prediction = features.profile.prediction
        if prediction is None:
            return
        if isinstance(prediction, NumericProfile):
            # one score, or the positive-class column of a two-class probability matrix
            scores = values.scores.get("score", values.scores.get("1"))
            if scores is not None:
                features.observe_predictions(scores)
        elif values.classes is not None:
            # Raw classes: the monitor encodes them to codes value by value (level keys), so a
            # class whose str() fails costs that one value, not the call's predictions.
            features.observe_predictions(values.classes)


def _count_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, np.integer)) and value >= 0 else None
