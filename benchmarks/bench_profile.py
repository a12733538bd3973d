"""Profile loading, batch ingest, buffered-row flush and ``mlprobe drift``, against a baseline.

The checked profile reader, the one input adapter and the rewritten CLI against the code they
replaced, side by side in one process, interleaved round by round. The baseline is another
copy of the package under another name, for example the parent commit's::

    git archive bd160dd src/mlprobe | tar -x -C /tmp/base
    mv /tmp/base/src/mlprobe /tmp/base/mlprobe_base
    python benchmarks/bench_profile.py --baseline /tmp/base

Without ``--baseline`` only the current code is timed. Prints medians (and the ratio now /
baseline) of:

* ``ReferenceProfile.load`` of a 25-feature profile (20 numeric, 5 categorical) and of a
  200-feature one with 500 levels per categorical feature;
* ``DatasetWindow.update`` of a 10,000-row dict of columns (25 features);
* a ``FeatureMonitor`` flush of 4,096 buffered dict rows that miss the packed fast path (the
  general row path of the adapter);
* ``mlprobe drift`` on a 100,000-row CSV of 25 columns (in-process ``main``);
* ``registry.collect()`` of a probe on a 100-feature profile (80 numeric, 20 categorical).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import mlprobe

RNG = np.random.default_rng(0)


def reference(n_numeric: int, n_categorical: int, n_levels: int, rows: int) -> dict[str, Any]:
    data: dict[str, Any] = {f"num_{i:03d}": RNG.normal(i, 1 + i / 10, rows)
                            for i in range(n_numeric)}
    for j in range(n_categorical):
        data[f"cat_{j:03d}"] = RNG.choice([f"level-{k}" for k in range(n_levels)], rows)
    return data


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


class Variant:
    """One copy of the package and the callables timed on it."""

    def __init__(self, name: str, package: Any, workdir: str) -> None:
        self.name = name
        self.pkg = package
        profile_mod = importlib.import_module(f"{package.__name__}._profile")
        window_mod = importlib.import_module(f"{package.__name__}._window")
        features_mod = importlib.import_module(f"{package.__name__}._features")
        self.cli = importlib.import_module(f"{package.__name__}._cli")
        self.Profile = profile_mod.ReferenceProfile
        self.DatasetWindow = window_mod.DatasetWindow
        self.FeatureMonitor = features_mod.FeatureMonitor
        self.Registry = package.Registry
        self.Probe = package.Probe
        self.workdir = workdir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="directory holding the baseline package mlprobe_base")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="fewer rounds and rows")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    workdir = tempfile.mkdtemp(prefix="bench-profile-")
    variants = [Variant("now", mlprobe, workdir)]
    if args.baseline:
        sys.path.insert(0, args.baseline)
        variants.insert(0, Variant("baseline", importlib.import_module("mlprobe_base"),
                                   workdir))

    small = mlprobe.ReferenceProfile.from_data(reference(20, 5, 8, 100_000))
    big = mlprobe.ReferenceProfile.from_data(reference(150, 50, 500, 20_000),
                                             max_categories=500)
    paths = {"load, 25 features": os.path.join(workdir, "small.json"),
             "load, 200 features": os.path.join(workdir, "big.json")}
    small.save(paths["load, 25 features"])
    big.save(paths["load, 200 features"])
    ref_names = list(small.features)
    batch = dict(zip(ref_names, reference(20, 5, 8, 10_000).values()))
    rows_data = [{n: (v[i].item() if hasattr(v[i], "item") else v[i]) for n, v in batch.items()}
                 for i in range(4_096)]
    for row in rows_data[::2]:
        row["unexpected"] = 1  # misses the packed fast path: the adapter's general path
    n_csv = 20_000 if args.quick else 100_000
    current = reference(20, 5, 8, n_csv)
    csv_path = os.path.join(workdir, "current.csv")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(ref_names)
        writer.writerows(zip(*current.values()))

    profiles = {v.name: v.Profile.load(paths["load, 25 features"]) for v in variants}
    wide_data = reference(80, 20, 8, 20_000)
    wide_path = os.path.join(workdir, "wide.json")
    mlprobe.ReferenceProfile.from_data(wide_data).save(wide_path)
    collectors = {}
    for v in variants:
        registry = v.Registry()
        probe = v.Probe("bench", registry=registry, reference=v.Profile.load(wide_path))
        probe.observe(inputs={k: c[:10_000] for k, c in wide_data.items()})
        collectors[v.name] = registry.collect

    def cases(v: Variant) -> dict[str, Callable[[], Any]]:
        profile = profiles[v.name]

        def flush() -> None:
            monitor = v.FeatureMonitor(profile, flush_rows=10**9)
            for row in rows_data:
                monitor.observe(row)
            monitor.flush()

        def drift() -> None:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                v.cli.main(["drift", paths["load, 25 features"], csv_path, "--format", "json"])

        return {
            "load, 25 features": lambda: v.Profile.load(paths["load, 25 features"]),
            "load, 200 features": lambda: v.Profile.load(paths["load, 200 features"]),
            "window update, 10k rows x 25": lambda: v.DatasetWindow(profile).update(batch),
            "flush of 4,096 general dict rows": flush,
            f"mlprobe drift, {n_csv:,}-row CSV": drift,
            "registry.collect(), 100 features": collectors[v.name],
        }

    results: dict[tuple[str, str], list[float]] = {}
    repeats = {"load, 25 features": 20, "load, 200 features": 3,
               "window update, 10k rows x 25": 10, "flush of 4,096 general dict rows": 3,
               "registry.collect(), 100 features": 5}
    for _ in range(rounds):
        for v in variants:
            for name, fn in cases(v).items():
                results.setdefault((name, v.name), []).append(
                    median_ms(fn, repeats.get(name, 1)))
    names = list(cases(variants[-1]))
    header = "| measurement (median ms) | " + " | ".join(v.name for v in variants)
    header += " | now / baseline |" if len(variants) > 1 else " |"
    print(header)
    print("|---" * (len(variants) + 1 + (len(variants) > 1)) + "|")
    for name in names:
        meds = [statistics.median(results[(name, v.name)]) for v in variants]
        line = f"| {name} | " + " | ".join(f"{m:.2f}" for m in meds)
        if len(variants) > 1:
            line += f" | {meds[-1] / meds[0]:.2f} |"
        else:
            line += " |"
        print(line)
    sizes = [os.path.getsize(p) // 1024 for p in paths.values()]
    print(f"\n{rounds} interleaved rounds; profile files {sizes[0]} KiB and {sizes[1]} KiB.")


if __name__ == "__main__":
    main()
