"""Memory and series stay bounded whatever the traffic (the README's "Resource bounds").

The first tests reproduce a reported defect: 4,000 single-row calls carrying 100 kB category
values held about 400 MB until the next scrape, because the row buffer kept the caller's
values. The last one sends a million calls of random values, category strings, exception
types and HTTP paths, and holds resident memory and series counts under the documented bounds.
"""

from __future__ import annotations

import asyncio
import random
import resource
import string
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest

import mlprobe
from mlprobe._features import DEFAULT_BUFFER_BYTES
from mlprobe._instruments import OVERFLOW
from mlprobe.asgi import ProbeMiddleware

PAYLOAD_BYTES = 100_000


@pytest.fixture(scope="module")
def profile() -> mlprobe.ReferenceProfile:
    rng = np.random.default_rng(0)
    return mlprobe.ReferenceProfile.from_data(
        {"age": rng.normal(40, 10, 5000), "income": rng.lognormal(10, 0.5, 5000),
         "plan": rng.choice(["basic", "pro", "team"], 5000).astype(object),
         "region": rng.choice(["eu", "us", "apac"], 5000).astype(object)},
        predictions=rng.random(5000), categorical=["plan", "region"])


def payload(i: int) -> str:
    """A distinct 100 kB string (distinct, so no interning can keep it small)."""
    return f"{i:08d}" + "x" * (PAYLOAD_BYTES - 8)


@pytest.mark.parametrize("shape", ["single rows", "small batches", "odd rows"])
def test_buffered_rows_do_not_keep_request_payloads_alive(profile, registry, shape):
    """4,000 calls with 100 kB category values (400 MB in all) and no flush leave the buffer
    holding under 4 MiB: rows are encoded, the payloads are freed with their requests."""
    probe = mlprobe.Probe("payloads", registry=registry, reference=profile)
    monitor = probe._state.features

    @probe.track
    def predict(x: Any) -> float:
        return 0.5

    tracemalloc.start()
    try:
        with monitor._flush_lock:  # the worst case: nothing is flushed (no scrape, no flusher)
            base = tracemalloc.get_traced_memory()[0]
            for i in range(4000 if shape != "small batches" else 1000):
                if shape == "single rows":
                    predict({"age": 40.0, "income": 1e4, "plan": payload(i), "region": "eu"})
                elif shape == "small batches":
                    predict([{"age": 40.0, "income": 1e4, "plan": payload(4 * i + k),
                              "region": "eu", "note": payload(i)} for k in range(4)])
                else:  # rows the packed path refuses: a None, an extra field
                    predict({"age": None, "income": 1e4, "plan": payload(i), "region": "eu",
                             "raw_request": payload(i)})
            held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 4 * 2**20, f"the buffer holds {held / 2**20:.1f} MiB"
    totals = monitor.totals()
    assert totals.rows == 4000
    assert totals.features["plan"].categories.unseen == 4000


def test_buffer_bytes_are_bounded_by_max_buffer_bytes(profile):
    """The encoded buffer never exceeds max_buffer_bytes (plus one row per thread in flight)."""
    from mlprobe._features import FeatureMonitor

    monitor = FeatureMonitor(profile, flush_rows=256, max_buffer_bytes=64 * 1024)
    with monitor._flush_lock:
        for i in range(10_000):
            monitor.observe({"age": float(i), "income": 1.0, "plan": "pro", "region": "us"})
            monitor.observe([{"age": 1.0, "income": 1.0, "plan": "pro", "region": "us"}] * 3)
        rows = len(monitor._rows) + monitor._block_rows
        held = (sys.getsizeof(monitor._rows) + sum(map(sys.getsizeof, monitor._rows))
                + sum(map(sys.getsizeof, monitor._blocks)))
    assert held <= 64 * 1024 * 1.1  # (the lists' own spare capacity is not counted)
    assert monitor.dropped_rows == 40_000 - rows
    assert monitor.totals().rows == rows


# -- a million random calls ----------------------------------------------------------------------

CALLS = 1_000_000
HTTP_REQUESTS = 20_000
CHUNK = 10_000
RSS_GROWTH_BOUND_MIB = 32  # the README's bound for this traffic, after a warm-up


