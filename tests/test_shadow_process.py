"""A shadow's candidate in its own process: the same metrics as in a thread, nothing the
primary can feel from it (a crash, a hang, a full queue), restarts, forks of the serving
process, and no process left behind, even when the serving process is SIGKILLed."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shadow_candidates

import mlprobe
from mlprobe import QualitySpec, Shadow, current_prediction_id, multiprocess
from mlprobe import _shadow_launch
from mlprobe._shadow_wire import pack_calls, pack_results, unpack_calls, unpack_results
from mlprobe.errors import ConfigurationError
from mlprobe.snapshot import HistogramSample
from mlprobe.testing import sample_value
from waiting import wait_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="isolation='process' is POSIX only")

TESTS = Path(__file__).resolve().parent
V2 = {"model": "m", "model_version": "2"}
SHADOW = {**V2, "primary_version": "1"}


@pytest.fixture
def shadows():
    """Shadows made by a test, closed after it; each one's process must be gone then."""
    made: list[Shadow] = []

    def make(*args: Any, **kwargs: Any) -> Shadow:
        made.append(Shadow(*args, **kwargs))
        return made[-1]

    yield make
    pids = [s.candidate_pid for s in made]
    for shadow in made:
        shadow.close()
    for pid in pids:
        if pid is not None:
            assert not alive(pid), f"candidate process {pid} outlived close()"


@pytest.fixture
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restart a failed candidate process after 50 ms instead of half a second."""
    monkeypatch.setattr(_shadow_launch, "RESTART_SECONDS", 0.05)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (reaped or not, an exited process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def primary_probe(registry: mlprobe.Registry) -> mlprobe.Probe:
    return mlprobe.Probe("m", version="1", registry=registry,
                         quality=QualitySpec(task="binary"))


def primary(rows: Any) -> Any:
    return rows if isinstance(rows, float) else np.asarray(rows, dtype=float)


def run_traffic(shadow: Shadow, probe: mlprobe.Probe) -> None:
    """Arrays only (they travel stacked), then a mix: lists, floats, a keyword argument,
    candidate errors; outcomes for some of the calls."""
    predict = shadow.track(primary)
    ids = []
    for rows in ([0.9, 0.2, 0.6], [0.1], [1.0, 0.4, 0.1, 0.7], [0.55, 0.45]):
        predict(np.asarray(rows))
        ids.append(current_prediction_id())
    assert shadow.join(30)
    for call in ([0.3, 0.8], 0.7, -1.0, np.asarray([-0.5, 0.5]), np.asarray([[0.2], [0.9]])):
        predict(call)
        ids.append(current_prediction_id())
    predict(rows=np.asarray([0.6, 0.6]))
    assert shadow.join(30)
    probe.record_outcome(ids[0], [1, 0, 1])
    probe.record_outcome(ids[2], [1, 1, 0, 1])
    probe.record_outcome(ids[5], 1)


def metrics(registry: mlprobe.Registry) -> dict[Any, Any]:
    """Every sample, except what depends on the clock: of latencies and outcome delays, only
    how many there are; the store's bytes count the generated ids' lengths."""
    out: dict[Any, Any] = {}
    for family in registry.collect():
        if family.name == "mlprobe_prediction_store_bytes":
            continue
        for sample in family.samples:
            key = (family.name, sample.labels)
            if family.name in ("mlprobe_prediction_duration_seconds",
                               "mlprobe_outcome_delay_seconds"):
                out[key] = sum(sample.bucket_counts)
            elif isinstance(sample, HistogramSample):
                out[key] = (sample.bucket_counts, round(sample.sum, 12))
            else:
                out[key] = getattr(sample, "value", repr(sample))
    return out


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_same_traffic_same_metrics_as_a_thread(shadows, start_method):
    """The same calls shadowed by a thread and by a process give the same families, label
    sets and values (calls, errors and their types, scores, comparisons, stored predictions,
    quality from shared outcomes), apart from the candidate's latency values."""
    results = {}
    for isolation in ("thread", "process"):
        registry = mlprobe.Registry()
        probe = primary_probe(registry)
        options = {"start_method": start_method} if isolation == "process" else {}
        shadow = shadows(probe, shadow_candidates.halve, version="2", isolation=isolation,
                         **options)
        run_traffic(shadow, probe)
        results[isolation] = metrics(registry)
    thread, process = results["thread"], results["process"]
    assert thread.keys() == process.keys()
    assert {k: (v, process[k]) for k, v in thread.items() if v != process[k]} == {}
    # and the traffic did what it says: errors typed, comparisons made, quality joined
    key = ("mlprobe_prediction_errors", (*V2.items(), ("error_type", "ValueError")))
    assert thread[key] == 2
    assert thread[("mlprobe_shadow_comparisons", (*SHADOW.items(), ("result", "agree")))] > 0


