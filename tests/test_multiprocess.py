"""Multi-process mode in one process: simulated workers sharing one directory.

Each simulated worker is a registry attached to the directory under its own worker identity
(pid and start time), with a liveness function the test controls, so deaths, pid reuse,
restarts and races can be staged exactly. Real processes are used where only they can show
the behaviour: liveness from ``/proc`` (zombies, reused pids), the exporter lock (an fcntl lock
belongs to a process), fork, exit, and the environment switch. The real servers are in
``test_workers_servers.py``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlprobe
from mlprobe import multiprocess
from mlprobe._http_metrics import HttpConfig, HttpMetrics
from mlprobe._mp_files import ARCHIVE, Directory, decode
from mlprobe._mp_process import WorkerId, is_alive, process_start
from mlprobe.asgi import ProbeMiddleware
from mlprobe.errors import ConfigurationError
from mlprobe.testing import sample_value

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")

ROW = {"x": 0.25, "c": "a"}


def make_profile() -> mlprobe.ReferenceProfile:
    g = np.random.default_rng(5)
    return mlprobe.ReferenceProfile.from_data(
        {"x": g.normal(0, 1, 2000), "c": g.choice(["a", "b"], 2000).astype(object)},
        predictions=g.random(2000), categorical=["c"])


PROFILE = make_profile()


class Server:
    """Simulated workers of one server: a directory and the set of live worker identities."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.live: set[WorkerId] = set()
        self.next_pid = 40_000

    def worker(self, **probe_options: Any) -> Worker:
        self.next_pid += 1
        return Worker(self, WorkerId(self.next_pid, 7), **probe_options)

    def files(self) -> list[str]:
        return sorted(os.listdir(self.path))


class Worker:
    """One simulated worker: its registry in multi-process mode, a probe, HTTP metrics."""

    def __init__(self, server: Server, ident: WorkerId, **probe_options: Any) -> None:
        self.server, self.ident = server, ident
        server.live.add(ident)
        self.registry = mlprobe.Registry()
        self.merger = multiprocess.attach(self.registry, server.path, interval=1.0,
                                          background=False, worker=lambda: ident,
                                          alive=lambda w: w in server.live)
        self.probe = mlprobe.Probe("m", version="1", registry=self.registry, reference=PROFILE,
                                   **probe_options)
        self.http = ProbeMiddleware(lambda *a: None, registry=self.registry)._metrics

        @self.probe.track
        def predict(row: Any) -> float:
            return 0.5

        self.predict = predict

    def serve(self, n: int, latency: float = 0.001) -> None:
        for _ in range(n):
            self.predict(ROW)
            self.http.enter(2)
            self.http.record(2, "/predict", 200, "", 1.0, 1.0 + latency, 1.0 + latency, 10, 20)

    def total(self) -> float:
        return sample_value(self.registry, "mlprobe_predictions", {"outcome": "ok"})

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return sample_value(self.registry, name, labels)

    def die(self) -> None:
        self.server.live.discard(self.ident)


def http_count(worker: Worker) -> float:
    for family in worker.registry.collect():
        if family.name == "http_server_request_duration_seconds":
            return sum(sum(s.bucket_counts) for s in family.samples)
    return 0.0


def bins(worker: Worker, feature: str = "x") -> float:
    return sum(s.value for f in worker.registry.collect() if f.name == "mlprobe_feature_bin"
               for s in f.samples if dict(s.labels)["feature"] == feature)


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def test_every_worker_shows_the_sum_of_all(server):
    """Whichever worker answers, counters, HTTP histograms, feature bins, in-flight calls and
    the drift document's rows are every worker's, summed."""
    workers = [server.worker() for _ in range(3)]
    for n, w in zip((5, 7, 11), workers):
        w.serve(n)
        w.probe._state.calls.enter()  # one call in flight in each worker
        w.merger.publish()
    for w in workers:
        assert w.total() == 23
        assert http_count(w) == 23
        assert bins(w) == 23 and bins(w, "c") == 23
        assert w.value("mlprobe_predictions_in_flight") == 3
        assert w.value("mlprobe_worker_processes") == 3
        assert w.probe.drift_status()["rows"] == 23


