"""Probe: the per-model facade that owns the model's instruments and records into them."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np

from . import _config
from ._config import check_buckets, check_positive_int
from ._decorators import build_decorator
from ._guard import report_internal_error
from ._extract import class_counts, input_size, output_values
from ._instruments import BoundedCounter, CallRecorder, Histogram, LabelledHistograms
from ._drift_spec import DriftSpec
from ._feature_metrics import collect_feature_metrics, drift_report
from ._features import FeatureMonitor
from ._feature_profile import NumericProfile
from ._profile import ReferenceProfile
from ._outcomes import PredictionStore
from ._probe_quality import NO_ID, QualityMethods, check_quality_option, model_store, \
    quality_task, record_prediction
from ._quality import QualityMonitor
from ._quality_task import QualityTask
from ._quality_metrics import collect_quality, quality_document, quality_view
from ._quality_spec import QualitySpec
from ._drift_report import worst
from ._registry import FamilyBuilder, Registry, default_registry
from .errors import ConfigurationError
from .snapshot import LabelSet, Sample
from .stats._labels import label_value

__all__ = ["Probe"]

_log = logging.getLogger("mlprobe")

F = TypeVar("F", bound=Callable[..., Any])

InputExtractor = Callable[[Any], Any]
"""``inputs=``: maps the model input to ``rows`` or ``(rows, bytes)`` (either may be None)."""
ScoreExtractor = Callable[[Any], Any]
"""``scores=``: maps the model result to something mlprobe reads as scores/classes."""


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


class _ProbeState:
    """The instruments of one (model, version) in one registry, shared by every handle."""

    def __init__(self, name: str, version: str, config: ProbeConfig,
                 reference: ReferenceProfile | None, drift: DriftSpec,
                 window_seconds: float, window_buckets: int,
                 quality: QualityTask | None = None,
                 store: PredictionStore | None = None) -> None:
        self.config = config
        self.labels: LabelSet = (("model", name), ("model_version", version))
        self.drift_spec = drift
        self.features: FeatureMonitor | None = None
        if reference is not None:
            self.features = FeatureMonitor(reference, window_seconds=window_seconds,
                                           sub_buckets=window_buckets)
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
        self.reset()

    def reset(self) -> None:
        """(Re)create every instrument empty."""
        c = self.config
        self.calls = CallRecorder(c.latency_buckets, c.rows_buckets, c.bytes_buckets,
                                  c.max_error_types)
        self.scores = LabelledHistograms(c.score_buckets, c.max_outputs)
        self._single_score: Histogram | None = None  # the common case, resolved on first use
        self.classes = BoundedCounter(c.max_classes)
        if self.features is not None:
            self.features.reset()
        if self.quality is not None:
            self.quality.reset()

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report this model's samples."""
        base = self.labels
        calls = self.calls.snapshot(base)
        builder.add("mlprobe_predictions", [
            Sample(base + (("outcome", "ok"),), float(calls.ok)),
            Sample(base + (("outcome", "error"),), float(calls.errors))])
        builder.add("mlprobe_prediction_errors", self.calls.error_types.samples(base, "error_type"))
        builder.add("mlprobe_prediction_duration_seconds", [calls.latency])
        builder.add("mlprobe_predictions_in_flight", [Sample(base, float(calls.in_flight))])
        builder.add("mlprobe_batch_rows", [calls.rows])
        builder.add("mlprobe_input_bytes", [calls.input_bytes])
        builder.add("mlprobe_prediction_score", self.scores.samples(base, "output"))
        builder.add("mlprobe_predicted_class", self.classes.samples(base, "class"))
        view = None
        if self.quality is not None:
            view = quality_view(self.quality, self.store, self.quality_reference)
            collect_quality(builder, base, self.quality, view, overall=self.features is None)
        if self.features is not None:
            # Statistics of windows holding values near the double range are infinite or
            # NaN (and exported only where finite); numpy must not warn about them (see
            # FeatureMonitor._ingest). np.errstate is thread-local.
            with np.errstate(all="ignore"):
                collect_feature_metrics(
                    builder, base, self.features, self.drift_spec,
                    sensitive=self.config.sensitive,
                    target=view.labels if view is not None else None,
                    model_quality=view.report.status if view is not None else None)

    def drift_status(self) -> dict[str, Any]:
        """The JSON-ready drift, data-quality and model-quality document of the rolling
        windows (the overall status is the worst of the three)."""
        who = {"model": self.labels[0][1], "model_version": self.labels[1][1]}
        view = model_quality = None
        if self.quality is not None:
            view = quality_view(self.quality, self.store, self.quality_reference)
            model_quality = quality_document(self.quality, self.store, view)
        if self.features is None:
            detail = "create the Probe with reference=ReferenceProfile to get drift"
            if model_quality is None:
                return {**who, "status": "no_reference", "detail": detail}
            return {**who, "status": model_quality["status"], "detail": detail,
                    "model_quality": model_quality}
        window = self.features.window()
        if view is not None:
            window.target = view.labels  # label drift against the profile's target
        with np.errstate(all="ignore"):  # see collect_into
            report = drift_report(self.features, self.drift_spec, window).to_dict()
        for name in self.config.sensitive:  # its entry holds no raw value; say why
            report["features"][name]["sensitive"] = True
        doc = {**who, "window_seconds": self.features.window_seconds, **report}
        if model_quality is not None:
            doc["status"] = worst((report["status"], model_quality["status"]))
            doc["model_quality"] = model_quality
        return doc

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
                hist = self._single_score
                if hist is None:
                    hist = self._single_score = self.scores.child("score")
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


