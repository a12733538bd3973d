"""Collect-side cost of the rolling window: ``FeatureState.window_and_totals`` against a baseline.

What every scrape and drift evaluation does per model: add up the sub-buckets of the rolling
window and the totals. Two cases, 100 numeric features, 10 sub-buckets all holding rows:
one process (its own ring), and one worker merging the states of 8 (each worker's closed
sub-buckets are unchanging parts; its open one is a fresh copy at every collect). The baseline
is another version of ``mlprobe/_feature_state.py`` (default: c736c4b, before the cache of
the stable sub-buckets' window and totals), loaded from git into the same process; rounds
interleave, and each result is checked equal to the baseline's (counts exactly, means to 1e-12).

Run: ``python benchmarks/bench_window_collect.py [--baseline COMMIT] [--rounds N]``.
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

import mlprobe  # noqa: E402
from mlprobe import _feature_state  # noqa: E402
from mlprobe._features import FeatureMonitor  # noqa: E402

FEATURES, WORKERS, BUCKET_S = 100, 8, 60.0


def load_baseline(commit: str) -> Any:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:src/mlprobe/_feature_state.py"],
        check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("baseline_feature_state")
    exec(compile(source.replace("from .", "from mlprobe."), "baseline_feature_state", "exec"),
         module.__dict__)
    return module


def monitors(count: int) -> tuple[list[FeatureMonitor], list[float]]:
    """``count`` monitors of one profile on one clock, 15 sub-buckets of traffic each (10 in
    the window, the open one among them; the rest expired)."""
    g = np.random.default_rng(0)
    profile = mlprobe.ReferenceProfile.from_data(
        {f"f{i}": g.normal(i, 1, 5000) for i in range(FEATURES)}, predictions=g.random(5000))
    clock = [1_000_020.0]
    out = [FeatureMonitor(profile, window_seconds=10 * BUCKET_S, sub_buckets=10,
                          clock=lambda: clock[0]) for _ in range(count)]
    for _ in range(14):
        for monitor in out:
            monitor.observe({f"f{i}": g.normal(i, 1, 100) for i in range(FEATURES)})
            monitor.flush()
        clock[0] += BUCKET_S
    for monitor in out:  # the open sub-bucket holds rows too (a fresh part at each collect)
        monitor.observe({f"f{i}": g.normal(i, 1, 100) for i in range(FEATURES)})
        monitor.flush()
    return out, clock


def merged_state(group: list[FeatureMonitor]) -> Any:
    state = group[0].state()
    for other in group[1:]:
        state.merge(other.state())
    return state


def same(a: Any, b: Any) -> None:
    assert a.rows == b.rows, (a.rows, b.rows)
    for name, fa in a.features.items():
        fb = b.features[name]
        assert np.array_equal(fa.bins.counts, fb.bins.counts), name
        assert fa.moments.count == fb.moments.count, name
        assert abs(fa.moments.mean - fb.moments.mean) <= 1e-12 * max(1.0, abs(fa.moments.mean))


def measure(groups: dict[str, list[FeatureMonitor]], baseline: Any,
            rounds: int) -> dict[str, float]:
    """Median ms of one window_and_totals, each version on its own (identical) monitors: the
    monitor's cache of sums is the versions' own business."""
    versions = {"baseline": baseline.FeatureState.window_and_totals,
                "current": _feature_state.FeatureState.window_and_totals}
    for x, y in zip(*(fn(merged_state(groups[k])) for k, fn in versions.items())):
        same(x, y)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    for _ in range(rounds):
        for label, fn in versions.items():
            state = merged_state(groups[label])  # (each collect builds its state: not timed)
            started = time.perf_counter()
            fn(state)
            times[label].append(time.perf_counter() - started)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="c736c4b")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    baseline = load_baseline(args.baseline)
    groups = {"baseline": monitors(WORKERS)[0], "current": monitors(WORKERS)[0]}
    for label, count in (("one process", 1), (f"{WORKERS} workers merged", WORKERS)):
        r = measure({k: g[:count] for k, g in groups.items()}, baseline, args.rounds)
        print(f"{label}, {FEATURES} features: median baseline {r['baseline']:.2f} ms, "
              f"current {r['current']:.2f} ms, ratio {r['current'] / r['baseline']:.2f}")


if __name__ == "__main__":
    main()