def test_wire_packing_round_trips():
    """Batches of calls and results come back equal, stacked (same dtype and row shape) or
    not (anything else)."""
    a, b = np.arange(6.0).reshape(3, 2), np.arange(4.0).reshape(2, 2) + 10
    stacked = [((a,), {}, a[:, 0]), ((b,), {}, b[:, 0])]
    mixed = [((a,), {}, 0.5), (([1, 2],), {"k": 1}, None), ((np.int32(3),), {}, "x")]
    # arrays only, but of two dtypes, or of two row shapes: not stacked
    dtypes = [((a,), {}, a[:, 0]), ((b.astype(np.int64),), {}, b[:, 0].astype(np.int32))]
    shapes = [((a,), {}, a), ((np.arange(6.0).reshape(2, 3),), {}, b.ravel())]
    for calls in (stacked, mixed, stacked[:1], dtypes, shapes):
        back = unpack_calls(pack_calls(calls))
        assert len(back) == len(calls)
        for (args, kwargs, primary_out), (args2, kwargs2, primary2) in zip(calls, back):
            assert kwargs == kwargs2 and len(args) == len(args2)
            for x, y in zip(args + (primary_out,), args2 + (primary2,)):
                assert type(x) is type(y) and np.array_equal(np.asarray(x), np.asarray(y))
                assert np.asarray(x).dtype == np.asarray(y).dtype
    assert pack_calls(stacked)[1][0] == "rows"
    assert pack_calls(dtypes)[1][0] == pack_calls(shapes)[1][0] == "each"
    outcomes = [(0.1, a, None), (0.2, None, "KeyError"), (0.3, b, None)]
    back = unpack_results(pack_results(outcomes))
    assert [(d, e) for d, _, e in back] == [(0.1, None), (0.2, "KeyError"), (0.3, None)]
    assert np.array_equal(back[0][1], a) and back[1][1] is None and np.array_equal(back[2][1], b)


def test_a_candidate_that_kills_its_process_costs_the_primary_nothing(registry, shadows,
                                                                       quick_restarts, caplog):
    """A candidate that ends its process: the primary's calls return at once, the call that
    killed it counts as a ShadowProcessDied error and the others it held as dropped, a new
    process is started, which runs the next calls."""
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.exit_on_13, version="2", isolation="process")
    predict = shadow.track(lambda x: 0.9)
    predict(1.0)
    assert shadow.join(10)
    first = shadow.candidate_pid
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        for x in (2.0, 13.0, 4.0, 5.0):
            assert predict(x) == 0.9
        assert time.perf_counter() - start < 0.5  # never waits for the child
        assert wait_until(lambda: shadow.candidate_pid not in (None, first))
    assert not alive(first)
    assert "exited with code 3" in caplog.text
    predict(6.0)
    assert shadow.join(10)
    ok = sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"})
    died = sample_value(registry, "mlprobe_prediction_errors",
                        {**V2, "error_type": "ShadowProcessDied"})
    dropped = sample_value(registry, "mlprobe_shadow_dropped", SHADOW)
    assert died == 1 and ok >= 2 and ok + died + dropped == 6


