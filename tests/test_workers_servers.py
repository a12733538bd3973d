"""Multi-process mode under real servers: uvicorn --workers and gunicorn with uvicorn workers.

The demo-style app (``tests/workers_app.py``: a FastAPI model service with a reference
profile, ``/metrics``, ``/drift``) runs with three workers on 127.0.0.1; requests go on new
connections, so the kernel spreads them over the workers. Each server covers one way of
turning the mode on: uvicorn through ``MLPROBE_MULTIPROCESS_DIR`` in spawned workers, gunicorn
through ``mlprobe.multiprocess.enable`` in its config file (with ``child_exit``), gunicorn with
``--preload`` and worker recycling through the environment read in the master.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from collector import collector
from otlp import as_prometheus, exposition_samples
from realservers import prom_query, prometheus_server
from workers import WorkerServer, value

import workers_app
from mlprobe import stats
from mlprobe._drift_eval import evaluate_dataset
from mlprobe._drift_spec import DriftSpec
from mlprobe._window import DatasetWindow

MODEL = {"model": workers_app.MODEL, "model_version": workers_app.VERSION}
INTERVAL_S = 1.0  # the default publish interval
ENABLE_IN_CONFIG = """
import mlprobe.multiprocess
mlprobe.multiprocess.enable({directory!r})
child_exit = mlprobe.multiprocess.child_exit
"""


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows, shifted from the reference (x by +0.5): drift statistics are not zero."""
    g = np.random.default_rng(seed)
    x, y = g.normal(0.5, 1.0, n), g.exponential(2.0, n)
    c = g.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    return [{"x": float(a), "y": float(b), "c": str(k)} for a, b, k in zip(x, y, c)]


def send(server: WorkerServer, batch: list[dict[str, Any]]) -> dict[int, int]:
    """POST every row on a new connection; return requests served per worker pid."""
    served: dict[int, int] = {}
    for row in batch:
        response = server.post("/predict", row)
        assert response.status_code == 200, response.text
        pid = response.json()["pid"]
        served[pid] = served.get(pid, 0) + 1
    return served


def totals(exposition: str) -> tuple[float, float, dict[str, float]]:
    """(predictions, HTTP requests to /predict, feature bin totals per feature)."""
    bins = {f: value(exposition, "mlprobe_feature_bin_total", feature=f, **MODEL)
            for f in ("x", "y", "c", "__prediction__")}
    return (value(exposition, "mlprobe_predictions_total", outcome="ok", **MODEL),
            value(exposition, "http_server_request_duration_seconds_count",
                  http_route="/predict"), bins)


def assert_every_scrape_exact(server: WorkerServer, n: int, scrapes: int = 10) -> set[int]:
    """Every one of ``scrapes`` scrapes shows exactly ``n`` in the three totals; return the
    workers that answered them."""
    answered = set()
    for _ in range(scrapes):
        response = server.get("/metrics")
        answered.add(int(response.headers["x-worker-pid"]))
        predictions, requests, bins = totals(response.text)
        assert (predictions, requests) == (n, n), (predictions, requests)
        assert bins == {f: n for f in bins}, bins
    return answered


def assert_drift_of_the_union(server: WorkerServer, sent: list[dict[str, Any]]) -> None:
    """``/drift`` holds every row, and its statistics are those of the union of the rows sent:
    equal to the library's evaluation of one window of all of them, and PSI and
    Jensen-Shannon equal to ``mlprobe.stats`` on their counts (relative 1e-9)."""
    document = server.get("/drift").json()
    assert document["rows"] == len(sent)
    profile = workers_app.REFERENCE
    union = DatasetWindow(profile, sketch=True)
    union.update({k: np.asarray([r[k] for r in sent],
                                dtype=object if k == "c" else np.float64) for k in "xyc"},
                 predictions=np.asarray([workers_app.score(r) for r in sent]))
    expected = evaluate_dataset(profile, union, DriftSpec()).to_dict()
    for name in ("x", "y", "c"):
        got, want = document["features"][name]["statistics"], expected["features"][name][
            "statistics"]
        assert got.keys() == want.keys()
        for stat, v in want.items():
            assert got[stat] == pytest.approx(v, rel=1e-9, abs=1e-12), (name, stat)
    for name in ("x", "y"):
        ref = profile.features[name]
        groups = ref.decile_groups()
        r = np.bincount(groups, weights=np.asarray(ref.counts, float))
        c = np.bincount(groups, weights=union.features[name].bins.counts, minlength=r.size)
        got = document["features"][name]["statistics"]
        assert got["psi"] == pytest.approx(stats.psi(r / r.sum(), c / c.sum()), rel=1e-9)
        assert got["js"] == pytest.approx(stats.jensen_shannon(r, c), rel=1e-9)
    ref = profile.features["c"]
    r = np.asarray(ref.counts, float)
    c = np.asarray(union.features["c"].categories.counts, float)
    assert document["features"]["c"]["statistics"]["psi"] == pytest.approx(
        stats.psi(r / r.sum(), c / c.sum()), rel=1e-9)


