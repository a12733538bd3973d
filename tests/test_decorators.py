"""Behaviour of ``Probe.track`` on every kind of callable."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading

import numpy as np
import pytest

import mlprobe
from mlprobe import _decorators
from mlprobe.testing import sample_value


def value(registry, name, **labels):
    return sample_value(registry, name, labels)


class FakeClock:
    """perf_counter stand-in that advances by a fixed step per call."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def probe(registry):
    return mlprobe.Probe("m", version="1", registry=registry)


def test_sync_result_passes_through_and_call_is_counted(probe, registry):
    """A sync function returns the very same object and one ok call is recorded."""
    marker = object()

    @probe.track
    def predict(x):
        return marker

    assert predict(1) is marker
    assert value(registry, "mlprobe_predictions", outcome="ok") == 1
    assert value(registry, "mlprobe_predictions", outcome="error") == 0
    assert value(registry, "mlprobe_prediction_duration_seconds") == 1


def test_user_exception_is_reraised_unchanged_and_counted_by_type(probe, registry):
    """The user's exception object propagates as is; the error and its type are counted."""
    boom = KeyError("missing")

    @probe.track
    def predict(x):
        raise boom

    with pytest.raises(KeyError) as info:
        predict(1)
    assert info.value is boom
    assert value(registry, "mlprobe_predictions", outcome="error") == 1
    assert value(registry, "mlprobe_prediction_errors", error_type="KeyError") == 1
    assert value(registry, "mlprobe_predictions_in_flight") == 0


def test_latency_lands_in_the_right_bucket(probe, registry, monkeypatch):
    """Durations measured with perf_counter are recorded in the bucket whose bound holds them."""
    monkeypatch.setattr(_decorators, "perf_counter", FakeClock(0.003))

    @probe.track
    def predict(x):
        return 0.5

    predict(1)
    hist = next(s for f in registry.collect() if f.name == "mlprobe_prediction_duration_seconds"
                for s in f.samples)
    index = hist.bucket_counts.index(1)
    assert hist.bounds[index - 1] < 0.003 <= hist.bounds[index]
    assert hist.sum == pytest.approx(0.003)


def test_in_flight_counts_running_calls(probe, registry):
    """While a call runs the in-flight gauge is 1; afterwards it is 0."""
    seen = []

    @probe.track
    def predict(x):
        seen.append(value(registry, "mlprobe_predictions_in_flight"))
        return 1

    predict(0)
    assert seen == [1]
    assert value(registry, "mlprobe_predictions_in_flight") == 0


def test_async_stays_coroutine_function_and_times_whole_await(probe, registry, monkeypatch):
    """An async function stays a coroutine function and its full await is timed."""
    @probe.track
    async def predict(x):
        await asyncio.sleep(0.02)
        return [0.9]

    assert inspect.iscoroutinefunction(predict)
    assert asyncio.run(predict([[1, 2]])) == [0.9]
    hist = next(s for f in registry.collect() if f.name == "mlprobe_prediction_duration_seconds"
                for s in f.samples)
    assert hist.sum >= 0.02
    assert value(registry, "mlprobe_prediction_score", output="score") == 1


def test_async_exception_and_cancellation_are_recorded(probe, registry):
    """An async error is re-raised unchanged; a cancelled call counts as CancelledError."""
    @probe.track
    async def fails(x):
        raise ValueError("bad")

    @probe.track
    async def slow(x):
        await asyncio.sleep(10)

    with pytest.raises(ValueError, match="bad"):
        asyncio.run(fails(1))

    async def cancel():
        task = asyncio.ensure_future(slow(1))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel())
    assert value(registry, "mlprobe_prediction_errors", error_type="ValueError") == 1
    assert value(registry, "mlprobe_prediction_errors", error_type="CancelledError") == 1
    assert value(registry, "mlprobe_predictions_in_flight") == 0


