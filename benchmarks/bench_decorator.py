"""Per-call overhead of @probe.track against the patterns users have today.

Every variant runs in the same process, interleaved round by round, so machine noise hits all
of them alike. Overhead = median time per call of the variant minus that of the bare function
of the same kind (sync or async). Run: ``python benchmarks/bench_decorator.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import timeit

import numpy as np
import wrapt
from prometheus_client import CollectorRegistry, Counter, Histogram

import mlprobe

registry = mlprobe.Registry()
probe = mlprobe.Probe("bench", version="1", registry=registry)
prom = CollectorRegistry()
prom_hist = Histogram("bench_latency_seconds", "latency", registry=prom)
guide_counter = Counter("bench_requests", "requests", ["model"], registry=prom)
guide_hist = Histogram("bench_duration_seconds", "duration", ["model"], registry=prom)
BATCH = np.random.default_rng(0).random((100, 20))
SCORES = np.random.default_rng(1).random(100)


def bare(x):
    return x


def bare_batch(x):
    return SCORES


def bare_class(x):
    return "yes"


def bare_raise(x):
    raise ValueError(x)


def catching(fn):
    """Call ``fn`` and swallow its ValueError (both raising variants pay the same except)."""

    def call(x):
        try:
            fn(x)
        except ValueError:
            pass

    return call


async def abare(x):
    return x


timed_only = probe.track(inputs=False, scores=False)(bare)
tracked_default = probe.track(bare)
tracked_batch = probe.track(bare_batch)
tracked_class = probe.track(bare_class)
tracked_raise = probe.track(bare_raise)
prom_timed = prom_hist.time()(bare)


def guide_pattern(x):
    """The MLOps guide's hand-written instrumentation: a labelled inc and observe per call."""
    start = timeit.default_timer()
    result = bare(x)
    guide_counter.labels("m").inc()
    guide_hist.labels("m").observe(timeit.default_timer() - start)
    return result


@wrapt.decorator
def wrapt_passthrough(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs)


wrapt_only = wrapt_passthrough(bare)


class Model:
    def predict(self, x):
        return x

    @probe.track(inputs=False, scores=False)
    def tracked_predict(self, x):
        return x


model = Model()
atimed_only = probe.track(inputs=False, scores=False)(abare)
atracked_default = probe.track(abare)

SYNC_CASES = {
    "bare function": (bare, 0.5, None),
    "wrapt pass-through wrapper (no recording)": (wrapt_only, 0.5, "bare function"),
    "prometheus_client @Histogram.time()": (prom_timed, 0.5, "bare function"),
    "guide pattern: Counter.labels.inc + Histogram.labels.observe": (guide_pattern, 0.5,
                                                                     "bare function"),
    "mlprobe track: count+errors+latency+in-flight": (timed_only, 0.5, "bare function"),
    "mlprobe track default (scalar in, score out)": (tracked_default, 0.5, "bare function"),
    "bare method": (model.predict, 0.5, None),
    "mlprobe track on a method": (model.tracked_predict, 0.5, "bare method"),
    "mlprobe track default, class label out": (tracked_class, 0.5, "bare function"),
    "bare raising function (caught)": (catching(bare_raise), 0.5, None),
    "mlprobe track on a raising function (caught)": (catching(tracked_raise), 0.5,
                                                     "bare raising function (caught)"),
    "bare function, 100-row batch": (bare_batch, BATCH, None),
    "mlprobe track default, 100-row batch + 100 scores": (tracked_batch, BATCH,
                                                          "bare function, 100-row batch"),
}
ASYNC_CASES = {
    "bare async function": (abare, None),
    "mlprobe track async: count+errors+latency+in-flight": (atimed_only, "bare async function"),
    "mlprobe track async default": (atracked_default, "bare async function"),
}


def time_sync(fn, arg, number):
    return timeit.timeit(lambda: fn(arg), number=number) / number


def time_async(fn, number):
    async def loop():
        for _ in range(number):
            await fn(0.5)

    start = timeit.default_timer()
    asyncio.run(loop())
    return (timeit.default_timer() - start) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {k: [] for k in [*SYNC_CASES, *ASYNC_CASES]}
    for _ in range(args.rounds):
        for name, (fn, arg, _) in SYNC_CASES.items():
            samples[name].append(time_sync(fn, arg, args.number))
        for name, (fn, _) in ASYNC_CASES.items():
            samples[name].append(time_async(fn, args.number // 2))
    medians = {k: statistics.median(v) * 1e9 for k, v in samples.items()}
    spread = {k: (statistics.quantiles(v, n=4)[2] - statistics.quantiles(v, n=4)[0]) * 1e9
              for k, v in samples.items()}
    baselines = {name: base for name, (_, _, base) in SYNC_CASES.items()}
    baselines.update({name: base for name, (_, base) in ASYNC_CASES.items()})
    reference = medians["prometheus_client @Histogram.time()"] - medians["bare function"]
    print(f"{'variant':62} {'ns/call':>8} {'IQR':>6} {'overhead':>9} {'vs @time()':>10}")
    for name, median in medians.items():
        base = baselines[name]
        if base is None:
            print(f"{name:62} {median:8.0f} {spread[name]:6.0f} {'-':>9} {'-':>10}")
            continue
        overhead = median - medians[base]
        print(f"{name:62} {median:8.0f} {spread[name]:6.0f} {overhead:9.0f} "
              f"{overhead / reference:10.2f}")


if __name__ == "__main__":
    main()
