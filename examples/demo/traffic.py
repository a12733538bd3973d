"""Traffic generator for the demo service: normal traffic, then drifting traffic, then a report.

Normal rows are drawn like the training data (training rows plus a little noise). Then two
drifting phases scale measurements by 1.25, as a recalibrated instrument would: first the ten
"mean ..." features (a third of the features drift: status warning), then also the ten
"worst ..." ones (two thirds: critical). One request in 97 is deliberately malformed (a row of
2 numbers instead of 30): the service answers 422, so the 4xx counts in the report are expected.
Labels (the rows' true classes, known here because the rows are resampled training rows) come
back late and not for everything: 80% of the predictions get theirs posted to ``/outcome``
about 20 requests later, the rest never (as when only some cases are ever confirmed).
Everything is bounded in requests and in seconds.

Run against a running service: ``python examples/demo/traffic.py http://127.0.0.1:8000``
(``examples/run_demo.py`` starts a service and runs this for you).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

if __package__ in (None, ""):  # run as a script: make "demo" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.model_service import CANDIDATE_VERSION, MODEL_NAME, TrainedModel, train  # noqa: E402

DRIFT_FACTOR = 1.25
BAD_REQUEST_EVERY = 97  # one request in this many is deliberately malformed (answered 422)
LABEL_SHARE = 0.8  # predictions whose label is ever posted
LABEL_DELAY = 20  # ... that many requests later
# (phase, drifted columns): the data set lists 10 "mean", 10 "... error", 10 "worst" features
PHASES: tuple[tuple[str, slice | None], ...] = (
    ("normal", None),
    ("drifting", slice(0, 10)),
    ("drifted", np.r_[0:10, 20:30]),  # type: ignore[misc]
)


@dataclass
class Phase:
    """What one phase sent and saw from the client side."""

    name: str
    requests: int = 0
    rows: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    drift: list[tuple[int, str, float | None]] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    labels_sent: int = 0


@dataclass
class LateLabels:
    """Labels of earlier predictions, posted ``LABEL_DELAY`` requests after them."""

    sent: int = 0
    waiting: list[tuple[int, str, list[int]]] = field(default_factory=list)

    def expect(self, rng: np.random.Generator, prediction_id: str, labels: np.ndarray) -> None:
        """Remember a prediction's labels (for ``LABEL_SHARE`` of the predictions)."""
        if rng.random() < LABEL_SHARE:
            self.waiting.append((self.sent + LABEL_DELAY, prediction_id, labels.tolist()))

    async def post_due(self, client: httpx.AsyncClient, phase: Phase, *,
                       everything: bool = False) -> None:
        """Count a request sent; post the labels that are due (all of them at the end)."""
        self.sent += 1
        while self.waiting and (everything or self.waiting[0][0] <= self.sent):
            _, prediction_id, labels = self.waiting.pop(0)
            await client.post("/outcome", json={"prediction_id": prediction_id,
                                                "labels": labels})
            phase.labels_sent += 1


