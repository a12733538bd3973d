"""Offline-statistics benchmark (plain script, not a pytest test).

One process, medians over repeats: a 10,000-row batch against a 100,000-row reference with
25 features (20 numeric + 5 categorical): ingest into window summaries, every statistic for
every feature, the per-feature evaluate time, and the profile JSON size.
Targets (issue 3): ingest + statistics under 5 ms; profile under 32 KiB.
Run: ``python benchmarks/bench_stats.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from mlprobe._drift_eval import evaluate_dataset, evaluate_feature
from mlprobe._drift_spec import DriftSpec
from mlprobe._window import DatasetWindow
from mlprobe._profile import ReferenceProfile


def _data(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(20):
        cols[f"num_{i:02d}"] = g.normal(shift if i < 7 else 0.0, 1.0 + i / 10, n)
    for i in range(5):
        cols[f"cat_{i}"] = g.choice([f"level_{j}" for j in range(4 + 2 * i)], n).astype(object)
    return cols


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    """Print the benchmark table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    ref, cur = _data(100_000, 0), _data(10_000, 1, shift=0.2)
    t = time.perf_counter()
    profile = ReferenceProfile.from_data(ref)
    build_ms = (time.perf_counter() - t) * 1e3
    size = len(json.dumps(profile.to_dict(), separators=(",", ":")).encode())
    spec = DriftSpec()

    def ingest() -> DatasetWindow:
        w = DatasetWindow(profile)
        w.update(cur)
        return w

    window = ingest()
    ingest_ms = _median_ms(ingest, args.repeats)
    evaluate_ms = _median_ms(lambda: evaluate_dataset(profile, window, spec), args.repeats)
    total_ms = _median_ms(lambda: evaluate_dataset(profile, ingest(), spec), args.repeats)
    num, cat = profile.features["num_00"], profile.features["cat_0"]
    num_us = 1e3 * _median_ms(lambda: evaluate_feature(num, window.features["num_00"], spec),
                              args.repeats * 4)
    cat_us = 1e3 * _median_ms(lambda: evaluate_feature(cat, window.features["cat_0"], spec),
                              args.repeats * 4)
    num_ingest_us = 1e3 * _median_ms(
        lambda: window.features["num_00"].copy().update(cur["num_00"]), args.repeats * 4)
    cat_ingest_us = 1e3 * _median_ms(
        lambda: window.features["cat_0"].copy().update(cur["cat_0"]), args.repeats * 4)
    report = evaluate_dataset(profile, window, spec)
    rows = [
        ("ingest 10k rows x 25 features", f"{ingest_ms:.2f} ms", ""),
        ("every statistic, 25 features", f"{evaluate_ms:.2f} ms", ""),
        ("ingest + statistics (target < 5 ms)", f"{total_ms:.2f} ms",
         "PASS" if total_ms < 5 else "over"),
        ("ingest one numeric column (10k)", f"{num_ingest_us:.0f} µs", ""),
        ("ingest one categorical column (10k)", f"{cat_ingest_us:.0f} µs", ""),
        ("evaluate one numeric feature", f"{num_us:.0f} µs", ""),
        ("evaluate one categorical feature", f"{cat_us:.0f} µs", ""),
        ("profile JSON, 25 features (target < 32 KiB)", f"{size / 1024:.1f} KiB",
         "PASS" if size < 32 * 1024 else "over"),
        ("build profile from 100k rows (once)", f"{build_ms:.0f} ms", ""),
    ]
    print(f"| measurement (median of {args.repeats}) | value | target |")
    print("|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")
    print(f"\nsanity: {report.to_dict()['n_drifted']} of 25 features drifted "
          "(7 numeric shifted by +0.2σ); dataset status " + report.status)


if __name__ == "__main__":
    main()