def test_a_hung_candidate_is_killed_after_its_timeout(registry, shadows, quick_restarts):
    """A candidate stuck in a call does not hold the primary: the calls keep returning at once
    and queue up to queue_size (then dropped, counted); after ``timeout`` the process is
    killed, the call counts as a ShadowTimeout error, and a new process runs what follows."""
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.hang_on_7, version="2", isolation="process",
                     timeout=0.3, queue_size=10)
    predict = shadow.track(lambda x: 0.9)
    predict(7.0)
    shadow._runner.hurry()
    assert wait_until(lambda: shadow.candidate_pid is not None)
    stuck = shadow.candidate_pid
    start = time.perf_counter()
    for _ in range(30):
        assert predict(1.0) == 0.9
    assert time.perf_counter() - start < 0.5  # (the stuck call never returns)
    assert wait_until(lambda: not alive(stuck))
    assert wait_until(lambda: shadow.candidate_pid not in (None, stuck))
    predict(2.0)
    assert shadow.join(10)
    timeouts = sample_value(registry, "mlprobe_prediction_errors",
                            {**V2, "error_type": "ShadowTimeout"})
    ok = sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"})
    dropped = sample_value(registry, "mlprobe_shadow_dropped", SHADOW)
    assert timeouts == 1 and dropped >= 21 and ok >= 1 and timeouts + ok + dropped == 32


def test_a_batch_longer_than_the_timeout_is_not_a_hang(registry, shadows):
    """``timeout`` bounds one call, not a batch: calls of 40 ms sent together, 0.8 s in all,
    with a timeout of 0.3 s all run (the child reports each call's outcome as it goes)."""
    probe = primary_probe(registry)
    shadow = shadows(probe, lambda x: time.sleep(0.04) or 0.5, version="2",
                     isolation="process", timeout=0.3)
    predict = shadow.track(lambda x: 0.9)
    for _ in range(20):
        predict(1.0)
    assert shadow.join(10)
    assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 20
    assert not sample_value(registry, "mlprobe_prediction_errors",
                            {**V2, "error_type": "ShadowTimeout"})


def test_repeated_failures_stop_the_shadow_with_a_logged_reason(registry, shadows,
                                                                 quick_restarts, monkeypatch,
                                                                 caplog):
    """A candidate process that fails MAX_FAILURES times in a row is not started again: the
    log says why, and every later call is dropped and counted; the primary is unaffected."""
    monkeypatch.setattr(_shadow_launch, "MAX_FAILURES", 3)
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.always_exit, version="2", isolation="process")
    predict = shadow.track(lambda x: 0.9)
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        for _ in range(3):
            predict(1.0)
            shadow.join(5)
        assert wait_until(lambda: shadow._runner.disabled)
    assert "3 failures in a row" in caplog.text and "exited with code 4" in caplog.text
    before = sample_value(registry, "mlprobe_shadow_dropped", SHADOW)
    for _ in range(5):
        assert predict(1.0) == 0.9
    assert sample_value(registry, "mlprobe_shadow_dropped", SHADOW) == before + 5
    assert sample_value(registry, "mlprobe_prediction_errors",
                        {**V2, "error_type": "ShadowProcessDied"}) == 3
    assert shadow.candidate_pid is None


def test_failures_with_answers_in_between_never_stop_the_shadow(registry, shadows,
                                                                quick_restarts, monkeypatch):
    """Only failures in a row count towards MAX_FAILURES: a candidate that crashes now and
    then, answering in between, is restarted every time."""
    monkeypatch.setattr(_shadow_launch, "MAX_FAILURES", 2)
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.exit_on_13, version="2", isolation="process")
    predict = shadow.track(lambda x: 0.9)
    for _ in range(3):
        predict(1.0)
        assert shadow.join(10)
        pid = shadow.candidate_pid
        predict(13.0)
        assert shadow.join(10)
        assert wait_until(lambda old=pid: shadow.candidate_pid not in (None, old))
    assert not shadow._runner.disabled
    assert sample_value(registry, "mlprobe_prediction_errors",
                        {**V2, "error_type": "ShadowProcessDied"}) == 3
    assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 3


def test_unpicklable_arguments_and_results_are_counted(registry, shadows, caplog):
    """A call whose arguments do not pickle is dropped (counted, logged once); a result that
    does not pickle is the candidate's UnpicklableResult error; the others go through."""
    probe = primary_probe(registry)
    shadow = shadows(probe, lambda x, extra=None: (lambda: 0) if x == 2 else 0.5, version="2",
                     isolation="process")
    predict = shadow.track(lambda x, extra=None: 0.9)
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        predict(1.0, extra=threading.Lock())
        predict(2.0)
        predict(3.0)
        assert shadow.join(10)
        predict(4.0, extra=threading.Lock())  # in a later batch: counted, not logged again
        assert shadow.join(10)
    assert caplog.text.count("cannot be pickled") == 1
    assert sample_value(registry, "mlprobe_shadow_dropped", SHADOW) == 2
    assert sample_value(registry, "mlprobe_prediction_errors",
                        {**V2, "error_type": "UnpicklableResult"}) == 1
    assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 1