def predict_and_label(server: WorkerServer, n: int, seed: int, unknown: int = 0
                      ) -> tuple[list[int], list[float], int]:
    """POST ``n`` predictions, then their labels (random 0/1) and ``unknown`` labels of ids no
    worker holds, each on a new connection; return (labels, scores, labels that reached
    another worker than their prediction)."""
    made = []
    for row in rows(n, seed=seed):
        response = server.post("/predict", row)
        assert response.status_code == 200, response.text
        body = response.json()
        made.append((body["id"], body["score"], body["pid"]))
    labels = np.random.default_rng(seed).integers(0, 2, n).tolist()
    crossed = 0
    for (prediction_id, _, holder), label in zip(made, labels):
        response = server.post("/outcome", {"id": prediction_id, "actual": label})
        assert response.status_code == 200, response.text
        crossed += response.json()["pid"] != holder
    for i in range(unknown):
        assert server.post("/outcome", {"id": f"nobody-{i}", "actual": 1}).status_code == 200
    return labels, [score for _, score, _ in made], crossed


def wait_for_matched(server: WorkerServer, n: int, timeout: float = 20.0) -> float:
    """Scrape until ``n`` outcomes show as matched; return the seconds it took."""
    started = time.monotonic()
    while value(server.scrape(), "mlprobe_outcomes_total", result="matched", **MODEL) != n:
        assert time.monotonic() - started < timeout, "the labels were not all joined"
        time.sleep(0.1)
    return time.monotonic() - started


def worker_files(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if n.startswith(("mlprobe-worker-",
                                                              "mlprobe-dead-"))]


def test_uvicorn_workers_every_scrape_and_drift_show_every_worker(tmp_path):
    """uvicorn --workers 3 (switch from the environment): after N requests and one publish
    interval, each of 10 scrapes shows exactly N predictions, N HTTP requests and N rows in
    every feature's bins, whichever worker answers; /drift is the drift of the union; a
    graceful stop leaves no worker file."""
    server = WorkerServer("uvicorn", tmp_path / "mp").start()
    try:
        sent = rows(150, seed=1)
        served = send(server, sent)
        assert len(served) >= 2, served  # the traffic did reach several workers
        time.sleep(INTERVAL_S + 0.5)
        answered = assert_every_scrape_exact(server, len(sent))
        assert len(answered) >= 2, answered
        assert_drift_of_the_union(server, sent)
    finally:
        server.stop()
    assert worker_files(tmp_path / "mp") == []


def test_uvicorn_workers_join_each_label_where_its_prediction_is(tmp_path):
    """uvicorn --workers 3 with a quality probe (grace 4 s): N predictions, then their N
    labels and 5 labels of ids nobody predicted, each on a new connection (most land on
    another worker than their prediction). Once the grace is over, each of 10 scrapes,
    whichever worker answers, shows N matched and 5 unknown (every label counted once),
    nothing waiting, and the accuracy scikit-learn computes on the pairs sent."""
    from sklearn.metrics import accuracy_score

    grace = 4.0
    server = WorkerServer("uvicorn", tmp_path / "mp",
                          env={"WORKERS_APP_QUALITY_GRACE": str(grace)}).start()
    try:
        n = 90
        labels, scores, crossed = predict_and_label(server, n, seed=7, unknown=5)
        posted = time.monotonic()
        assert crossed >= 10, crossed  # the labels did cross workers
        took = wait_for_matched(server, n)
        print(f"{crossed} of {n} labels reached another worker; all joined {took:.2f} s "
              "after the last label")
        time.sleep(max(0.0, posted + grace + 2 * INTERVAL_S + 0.5 - time.monotonic()))
        accuracy = accuracy_score(labels, [int(s > 0.5) for s in scores])
        answered = set()
        for _ in range(10):
            response = server.get("/metrics")
            answered.add(int(response.headers["x-worker-pid"]))
            text = response.text
            results = {r: value(text, "mlprobe_outcomes_total", result=r, **MODEL)
                       for r in ("matched", "unknown", "late", "duplicate", "invalid")}
            assert results == {"matched": n, "unknown": 5, "late": 0, "duplicate": 0,
                               "invalid": 0}, results
            assert value(text, "mlprobe_model_quality", metric="accuracy", **MODEL) == \
                pytest.approx(accuracy, abs=1e-12)
            assert value(text, "mlprobe_waiting_outcomes") == 0
            assert value(text, "mlprobe_prediction_store_entries") == 0
        assert len(answered) >= 2, answered
    finally:
        server.stop()
    assert not [f for f in os.listdir(tmp_path / "mp") if f.startswith("mlprobe-outcomes-")]