def test_a_dead_worker_keeps_its_counts_not_its_gauges_and_is_folded(server):
    """A worker that dies counts on (its last published state), its in-flight call and active
    request do not; folding it into the archive changes no value, not even a float sum by a
    rounding, and removes its file."""
    a, b = server.worker(), server.worker()
    a.serve(3, latency=0.1)
    b.serve(4, latency=0.3)
    b.probe._state.calls.enter()
    b.http.enter(2)
    for w in (a, b):
        w.merger.publish()
    before = {f.name: f for f in a.registry.collect()}
    assert a.value("mlprobe_predictions_in_flight") == 1
    b.die()
    assert a.total() == 7 and http_count(a) == 7
    assert a.value("mlprobe_predictions_in_flight") == 0
    assert a.value("http_server_active_requests", {"http_request_method": "GET"}) == 0
    assert a.value("mlprobe_worker_processes") == 1
    assert a.merger.fold_dead() == 1
    assert Directory.worker_file(b.ident.name) not in server.files()
    assert ARCHIVE in server.files()
    after = {f.name: f for f in a.registry.collect()}
    for name in ("mlprobe_predictions", "http_server_request_duration_seconds",
                 "mlprobe_prediction_duration_seconds", "mlprobe_feature_bin"):
        assert [(s.labels, getattr(s, "value", None), getattr(s, "sum", None),
                 getattr(s, "bucket_counts", None)) for s in after[name].samples] == \
               [(s.labels, getattr(s, "value", None), getattr(s, "sum", None),
                 getattr(s, "bucket_counts", None)) for s in before[name].samples], name


def test_restarts_leave_a_bounded_number_of_files_and_exact_totals(server):
    """100 workers, each serving then leaving (half exiting cleanly, half killed), with two
    live workers at any time: the directory never holds more than the ledger, the lock, the
    archive and one file per live worker, and the totals are exact all along."""
    steady = server.worker()
    steady.serve(1)
    sent = 1
    most = 0
    for i in range(100):
        w = server.worker()
        w.serve(2)
        sent += 2
        w.merger.publish()
        if i % 2:
            w.merger.final()
        w.die()
        steady.merger.fold_dead()
        most = max(most, len(server.files()))
        if i % 10 == 0:
            assert steady.total() == sent
    assert most <= 3 + 2
    assert steady.total() == sent and http_count(steady) == sent and bins(steady) == sent


def test_scrapes_never_go_backwards_whichever_worker_answers(server):
    """Traffic to three workers while scrapes alternate between them and workers die and are
    replaced: every counter and histogram sum a scrape shows is at least the previous one's."""
    workers = [server.worker() for _ in range(3)]
    last: dict[tuple[str, Any], float] = {}
    rng = np.random.default_rng(0)
    for step in range(60):
        w = workers[rng.integers(3)]
        w.serve(int(rng.integers(1, 4)), latency=float(rng.random()))
        if step % 3 == 0:
            w.merger.publish()
        if step % 17 == 16:  # a worker dies (its file stays until folded) and is replaced
            i = int(rng.integers(3))
            workers[i].die()
            workers[i] = server.worker()
        reader = workers[step % 3]
        for family in reader.registry.collect():
            if family.kind not in ("counter", "histogram"):
                continue
            for s in family.samples:
                value = s.value if family.kind == "counter" else s.sum
                key = (family.name, s.labels)
                assert value >= last.get(key, 0.0), (step, key)
                last[key] = value
        if step % 5 == 0:
            reader.merger.fold_dead()


def test_a_reader_counts_a_worker_folded_while_it_reads_once(server, monkeypatch):
    """A worker folded into the archive between a reader's read of its file and the reader's
    read of the archive is counted once, not twice (the archive names what it folded)."""
    a, b = server.worker(), server.worker()
    a.serve(2)
    b.serve(5)
    for w in (a, b):
        w.merger.publish()
    b.die()
    load = a.merger.load
    folded = []

    def load_then_fold(name: str) -> Any:
        data = load(name)
        if name == Directory.worker_file(b.ident.name) and not folded:
            folded.append(a.merger.fold_dead())  # in between: the file is folded and deleted
        return data

    monkeypatch.setattr(a.merger, "load", load_then_fold)
    assert a.total() == 7
    assert folded == [1]
    assert a.total() == 7


def test_a_worker_that_has_exited_publishes_no_file_again(server):
    """After a worker's final fold (at exit), a collect in that worker (a scrape during the
    shutdown) writes no new file: its counts are in the archive, and a new file would count
    them twice."""
    a, b = server.worker(), server.worker()
    a.serve(2)
    b.serve(4)
    for w in (a, b):
        w.merger.publish()
    b.merger.final()
    assert Directory.worker_file(b.ident.name) not in server.files()
    b.registry.collect()
    b.merger.publish()
    assert Directory.worker_file(b.ident.name) not in server.files()
    b.die()
    assert a.total() == 6


def test_states_of_other_settings_or_unknown_sources_are_counted_not_merged(server):
    """A worker whose probe has other buckets, and one with a probe the reader lacks: their
    states are left out and counted by reason; the rest merges."""
    a = server.worker()
    other = server.worker(latency_buckets=[0.5, 1.0])
    extra = server.worker()
    mlprobe.Probe("only-here", registry=extra.registry).observe(outputs=0.5)
    for w, n in ((a, 2), (other, 3), (extra, 4)):
        w.serve(n)
        w.merger.publish()
    assert a.total() == 2 + 4
    unmerged = {dict(s.labels)["reason"]: s.value for f in a.registry.collect()
                if f.name == "mlprobe_unmerged_worker_states" for s in f.samples}
    assert unmerged == {"settings_differ": 1, "unknown_source": 1, "unreadable": 0}