def test_close_ends_the_process_and_keeps_what_was_queued(registry, shadows):
    """close() lets the process finish the queued calls, then it exits (reaped: no zombie);
    later calls are ignored."""
    probe = primary_probe(registry)
    shadow = shadows(probe, lambda x: time.sleep(0.01) or 0.5, version="2",
                     isolation="process")
    predict = shadow.track(lambda x: 0.9)
    for _ in range(20):
        predict(1.0)
    shadow._runner.hurry()
    assert wait_until(lambda: shadow.candidate_pid is not None)
    pid = shadow.candidate_pid
    shadow.close()
    assert not alive(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
    assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 20
    assert predict(1.0) == 0.9
    assert shadow.join(1)  # the later call was not queued (no runner would ever take it)
    assert shadow.candidate_pid is None


def test_close_kills_a_process_that_does_not_finish(registry, shadows):
    """A process stuck in a call when close() runs out of time is killed; the call counts as
    timed out."""
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.hang_on_7, version="2", isolation="process")
    predict = shadow.track(lambda x: 0.9)
    predict(7.0)
    shadow._runner.hurry()
    assert wait_until(lambda: shadow.candidate_pid is not None)
    pid = shadow.candidate_pid
    time.sleep(0.05)
    start = time.monotonic()
    shadow.close(timeout=0.2)
    assert time.monotonic() - start < 3
    assert not alive(pid)
    assert sample_value(registry, "mlprobe_prediction_errors",
                        {**V2, "error_type": "ShadowTimeout"}) == 1


@pytest.mark.allow_internal_errors
def test_a_comparison_failing_in_the_candidate_process_is_an_internal_error(
        registry, shadows, monkeypatch):
    """A bug in the comparison, where the candidate runs, is counted as an internal error of
    the serving process; the candidate's calls are still recorded."""
    from mlprobe import _guard
    from mlprobe._shadow_compare import Comparer

    def broken(self: Comparer, outputs: Any) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(Comparer, "compare", broken)  # the forked child inherits it
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.halve, version="2", isolation="process")
    before = _guard.internal_error_count()
    shadow.track(primary)(0.5)
    assert shadow.join(10)
    assert _guard.internal_error_count() == before + 1
    assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_serving_process_starts_its_own_candidate_process(registry, shadows):
    """A serving process forked after its shadow started (a gunicorn worker) starts its own
    candidate process at its first call and records its own calls; the parent's process and
    counts are untouched, and nothing outlives either."""
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.halve, version="2", isolation="process")
    predict = shadow.track(primary)
    predict(0.8)
    assert shadow.join(10)
    parent_child = shadow.candidate_pid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked worker: report its candidate's pid and count, then leave
        try:
            predict(0.4)
            predict(0.6)
            shadow.join(10)
            ok = sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"})
            os.write(write, f"{shadow.candidate_pid} {ok}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        worker_child, worker_ok = fh.read().split()
    os.waitpid(pid, 0)
    assert worker_child not in ("None", str(parent_child)) and float(worker_ok) == 2
    assert wait_until(lambda: not alive(int(worker_child)))  # it ended with its worker
    assert alive(parent_child) and shadow.candidate_pid == parent_child
    predict(0.2)
    assert shadow.join(10)
    assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 2


def test_the_candidate_process_dies_with_a_sigkilled_parent(tmp_path):
    """A serving process killed with SIGKILL leaves no candidate process: an idle one sees its
    pipe close, one stuck in a call is killed by the kernel (or its watchdog)."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(TESTS)!r}]
        import mlprobe, shadow_candidates
        registry = mlprobe.Registry()
        probe = mlprobe.Probe("m", version="1", registry=registry)
        idle = mlprobe.Shadow(probe, shadow_candidates.halve, version="2", task="binary",
                              isolation="process")
        stuck = mlprobe.Shadow(probe, shadow_candidates.hang_on_7, version="3",
                               task="binary", isolation="process")
        idle.track(lambda x: 0.9)(0.5)
        stuck.track(lambda x: 0.9)(7.0)
        idle.join(10)
        stuck._runner.hurry()
        while stuck.candidate_pid is None:
            time.sleep(0.01)
        time.sleep(0.1)
        print(idle.candidate_pid, stuck.candidate_pid, flush=True)
        time.sleep(60)
    """)
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  p for p in sys.path if p)})
    try:
        line = server.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2 and all(alive(p) for p in pids), line
    finally:
        server.kill()
        server.wait(10)
        server.stdout.close()
    try:
        assert wait_until(lambda: not any(alive(p) for p in pids), 5.0)
    finally:  # a failure must not leave them behind either
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_candidate_process_is_not_a_worker_in_multiprocess_mode(tmp_path, shadows,
                                                                     monkeypatch):
    """Forked from a worker in multi-process mode, the candidate's process publishes nothing,
    even while it is slow to start (its publisher thread is never restarted): the server still
    counts one worker, and every worker file is the worker's own."""
    from mlprobe import _mp_merge

    not_a_worker = _mp_merge.not_a_worker

    def slow_start() -> None:  # runs first in the child: several publishing intervals
        time.sleep(0.3)
        not_a_worker()

    monkeypatch.setattr(_mp_merge, "not_a_worker", slow_start)
    registry = mlprobe.Registry()
    multiprocess.attach(registry, str(tmp_path), interval=0.05, background=True)
    try:
        probe = primary_probe(registry)
        # the publisher thread runs (an earlier test's longer interval may delay its first
        # cycle): a child forked now restarts it, unless it knows it is no worker
        assert wait_until(lambda: registry.merger.published > 0)
        shadow = shadows(probe, shadow_candidates.halve, version="2", isolation="process")
        predict = shadow.track(primary)
        predict(0.8)
        assert shadow.join(10)
        time.sleep(0.2)  # more publishing intervals, in the worker and (if wrong) its child
        files = [n for n in os.listdir(tmp_path) if n.startswith("mlprobe-worker-")]
        assert files and all(str(os.getpid()) in n for n in files)
        assert sample_value(registry, "mlprobe_worker_processes") == 1
        assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 1
    finally:  # the publisher thread would go on publishing it for the rest of the run
        multiprocess.detach(registry)