def test_gunicorn_workers_exact_scrapes_prometheus_increase_and_sigkill(tmp_path):
    """gunicorn -w 3 -k UvicornWorker (switch in its config file), scraped by a real
    Prometheus: every scrape exact, ``increase()`` over the run equals the requests sent;
    then one worker is killed with SIGKILL mid-traffic: while scrapes continue, no total ever
    goes backwards, none double counts after the replacement starts, and what is lost is at
    most what the killed worker served in its last publish interval."""
    directory = tmp_path / "mp"
    server = WorkerServer("gunicorn", directory,
                          config=ENABLE_IN_CONFIG.format(directory=str(directory)))
    server.start()
    try:
        with prometheus_server(tmp_path, [server.target]) as port:
            calls = 'mlprobe_predictions_total{outcome="ok"}'
            http = 'http_server_request_duration_seconds_count{http_route="/predict"}'
            # One request first, so that the HTTP series exists before the traffic: a series
            # Prometheus first sees at a non-zero value has no increase to report for it.
            send(server, rows(1, seed=20))
            for series in (calls, http):
                assert _points(port, series, until=lambda v: v == 1.0)
            sent = rows(120, seed=2)
            served = send(server, sent)
            assert len(served) >= 2, served
            time.sleep(INTERVAL_S + 0.5)
            assert len(assert_every_scrape_exact(server, len(sent) + 1)) >= 2
            assert_drift_of_the_union(server, rows(1, seed=20) + sent)
            time.sleep(2.5)  # two scrapes after the last request
            assert _increase(port, calls, since=1.0) == len(sent)
            assert _increase(port, http, since=1.0) == len(sent)
            _sigkill_mid_traffic(server, directory, before=len(sent) + 1)
    finally:
        server.stop()


def _points(port: int, series: str, until: Any) -> list[tuple[float, float]]:
    """The raw samples of ``series`` over the last 10 minutes, polled until the last one
    satisfies ``until``."""
    deadline = time.monotonic() + 20
    while True:
        raw = prom_query(port, f"{series}[10m]", timeout=0)
        points = [(float(t), float(v)) for t, v in raw[0]["values"]] if raw else []
        if points and until(points[-1][1]):
            return points
        if time.monotonic() > deadline:
            raise AssertionError(f"{series}: {points[-3:]}")
        time.sleep(0.25)


def _increase(port: int, series: str, since: float) -> float:
    """``increase(series[R])`` at the last scrape, over a range reaching back exactly to the
    last scrape that still showed ``since`` (before the traffic). Prometheus 2 ranges are
    closed at both ends, so the range has a sample at each end and nothing is extrapolated:
    the result is exact."""
    points = _points(port, series, until=lambda v: True)
    first = max(t for t, v in points if v == since)
    last = points[-1][0]
    window_ms = int(round((last - first) * 1000))
    url = (f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": f"increase({series}[{window_ms}ms])", "time": f"{last:.3f}"}))
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1])


def _sigkill_mid_traffic(server: WorkerServer, directory: Path, before: int) -> None:
    scraped: list[float] = []
    stop = threading.Event()

    def scrape_all_along() -> None:
        while not stop.is_set():
            try:
                scraped.append(totals(server.scrape())[0])
            except Exception:  # noqa: BLE001 - the killed worker's connection: try again
                pass
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape_all_along)
    scraper.start()
    log: list[tuple[float, int]] = []  # (time served, pid) of every successful request
    failed = 0
    victim = None
    try:
        for i, row in enumerate(rows(300, seed=3)):
            if i == 150:
                victim = max(set(p for _, p in log), key=lambda p: sum(q == p for _, q in log))
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
            try:
                response = server.post("/predict", row)
            except Exception:  # noqa: BLE001 - a connection the killed worker had accepted
                failed += 1
                continue
            if response.status_code == 200:
                log.append((time.monotonic(), response.json()["pid"]))
            else:
                failed += 1
        time.sleep(2 * INTERVAL_S + 0.5)  # the replacement is up; the dead file is folded
    finally:
        stop.set()
        scraper.join()
    ok = before + len(log)
    final = totals(server.scrape())[0]
    assert all(b >= a for a, b in zip(scraped, scraped[1:])), "a total went backwards"
    assert final <= ok + failed  # never double counted
    # lost: at most what the victim served in the last interval before it died
    recent = sum(1 for t, p in log if p == victim and t > killed_at - INTERVAL_S - 0.2)
    assert ok - final <= recent, (ok, final, recent)
    assert victim not in server.children()  # replaced
    assert all(f"-{victim}-" not in n for n in worker_files(directory))  # folded


