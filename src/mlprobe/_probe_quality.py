"""The quality side of a probe: predictions stored under ids, outcomes joined with them.

:func:`build_quality` gives a probe's state its :class:`~mlprobe._quality.QualityMonitor` and
the model's shared :class:`~mlprobe._outcomes.PredictionStore`; :func:`record_prediction` runs
after each tracked call (request path); :class:`QualityMethods` is the public side of
:class:`~mlprobe.Probe` (``record_outcome``, ``record_outcomes``, ``record_pairs``). Nothing
here raises into user code after construction: bad ids, bad labels and internal failures are
counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._guard import report_internal_error
from ._mp_outcomes import JOIN_INTERVALS
from ._outcomes import PredictionStore
from ._prediction_ids import id_key, new_id, request_ids, set_current, set_id
from ._profile import ReferenceProfile
from ._quality import QualityMonitor
from ._quality_spec import QualitySpec
from ._quality_task import QualityTask, resolve_task, rows_of
from ._registry import FamilyBuilder, Registry
from .errors import ConfigurationError
from .snapshot import Sample

__all__ = ["NO_ID", "QualityMethods", "StoreSource", "StoreState", "check_grace",
           "check_quality_option", "model_store", "quality_task", "record_prediction"]

_log = logging.getLogger("mlprobe")

NO_ID = object()
"""The tracked call names no id argument (or the argument was absent)."""


class StoreSource:
    """A model's prediction store as a registry source: expires entries at collect time and
    reports how many predictions and outcomes wait and the predictions' estimated memory.

    Mergeable (the state protocol of :mod:`mlprobe._source`): in multi-process mode the
    gauges are summed over live workers (a dead worker's store is gone with it)."""

    def __init__(self, model: str, spec: QualitySpec) -> None:
        self.model = model
        self.spec = spec
        self.store = PredictionStore(spec)

    def fingerprint(self) -> str:
        """Gauges of stores of any bounds add up."""
        return "prediction-store-1"

    def state(self) -> StoreState:
        """Sweep (expire predictions), then read the store's sizes."""
        store = self.store
        store.sweep()
        return StoreState(self.model, store.entries, store.bytes, store.waiting_outcomes)

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, Any] | None = None) -> StoreState:
        """Rebuild a state another worker wrote (:meth:`StoreState.to_dict`)."""
        return StoreState(self.model, int(data["entries"]), int(data["bytes"]),
                          int(data["waiting"]))

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Sweep, then report the store's size."""
        self.state().collect_into(builder)

    def reset(self) -> None:
        """Forget every waiting prediction (a forked child)."""
        self.store.reset()


class StoreState:
    """The sizes of one worker's prediction store (gauges; summed across live workers)."""

    __slots__ = ("bytes", "entries", "model", "waiting")

    def __init__(self, model: str, entries: int, nbytes: int, waiting: int) -> None:
        self.model, self.entries, self.bytes, self.waiting = model, entries, nbytes, waiting

    def merge(self, other: StoreState) -> StoreState:
        """Add another live worker's sizes."""
        self.entries += other.entries
        self.bytes += other.bytes
        self.waiting += other.waiting
        return self

    def archived(self) -> StoreState:
        """A dead worker's store is gone: nothing waits in it."""
        self.entries = self.bytes = self.waiting = 0
        return self

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data."""
        return {"entries": self.entries, "bytes": self.bytes, "waiting": self.waiting}

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report the store's gauges."""
        labels = (("model", self.model),)
        builder.add("mlprobe_prediction_store_entries", [Sample(labels, float(self.entries))])
        builder.add("mlprobe_prediction_store_bytes", [Sample(labels, float(self.bytes))])
        builder.add("mlprobe_waiting_outcomes", [Sample(labels, float(self.waiting))])


def quality_task(spec: QualitySpec, reference: ReferenceProfile | None) -> QualityTask:
    """Resolve ``spec`` against the profile (its target, prediction and reference quality).

    Raises:
        ConfigurationError: The spec cannot be resolved against the profile.
    """
    if reference is None:
        return resolve_task(spec)
    return resolve_task(spec, target=reference.target, prediction=reference.prediction,
                        reference=reference.quality)


def model_store(registry: Registry, name: str, spec: QualitySpec) -> PredictionStore:
    """The prediction store of model ``name`` in ``registry`` (shared by its versions).

    Raises:
        ConfigurationError: In multi-process mode, ``unknown_grace_seconds`` is shorter than
            the time an outcome takes to reach the worker holding its prediction.
    """
    def create() -> StoreSource:
        # (called after the registry's first-source hook: the environment switch has run)
        merger = registry.merger
        if merger is not None:
            check_grace(spec, merger.interval)
        source = StoreSource(name, spec)
        source.store.coordinated = merger is not None  # outcomes settled across workers
        return source

    source = registry.get_or_create(("outcomes", name), create)
    if source.spec != spec and (source.spec.ttl_seconds, source.spec.max_entries,
                                source.spec.max_bytes) != (spec.ttl_seconds, spec.max_entries,
                                                           spec.max_bytes):
        _log.warning("mlprobe: the prediction store of model %r already exists with other "
                     "bounds; keeping the first", name)
    return source.store


