"""HttpMetrics' request path: batched recording and the implicit one-message / empty-body counts."""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest

import mlprobe
from mlprobe._config import DEFAULT_BYTES_BUCKETS
from mlprobe._http_metrics import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_KNOWN_METHODS,
    FOLD_BATCH,
    HttpConfig,
    HttpMetrics,
)

CONFIG = HttpConfig(duration_buckets=DEFAULT_DURATION_BUCKETS, size_buckets=DEFAULT_BYTES_BUCKETS,
                    known_methods=DEFAULT_KNOWN_METHODS, max_routes=200, max_status_codes=40,
                    max_error_types=20)
GET = DEFAULT_KNOWN_METHODS.index("GET")
POST = DEFAULT_KNOWN_METHODS.index("POST")

HISTOGRAMS = {
    "http_server_request_duration_seconds": (DEFAULT_DURATION_BUCKETS, "duration"),
    "http_server_time_to_first_byte_seconds": (DEFAULT_DURATION_BUCKETS, "ttfb"),
    "http_server_request_body_size_bytes": (DEFAULT_BYTES_BUCKETS, "received"),
    "http_server_response_body_size_bytes": (DEFAULT_BYTES_BUCKETS, "sent"),
}


def collect(metrics: HttpMetrics) -> dict[str, dict[tuple[str, ...], object]]:
    registry = mlprobe.Registry()
    registry.get_or_create(("asgi", "http"), lambda: metrics)
    return {f.name: {tuple(v for _, v in s.labels): s for s in f.samples}
            for f in registry.collect() if f.name.startswith("http_")}


def test_every_histogram_is_exact_for_mixed_requests():
    """One-message, streamed and bodiless responses, empty and non-empty request bodies, over
    several batches and a partial one: every bucket and sum equals a direct computation."""
    rng = random.Random(7)
    metrics = HttpMetrics(CONFIG)
    expected: dict[tuple[str, ...], dict[str, list[float]]] = {}
    for _ in range(5 * FOLD_BATCH + 7):
        method, route = rng.choice([(GET, "/items/{id}"), (POST, "/predict")])
        status = rng.choice([200, 200, 404, 503])
        start = 1000.0 + rng.random()
        end = start + rng.choice([0.0, 0.004, 0.02, 0.3, 4.0, 20.0]) * rng.random()
        kind = rng.choice(["one message", "streamed", "no body"])
        first = {"one message": end, "streamed": start + (end - start) / 3,
                 "no body": -1.0}[kind]
        received = rng.choice([0, 0, 10, 5000, 10**6])
        sent = 0 if kind == "no body" else rng.choice([5, 300, 70_000])
        metrics.record(method, route, status, "", start, end, first, received, sent)
        values = expected.setdefault((DEFAULT_KNOWN_METHODS[method], route, str(status), ""),
                                     {"duration": [], "ttfb": [], "received": [], "sent": []})
        values["duration"].append(end - start)
        if first >= 0.0:
            values["ttfb"].append(first - start)
        values["received"].append(received)
        values["sent"].append(sent)
    families = collect(metrics)
    for name, (bounds, field) in HISTOGRAMS.items():
        for key, values in expected.items():
            observed = values[field]
            sample = families.get(name, {}).get(key)
            if not observed:
                assert sample is None, (name, key)
                continue
            counts = [0] * (len(bounds) + 1)
            for v in observed:
                counts[bisect_left(bounds, v)] += 1
            assert sample.bucket_counts == tuple(counts), (name, key)
            assert sample.sum == pytest.approx(sum(observed), rel=1e-12), (name, key)
    active = families["http_server_active_requests"]
    assert all(sample.value == 0.0 for sample in active.values()) or not active


def test_pending_requests_stay_bounded_and_collect_applies_them():
    """At most FOLD_BATCH - 1 requests wait between batches, and a collect applies them all."""
    metrics = HttpMetrics(CONFIG)
    longest = 0
    for i in range(3 * FOLD_BATCH + 5):
        metrics.record(GET, "/x", 200, "", 0.0, 0.001, 0.001, 0, 5)
        longest = max(longest, len(metrics.pending))
        assert len(metrics.pending) == (i + 1) % FOLD_BATCH
    assert longest == FOLD_BATCH - 1
    duration = collect(metrics)["http_server_request_duration_seconds"][("GET", "/x", "200", "")]
    assert duration.count == 3 * FOLD_BATCH + 5 and metrics.pending == []


def test_reset_forgets_pending_requests():
    """A fork child's reset drops the parent's requests that were waiting for a batch."""
    metrics = HttpMetrics(CONFIG)
    metrics.record(GET, "/x", 200, "", 0.0, 0.001, 0.001, 0, 5)
    metrics.reset()
    assert metrics.pending == [] and "http_server_request_duration_seconds" not in \
        collect(metrics)


@pytest.mark.allow_internal_errors
def test_one_bad_request_in_a_batch_costs_only_itself():
    """A pending request that cannot be applied (an unhashable status) is counted as an
    internal error; the other requests of its batch are recorded."""
    from mlprobe._guard import internal_error_count

    metrics = HttpMetrics(CONFIG)
    before = internal_error_count()
    for i in range(FOLD_BATCH):
        status = ["not", "hashable"] if i == 5 else 200
        metrics.record(GET, "/x", status, "", 0.0, 0.001, 0.001, 0, 5)  # type: ignore[arg-type]
    duration = collect(metrics)["http_server_request_duration_seconds"][("GET", "/x", "200", "")]
    assert duration.count == FOLD_BATCH - 1
    assert internal_error_count() == before + 1
