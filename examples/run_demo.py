"""Run the whole demo: start the model service on 127.0.0.1, send traffic, print the report.

    pip install -e '.[demo]' && python examples/run_demo.py

The service (examples/demo/model_service.py) runs in a real uvicorn server on a free port in
this process; the traffic generator (examples/demo/traffic.py) talks to it over HTTP. Normal
traffic comes first, then traffic with ten, then twenty of the thirty features scaled by
1.25: the drift status turns from ok to warning, then critical. Exits 0 within about a minute
(``--quick``: a few seconds). With ``--serve`` the service keeps running after the traffic,
until Ctrl-C (or ``--serve-seconds``), so that its ``/metrics`` and ``/drift`` can be read.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn  # noqa: E402

import mlprobe  # noqa: E402
from demo import model_service, traffic  # noqa: E402


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument("--seconds", type=float, default=45.0, help="time limit for traffic")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--serve", action="store_true",
                        help="keep the service running after the traffic, until Ctrl-C")
    parser.add_argument("--serve-seconds", type=float, default=None, metavar="S",
                        help="with --serve: stop after S seconds instead of waiting for Ctrl-C")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    trained = model_service.train()
    print(f"trained a logistic regression on scikit-learn's breast cancer data set "
          f"({len(trained.X_train)} training rows, {len(trained.feature_names)} features, "
          f"test accuracy {trained.accuracy:.3f})")
    app = model_service.create_app(trained, registry=mlprobe.Registry(),
                                   window_seconds=60.0)
    port = args.port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            print("the service did not start", file=sys.stderr)
            return 1
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    if args.serve:
        print(f"service up at {base}  (try: curl {base}/metrics  or  curl {base}/drift)")
    else:
        print(f"service up at {base} while the traffic runs (add --serve to keep it running "
              "afterwards and read /metrics and /drift)")
    try:
        result = asyncio.run(traffic.run(base, quick=args.quick, seconds=args.seconds))
        seen = " -> ".join(f"{phase.drift[-1][1] if phase.drift else '?'} ({phase.name})"
                           for phase in result["phases"])
        print(f"\ndone: drift status {seen}")
        if args.serve:
            serve_until_interrupted(base, thread, args.serve_seconds)
    finally:
        server.should_exit = True
        thread.join(10)
    return 0


def serve_until_interrupted(base: str, thread: threading.Thread, seconds: float | None) -> None:
    """Keep the service up until Ctrl-C (or ``seconds``), printing where to look."""
    limit = "" if seconds is None else f" (stopping by itself after {seconds:g} s)"
    print(f"\nthe service keeps running at {base}{limit}; press Ctrl-C to stop it:\n"
          f"  curl {base}/metrics\n  curl {base}/drift\n"
          f"(drift is computed over the last 60 s of traffic: with no new traffic the window "
          "empties and the status becomes insufficient_data)", flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping the service")


if __name__ == "__main__":
    raise SystemExit(main())
