"""Probe: the per-model facade that owns the model's instruments and records into them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from . import _config
from ._config import check_buckets, check_positive_int
from ._decorators import build_decorator
from ._drift_spec import DriftSpec
from ._guard import report_internal_error
from ._probe_source import InputExtractor, ProbeSource, ScoreExtractor
from ._probe_state import ProbeConfig, ProbeState
from ._profile import ReferenceProfile
from ._quality_spec import QualitySpec
from ._probe_quality import QualityMethods, check_quality_option, model_store, quality_task
from ._registry import Registry, default_registry
from .errors import ConfigurationError
from .stats._labels import label_value

__all__ = ["Probe"]

_log = logging.getLogger("mlprobe")

F = TypeVar("F", bound=Callable[..., Any])


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
        self._key = ("probe", self.name, self.version)
        self._state = self.registry.get_or_create(
            self._key,
            lambda: ProbeSource(self.name, self.version, config, reference,
                                drift or DriftSpec(), float(window_seconds), window_buckets,
                                quality=task, store=store))
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
            return self._current_state().drift_status()
        except Exception as exc:  # noqa: BLE001
            report_internal_error("probe.drift_status", exc)
            return {"model": self.name, "model_version": self.version, "status": "error"}

    def _current_state(self) -> ProbeState:
        """The model's raw state as a scrape sees it: this process's, merged with the other
        workers' in multi-process mode (:mod:`mlprobe.multiprocess`)."""
        return self.registry.source_state(self._key)  # type: ignore[return-value]

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