def test_process_options_are_checked(registry):
    """Process options with a thread, unknown isolation or start method, bad nice or timeout,
    and a candidate that cannot be pickled for spawn: clear errors at construction."""
    probe = primary_probe(registry)
    for kwargs, match in (({"isolation": "thread", "timeout": 1.0}, "timeout apply to"),
                          ({"isolation": "subinterpreter"}, "isolation"),
                          ({"isolation": "process", "start_method": "forkserver"},
                           "start_method"),
                          ({"isolation": "process", "nice": 20}, "nice"),
                          ({"isolation": "process", "nice": True}, "nice"),
                          ({"isolation": "process", "timeout": 0}, "timeout"),
                          ({"isolation": "process", "start_method": "spawn"}, "pickle")):
        with pytest.raises(ConfigurationError, match=match):
            Shadow(probe, lambda x: x, version="2", **kwargs)
    Shadow(probe, shadow_candidates.halve, version="2", isolation="process",
           start_method="spawn", nice=0, timeout=5).close()


def test_a_spawned_candidate_that_cannot_be_imported_stops_the_shadow(registry, shadows,
                                                                      caplog):
    """A spawned process that cannot unpickle the candidate (its module exists only in the
    serving process) is not restarted over and over: the shadow stops, saying why."""
    import types

    module = types.ModuleType("only_in_this_process")
    exec("def candidate(x):\n    return 0.5\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        probe = primary_probe(registry)
        shadow = shadows(probe, module.candidate, version="2", isolation="process",
                         start_method="spawn")
        with caplog.at_level(logging.WARNING, logger="mlprobe"):
            shadow.track(lambda x: 0.9)(1.0)
            shadow._runner.hurry()
            assert wait_until(lambda: shadow._runner.disabled, 20)
        assert "cannot run it" in caplog.text and "only_in_this_process" in caplog.text
    finally:
        del sys.modules[module.__name__]


def test_the_candidate_process_runs_at_a_lower_priority(registry, shadows):
    """The candidate's process is niced by ``nice`` relative to the serving process."""
    probe = primary_probe(registry)
    shadow = shadows(probe, shadow_candidates.halve, version="2", isolation="process", nice=7)
    shadow.track(primary)(0.5)
    assert shadow.join(10)
    pid = shadow.candidate_pid
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 7


def test_signals_for_the_server_do_not_reach_it_through_the_candidate(registry, shadows,
                                                                      quick_restarts):
    """The forked candidate drops the server's Python signal handlers: a signal the server
    handles (SIGUSR1) ends it, with the default action, instead of running the server's
    handler in the copy; a new process runs the next calls."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:
        probe = primary_probe(registry)
        shadow = shadows(probe, shadow_candidates.halve, version="2", isolation="process")
        predict = shadow.track(primary)
        predict(0.5)
        assert shadow.join(10)
        pid = shadow.candidate_pid
        os.kill(pid, signal.SIGUSR1)  # default action in the child: terminate
        assert wait_until(lambda: not alive(pid))
        assert seen == []
        assert wait_until(lambda: shadow.candidate_pid not in (None, pid))
        predict(0.5)
        assert shadow.join(10)
        assert sample_value(registry, "mlprobe_predictions", {**V2, "outcome": "ok"}) == 2
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/<pid>/fd")
def test_the_candidate_process_keeps_none_of_the_servers_sockets(registry, shadows, tmp_path):
    """A forked candidate closes the sockets and pipes it inherited (a client's connection
    must close when the server closes it, not when the candidate's process ends) and keeps
    regular files open (a model may read from one)."""
    import socket

    with socket.socket() as listener, open(tmp_path / "model.bin", "wb") as model_file:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        probe = primary_probe(registry)
        shadow = shadows(probe, shadow_candidates.halve, version="2", isolation="process")
        shadow.track(primary)(0.5)
        assert shadow.join(10)
        pid = shadow.candidate_pid
        links = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                links[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                pass
        assert f"socket:[{os.fstat(listener.fileno()).st_ino}]" not in links.values()
        assert os.path.realpath(model_file.name) in links.values()
        # beyond stdin, stdout and stderr: its own two pipes to the serving process
        assert sum(link.startswith("pipe:") for fd, link in links.items() if fd > 2) == 2


def test_gunicorn_workers_each_run_their_own_candidate_process(tmp_path):
    """Under gunicorn (2 workers, app preloaded in the master), each worker starts its own
    candidate process at its first call; the merged scrape counts every candidate call once;
    no candidate process publishes a state (they are not workers: the live processes are the
    workers and the preloaded master); stopping the server leaves no candidate process."""
    from workers import WorkerServer, value

    server = WorkerServer("gunicorn", tmp_path / "mp", workers=2,
                          env={"WORKERS_APP_SHADOW": "process"},
                          gunicorn_args=("--preload",)).start()
    candidates: dict[int, int] = {}
    try:
        served: set[int] = set()
        calls = 0
        while calls < 20 or len(served) < 2 and calls < 400:  # until both workers served
            response = server.post("/predict", {"x": calls / 10, "y": 1.0, "c": "a"})
            assert response.status_code == 200
            served.add(response.json()["pid"])
            calls += 1
        assert len(served) == 2
        for _ in range(200):
            status = server.get("/shadow").json()
            assert status["joined"]
            if status["candidate_pid"] is not None:
                candidates[status["pid"]] = status["candidate_pid"]
            if len(candidates) == 2:
                break
        assert len(candidates) == 2 and len(set(candidates.values())) == 2
        for worker, candidate in candidates.items():
            with open(f"/proc/{candidate}/stat") as fh:
                assert int(fh.read().rsplit(")", 1)[1].split()[1]) == worker  # its parent
        deadline = time.monotonic() + 10  # every worker publishes its state each second
        while True:
            exposition = server.scrape()
            ran = value(exposition, "mlprobe_predictions_total", model_version="candidate",
                        outcome="ok")
            if ran == calls or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ran == calls
        files = os.listdir(tmp_path / "mp")
        assert not [f for f in files for pid in candidates.values() if f"-{pid}-" in f]
        assert value(exposition, "mlprobe_worker_processes") in (2, 3)  # (+ the master)
    finally:
        server.stop()
    assert wait_until(lambda: not any(alive(p) for p in candidates.values()), 10)
