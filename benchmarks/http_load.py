"""A bounded keep-alive HTTP/1.1 load generator that reads each server's CPU time.

``bench_asgi.py`` runs it as a separate process (the client never shares a GIL or an event
loop with a server it measures), with the servers to compare as JSON on the command line:

    python benchmarks/http_load.py '{"targets": [{"name": "bare", "port": 8001, "pid": 123},
        ...], "rounds": 40, "burst": 500, "concurrency": 4, "seconds": 120}'

Every round sends one burst of ``burst`` requests to each server, in a shuffled order, over
``concurrency`` keep-alive connections per server that stay open for the whole run; with
``"gap_us"`` each connection sends its requests that many microseconds apart (paced, as
requests arrive at a server that is not saturated), else as fast as the server answers. Bursts
are short (tens of milliseconds), so a change of the machine's speed between two rounds hits
every server alike: the per-round CPU times are paired samples. Bounded: at most ``rounds`` x
``burst`` requests per server and ``seconds`` in all; only 127.0.0.1 is ever a target.

Per server it prints (one JSON object): the responses, the server's CPU seconds over the whole
run read from ``/proc/PID/stat`` (utime + stime of every thread: the kernel scales them to the
scheduler's exact runtime, but prints them in clock ticks), the CPU seconds of each burst read
from ``/proc/PID/task/*/schedstat`` (nanosecond precision, so one burst is enough), and the
client-side latency percentiles (request written to last body byte read).

The client is an asyncio ``Protocol`` (no streams, no HTTP library) so that its own cost per
request stays a small fraction of a server's.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def stat_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all threads) from ``/proc/PID/stat``, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def runtime_ns(pid: int) -> int:
    """Time on CPU of every thread of ``pid``, in ns (``/proc/PID/task/*/schedstat``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return total


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, read its whole response, send the next."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: Any = None
        self.buffer = bytearray()
        self.need = -1  # length of the whole response, once its head has been read
        self.sent_at = 0
        self.due = 0  # paced bursts: when the next request is due (perf_counter_ns)
        self.burst: _Burst | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def fire(self) -> None:
        """Send the next request of the current burst, or report this connection idle."""
        burst = self.burst
        assert burst is not None
        if burst.remaining <= 0 or time.perf_counter() > burst.deadline:
            burst.idle(self)
            return
        burst.remaining -= 1
        self.need = -1
        self.buffer.clear()
        if not burst.gap_ns:
            self._send()
            return
        # paced: due one gap after the previous request was due (sent at once when late).
        # The latency still counts from the send: asyncio's timers are only as precise as
        # epoll's millisecond timeout, which would otherwise show as latency.
        self.due += burst.gap_ns
        early = self.due - time.perf_counter_ns()
        if early > 0:
            asyncio.get_running_loop().call_later(early / 1e9, self._send)
        else:
            self._send()

    def _send(self) -> None:
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.need < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0 or not head.startswith(b"http/1.1 200"):
                raise SystemExit(f"unexpected response: {bytes(buffer[:200])!r}")
            self.need = end + 4 + int(head[at + 17:].split(b"\r\n", 1)[0])
        if len(buffer) >= self.need:
            assert self.burst is not None
            self.burst.latencies.append(time.perf_counter_ns() - self.sent_at)
            self.fire()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class _Burst:
    """``count`` requests spread over a set of connections; done when all are idle."""

    def __init__(self, connections: list[_Connection], count: int, deadline: float,
                 latencies: list[int], gap_ns: int = 0) -> None:
        self.remaining = count
        self.deadline = deadline
        self.latencies = latencies
        self.gap_ns = gap_ns
        self.busy = len(connections)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        start = time.perf_counter_ns()
        for i, conn in enumerate(connections):
            conn.burst = self
            conn.due = start - gap_ns + i * gap_ns // len(connections)
        for conn in connections:
            conn.fire()

    def idle(self, conn: _Connection) -> None:
        self.busy -= 1
        if self.busy == 0 and not self.done.done():
            self.done.set_result(None)


def percentiles(latencies: list[int]) -> dict[str, float]:
    """Nearest-rank percentiles in microseconds."""
    ordered = sorted(latencies)
    if not ordered:
        return {}
    return {f"p{p:g}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] / 1e3
            for p in PERCENTILES}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the bursts ``spec`` describes; return per-target CPU and latency figures."""
    loop = asyncio.get_running_loop()
    path = spec.get("path", "/items/42")
    request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: bench\r\n\r\n".encode()
    targets = spec["targets"]
    connections: dict[str, list[_Connection]] = {}
    for target in targets:
        conns = []
        for _ in range(spec["concurrency"]):
            _, conn = await loop.create_connection(lambda: _Connection(request), "127.0.0.1",
                                                   target["port"])
            conns.append(conn)
        connections[target["name"]] = conns
    deadline = time.perf_counter() + spec["seconds"]
    by_name = {t["name"]: t for t in targets}
    results: dict[str, Any] = {
        name: {"responses": 0, "burst_cpu_ns": [], "burst_responses": [], "latencies": [],
               "stat_cpu_seconds": -stat_cpu_seconds(t["pid"])}
        for name, t in by_name.items()}
    names = list(by_name)
    for _ in range(spec.get("warmup", 1) + spec["rounds"]):
        random.shuffle(names)
        for name in names:
            result, pid = results[name], by_name[name]["pid"]
            before = runtime_ns(pid)
            counted = len(result["latencies"])
            burst = _Burst(connections[name], spec["burst"], deadline, result["latencies"],
                           int(spec.get("gap_us", 0) * 1000))
            await asyncio.wait_for(burst.done, max(1.0, deadline - time.perf_counter() + 5))
            result["burst_cpu_ns"].append(runtime_ns(pid) - before)
            result["burst_responses"].append(len(result["latencies"]) - counted)
        if time.perf_counter() > deadline:
            break
    warmup = spec.get("warmup", 1)
    for name, result in results.items():
        result["stat_cpu_seconds"] += stat_cpu_seconds(by_name[name]["pid"])
        for conn in connections[name]:
            conn.transport.close()
        # the warm-up round counts in the /proc/PID/stat total but not in the rounds
        result["responses"] = sum(result["burst_responses"])
        result["stat_responses"] = result["responses"]
        skip = sum(result["burst_responses"][:warmup])
        result["burst_cpu_ns"] = result["burst_cpu_ns"][warmup:]
        result["burst_responses"] = result["burst_responses"][warmup:]
        result["latency_us"] = percentiles(result.pop("latencies")[skip:])
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    json.dump(asyncio.run(run(json.loads(args[0]))), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