@pytest.mark.allow_internal_errors
def test_a_planted_file_is_neither_run_nor_merged(server):
    """A state file holding a pickled global (code) is refused by the reader and counted as
    unreadable; nothing in it runs."""
    a = server.worker()
    a.serve(1)
    marker = Path(server.path) / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    Path(server.path, Directory.worker_file("12345-1")).write_bytes(
        pickle.dumps({"format": 1, "sources": [Evil()]}))
    families = {f.name: f for f in a.registry.collect()}
    assert not marker.exists()
    assert a.total() == 1
    unreadable = [s.value for s in families["mlprobe_unmerged_worker_states"].samples
                  if dict(s.labels)["reason"] == "unreadable"]
    assert unreadable == [1]


def test_enable_refuses_bad_setups(tmp_path):
    """A missing directory, a file, an unwritable directory, a registry with probes, a second
    directory: each refused with a message that says what to change."""
    with pytest.raises(ConfigurationError, match="does not exist.*mkdir"):
        multiprocess.enable(tmp_path / "missing", registry=mlprobe.Registry())
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="does not exist"):
        multiprocess.enable(tmp_path / "file", registry=mlprobe.Registry())
    with pytest.raises(ConfigurationError, match="not writable"):
        multiprocess.enable("/proc/1", registry=mlprobe.Registry())
    busy = mlprobe.Registry()
    mlprobe.Probe("early", registry=busy)
    with pytest.raises(ConfigurationError, match="after probes .* were created"):
        multiprocess.enable(tmp_path, registry=busy)
    registry = mlprobe.Registry()
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    multiprocess.enable(tmp_path / "one", registry=registry)
    try:
        multiprocess.enable(tmp_path / "one", registry=registry)  # again: nothing happens
        with pytest.raises(ConfigurationError, match="already in multi-process mode"):
            multiprocess.enable(tmp_path / "two", registry=registry)
        with pytest.raises(ConfigurationError, match="another registry of this process"):
            multiprocess.enable(tmp_path / "one", registry=mlprobe.Registry())
    finally:
        multiprocess.detach(registry)


def test_two_servers_cannot_share_a_directory(tmp_path):
    """A directory claimed by another live server (process group) is refused; once that
    server is gone the directory is taken over and its old files removed."""
    other = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time, mlprobe
            from mlprobe import multiprocess
            multiprocess.enable({str(tmp_path)!r})
            mlprobe.Probe("other").observe(outputs=0.5)
            mlprobe.default_registry.collect()  # publishes this worker's file
            print("ready", flush=True)
            time.sleep(30)
        """)], start_new_session=True, stdout=subprocess.PIPE, env=_env())
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == b"ready"
        with pytest.raises(ConfigurationError, match="in use by another server"):
            multiprocess.enable(tmp_path, registry=mlprobe.Registry())
    finally:
        other.kill()
        other.wait(10)
        other.stdout.close()  # type: ignore[union-attr]
    assert any(n.startswith("mlprobe-worker-") for n in os.listdir(tmp_path))
    registry = mlprobe.Registry()
    multiprocess.enable(tmp_path, registry=registry)
    try:
        assert not any(n.startswith("mlprobe-worker-") for n in os.listdir(tmp_path))
        probe = mlprobe.Probe("other", registry=registry)
        probe.observe(outputs=0.5)  # theirs (also one score) is gone with their server
        assert sample_value(registry, "mlprobe_prediction_score", {"model": "other"}) == 1
    finally:
        multiprocess.detach(registry)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPROBE_", "OTEL_"))}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return {**env, **extra}


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env=_env(**env), start_new_session=True)


def test_the_environment_switch_turns_it_on_or_fails_at_the_first_probe(tmp_path):
    """MLPROBE_MULTIPROCESS_DIR turns the mode on for the default registry when its first
    probe is created; a missing directory fails that probe's construction, loudly."""
    ok = _run("""
        import mlprobe
        from mlprobe import multiprocess
        assert not multiprocess.is_enabled()
        mlprobe.Probe("env").observe(outputs=0.5)
        print(multiprocess.is_enabled())
    """, MLPROBE_MULTIPROCESS_DIR=str(tmp_path))
    assert ok.stdout.strip() == "True", ok.stderr
    missing = _run("""
        import mlprobe
        mlprobe.Probe("env")
    """, MLPROBE_MULTIPROCESS_DIR=str(tmp_path / "nope"))
    assert missing.returncode != 0
    assert "ConfigurationError" in missing.stderr and "does not exist" in missing.stderr