def make_batch(trained: TrainedModel, rng: np.random.Generator, n: int, drifted: Any
               ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows like the training data, with the ``drifted`` columns scaled, and their
    true labels (the training rows' own)."""
    X = trained.X_train
    index = rng.integers(0, len(X), n)
    rows = X[index] + rng.normal(0.0, 0.05, (n, X.shape[1])) * X.std(axis=0)
    if drifted is not None:
        rows[:, drifted] *= DRIFT_FACTOR
    return rows, trained.y_train[index]


def make_rows(trained: TrainedModel, rng: np.random.Generator, n: int, drifted: Any
              ) -> np.ndarray:
    """``n`` rows like the training data, with the ``drifted`` columns scaled."""
    return make_batch(trained, rng, n, drifted)[0]


async def run_phase(client: httpx.AsyncClient, phase: Phase, trained: TrainedModel,
                    rng: np.random.Generator, *, requests: int, batch: int, concurrency: int,
                    drifted: Any, deadline: float, checks: int,
                    late: LateLabels | None = None) -> None:
    """Send ``requests`` predict calls (``concurrency`` at a time) and poll /drift ``checks``
    times along the way; labels of earlier predictions are posted as they come due (``late``,
    shared across phases)."""
    late = late if late is not None else LateLabels()
    queue = list(range(requests))
    check_every = max(1, requests // checks)

    async def worker() -> None:
        while queue and time.monotonic() < deadline:
            i = queue.pop()
            labels = None
            if i % BAD_REQUEST_EVERY == 13:  # deliberately malformed: the service answers 422
                payload: dict[str, Any] = {"rows": [[1.0, 2.0]]}
            else:
                rows, labels = make_batch(trained, rng, batch, drifted)
                payload = {"rows": rows.tolist()}
            start = time.perf_counter()
            response = await client.post("/predict", json=payload)
            phase.latencies.append(time.perf_counter() - start)
            phase.requests += 1
            if response.status_code == 200:
                phase.rows += batch
                body = response.json()
                phase.scores.extend(body["scores"])
                if labels is not None:
                    late.expect(rng, body["prediction_id"], labels)
            else:
                phase.errors += 1
            await late.post_due(client, phase)
            if phase.requests % check_every == 0:
                status = (await client.get("/drift")).json()
                phase.drift.append((phase.rows, status.get("status", "?"),
                                    status.get("drift_share")))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def quantile_from_buckets(buckets: list[tuple[float, float]], q: float) -> float:
    """PromQL's histogram_quantile over cumulative (upper bound, count) pairs."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def server_view(metrics_text: str) -> dict[str, Any]:
    """Summarise what Prometheus would see: per route and status counts, p50/p95 latency."""
    families = {f.name: f for f in text_string_to_metric_families(metrics_text)}
    view: dict[str, Any] = {"routes": {}, "model": {}}
    duration = families.get("http_server_request_duration_seconds")
    per_route: dict[str, dict[str, Any]] = {}
    for sample in duration.samples if duration else []:
        route = sample.labels.get("http_route")
        entry = per_route.setdefault(route, {"count": 0.0, "by_status": {}, "buckets": {}})
        if sample.name.endswith("_count"):
            status = sample.labels["http_response_status_code"]
            entry["count"] += sample.value
            entry["by_status"][status] = entry["by_status"].get(status, 0) + sample.value
        elif sample.name.endswith("_bucket"):
            le = float(sample.labels["le"])
            entry["buckets"][le] = entry["buckets"].get(le, 0.0) + sample.value
    for entry in per_route.values():
        buckets = sorted(entry.pop("buckets").items())
        entry["p50"] = quantile_from_buckets(buckets, 0.5)
        entry["p95"] = quantile_from_buckets(buckets, 0.95)
    view["routes"] = per_route
    model = families.get("mlprobe_prediction_duration_seconds")
    if model:
        buckets = sorted((float(s.labels["le"]), s.value) for s in model.samples
                         if s.name.endswith("_bucket") and s.labels.get("model") == MODEL_NAME)
        view["model"] = {"p50": quantile_from_buckets(buckets, 0.5),
                         "p95": quantile_from_buckets(buckets, 0.95)}
    return view


def shadow_agreement(metrics_text: str) -> tuple[float, float] | None:
    """(agreeing, compared) predictions of the shadow candidate so far."""
    counts = {"agree": 0.0, "disagree": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "mlprobe_shadow_comparisons":
            for sample in family.samples:
                if sample.labels.get("model_version") == CANDIDATE_VERSION:
                    counts[sample.labels["result"]] += sample.value
    total = counts["agree"] + counts["disagree"]
    return (counts["agree"], total) if total else None


def outcome_totals(metrics_text: str) -> tuple[float, float]:
    """(correct, labelled) pairs of the primary since start (mlprobe_outcome_stats_total)."""
    totals = {"correct": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "mlprobe_outcome_stats":
            for sample in family.samples:
                if sample.labels.get("model_version") != CANDIDATE_VERSION \
                        and sample.labels.get("metric") in totals:
                    totals[sample.labels["metric"]] += sample.value
    return totals["correct"], totals["count"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def share(value: Any) -> str:
    """A fraction as a rounded percentage ("?" when the service did not report it)."""
    return f"{value:.0%}" if isinstance(value, (int, float)) else "?"


def report(phases: list[Phase], view: dict[str, Any], drift: dict[str, Any], elapsed: float,
           out: Any = print) -> None:
    """Print what a user should look at: rate, latency, errors, scores, drift."""
    out("\n=== what the service reports (GET /metrics, as Prometheus would scrape it) ===")
    for route, entry in sorted(view["routes"].items()):
        statuses = ", ".join(f"{code}: {int(n)}" for code, n in sorted(entry["by_status"].items()))
        out(f"  {route:<12} {int(entry['count']):>5} requests ({entry['count'] / elapsed:6.1f}/s)"
            f"  p50 {ms(entry['p50'])}  p95 {ms(entry['p95'])}  status {statuses}")
    if view["model"]:
        out(f"  model predict() p50 {ms(view['model']['p50'])}  p95 {ms(view['model']['p95'])}"
            " (mlprobe_prediction_duration_seconds)")
    out("  (the 4xx are the deliberately malformed requests: one in "
        f"{BAD_REQUEST_EVERY} sends 2 numbers instead of 30)")
    out("\n=== what the client saw ===")
    for phase in phases:
        lat = np.asarray(phase.latencies) if phase.latencies else np.array([float("nan")])
        scores = np.asarray(phase.scores) if phase.scores else np.array([float("nan")])
        out(f"  {phase.name:<9} {phase.requests:>4} requests, {phase.rows:>5} rows, "
            f"{phase.errors} deliberately bad (422), latency p50 {ms(float(np.median(lat)))} "
            f"p95 {ms(float(np.quantile(lat, 0.95)))}, mean score {np.mean(scores):.3f}")
    out("\n=== drift status over time (GET /drift) ===")
    out("  PSI (population stability index): how far a feature's distribution moved from the "
        "training data;\n  0 is no change, 0.1 is a warning, 0.2 is critical.")
    for phase in phases:
        timeline = "  ".join(f"{rows} rows: {status}" for rows, status, _ in phase.drift)
        out(f"  {phase.name:<9} {timeline}")
    out(f"\n  now: status {drift.get('status')}, {share(drift.get('drift_share'))} of the "
        f"features drifted, {drift.get('rows')} rows in the window")
    features = drift.get("features") or {}
    drifted = sorted(((f.get("statistics", {}).get("psi") or 0.0, name, f.get("status"))
                      for name, f in features.items() if f.get("status") in ("warning",
                                                                             "critical")),
                     reverse=True)
    for psi, name, status in drifted[:5]:
        out(f"    {name:<24} {status:<8} psi={psi:.3f}")
    if len(drifted) > 5:
        out(f"    ... and {len(drifted) - 5} more drifted features")
    report_quality(phases, out)


def report_quality(phases: list[Phase], out: Any = print) -> None:
    """Model quality at the end of each phase, as the service reported it."""
    out("\n=== model quality (GET /drift, model_quality; labels come late, for "
        f"{LABEL_SHARE:.0%} of the predictions) ===")
    out("  per phase from the counters (mlprobe_outcome_stats_total), and over the rolling "
        "window with the\n  label-free estimate (from the scores alone) and the accuracy on "
        "the training rows (the reference):\n  2% below it is a warning, 5% critical.")
    before = (0.0, 0.0)
    for phase in phases:
        q = phase.quality
        metrics, estimate = q.get("metrics") or {}, q.get("estimate") or {}
        accuracy, reference = metrics.get("accuracy"), (q.get("reference") or {}).get("accuracy")
        correct, count = q.get("totals") or before
        new = count - before[1]
        in_phase = share((correct - before[0]) / new) if new else "?"
        before = (correct, count)
        out(f"  {phase.name:<9} labels received in this phase: accuracy {in_phase} of "
            f"{int(new)} rows; window: accuracy {share(accuracy)} (estimate "
            f"{share(estimate.get('accuracy'))}, reference {share(reference)}): "
            f"{q.get('status', '?')}")
        agreement = q.get("shadow")
        if agreement:
            out(f"  {'':<9} shadow v{CANDIDATE_VERSION} agrees with v1 on "
                f"{share(agreement[0] / agreement[1])} of {int(agreement[1])} predictions so far")
    last = phases[-1].quality
    if last.get("estimate_assumptions"):
        out("  (the estimate assumes calibrated scores and no concept drift: in the drifted "
            "phase the inputs moved\n  but the labels did not, so it stays high while the "
            "realised accuracy falls)")


async def run(base_url: str, *, quick: bool = False, seconds: float = 40.0, seed: int = 0,
              out: Any = print) -> dict[str, Any]:
    """Send normal then drifting traffic to ``base_url``; print and return the final view."""
    trained = train()
    rng = np.random.default_rng(seed)
    # min_count: drift needs 1000 rows in the window; each phase sends more than that
    requests, batch, concurrency = (140, 8, 4) if quick else (400, 8, 8)
    phases = [Phase(name) for name, _ in PHASES]
    late = LateLabels()
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        for i, (phase, (_, drifted)) in enumerate(zip(phases, PHASES)):
            out(f"sending {phase.name} traffic: {requests} requests of {batch} rows ...")
            # each phase gets its share of what is left of the time limit
            deadline = time.monotonic() + (start + seconds - time.monotonic()) / (len(PHASES) - i)
            await run_phase(client, phase, trained, rng, requests=requests, batch=batch,
                            concurrency=concurrency, drifted=drifted, deadline=deadline,
                            checks=4, late=late)
            if i == len(PHASES) - 1:  # the last labels arrive after the traffic
                await late.post_due(client, phase, everything=True)
            await asyncio.sleep(0.2)  # let the shadow catch up with the phase
            phase.quality = (await client.get("/drift")).json().get("model_quality") or {}
            text = (await client.get("/metrics")).text
            phase.quality["shadow"] = shadow_agreement(text)
            phase.quality["totals"] = outcome_totals(text)
        elapsed = time.monotonic() - start
        metrics_text = (await client.get("/metrics")).text
        drift = (await client.get("/drift")).json()
    view = server_view(metrics_text)
    report(phases, view, drift, elapsed, out)
    return {"view": view, "drift": drift, "phases": phases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send demo traffic to a running service.")
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a few seconds)")
    parser.add_argument("--seconds", type=float, default=40.0, help="time limit")
    args = parser.parse_args(argv)
    asyncio.run(run(args.base_url, quick=args.quick, seconds=args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