def record_prediction(monitor: QualityMonitor, store: PredictionStore | None, result: Any,
                      explicit: Any) -> None:
    """Keep a tracked call's prediction for its outcome, and hand its id back.

    ``explicit`` is the id argument's value (``NO_ID`` when there is none): one id for the
    call, or a sequence with one id per predicted row. Without one, the request's id (the
    middleware's header) is used, else a new one. ``store`` is None when ids are off.
    """
    payload = result if type(result) is float and monitor.task.task != "multiclass" \
        else monitor.task.payload(result)
    if payload is None:
        return
    now = monitor._clock()
    if store is None or explicit is False:  # track(prediction_id=False): no id, no join
        monitor.observe_prediction(payload, now)
        return
    if explicit is NO_ID or explicit is None:
        holder = request_ids.get()
        if holder is not None:
            key = holder.incoming or new_id()
            holder.assigned = key
        else:
            key = new_id()
        set_id(key)
    elif isinstance(explicit, (list, tuple, np.ndarray)):
        keys = [id_key(x) for x in (explicit.tolist() if isinstance(explicit, np.ndarray)
                                    else explicit)]
        monitor.observe_prediction(payload, now)
        if len(keys) != rows_of(payload):
            monitor.count("invalid", len(keys))  # ids that cannot be matched to rows
            return
        for i, key in enumerate(keys):
            store.put(key, monitor, _row(payload, i), now)
        monitor.count("stored", len(keys))
        return
    else:
        key = id_key(explicit)
        set_current(key)
    monitor.observe_prediction(payload, now, True)
    store.put(key, monitor, payload, now)


def _row(payload: Any, i: int) -> Any:
    if isinstance(payload, list):
        return [payload[i]]
    if payload.ndim == 2:
        return payload[i:i + 1].copy()
    return float(payload[i])


class QualityMethods:
    """``Probe``'s model-quality methods (mixed into :class:`~mlprobe.Probe`)."""

    _state: Any
    name: str
    version: str

    def _quality_parts(self) -> tuple[QualityMonitor, PredictionStore | None] | None:
        monitor = self._state.quality
        if monitor is None:
            if not getattr(self._state, "_warned_no_quality", False):
                self._state._warned_no_quality = True
                _log.warning("mlprobe: outcomes recorded for probe %r version %r, which was "
                             "created without quality=...; they are ignored", self.name,
                             self.version)
            return None
        return monitor, self._state.store

    def record_outcome(self, prediction_id: Any, actual: Any) -> None:
        """Record the outcome (the actual label or value) of the prediction made under
        ``prediction_id``.

        The outcome is joined with the stored prediction (its score or class, version and
        time) and counted in the rolling quality window of the version that made it, through
        whichever version's probe it is recorded. For a call that predicted several rows
        under one id, ``actual`` holds one value per row. Never raises: an unknown id, a late
        or duplicate outcome and an unreadable label are counted
        (``mlprobe_outcomes_total{result}``).
        """
        try:
            parts = self._quality_parts()
            if parts is None or parts[1] is None:
                return
            monitor, store = parts
            store.resolve(id_key(prediction_id), actual, monitor)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001
            report_internal_error("probe.record_outcome", exc)

    def record_outcomes(self, prediction_ids: Any, actuals: Any) -> None:
        """Record many outcomes at once (two sequences of equal length; one lock round trip
        for the whole join). Never raises; pairs of unequal length count as invalid."""
        try:
            parts = self._quality_parts()
            if parts is None or parts[1] is None:
                return
            monitor, store = parts
            ids = _as_list(prediction_ids)
            values = _as_list(actuals)
            if len(ids) != len(values):
                monitor.count("invalid", max(len(ids), len(values)))
                return
            store.resolve_many([id_key(x) for x in ids], values,  # type: ignore[union-attr]
                               monitor)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("probe.record_outcomes", exc)

    def record_pairs(self, predictions: Any, actuals: Any) -> None:
        """Record ``(prediction, actual)`` pairs joined elsewhere (a warehouse, a batch job):
        ``predictions`` as the model returns them (scores, a probability matrix, classes or
        values), ``actuals`` one per row. They count in this version's window as ``paired``.
        Never raises."""
        try:
            parts = self._quality_parts()
            if parts is None:
                return
            monitor = parts[0]
            payload = monitor.task.payload(predictions)
            if payload is None:
                monitor.count("invalid", max(len(_as_list(actuals)), 1))
                return
            monitor.add_pairs(payload, actuals)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("probe.record_pairs", exc)


def _as_list(values: Any) -> list[Any]:
    """A sequence of values as a list (a single value as a list of one)."""
    if isinstance(values, np.ndarray):
        return values.ravel().tolist()
    if hasattr(values, "to_numpy") and hasattr(values, "shape"):
        return values.to_numpy().ravel().tolist()
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values]


def check_grace(spec: QualitySpec, interval: float) -> None:
    """Refuse a grace too short for multi-process mode (see :mod:`mlprobe._mp_outcomes`).

    Raises:
        ConfigurationError: ``unknown_grace_seconds`` < :data:`JOIN_INTERVALS` intervals.
    """
    least = JOIN_INTERVALS * interval
    if spec.unknown_grace_seconds < least:
        raise ConfigurationError(
            f"QualitySpec(unknown_grace_seconds={spec.unknown_grace_seconds!r}) is too short "
            f"for multi-process mode: an outcome that reaches another worker than its "
            f"prediction is joined within {JOIN_INTERVALS} publish intervals "
            f"({least:g} s at the interval of {interval:g} s), and would count as unknown "
            f"before; set unknown_grace_seconds to at least {least:g} (the default, 60 s, "
            f"leaves ample margin) or shorten MLPROBE_MULTIPROCESS_INTERVAL")


def check_quality_option(quality: Any) -> QualitySpec | None:
    """``Probe(quality=...)``: a QualitySpec, True for the defaults, or None / False."""
    if quality is None or quality is False:
        return None
    if quality is True:
        return QualitySpec()
    if not isinstance(quality, QualitySpec):
        raise ConfigurationError(f"quality must be a mlprobe.QualitySpec (or True for the "
                                 f"defaults), got {type(quality).__name__}")
    return quality