def test_a_worker_that_exits_folds_its_state_and_leaves_no_file(tmp_path):
    """Two processes of one server (one process group) record and exit normally, one after
    the other: their counts end in the archive, once each, and no worker file is left."""
    worker = textwrap.dedent(f"""
        import sys, mlprobe
        from mlprobe import multiprocess
        multiprocess.enable({str(tmp_path)!r})
        probe = mlprobe.Probe("m", version="1")
        for _ in range(int(sys.argv[1])):
            probe.track(lambda row: 0.5)({{"x": 1.0}})
    """)
    script = tmp_path / "worker.py"
    script.write_text(worker)
    done = subprocess.run(["sh", "-c", f'"{sys.executable}" {script} 3 && '
                                       f'"{sys.executable}" {script} 4'],
                          capture_output=True, text=True, timeout=60, env=_env(),
                          start_new_session=True)
    assert done.returncode == 0, done.stderr
    assert not any(n.startswith("mlprobe-worker-") for n in os.listdir(tmp_path))
    archive = decode(Path(tmp_path, ARCHIVE).read_bytes())
    assert len(archive["folded"]) == 2
    states = {tuple(e[0]): e[2] for e in archive["sources"]}
    assert states[("probe", "m", "1")]["calls"]["ok"] == 7


def test_a_forked_worker_counts_once(tmp_path):
    """A worker forked from a process in multi-process mode starts from zero and publishes as
    a new worker: the parent's view shows both counts, each once."""
    registry = mlprobe.Registry()
    multiprocess.attach(registry, str(tmp_path), interval=1.0, background=False)
    probe = mlprobe.Probe("forked", registry=registry)
    record = probe.track(lambda row: 0.5)
    for _ in range(5):
        record(ROW)
    registry.collect()  # publishes this process's file
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            for _ in range(3):
                record(ROW)
            registry.merger.publish()
            code = 0 if sample_value(registry, "mlprobe_predictions",
                                     {"outcome": "ok"}) == 8 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert sample_value(registry, "mlprobe_predictions", {"outcome": "ok"}) == 8


def test_liveness_knows_zombies_and_reused_pids():
    """A running process is alive; the same pid with another start time is not (a reused
    pid); a process that exited and was not reaped (a zombie) is dead."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start(child.pid)
        assert start
        assert is_alive(WorkerId(child.pid, start))
        assert not is_alive(WorkerId(child.pid, start + 1))
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while process_start(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # killed, not yet reaped: a zombie until wait() below
    assert not is_alive(WorkerId(child.pid, start))
    child.wait(10)


def test_one_process_exports(tmp_path):
    """Of several processes of one server, one holds the exporter lock; when it dies, another
    takes it at its next try."""
    code = f"""
        import sys, time, mlprobe
        from mlprobe import multiprocess
        multiprocess.enable({str(tmp_path)!r})
        for _ in range(200):
            if multiprocess.exports_here():
                print("exporting", flush=True)
                time.sleep(30)
            time.sleep(0.05)
    """
    first = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                             stdout=subprocess.PIPE, env=_env())
    second = None
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == b"exporting"
        second = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                                  stdout=subprocess.PIPE, env=_env())
        time.sleep(0.5)
        assert second.poll() is None
        os.set_blocking(second.stdout.fileno(), False)  # type: ignore[union-attr]
        assert not second.stdout.read()  # type: ignore[union-attr]
        first.kill()
        first.wait(10)
        os.set_blocking(second.stdout.fileno(), True)  # type: ignore[union-attr]
        assert second.stdout.readline().strip() == b"exporting"  # type: ignore[union-attr]
    finally:
        for proc in (first, second):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                proc.stdout.close()  # type: ignore[union-attr]


def test_http_states_of_workers_merge_with_caps(server):
    """Routes seen by different workers unite; past the cap the routes seen last count as
    __other__, and the request count is unchanged."""
    config = HttpConfig(duration_buckets=(0.1, 1.0), size_buckets=(100.0,),
                        known_methods=("GET",), max_routes=2, max_status_codes=5,
                        max_error_types=5)
    workers = [server.worker() for _ in range(2)]
    metrics = []
    for i, w in enumerate(workers):
        m = w.registry.get_or_create(("asgi", "caps"), lambda: HttpMetrics(config))
        for route in (f"/r{i}a", f"/r{i}b"):
            m.record(0, route, 200, "", 0.0, 0.05, 0.05, 0, 1)
        metrics.append(m)
        w.merger.publish()
    routes = {}
    for f in workers[0].registry.collect():
        if f.name == "http_server_request_duration_seconds":
            for s in f.samples:
                labels = dict(s.labels)
                if labels["http_route"] != "/predict":
                    routes[labels["http_route"]] = sum(s.bucket_counts)
    assert len(routes) == 3 and routes["__other__"] == 2 and sum(routes.values()) == 4
