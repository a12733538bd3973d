"""Run the whole demo: start the model service on 127.0.0.1, send traffic, print the report.

    pip install -e '.[demo]' && python examples/run_demo.py

The service (examples/demo/model_service.py) runs in a real uvicorn server on a free port in
this process; the traffic generator (examples/demo/traffic.py) talks to it over HTTP. Normal
traffic comes first, then traffic with ten, then twenty of the thirty features scaled by
1.25: the drift status turns from ok to warning, then critical. Exits 0 within about a minute (``--quick``:
a few seconds).
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
    print(f"service up at {base}  (try: curl {base}/metrics  or  curl {base}/drift)")
    try:
        result = asyncio.run(traffic.run(base, quick=args.quick, seconds=args.seconds))
    finally:
        server.should_exit = True
        thread.join(10)
    seen = " -> ".join(f"{phase.drift[-1][1] if phase.drift else '?'} ({phase.name})"
                       for phase in result["phases"])
    print(f"\ndone: drift status {seen}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