def rss_mib() -> float:
    """Current resident set size in MiB (Linux: /proc/self/statm; else the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20 / 1024


def random_words(rng: random.Random, n: int, length: int = 8) -> list[str]:
    letters = string.ascii_letters + string.digits + "é中\u2028"
    return ["".join(rng.choices(letters, k=length)) for _ in range(n)]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/statm")
def test_a_million_random_calls_stay_within_the_documented_bounds(profile):
    """1,000,000 tracked calls (random numbers with NaN/inf/None/strings, random category
    strings, random extra keys, random exception types and random classes) and 20,000 HTTP
    requests on random paths: RSS grows less than RSS_GROWTH_BOUND_MIB after a warm-up of
    100,000 calls, every label stays under its cap, and every row is counted or dropped."""
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("random", registry=registry, reference=profile, max_classes=50,
                          max_error_types=20)
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    error_types = [type(f"Error{w}", (Exception,), {}) for w in random_words(rng, 500)]

    @probe.track
    def predict(row: Any) -> Any:
        tag = row.get("tag", 0.0) if type(row) is dict else 0.0
        if tag < 0.02:
            raise error_types[int(tag * 25_000) % len(error_types)]("random failure")
        if tag < 0.2:
            return f"class-{int(tag * 1e6)}"  # random class labels
        return tag

    def chunk_rows() -> list[Any]:
        numbers = nrng.normal(40, 10, (CHUNK, 2))
        numbers[nrng.random((CHUNK, 2)) < 0.01] = np.nan
        numbers[nrng.random((CHUNK, 2)) < 0.005] = np.inf
        ages, incomes = numbers[:, 0].tolist(), numbers[:, 1].tolist()
        tags = nrng.random(CHUNK).tolist()
        plans = random_words(rng, 50) + ["basic", "pro", "team"] * 50
        rows: list[Any] = []
        for i in range(CHUNK):
            row: dict[str, Any] = {"age": ages[i], "income": incomes[i],
                                   "plan": plans[i % len(plans)], "region": "eu",
                                   "tag": tags[i]}
            if i % 97 == 0:
                row["age"] = None if i % 2 else "forty"
            if i % 101 == 0:
                row[f"extra_{i}"] = 1
            rows.append(row)
        return rows

    async def http_traffic(n: int) -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"].endswith("7"):
                raise error_types[len(scope["path"]) % len(error_types)]("app failure")
            await send({"type": "http.response.start", "status": 200 + len(scope["path"]) % 3,
                        "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        # a resolver that returns raw paths: the worst case, still capped at max_routes
        middleware = ProbeMiddleware(app, registry=registry, route_resolver=lambda s: s["path"])

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        for path in random_words(rng, n, length=12):
            scope = {"type": "http", "method": rng.choice(["GET", "POST", "BREW"]),
                     "path": "/" + path, "root_path": "", "headers": [], "query_string": b""}
            try:
                await middleware(scope, receive, send)
            except Exception:  # noqa: BLE001 - the app's random exceptions pass through
                pass

    calls = failed = 0
    checkpoints = []
    warm_rss = None
    while calls < CALLS:
        for row in chunk_rows():
            try:
                predict(row)
            except Exception:  # noqa: BLE001 - the model's own random exceptions
                failed += 1  # a failed call records no inputs
        calls += CHUNK
        if calls % 100_000 == 0:
            asyncio.run(http_traffic(HTTP_REQUESTS // 10))
            registry.collect()  # what a scrape does
            checkpoints.append(rss_mib())
            if calls == 100_000:
                warm_rss = checkpoints[-1]
    assert warm_rss is not None
    growth = max(checkpoints) - warm_rss
    print(f"RSS checkpoints (MiB, every 100,000 calls): {[round(c, 1) for c in checkpoints]}")
    assert growth < RSS_GROWTH_BOUND_MIB, f"RSS grew {growth:.1f} MiB: {checkpoints}"

    families = {f.name: f for f in registry.collect()}

    def values_of(name: str, label: str) -> set[str]:
        return {dict(s.labels)[label] for s in families[name].samples}

    assert len(values_of("mlprobe_prediction_errors", "error_type")) <= 20 + 1
    assert OVERFLOW in values_of("mlprobe_prediction_errors", "error_type")
    assert len(values_of("mlprobe_predicted_class", "class")) <= 50 + 1
    assert len(values_of("http_server_request_duration_seconds", "http_route")) <= 200 + 2
    assert values_of("mlprobe_feature_bin", "bin") <= {*map(str, range(10)), "basic", "pro",
                                                      "team", "eu", "us", "apac", OVERFLOW}
    series = sum(len(f.samples) for f in families.values())
    print(f"series: {series}; dropped rows: {probe._state.features.dropped_rows}")
    assert series < 20_000, series
    monitor = probe._state.features
    totals = monitor.totals()
    assert totals.rows + monitor.dropped_rows == CALLS - failed
    assert monitor.dropped_rows < CALLS // 100  # the flusher keeps up with this traffic
    assert DEFAULT_BUFFER_BYTES == 8 * 2**20  # the bound the README states