def test_methods_classmethods_staticmethods(registry):
    """Bound methods, classmethods and staticmethods work and read the input, not self/cls."""
    probe = mlprobe.Probe("methods", registry=registry)

    class Predictor:
        scale = 2.0

        @probe.track
        def predict(self, rows):
            return np.full(len(rows), 0.25)

        @probe.track
        @classmethod
        def predict_cls(cls, rows):
            return np.full(len(rows), 0.25 * cls.scale)

        @probe.track
        @staticmethod
        def predict_static(rows):
            return np.full(len(rows), 0.75)

        @probe.track
        async def apredict(self, rows):
            return np.full(len(rows), 0.1)

    p = Predictor()
    assert p.predict([[1], [2], [3]]).tolist() == [0.25] * 3
    assert Predictor.predict_cls([[1], [2]]).tolist() == [0.5, 0.5]
    assert p.predict_cls([[1]]).tolist() == [0.5]
    assert Predictor.predict_static([[1]]).tolist() == [0.75]
    assert asyncio.run(p.apredict([[1], [2]])).tolist() == [0.1, 0.1]
    assert inspect.iscoroutinefunction(p.apredict)
    assert value(registry, "mlprobe_predictions", outcome="ok") == 5
    # rows came from the input argument: 3 + 2 + 1 + 1 + 2
    assert sample_value(registry, "mlprobe_batch_rows", suffix="sum") == 9
    assert value(registry, "mlprobe_prediction_score", output="score") == 9


def test_introspection_is_preserved(probe):
    """Name, docstring, signature and __wrapped__ survive decoration."""
    def predict(features, *, threshold: float = 0.5) -> float:
        """Doc."""
        return 0.0

    tracked = probe.track(predict)
    assert tracked.__name__ == "predict"
    assert tracked.__doc__ == "Doc."
    assert tracked.__wrapped__ is predict
    assert inspect.signature(tracked) == inspect.signature(predict)


def test_generator_is_timed_over_iteration(probe, registry, monkeypatch):
    """A generator is timed from its first step to exhaustion, and yields pass through."""
    monkeypatch.setattr(_decorators, "perf_counter", FakeClock(1.0))

    @probe.track
    def stream(prompt):
        yield "a"
        yield "b"
        return "done"

    gen = stream("hi")
    assert inspect.isgenerator(gen)
    assert list(gen) == ["a", "b"]
    assert value(registry, "mlprobe_predictions", outcome="ok") == 1
    assert sample_value(registry, "mlprobe_prediction_duration_seconds", suffix="sum") == 1.0


def test_generator_error_and_early_close(probe, registry):
    """A generator that raises counts an error; one closed early counts as ok."""
    @probe.track
    def stream(n):
        yield 1
        raise RuntimeError("mid-stream")

    gen = stream(1)
    next(gen)
    with pytest.raises(RuntimeError, match="mid-stream"):
        next(gen)

    closed = stream(1)
    next(closed)
    closed.close()
    assert value(registry, "mlprobe_prediction_errors", error_type="RuntimeError") == 1
    assert value(registry, "mlprobe_predictions", outcome="ok") == 1
    assert value(registry, "mlprobe_predictions_in_flight") == 0


def test_async_generator_is_timed_over_iteration(probe, registry):
    """An async generator stays one and is counted once it is exhausted."""
    @probe.track
    async def stream(prompt):
        for token in ("x", "y"):
            await asyncio.sleep(0)
            yield token

    assert inspect.isasyncgenfunction(stream)

    async def consume():
        return [t async for t in stream("p")]

    assert asyncio.run(consume()) == ["x", "y"]
    assert value(registry, "mlprobe_predictions", outcome="ok") == 1


