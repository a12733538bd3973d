"""Shadow: a candidate model run on the primary's inputs, off the request path.

``shadow.track`` wraps the primary's predict function (it is tracked by the primary's probe as
usual). After each call returns, its arguments (arrays and containers copied), result and
prediction id are put on a bounded queue: a deque append; nothing blocks, nothing the caller
gets changes, and when the queue is full the call is dropped and counted. The candidate runs
on the queued calls elsewhere, tracked by the candidate's own probe: same model name, the
candidate's version, so its latency, errors and score distribution are the usual metric names
with another ``model_version``, comparable in PromQL. Each output is then compared with the
primary's: agreement counts (same class; for regression, values within a relative tolerance)
and the distribution of absolute score differences. With model quality on, the candidate's
prediction is stored under the primary's prediction id, so one outcome measures both versions.

Where the candidate runs (``isolation``):

- ``"thread"`` (the default): a background thread of the serving process
  (:mod:`mlprobe._shadow_thread`). Nothing to set up and nothing to pickle, but the candidate
  shares the GIL and the CPU caches with the requests: a request arriving while it is in the
  middle of a call waits for the rest of that call. Right for a cheap candidate, or a light
  one at a low ``sample``.
- ``"process"``: a child process started at the first call (:mod:`mlprobe._shadow_process`,
  :mod:`mlprobe._shadow_child`), at a lower CPU priority, fed in batches by one thread of the
  serving process that also records the outcomes. The requests never wait for the candidate;
  the serving process pays for pickling the calls and recording the outcomes. A candidate that
  crashes, hangs (``timeout``) or kills its process costs the primary nothing and is counted;
  the process is restarted, or given up on with a logged reason.

Both record exactly the same metrics (:mod:`mlprobe._shadow_record`).
``benchmarks/bench_quality.py`` measures what each costs the primary.
"""

from __future__ import annotations

import inspect
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._guard import report_internal_error
from ._prediction_ids import current_prediction_id
from ._probe import Probe
from ._probe_quality import quality_task
from ._quality_spec import HIGHER_IS_BETTER, LOWER_IS_BETTER, QualitySpec
from ._quality_task import QualityTask
from ._shadow_compare import Comparer
from ._shadow_counts import DIFFERENCE_BUCKETS, ShadowCounters
from ._shadow_process import ProcessRunner
from ._shadow_record import CandidateRecorder
from ._shadow_thread import WAKE_ITEMS, ThreadRunner
from .errors import ConfigurationError

__all__ = ["DEFAULT_TIMEOUT", "ISOLATIONS", "START_METHODS", "Shadow", "WAKE_ITEMS"]

ISOLATIONS = ("thread", "process")
START_METHODS = ("fork", "spawn")

DEFAULT_TIMEOUT = 30.0
"""Seconds one call may run in the candidate's process before it counts as hung."""

DEFAULT_NICE = 10
"""How much lower the candidate's process runs in CPU priority (``os.nice`` increment)."""


