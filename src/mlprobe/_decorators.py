"""``Probe.track``: time and record calls of sync, async and generator functions.

Why plain closures and not wrapt: a ``wrapt.FunctionWrapper`` costs ~0.5 µs more per call than a
closure on our machine (benchmarks/bench_decorator.py), a third of the whole budget. Plain
functions already bind as methods through the descriptor protocol; ``classmethod`` and
``staticmethod`` objects are unwrapped, decorated, and wrapped again. ``functools.wraps`` keeps
the name, docstring, ``__wrapped__`` and so ``inspect.signature``; an ``async def`` wrapper keeps
``inspect.iscoroutinefunction`` true. The wrapper kind is chosen once, at decoration time.

Per-call state (start time, result) lives in the wrapper's frame only, never on a shared object.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol

from ._config import env_flag
from ._guard import report_internal_error
from .errors import ConfigurationError
from .stats._labels import error_label

__all__ = ["build_decorator", "build_recorder"]

_MISSING = object()
_SELF_NAMES = ("self", "cls")


class _State(Protocol):
    calls: Any

    def see_inputs(self, batch: Any, extractor: Any) -> tuple[int | None, int | None]: ...

    def observe_outputs(self, result: Any, extractor: Any) -> None: ...


def build_decorator(state: _State, *, inputs: Any, scores: Any, input_arg: int | str | None,
                    enabled: bool | None,
                    prediction_id: int | str | bool | None = None) -> Callable[[Any], Any]:
    """Validate the options once and return the decorator that wraps functions."""
    if not (isinstance(inputs, bool) or callable(inputs)):
        raise ConfigurationError("inputs= must be True, False or a callable batch -> rows | "
                                 f"(rows, bytes); got {inputs!r}")
    if not (isinstance(scores, bool) or callable(scores)):
        raise ConfigurationError(f"scores= must be True, False or a callable; got {scores!r}")
    if input_arg is not None and (isinstance(input_arg, bool)
                                  or not isinstance(input_arg, (int, str))):
        raise ConfigurationError(f"input_arg= must be a position (int) or a parameter name (str); "
                                 f"got {input_arg!r}")
    if prediction_id is not None and not isinstance(prediction_id, (bool, int, str)):
        raise ConfigurationError("prediction_id= must be a parameter name (str), a position "
                                 f"(int), True or False; got {prediction_id!r}")
    # Quality monitoring keeps each prediction for its outcome (mlprobe._probe_quality).
    with_ids = getattr(state, "quality", None) is not None
    if enabled is None:
        enabled = not env_flag("MLPROBE_DISABLED", False)
    input_extractor = None if isinstance(inputs, bool) else inputs
    score_extractor = None if isinstance(scores, bool) else scores

    def decorator(fn: Any) -> Any:
        if isinstance(fn, classmethod):
            return classmethod(decorator_for(fn.__func__, bound=True))
        if isinstance(fn, staticmethod):
            return staticmethod(decorator_for(fn.__func__, bound=False))
        if not callable(fn):
            raise TypeError(f"probe.track decorates callables, got {type(fn).__name__}")
        return decorator_for(fn, bound=None)

    def decorator_for(fn: Callable[..., Any], bound: bool | None) -> Any:
        if not enabled:
            return fn
        finish = _make_finisher(state, *_locate_input(fn, input_arg, bound),
                                inputs is not False, input_extractor,
                                scores is not False, score_extractor)
        if with_ids and scores is not False:
            finish = _with_prediction_id(state, finish, fn, bound, prediction_id,
                                         score_extractor)
        kind = _call_kind(fn)
        return _WRAPPERS[kind](fn, state, finish)

    return decorator


def build_recorder(state: _State) -> Callable[[float, Any, Any, str | None], None]:
    """Record calls that ran elsewhere, exactly as a tracked call with ``inputs=False`` and
    ``prediction_id="mlprobe_prediction_id"`` records them (a shadow's candidate: run in a
    background thread or another process, timed there).

    The returned ``record(duration, prediction_id, result, error_type)`` counts one call of
    ``duration`` seconds: an error of type ``error_type`` (a class's ``__qualname__``), or a
    result, kept under ``prediction_id`` when the probe has quality monitoring.
    """
    def run_elsewhere(mlprobe_prediction_id: Any) -> None:  # the id's position, for the finisher
        return None

    finish = _make_finisher(state, None, None, False, None, True, None)
    if getattr(state, "quality", None) is not None:
        finish = _with_prediction_id(state, finish, run_elsewhere, None, "mlprobe_prediction_id",
                                     None)

    def record(duration: float, prediction_id: Any, result: Any, error_type: str | None) -> None:
        calls = state.calls
        calls.enter()
        if error_type is None:
            # No id (the primary kept none for this call): nothing could ever join the
            # candidate's prediction, so it is not stored (None would store it under a new id).
            finish(duration, (False if prediction_id is None else prediction_id,), {}, result)
        else:
            calls.exit_error(duration, error_type)

    return record


def _call_kind(fn: Any) -> str:
    """Classify by what calling ``fn`` returns, looking through decorators and partials."""
    targets = [fn, inspect.unwrap(fn)]
    call = getattr(fn, "__call__", None)  # callable objects with an async __call__
    if call is not None and not inspect.isfunction(fn) and not inspect.ismethod(fn):
        targets.append(call)
    for target in targets:
        if inspect.isasyncgenfunction(target):
            return "asyncgen"
        if inspect.iscoroutinefunction(target):
            return "async"
        if inspect.isgeneratorfunction(target):
            return "generator"
    return "sync"


def _locate_input(fn: Any, input_arg: int | str | None, bound: bool | None,
                  option: str = "input_arg") -> tuple[int | None, str | None]:
    """Return (position, name) of the model input among the call's arguments."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):  # builtins without a signature
        params = []
    positional = [p for p in params if p.kind != p.KEYWORD_ONLY]
    if isinstance(input_arg, str):
        names = [p.name for p in params]
        if names and input_arg not in names:
            raise ConfigurationError(f"{option}={input_arg!r} is not a parameter of "
                                     f"{getattr(fn, '__qualname__', fn)}; parameters: {names}")
        index = next((i for i, p in enumerate(positional) if p.name == input_arg), None)
        return index, input_arg
    if isinstance(input_arg, int):
        name = positional[input_arg].name if 0 <= input_arg < len(positional) else None
        return input_arg, name
    skip = 1 if bound or (positional and positional[0].name in _SELF_NAMES) else 0
    if len(positional) > skip:
        return skip, positional[skip].name
    if bound is None and not params:
        return 0, None  # no signature: assume the first positional argument
    return None, None


Finisher = Callable[[float, tuple[Any, ...], dict[str, Any], Any], None]


def _make_finisher(state: _State, index: int | None, name: str | None, want_inputs: bool,
                   input_extractor: Any, want_outputs: bool, score_extractor: Any) -> Finisher:
    """Build the after-call recording step once, specialised to what the options ask for."""
    if not want_inputs and not want_outputs:
        def finish_timing(duration: float, args: tuple[Any, ...], kwargs: dict[str, Any],
                          result: Any) -> None:
            state.calls.exit_ok(duration)

        return finish_timing

    see_inputs = state.see_inputs
    observe_outputs = state.observe_outputs

    def finish(duration: float, args: tuple[Any, ...], kwargs: dict[str, Any],
               result: Any) -> None:
        rows = nbytes = None
        if want_inputs:
            if index is not None and len(args) > index:
                batch = args[index]
            elif name is not None and name in kwargs:
                batch = kwargs[name]
            else:
                batch = _MISSING
            if batch is not _MISSING:
                try:
                    rows, nbytes = see_inputs(batch, input_extractor)
                except Exception as err:  # noqa: BLE001 - the call itself is still recorded
                    report_internal_error("track.inputs", err)
        # Sizes go in with the outcome: one lock round trip for the whole call.
        state.calls.exit_ok(duration, rows, nbytes)
        if want_outputs and result is not _MISSING:
            observe_outputs(result, score_extractor)

    return finish


def _with_prediction_id(state: Any, finish: Finisher, fn: Any, bound: bool | None,
                        prediction_id: int | str | bool | None,
                        score_extractor: Any) -> Finisher:
    """The finisher of a probe with quality monitoring: the result (once through the score
    extractor) is kept under the call's prediction id, then recorded as usual."""
    index = name = None
    if isinstance(prediction_id, (int, str)) and not isinstance(prediction_id, bool):
        index, name = _locate_input(fn, prediction_id, bound, "prediction_id")
    no_id = False if prediction_id is False else None  # None: the request's, or a new one
    observe = state.observe_outputs_with_id

    def finish_with_id(duration: float, args: tuple[Any, ...], kwargs: dict[str, Any],
                       result: Any) -> None:
        finish(duration, args, kwargs, _MISSING)  # the call and its inputs
        if result is _MISSING:
            return
        explicit: Any = no_id
        if index is not None and len(args) > index:
            explicit = args[index]
        elif name is not None and name in kwargs:
            explicit = kwargs[name]
        observe(result, score_extractor, explicit)

    return finish_with_id


def _finish_error(calls: Any, start: float, exc: BaseException) -> None:
    duration = perf_counter() - start
    name = error_label(exc)
    try:
        calls.exit_error(duration, name)
    except Exception as err:  # noqa: BLE001
        report_internal_error("track.exit", err)


def _sync(fn: Callable[..., Any], state: _State, finish: Finisher) -> Any:
    @functools.wraps(fn)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        calls = state.calls
        try:
            calls.enter()
        except Exception as err:  # noqa: BLE001 - guard: never hurt the model
            report_internal_error("track.enter", err)
        start = perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _finish_error(calls, start, exc)
            raise
        duration = perf_counter() - start
        try:
            finish(duration, args, kwargs, result)
        except Exception as err:  # noqa: BLE001
            report_internal_error("track.record", err)
        return result

    return tracked


def _async(fn: Callable[..., Any], state: _State, finish: Finisher) -> Any:
    @functools.wraps(fn)
    async def tracked(*args: Any, **kwargs: Any) -> Any:
        calls = state.calls
        try:
            calls.enter()
        except Exception as err:  # noqa: BLE001
            report_internal_error("track.enter", err)
        start = perf_counter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:  # includes CancelledError: a cancelled call is recorded
            _finish_error(calls, start, exc)
            raise
        duration = perf_counter() - start
        try:
            finish(duration, args, kwargs, result)
        except Exception as err:  # noqa: BLE001
            report_internal_error("track.record", err)
        return result

    return tracked


def _generator(fn: Callable[..., Any], state: _State, finish: Finisher) -> Any:
    """Time a generator over its whole iteration (first ``next`` to exhaustion or close).

    Yielded items are not read as scores (a stream of tokens or chunks is not a score);
    the input is recorded as for any call.
    """

    @functools.wraps(fn)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        calls = state.calls
        try:
            calls.enter()
        except Exception as err:  # noqa: BLE001
            report_internal_error("track.enter", err)
        start = perf_counter()
        try:
            returned = yield from fn(*args, **kwargs)
        except GeneratorExit:  # the consumer stopped early: not the model's error
            _finish_ok(start, finish, args, kwargs)
            raise
        except BaseException as exc:
            _finish_error(calls, start, exc)
            raise
        _finish_ok(start, finish, args, kwargs)
        return returned

    return tracked


def _async_generator(fn: Callable[..., Any], state: _State, finish: Finisher) -> Any:
    """Time an async generator over its whole iteration, as :func:`_generator` does."""

    @functools.wraps(fn)
    async def tracked(*args: Any, **kwargs: Any) -> Any:
        calls = state.calls
        try:
            calls.enter()
        except Exception as err:  # noqa: BLE001
            report_internal_error("track.enter", err)
        start = perf_counter()
        try:
            async for item in fn(*args, **kwargs):
                yield item
        except GeneratorExit:
            _finish_ok(start, finish, args, kwargs)
            raise
        except BaseException as exc:
            _finish_error(calls, start, exc)
            raise
        _finish_ok(start, finish, args, kwargs)

    return tracked


def _finish_ok(start: float, finish: Finisher, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> None:
    try:
        finish(perf_counter() - start, args, kwargs, _MISSING)
    except Exception as err:  # noqa: BLE001
        report_internal_error("track.record", err)


_WRAPPERS = {"sync": _sync, "async": _async, "generator": _generator,
             "asyncgen": _async_generator}