def test_wrapped_async_behind_sync_decorator_is_detected(probe, registry):
    """An async function hidden behind a functools.wraps decorator still gets the async wrapper."""
    async def inner(x):
        await asyncio.sleep(0.01)
        return 0.5

    @functools.wraps(inner)
    def passthrough(*a, **k):
        return inner(*a, **k)

    tracked = probe.track(passthrough)
    assert inspect.iscoroutinefunction(tracked)
    assert asyncio.run(tracked(1)) == 0.5
    assert sample_value(registry, "mlprobe_prediction_duration_seconds", suffix="sum") >= 0.01


def test_disabled_returns_function_unwrapped(probe, monkeypatch):
    """enabled=False, or MLPROBE_DISABLED=1, returns the original function object."""
    def predict(x):
        return x

    assert probe.track(enabled=False)(predict) is predict
    monkeypatch.setenv("MLPROBE_DISABLED", "1")
    assert probe.track(predict) is predict
    assert probe.track(enabled=True)(predict) is not predict


def test_options_form_and_extractors(probe, registry):
    """@track(...) accepts user extractors for inputs and scores and a named input argument."""
    @probe.track(inputs=lambda req: (len(req["rows"]), 123), scores=lambda r: r["p"],
                 input_arg="request")
    def predict(model, request):
        return {"p": [0.1, 0.2, 0.3]}

    predict(None, request={"rows": [1, 2]})
    assert sample_value(registry, "mlprobe_batch_rows", suffix="sum") == 2
    assert sample_value(registry, "mlprobe_input_bytes", suffix="sum") == 123
    assert value(registry, "mlprobe_prediction_score", output="score") == 3


def test_bad_options_fail_at_decoration(probe):
    """Options of the wrong type raise ConfigurationError naming the option."""
    with pytest.raises(mlprobe.ConfigurationError, match="inputs="):
        probe.track(inputs="rows")
    with pytest.raises(mlprobe.ConfigurationError, match="input_arg"):
        probe.track(input_arg=1.5)
    with pytest.raises(mlprobe.ConfigurationError, match="not a parameter"):
        probe.track(input_arg="nope")(lambda x: x)
    with pytest.raises(TypeError, match="callables"):
        probe.track(42)


def test_error_types_are_bounded(registry):
    """Past max_error_types distinct exception types, the rest count as __other__."""
    probe = mlprobe.Probe("bounded", registry=registry, max_error_types=3)
    kinds = [type(f"E{i}", (Exception,), {}) for i in range(10)]

    @probe.track
    def predict(i):
        raise kinds[i]()

    for i in range(10):
        with pytest.raises(kinds[i]):
            predict(i)
    family = next(f for f in registry.collect() if f.name == "mlprobe_prediction_errors")
    counts = {dict(s.labels)["error_type"]: s.value for s in family.samples}
    assert len(counts) == 4
    assert counts["__other__"] == 7
    assert sum(counts.values()) == 10


def test_concurrent_calls_lose_no_counts(probe, registry):
    """Eight threads calling 2,000 times each record exactly 16,000 calls."""
    @probe.track
    def predict(x):
        return 0.5

    def work():
        for _ in range(2000):
            predict(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(registry, "mlprobe_predictions", outcome="ok") == 16000
    assert value(registry, "mlprobe_prediction_score", output="score") == 16000


@pytest.mark.allow_internal_errors
def test_failing_extractor_never_reaches_user_code(probe, registry):
    """A user extractor that raises is swallowed and counted; the result is unchanged."""
    before = mlprobe._guard.internal_error_count()

    @probe.track(scores=lambda r: 1 / 0)
    def predict(x):
        return 7

    assert predict(1) == 7
    assert mlprobe._guard.internal_error_count() == before + 1
    assert value(registry, "mlprobe_internal_errors") == before + 1
    assert value(registry, "mlprobe_predictions", outcome="ok") == 1


def test_internal_errors_fail_tests_by_default(probe):
    """Without the marker the suite's guard re-raises internal errors, so bugs are not hidden."""
    @probe.track(scores=lambda r: 1 / 0)
    def predict(x):
        return 7

    with pytest.raises(ZeroDivisionError):
        predict(1)
