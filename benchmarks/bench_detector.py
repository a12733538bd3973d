"""False alarms and detection of the concept-drift signal (mlprobe.stats._detectors).

Stable streams: 0/1 error streams at rates 2% to 40% and absolute-error streams (half-normal),
with 20 to 2,000 outcomes per bucket, over a history of 48 buckets; each case is evaluated
``--trials`` times (independent histories) and the share of evaluations with an alarm is the
false-alarm rate per evaluation (what a status computed at every scrape shows). Shifted
streams: the error rate (or error scale) steps up in the last 6 buckets; the share detected.
A stream with a NaN outcome is the same stream (invalid pairs never reach the buckets).

Run: ``python benchmarks/bench_detector.py [--trials N]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mlprobe.stats._detectors import detect_change  # noqa: E402

BUCKETS, CHANGED = 48, 6


def bernoulli(g: np.random.Generator, rates: np.ndarray, per: int) -> tuple[np.ndarray, ...]:
    errors = g.binomial(per, rates).astype(float)
    return np.full(rates.size, float(per)), errors, errors


def absolute(g: np.random.Generator, scales: np.ndarray, per: int) -> tuple[np.ndarray, ...]:
    values = [np.abs(g.normal(0, s, per)) for s in scales]
    return (np.full(scales.size, float(per)), np.array([v.sum() for v in values]),
            np.array([(v * v).sum() for v in values]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--delta", type=float, default=0.002)
    args = parser.parse_args(argv)
    g = np.random.default_rng(0)
    print(f"delta {args.delta}, {BUCKETS} buckets, {args.trials} evaluations per row\n")
    print("stable streams: share of evaluations with an alarm (false alarms)")
    total_alarms = total = 0
    for rate in (0.02, 0.1, 0.4):
        for per in (20, 200, 2000):
            alarms = sum(bool((r := detect_change(*bernoulli(g, np.full(BUCKETS, rate), per),
                                                   delta=args.delta)) and r.detected)
                         for _ in range(args.trials))
            total_alarms += alarms
            total += args.trials
            print(f"  0/1 errors, rate {rate:<4}  {per:>5} per bucket  {alarms / args.trials:.4f}")
    for per in (20, 200, 2000):
        alarms = sum(bool((r := detect_change(*absolute(g, np.ones(BUCKETS), per),
                                               delta=args.delta, bounded=False)) and r.detected)
                     for _ in range(args.trials))
        total_alarms += alarms
        total += args.trials
        print(f"  absolute errors (half-normal)  {per:>5} per bucket  {alarms / args.trials:.4f}")
    print(f"  all stable cases: {total_alarms} alarms in {total} evaluations "
          f"({total_alarms / total:.5f})\n")
    print(f"shifted streams (last {CHANGED} of {BUCKETS} buckets): share detected as an increase")
    for rate, to in ((0.1, 0.12), (0.1, 0.15), (0.1, 0.2), (0.02, 0.04)):
        for per in (20, 200, 2000):
            rates = np.r_[np.full(BUCKETS - CHANGED, rate), np.full(CHANGED, to)]
            hits = 0
            for _ in range(max(args.trials // 4, 50)):
                r = detect_change(*bernoulli(g, rates, per), delta=args.delta)
                hits += bool(r and r.detected and r.direction == "increase")
            print(f"  0/1 errors {rate} -> {to:<5} {per:>5} per bucket  "
                  f"{hits / max(args.trials // 4, 50):.3f}")
    for scale in (1.2, 1.5, 2.0):
        for per in (20, 200):
            scales = np.r_[np.ones(BUCKETS - CHANGED), np.full(CHANGED, scale)]
            hits = 0
            for _ in range(max(args.trials // 4, 50)):
                r = detect_change(*absolute(g, scales, per), delta=args.delta, bounded=False)
                hits += bool(r and r.detected and r.direction == "increase")
            print(f"  absolute errors x{scale:<4}      {per:>5} per bucket  "
                  f"{hits / max(args.trials // 4, 50):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
