"""Shadow: a candidate model run on the primary's inputs, off the request path.

``shadow.track`` wraps the primary's predict function (it is tracked by the primary's probe as
usual). After each call returns, its arguments, result and prediction id are put on a bounded
queue (a deque append; nothing blocks, nothing the caller gets changes); when the queue is full
the item is dropped and counted. One background thread takes items off the queue and calls
the candidate, tracked by the candidate's own probe: same model name, the candidate's
version, so its latency, errors and score distribution are the usual metric names with
another ``model_version``, comparable in PromQL. The thread then compares the two outputs:
agreement counts (same class; for regression, values within a relative tolerance) and the
distribution of absolute score differences. With model quality on, the candidate's
prediction is stored under the primary's prediction id, so one outcome measures both
versions.

The candidate runs in this process: it shares the CPU and the GIL with the service, so under
saturation it competes for time. The queue bound caps the work waiting, ``sample`` runs it on
a share of the calls only, and ``benchmarks/bench_quality.py`` measures what the primary path
pays.
"""

from __future__ import annotations

import inspect
import math
import os
import threading
import time
from collections import deque
from dataclasses import replace
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._guard import report_internal_error
from ._prediction_ids import current_prediction_id
from ._probe import Probe
from ._quality_spec import HIGHER_IS_BETTER, LOWER_IS_BETTER, QualitySpec
from ._quality_task import QualityTask
from ._probe_quality import quality_task
from .errors import ConfigurationError
from ._shadow_counts import DIFFERENCE_BUCKETS, ShadowCounters

__all__ = ["Shadow", "TICK_SECONDS", "WAKE_ITEMS", "YIELD_SECONDS"]

WAKE_ITEMS = 32
"""Queued calls that wake the candidate's thread at once; fewer wait for its next tick."""

TICK_SECONDS = 0.05
"""The candidate's thread drains the queue at least this often."""

YIELD_SECONDS = 0.0005
"""The candidate's thread hands the GIL back after this long of work (a request waiting for
the GIL would otherwise wait up to the interpreter's 5 ms switch interval)."""