class Shadow:
    """Run ``candidate`` on the inputs of the primary's calls, off the request path.

    Args:
        primary: The probe of the model serving the responses.
        candidate: The candidate's predict function, called with the primary's arguments
            (sync; it runs in a background thread or a child process).
        version: The candidate's version (the ``model_version`` of its metrics).
        task: ``binary``, ``multiclass`` or ``regression``, for comparing outputs; by default
            the primary's quality task (so needed only when the primary has no ``quality=``).
        queue_size: Calls waiting for the candidate at most (with ``isolation="process"``,
            including those in its process); more are dropped and counted.
        sample: Share of the primary's calls also run on the candidate (0 to 1).
        tolerance: Regression outputs agree when within this relative difference.
        difference_buckets: Upper bounds of the absolute score difference histogram.
        isolation: ``"thread"`` (default) runs the candidate in a background thread of this
            process; ``"process"`` in a child process (see the module docstring for which to
            choose). With ``"process"`` the calls' arguments and the candidate's results
            must pickle (those that do not are dropped, or counted as ``UnpicklableResult``
            errors).
        start_method: ``isolation="process"`` only: ``"fork"`` (default; the candidate need
            not pickle, the child starts as a copy of this process) or ``"spawn"`` (a fresh
            interpreter: the candidate must pickle and be importable there; needed when this
            process's threads hold state a fork would copy broken, such as an OpenMP pool).
        nice: ``isolation="process"`` only: how much lower the child runs in CPU priority
            (``os.nice`` increment, 0 to 19; 10 by default).
        timeout: ``isolation="process"`` only: seconds one candidate call may run before its
            process is killed and restarted (30 by default). A thread cannot be stopped.

    Raises:
        ConfigurationError: A bad argument; the message names it.

    Example:
        >>> shadow = mlprobe.Shadow(probe, candidate_model.predict_proba_positive, version="4",
        ...                         isolation="process")
        >>> @shadow.track
        ... def predict(rows): return model.predict_proba(rows)[:, 1]
    """

    def __init__(self, primary: Probe, candidate: Callable[..., Any], *, version: str | int,
                 task: str | None = None, queue_size: int = 1000, sample: float = 1.0,
                 tolerance: float = 0.01,
                 difference_buckets: Sequence[float] = DIFFERENCE_BUCKETS,
                 isolation: str = "thread", start_method: str | None = None,
                 nice: int | None = None, timeout: float | None = None) -> None:
        if not isinstance(primary, Probe):
            raise ConfigurationError(f"primary must be a mlprobe.Probe, got "
                                     f"{type(primary).__name__}")
        if not callable(candidate) or inspect.iscoroutinefunction(candidate):
            raise ConfigurationError("candidate must be a plain (sync) callable: it runs in a "
                                     "background thread or process")
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
        process = _check_isolation(candidate, isolation, start_method, nice, timeout)
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
        self.isolation = isolation
        labels = (("model", primary.name), ("model_version", self.version),
                  ("primary_version", primary.version))
        self.counters = primary.registry.get_or_create(
            ("shadow", primary.name, self.version, primary.version),
            lambda: ShadowCounters(labels, difference_buckets))
        comparer = Comparer(self.task, self.tolerance, self.counters.bounds)
        recorder = CandidateRecorder(self.candidate_probe, comparer, self.counters)

        self._queue: deque[tuple[Any, Any, Any, Any]] = deque()
        self._runner: ThreadRunner | ProcessRunner
        if process:
            self._runner = ProcessRunner(
                self._queue, candidate, comparer, recorder, self.counters,
                queue_size=queue_size, start_method=start_method or "fork",
                nice=DEFAULT_NICE if nice is None else nice,
                timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
                name=f"{primary.name!r} version {self.version!r}")
        else:
            self._runner = ThreadRunner(self._queue, candidate, recorder, queue_size)
        self._closed = False
        self._pid = 0  # the process whose runner runs (0: none yet)
        self._generation = -1  # the process generation it started in (see _after_fork)
        self._with_ids = spec is not None  # the primary keeps prediction ids
        self._calls = 0

    # -- request path ----------------------------------------------------------------------

    def track(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate the primary's predict function: tracked by the primary's probe, and each
        call's inputs and result handed to the candidate afterwards (never changing the
        result, never raising from the shadow's side)."""
        tracked = self.primary.track(fn)
        submit = self.submit
        # The id the call had before (without ids: none to read): the call's own is new.
        id_before = current_prediction_id if self._with_ids else _no_id

        if inspect.iscoroutinefunction(fn):
            async def shadowed_async(*args: Any, **kwargs: Any) -> Any:
                before = id_before()
                result = await tracked(*args, **kwargs)
                submit(args, kwargs, result, before)
                return result

            return shadowed_async

        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigurationError("Shadow.track decorates functions that return their "
                                     "prediction, not generators")

        def shadowed(*args: Any, **kwargs: Any) -> Any:
            before = id_before()
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
            if self._generation != _generation:  # first call in this process
                self._start()
            queue, runner = self._queue, self._runner
            if len(queue) + runner.held >= self.queue_size or runner.disabled:
                self.counters.drop()
                return
            prediction_id = None
            if self._with_ids:
                after = current_prediction_id()
                if after is not None and after is not id_before:
                    prediction_id = after
            # The tuple of arguments and the dict of keyword arguments are this call's own;
            # what they hold may be the caller's, to be changed after the call returns.
            queue.append((_copy_items(args), _copy_values(kwargs) if kwargs else kwargs,
                          result, prediction_id))
            # Waking the runner for every call would cost a thread switch per request (most
            # of what a shadow cost a server, measured); it drains on a tick instead, or at
            # once when calls pile up.
            if len(queue) >= WAKE_ITEMS:
                runner.wake()
        except Exception as exc:  # noqa: BLE001 - the shadow must never hurt the primary
            report_internal_error("shadow.submit", exc)

    # -- life cycle -------------------------------------------------------------------------

    def _start(self) -> None:
        with _start_lock:  # two requests may be the first at once: one runner per process
            if self._generation == _generation:
                return
            if self._pid:  # a forked child: the calls queued before the fork are its parent's
                self._queue.clear()
            self._runner.start()  # a forked child starts its own (threads do not fork)
            self._pid = os.getpid()
            self._generation = _generation

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking calls; let the candidate finish what is queued (up to ``timeout``), then
        end its thread (and its process, killed if it does not exit)."""
        self._closed = True
        if self._pid == os.getpid():
            self._runner.close(timeout)

    def join(self, timeout: float = 5.0) -> bool:
        """Wait until every queued call has run on the candidate and been recorded (tests,
        demos, shutdown); True when none is left."""
        deadline = time.monotonic() + timeout
        runner = self._runner
        while (self._queue or runner.busy()) and time.monotonic() < deadline:
            if runner.disabled:
                break
            runner.hurry()
            time.sleep(0.002)
        return not (self._queue or runner.busy())

    @property
    def candidate_pid(self) -> int | None:
        """The pid of the candidate's process (``isolation="process"``, once started)."""
        runner = self._runner
        return runner.child_pid() if isinstance(runner, ProcessRunner) else None


def _no_id() -> None:
    return None


_start_lock = threading.Lock()
_generation = 0
"""Forks this process is away from the first one: a shadow started in another generation
starts again (cheaper on the request path than comparing ``os.getpid()``)."""


def _after_fork() -> None:
    # A forked child: another thread of the parent may have held the lock at the fork.
    global _start_lock, _generation
    _start_lock = threading.Lock()
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _check_isolation(candidate: Callable[..., Any], isolation: str, start_method: str | None,
                     nice: int | None, timeout: float | None) -> bool:
    """Validate the isolation options; True for a child process."""
    if isolation not in ISOLATIONS:
        raise ConfigurationError(f"isolation must be 'thread' or 'process', got {isolation!r}")
    if isolation == "thread":
        given = [n for n, v in (("start_method", start_method), ("nice", nice),
                                ("timeout", timeout)) if v is not None]
        if given:
            raise ConfigurationError(f"{', '.join(given)} apply to isolation='process' only "
                                     "(a thread shares this process and cannot be stopped)")
        return False
    if os.name != "posix":
        raise ConfigurationError("isolation='process' needs a POSIX system (pipes that "
                                 "select() can wait on); use isolation='thread'")
    if start_method is not None and start_method not in START_METHODS:
        raise ConfigurationError(f"start_method must be 'fork' or 'spawn', got "
                                 f"{start_method!r}")
    if nice is not None and (isinstance(nice, bool) or not isinstance(nice, int)
                             or not 0 <= nice <= 19):
        raise ConfigurationError(f"nice must be an integer from 0 to 19, got {nice!r}")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float))
                                or not 0.05 <= timeout < float("inf")):
        raise ConfigurationError(f"timeout must be a number of seconds of at least 0.05, got "
                                 f"{timeout!r}")
    if start_method == "spawn":
        try:
            pickle.dumps(candidate)
        except Exception as exc:  # noqa: BLE001 - any pickling failure is a bad candidate
            raise ConfigurationError(
                f"start_method='spawn' sends the candidate to a new interpreter, so it must "
                f"pickle ({type(exc).__name__}: {exc}); pass a module-level function or an "
                "object of an importable class, or use start_method='fork'") from exc
    return True


def _copy_items(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The call's arguments with the mutable ones copied (most calls pass one array)."""
    if len(values) == 1:
        value = values[0]
        if type(value) is np.ndarray:
            return (value.copy(),)
        return (_copy(value),)
    return tuple([_copy(v) for v in values])


def _copy_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) for k, v in values.items()}


def _copy(value: Any) -> Any:
    """Arrays and containers the caller may change after the call are copied (shallowly)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):  # a dict of columns: the columns are copied too
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple([_copy(v) for v in value])
    if hasattr(value, "copy") and hasattr(value, "to_numpy"):  # pandas
        return value.copy()
    return value