def _sensitive(reference: ReferenceProfile | None,
               names: Iterable[str] | None) -> frozenset[str]:
    """The profile's sensitive features plus the probe's, checked against the profile."""
    if names is None:
        return reference.sensitive if reference is not None else frozenset()
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError("sensitive_features must be a list of feature names")
    given = frozenset(names)
    if reference is None:
        raise ConfigurationError("sensitive_features needs a reference profile (they name "
                                 "its features)")
    unknown = sorted(given - set(reference.features))
    if unknown:
        raise ConfigurationError(f"sensitive_features {unknown} are not features of the "
                                 f"reference; known features: {sorted(reference.features)}")
    return reference.sensitive | given


def _count_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, np.integer)) and value >= 0 else None


class Probe(QualityMethods):
    """Instruments one model: its calls, latency, input sizes, scores and predicted classes.

    Probes with the same ``name`` and ``version`` in the same registry share one set of
    instruments, so creating a probe twice (a re-import, a reload, a test) is harmless.

    Args:
        name: the model's name, exported as the ``model`` label (lone surrogates are written
            as backslash escapes; see :func:`mlprobe.stats._labels.label_value`).
        version: the model's version, exported as ``model_version`` (``""`` when None).
        registry: where the probe's state lives; :data:`mlprobe.default_registry` by default,
            which appears in prometheus_client's default registry on its own.
        latency_buckets: histogram upper bounds in seconds (sub-millisecond to 60 s by default).
        rows_buckets: upper bounds for rows per call.
        bytes_buckets: upper bounds for input bytes per call.
        score_buckets: upper bounds for prediction scores (0.05 steps over [0, 1] by default;
            set them for regression outputs).
        max_classes: distinct predicted-class labels kept before the rest count as
            ``__other__``.
        max_error_types: distinct exception types kept before the rest count as ``__other__``.
        max_outputs: score outputs (columns) recorded per call.
        reference: a :class:`~mlprobe.ReferenceProfile`; with it the probe keeps rolling
            per-feature statistics of the inputs, drift against the reference and data-quality
            counts, and ``drift_status()`` answers.
        drift: a :class:`~mlprobe.DriftSpec` (methods, thresholds, minimum counts).
        sensitive_features: features of the reference whose raw values must not leave the
            process, in addition to those the profile marks sensitive: their category bins
            are exported by index and their min, max, mean, stddev and quantiles are withheld
            (see ``docs/privacy.md``).
        window_seconds: length of the rolling window of feature statistics.
        window_buckets: sub-buckets making the window (its time resolution).
        quality: measure model quality from outcomes: a :class:`~mlprobe.QualitySpec` (or
            True for the defaults). Tracked calls then keep their predictions under a
            prediction id (:func:`mlprobe.current_prediction_id`) until
            :meth:`record_outcome` brings the label; the rolling-window metrics, their
            statuses against the profile's reference quality, the label-free estimate and
            the concept-drift signal are exported and reported by ``drift_status()`` (see
            ``docs/quality.md``).

    Raises:
        ConfigurationError: a bad argument; the message names it and the fix.

    Example:
        >>> probe = mlprobe.Probe("churn", version="3")
        >>> @probe.track
        ... def predict(features): ...
    """

    def __init__(
        self,
        name: str,
        *,
        version: str | int | None = None,
        registry: Registry | None = None,
        latency_buckets: Iterable[float] | None = None,
        rows_buckets: Iterable[float] | None = None,
        bytes_buckets: Iterable[float] | None = None,
        score_buckets: Iterable[float] | None = None,
        max_classes: int = 50,
        max_error_types: int = 20,
        max_outputs: int = 16,
        reference: ReferenceProfile | None = None,
        drift: DriftSpec | None = None,
        window_seconds: float = 600.0,
        window_buckets: int = 10,
        sensitive_features: Iterable[str] | None = None,
        quality: QualitySpec | bool | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"Probe name must be a non-empty string, got {name!r}")
        if len(name) > 200:
            raise ConfigurationError("Probe name is a label value: keep it under 200 characters")
        if version is not None and (isinstance(version, bool)
                                    or not isinstance(version, (str, int))):
            raise ConfigurationError(f"version must be a string, an int or None, got {version!r}")
        if registry is not None and not isinstance(registry, Registry):
            raise ConfigurationError(
                f"registry must be a mlprobe.Registry, got {type(registry).__name__}; to export "
                "to a prometheus_client CollectorRegistry use "
                "mlprobe.exporters.prometheus.register(mlprobe_registry, prometheus_registry)")
        if reference is not None and not isinstance(reference, ReferenceProfile):
            raise ConfigurationError("reference must be a mlprobe.ReferenceProfile (build one "
                                     "with ReferenceProfile.from_data or load one with "
                                     f"ReferenceProfile.load), got {type(reference).__name__}")
        config = ProbeConfig(
            latency_buckets=check_buckets("latency_buckets", latency_buckets,
                                          _config.DEFAULT_LATENCY_BUCKETS),
            rows_buckets=check_buckets("rows_buckets", rows_buckets, _config.DEFAULT_ROWS_BUCKETS),
            bytes_buckets=check_buckets("bytes_buckets", bytes_buckets,
                                        _config.DEFAULT_BYTES_BUCKETS),
            score_buckets=check_buckets("score_buckets", score_buckets,
                                        _config.DEFAULT_SCORE_BUCKETS),
            max_classes=check_positive_int("max_classes", max_classes),
            max_error_types=check_positive_int("max_error_types", max_error_types),
            max_outputs=check_positive_int("max_outputs", max_outputs),
            sensitive=_sensitive(reference, sensitive_features),
            quality=check_quality_option(quality),
        )
        if drift is not None and not isinstance(drift, DriftSpec):
            raise ConfigurationError(f"drift must be a mlprobe.DriftSpec, got {drift!r}")
        if isinstance(window_seconds, bool) or not isinstance(window_seconds, (int, float)) \
                or not 0 < window_seconds < float("inf"):
            raise ConfigurationError(f"window_seconds must be a positive number of seconds, "
                                     f"got {window_seconds!r}")
        window_buckets = check_positive_int("window_buckets", window_buckets)
        # Both are label values: valid UTF-8 of bounded length, whatever was passed (a name
        # made from a file name may hold lone surrogates).
        self.name = label_value(name)
        self.version = "" if version is None else label_value(version)
        self.registry = default_registry if registry is None else registry
        task = store = None
        if config.quality is not None:  # resolved first: a bad spec fails before any state
            task = quality_task(config.quality, reference)
            store = model_store(self.registry, self.name, config.quality)
        self._state = self.registry.get_or_create(
            ("probe", self.name, self.version),
            lambda: _ProbeState(self.name, self.version, config, reference,
                                drift or DriftSpec(), float(window_seconds), window_buckets,
                                task, store))
        if self._state.config != config:
            _log.warning("mlprobe: probe %r version %r already exists with other settings; "
                         "keeping the first settings", self.name, self.version)

    def __repr__(self) -> str:
        return f"Probe({self.name!r}, version={self.version!r})"

    @overload
    def track(self, fn: F, /) -> F: ...

    @overload
    def track(
        self,
        fn: None = None,
        /,
        *,
        inputs: InputExtractor | bool = True,
        scores: ScoreExtractor | bool = True,
        input_arg: int | str | None = None,
        enabled: bool | None = None,
        prediction_id: int | str | bool | None = None,
    ) -> Callable[[F], F]: ...

    def track(
        self,
        fn: Any = None,
        /,
        *,
        inputs: InputExtractor | bool = True,
        scores: ScoreExtractor | bool = True,
        input_arg: int | str | None = None,
        enabled: bool | None = None,
        prediction_id: int | str | bool | None = None,
    ) -> Any:
        """Decorate a predict function (sync, async, generator, method, classmethod, ...).

        Used bare (``@probe.track``) or with options (``@probe.track(scores=...)``). Place it
        *outside* ``@classmethod``/``@staticmethod``. Each call records its outcome, error
        type, duration and in-flight count; then rows and bytes of its input and the scores or
        classes it returned. The result and any exception pass through unchanged.

        Args:
            fn: the function (when used bare).
            inputs: ``True`` to read rows/bytes from the input, ``False`` to skip, or a callable
                ``batch -> rows | (rows, bytes)``.
            scores: ``True`` to read scores/classes from the result, ``False`` to skip, or a
                callable ``result -> scores`` (an array, a scalar, or a dict of named outputs).
            input_arg: which argument is the model input (position or name); by default the
                first parameter that is not ``self``/``cls``.
            enabled: ``False`` returns the function unwrapped (zero overhead); by default
                tracking is on unless the environment sets ``MLPROBE_DISABLED=1``.
            prediction_id: with ``quality=`` on the probe, where each call's prediction id
                comes from: the argument of that name or position (one id, or one per
                predicted row); by default the request's id (the middleware's
                ``prediction_id_header``), else a new one. ``False`` keeps no prediction for
                outcomes (the label-free estimate still counts it). Without quality it must
                be left unset.

        Raises:
            ConfigurationError: an option of the wrong type.
        """
        if prediction_id is not None and self._state.quality is None:
            raise ConfigurationError("track(prediction_id=...) needs a probe created with "
                                     "quality=mlprobe.QualitySpec(...) (or quality=True)")
        decorator = build_decorator(self._state, inputs=inputs, scores=scores,
                                    input_arg=input_arg, enabled=enabled,
                                    prediction_id=prediction_id)
        return decorator if fn is None else decorator(fn)

    def drift_status(self) -> dict[str, Any]:
        """Drift and data quality of the rolling window as a JSON-ready document.

        Per feature: the statistics, their definitions (bins, epsilon, log base), thresholds
        and status; the dataset verdict and drift share; schema violations. Without a
        reference the document's status is ``"no_reference"``. Runs on the caller's thread
        (the work a scrape does); never raises.
        """
        try:
            return self._state.drift_status()
        except Exception as exc:  # noqa: BLE001
            report_internal_error("probe.drift_status", exc)
            return {"model": self.name, "model_version": self.version, "status": "error"}

    def observe(self, inputs: Any = None, outputs: Any = None) -> None:
        """Record an input batch and/or a result by hand (for code that is not decorated).

        Never raises into the caller; failures count as internal errors.
        """
        try:
            if inputs is not None:
                self._state.calls.observe_inputs(*self._state.see_inputs(inputs, None))
            if outputs is not None:
                self._state.observe_outputs(outputs, None)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("probe.observe", exc)