class Shadow:
    """Run ``candidate`` on the inputs of the primary's calls, off the request path.

    Args:
        primary: The probe of the model serving the responses.
        candidate: The candidate's predict function, called with the primary's arguments
            (sync; it runs in a background thread).
        version: The candidate's version (the ``model_version`` of its metrics).
        task: ``binary``, ``multiclass`` or ``regression``, for comparing outputs; by default
            the primary's quality task (so needed only when the primary has no ``quality=``).
        queue_size: Calls waiting for the candidate at most; more are dropped and counted.
        sample: Share of the primary's calls also run on the candidate (0 to 1).
        tolerance: Regression outputs agree when within this relative difference.
        difference_buckets: Upper bounds of the absolute score difference histogram.

    Raises:
        ConfigurationError: A bad argument; the message names it.

    Example:
        >>> shadow = mlprobe.Shadow(probe, candidate_model.predict_proba_positive, version="4")
        >>> @shadow.track
        ... def predict(rows): return model.predict_proba(rows)[:, 1]
    """

    def __init__(self, primary: Probe, candidate: Callable[..., Any], *, version: str | int,
                 task: str | None = None, queue_size: int = 1000, sample: float = 1.0,
                 tolerance: float = 0.01,
                 difference_buckets: Sequence[float] = DIFFERENCE_BUCKETS) -> None:
        if not isinstance(primary, Probe):
            raise ConfigurationError(f"primary must be a mlprobe.Probe, got "
                                     f"{type(primary).__name__}")
        if not callable(candidate) or inspect.iscoroutinefunction(candidate):
            raise ConfigurationError("candidate must be a plain (sync) callable: it runs in a "
                                     "background thread")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigurationError(f"queue_size must be a positive integer, got "
                                     f"{queue_size!r}")
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) \
                or not 0 < sample <= 1:
            raise ConfigurationError(f"sample must be a share in (0, 1], got {sample!r}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
                or not 0 <= tolerance < 1:
            raise ConfigurationError(f"tolerance must be a relative difference in [0, 1), "
                                     f"got {tolerance!r}")
        state = primary._state
        spec = state.config.quality
        if task is not None:
            self.task: QualityTask = quality_task(QualitySpec(task=task), None)
        elif state.quality is not None:
            self.task = state.quality.task
        else:
            raise ConfigurationError("Shadow needs task='binary', 'multiclass' or 'regression' "
                                     "to compare outputs (or a primary probe with quality=...)")
        if str(version) == primary.version:
            raise ConfigurationError("the candidate's version must differ from the primary's")
        if spec is not None and state.quality is not None:
            # The candidate has no profile of its own (its feature series would double the
            # primary's for nothing): its quality is resolved exactly as the primary's, and
            # judged against the same reference values.
            t = state.quality.task
            spec = replace(spec, task=t.task, labels=t.labels, positive_label=t.positive,
                           classes=t.classes, threshold=t.threshold,
                           reference={k: v for k, v in state.quality_reference.items()
                                      if k in HIGHER_IS_BETTER + LOWER_IS_BETTER})
        c = state.config
        self.candidate_probe = Probe(
            primary.name, version=version, registry=primary.registry,
            score_buckets=c.score_buckets, max_classes=c.max_classes, quality=spec)
        self.primary = primary
        self.version = self.candidate_probe.version
        self.queue_size = queue_size
        self.sample = float(sample)
        self.tolerance = float(tolerance)
        with_ids = spec is not None

        def run_candidate(mlprobe_prediction_id: Any, args: Any, kwargs: Any) -> Any:
            return candidate(*args, **kwargs)

        self._run = self.candidate_probe.track(
            run_candidate, inputs=False,
            **({"prediction_id": "mlprobe_prediction_id"} if with_ids else {}))
        labels = (("model", primary.name), ("model_version", self.version),
                  ("primary_version", primary.version))
        self.counters = primary.registry.get_or_create(
            ("shadow", primary.name, self.version, primary.version),
            lambda: ShadowCounters(labels, difference_buckets))
        self._queue: deque[tuple[Any, Any, Any, Any]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._calls = 0
        self._active = False

    # -- request path ----------------------------------------------------------------------

    def track(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate the primary's predict function: tracked by the primary's probe, and each
        call's inputs and result handed to the candidate afterwards (never changing the
        result, never raising from the shadow's side)."""
        tracked = self.primary.track(fn)
        submit = self.submit

        if inspect.iscoroutinefunction(fn):
            async def shadowed_async(*args: Any, **kwargs: Any) -> Any:
                before = current_prediction_id()
                result = await tracked(*args, **kwargs)
                submit(args, kwargs, result, before)
                return result

            return shadowed_async

        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigurationError("Shadow.track decorates functions that return their "
                                     "prediction, not generators")

        def shadowed(*args: Any, **kwargs: Any) -> Any:
            before = current_prediction_id()
            result = tracked(*args, **kwargs)
            submit(args, kwargs, result, before)
            return result

        shadowed.__wrapped__ = fn  # type: ignore[attr-defined]
        shadowed.__name__ = getattr(fn, "__name__", "shadowed")
        shadowed.__doc__ = getattr(fn, "__doc__", None)
        return shadowed

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
               id_before: str | None = None) -> None:
        """Queue one call for the candidate (what ``track`` does after each call)."""
        try:
            if self._closed:
                return
            calls = self._calls = self._calls + 1  # a lost update under a race only shifts sampling
            if self.sample < 1.0 and int(calls * self.sample) == int((calls - 1) * self.sample):
                return
            if len(self._queue) >= self.queue_size:
                self.counters.drop()
                return
            after = current_prediction_id()
            prediction_id = after if after is not None and after is not id_before else None
            if self._pid != os.getpid():
                self._start()
            queue = self._queue
            queue.append((_copy_args(args), _copy_args(kwargs), result, prediction_id))
            # Waking the thread for every call would cost a thread switch per request (most
            # of what a shadow costs a server, measured); it drains on a tick instead, or at
            # once when calls pile up.
            if len(queue) >= WAKE_ITEMS:
                self._wake.set()
        except Exception as exc:  # noqa: BLE001 - the shadow must never hurt the primary
            report_internal_error("shadow.submit", exc)

    # -- the candidate's thread -----------------------------------------------------------

    def _start(self) -> None:
        if self._pid:  # a forked child: the calls queued before the fork are its parent's
            self._queue.clear()
            self._active = False
        self._pid = os.getpid()  # a forked child starts its own thread (threads do not fork)
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlprobe-shadow", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            yielded = time.perf_counter()
            while queue:
                self._active = True  # before popping: join() sees either the item or this
                args, kwargs, primary_result, prediction_id = queue.popleft()
                self._run_one(args, kwargs, primary_result, prediction_id)
                now = time.perf_counter()
                if now - yielded > YIELD_SECONDS:
                    time.sleep(0)  # requests first: let a thread waiting for the GIL run
                    yielded = now
            self._active = False
            if self._closed:
                return

    def _run_one(self, args: Any, kwargs: Any, primary_result: Any, prediction_id: Any) -> None:
        try:
            candidate_result = self._run(prediction_id, args, kwargs)
        except Exception:  # noqa: BLE001 - counted by the candidate's probe as an error
            return
        try:
            self._compare(primary_result, candidate_result)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("shadow.compare", exc)

    def _compare(self, primary_result: Any, candidate_result: Any) -> None:
        task = self.task
        a, b = task.payload(primary_result), task.payload(candidate_result)
        if a is None or b is None:
            return
        if type(a) is float and type(b) is float:  # one score or value each: no numpy
            if not (math.isfinite(a) and math.isfinite(b)):
                return
            difference = abs(a - b)
            if task.task == "regression":
                agree = difference <= self.tolerance * max(abs(a), abs(b))
            else:
                agree = (a > task.threshold) == (b > task.threshold)
            self.counters.compared_one(agree, difference)
            return
        a, b = _as_rows(a), _as_rows(b)
        if len(a) != len(b):
            return
        differences = None
        if isinstance(a, list) or isinstance(b, list):
            same = np.array([x == y for x, y in zip(_classes(task, a), _classes(task, b))])
        elif a.ndim == 2 or b.ndim == 2:
            if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
                return
            same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
        else:
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            differences = np.abs(a - b)
            if task.task == "regression":
                same = differences <= self.tolerance * np.maximum(np.abs(a), np.abs(b))
            else:
                same = (a > task.threshold) == (b > task.threshold)
        agree = int(np.count_nonzero(same))
        self.counters.compared(agree, int(same.size) - agree, differences)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking calls; let the thread finish what is queued (up to ``timeout``)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def join(self, timeout: float = 5.0) -> bool:
        """Wait until every queued call has run on the candidate (tests, demos, shutdown);
        True when none is left."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._active) and time.monotonic() < deadline:
            time.sleep(0.002)
        return not (self._queue or self._active)


def _copy_args(value: Any) -> Any:
    """Arrays and containers the caller may change after the call are copied (shallowly)."""
    if isinstance(value, tuple):
        return tuple(_copy_args(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy_args(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    if hasattr(value, "copy") and hasattr(value, "to_numpy"):  # pandas
        return value.copy()
    return value


def _as_rows(payload: Any) -> Any:
    if type(payload) is float:
        return np.asarray([payload])
    return payload


def _classes(task: QualityTask, payload: Any) -> list[str]:
    if isinstance(payload, list):
        return payload
    if payload.ndim == 2:
        columns = task.column_labels(payload.shape[1])
        return [columns[i] for i in np.argmax(payload, axis=1).tolist()]
    if task.task == "binary":
        return [task.positive if p > task.threshold else task.negative  # type: ignore[misc]
                for p in payload.tolist()]
    return [str(v) for v in payload.tolist()]
