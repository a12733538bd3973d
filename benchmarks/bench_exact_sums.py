"""Merged histogram sums (collect path in multi-process mode): mlprobe._exact against a baseline.

What a scrape of a merging worker does with every histogram sum: read each worker's plain form
(``from_plain``), add the workers' sums (``add``), report the float (``to_float``); and what an
archive write does (``to_plain``). Workers' sums are already exact (merged and archived) or plain
floats (live). The baseline is another version of ``mlprobe/_exact.py`` (default: the Fraction
version of commit 455d48c), loaded from git into the same process; rounds interleave.

Run: ``python benchmarks/bench_exact_sums.py [--baseline COMMIT] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlprobe import _exact  # noqa: E402

WORKERS, SERIES = 8, 200


def load_baseline(commit: str) -> Any:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:src/mlprobe/_exact.py"],
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("baseline_exact")
    module.__dict__["__name__"] = "mlprobe._baseline_exact"
    exec(compile(source.replace("from .", "from mlprobe."), "baseline_exact", "exec"),
         module.__dict__)
    return module


def plain_workers(impl: Any, g: np.random.Generator) -> list[list[Any]]:
    """Each worker's sums in plain form: half exact (an archive's), half floats (live)."""
    out = []
    for w in range(WORKERS):
        sums = g.exponential(0.05, SERIES * 5) * g.integers(1, 10_000, SERIES * 5)
        if w % 2:
            out.append([impl.to_plain(impl.add(float(s), 0.001)) for s in sums.tolist()])
        else:
            out.append(sums.tolist())
    return out


def scrape(impl: Any, plain: list[list[Any]]) -> float:
    t0 = time.perf_counter()
    merged = [impl.from_plain(v) for v in plain[0]]
    for worker in plain[1:]:
        merged = [impl.add(a, impl.from_plain(b)) for a, b in zip(merged, worker)]
    floats = [impl.to_float(v) for v in merged]
    [impl.to_plain(v) for v in merged]
    elapsed = time.perf_counter() - t0
    assert len(floats) == SERIES * 5
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="455d48c")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    base = load_baseline(args.baseline)
    g = np.random.default_rng(0)
    data = {"baseline": plain_workers(base, g)}
    data["current"] = plain_workers(_exact, np.random.default_rng(0))
    # the same sums, whichever implementation: the reported floats must agree
    assert [base.to_float(base.from_plain(v)) for v in data["baseline"][1]] == \
        [_exact.to_float(_exact.from_plain(v)) for v in data["current"][1]]
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    for _ in range(args.rounds):
        times["baseline"].append(scrape(base, data["baseline"]))
        times["current"].append(scrape(_exact, data["current"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{WORKERS} workers x {SERIES * 5} sums, {args.rounds} interleaved rounds")
    for k, v in med.items():
        print(f"  {k:8s} median {v * 1e3:8.2f} ms  ({v / (WORKERS * SERIES * 5) * 1e9:6.0f} ns "
              f"per worker-sum)")
    print(f"  ratio current/baseline {med['current'] / med['baseline']:.3f}")


if __name__ == "__main__":
    main()