def test_gunicorn_recycling_100_workers_keeps_files_and_scrape_time_bounded(tmp_path):
    """gunicorn --preload with max_requests small recycles workers 100 times: the directory
    never holds more than the ledger, lock, archive and one file per live process (the
    preloaded master is one), no count is lost, and scrapes take no longer at the end."""
    directory = tmp_path / "mp"
    server = WorkerServer("gunicorn", directory, workers=3, gunicorn_args=(
        "--preload", "--max-requests", "3", "--max-requests-jitter", "2"))
    server.start()
    try:
        def scrape_time() -> float:
            # The fastest of 7: what a scrape costs, not how busy the shared machine was
            # (the median failed under a loaded CI machine with no growth in files).
            times = []
            for _ in range(7):
                started = time.perf_counter()
                server.scrape()
                times.append(time.perf_counter() - started)
            return min(times)

        early = scrape_time()
        seen_pids: set[int] = set()
        most_files = 0
        ok = 0
        batch = rows(40, seed=4)
        deadline = time.monotonic() + 120
        started = time.monotonic()
        while len(seen_pids) < 103 and time.monotonic() < deadline:
            for row in batch:
                try:
                    response = server.post("/predict", row)
                except Exception:  # noqa: BLE001 - a worker closing as it recycles
                    continue
                if response.status_code == 200:
                    ok += 1
                    seen_pids.add(response.json()["pid"])
            most_files = max(most_files, len(os.listdir(directory)))
        print(f"{len(seen_pids)} workers, {ok} requests in {time.monotonic() - started:.1f} s")
        assert len(seen_pids) >= 103, len(seen_pids)  # 100 restarts of 3 workers
        time.sleep(2 * INTERVAL_S + 0.5)
        late = scrape_time()
        assert totals(server.scrape())[0] == ok
        # ledger, lock, archive, master + 3 workers, and replaced workers not yet folded
        assert most_files <= 3 + 4 + 3, most_files
        # Bounded, not growing with restarts (prometheus_client's multiprocess mode grows
        # about 20x over 100 restarts, benchmarks/bench_multiprocess.py)
        assert late < max(3 * early, early + 0.1), (early, late)
    finally:
        server.stop()


@pytest.mark.real_collector
def test_gunicorn_workers_push_one_merged_view_to_a_collector(tmp_path):
    """gunicorn -w 3 pushing OTLP through a real collector (rotel) every second, with a
    quality probe whose labels cross workers: one worker pushes, under one
    service.instance.id, and the collector gets what one scrape shows, the merged quality
    families (outcomes, model quality) included."""
    with collector(tmp_path) as (rotel, sink):
        server = WorkerServer("gunicorn", tmp_path / "mp", env={
            "WORKERS_APP_OTLP": rotel.http_endpoint, "WORKERS_APP_QUALITY_GRACE": "60"})
        server.start()
        try:
            n = 90
            predict_and_label(server, n, seed=5)
            wait_for_matched(server, n)
            time.sleep(INTERVAL_S + 0.5)
            scrape = exposition_samples(server.scrape())
            key = ("mlprobe_predictions_total", frozenset({**MODEL, "outcome": "ok"}.items()))
            matched = ("mlprobe_outcomes_total",
                       frozenset({**MODEL, "result": "matched"}.items()))
            assert scrape[key] == scrape[matched] == n
            requests = sink.wait_for(lambda reqs: bool(reqs) and as_prometheus(
                reqs[-1]).get(matched) == n, timeout=20)
            time.sleep(2.5)  # a few more pushes: every one is the same merged view
            requests = sink.snapshot()
            pushed = as_prometheus(requests[-1])
            counters = {k: v for k, v in scrape.items()
                        if k[0].endswith(("_total", "_count", "_bucket", "_sum"))}
            # (a summary's sum comes from the merged moments: equal to rounding, whichever
            # worker merges; every other counter exactly)
            rounded = {k for k in counters if k[0] == "mlprobe_feature_quantile_sum"}
            assert {k: pushed.get(k) for k in counters if k not in rounded} == \
                {k: v for k, v in counters.items() if k not in rounded}
            for k in rounded:
                assert pushed[k] == pytest.approx(counters[k], rel=1e-12)
            quality = {k: v for k, v in scrape.items() if k[0] == "mlprobe_model_quality"}
            assert {k[1] for k in quality} >= {frozenset({**MODEL, "metric": m}.items())
                                                for m in ("accuracy", "roc_auc", "log_loss")}
            assert {k: pushed.get(k) for k in quality} == quality
            instances = {a["value"]["stringValue"] for r in requests[-3:]
                         for rm in r["resourceMetrics"]
                         for a in rm["resource"]["attributes"] if a["key"] ==
                         "service.instance.id"}
            assert len(instances) == 1
        finally:
            server.stop()
