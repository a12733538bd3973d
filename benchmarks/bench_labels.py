"""Cost of the label rule on the paths it touches, side by side with the code before it.

The rule (``label_value`` in ``mlprobe/stats/_labels.py``) makes every label value valid UTF-8 of
bounded length. On the hot paths it costs two O(1) checks for a short ASCII value, or nothing
at all where a value already seen is looked up first. This script times, interleaved round by
round in one process:

* ``BoundedCounter.add`` of a known label (predicted classes, error types) against a copy of
  the previous implementation;
* the key step of ``CategoryCounts.update_counts`` (once per distinct category value per
  batch) against the previous ``isinstance`` check;
* ``level_key`` against the previous one;
* ``label_value`` itself on short ASCII, short non-ASCII, surrogate and 100 kB values.

Run: ``python benchmarks/bench_labels.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import timeit

import numpy as np

from mlprobe._instruments import OVERFLOW, BoundedCounter
from mlprobe.stats._categorical import level_key
from mlprobe.stats._labels import MAX_LABEL_CHARS, label_value


class PreviousBoundedCounter:
    """``BoundedCounter`` before the label rule (copied from main at bd160dd)."""

    __slots__ = ("_counts", "_lock", "max_values")

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            counts = self._counts
            if key not in counts and len(counts) >= self.max_values:
                key = OVERFLOW
            counts[key] = counts.get(key, 0) + amount


def previous_level_key(value: object) -> str:
    """``level_key`` before the label rule (copied from main at bd160dd)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def key_before(key: object) -> str:
    return key if isinstance(key, str) else previous_level_key(key)


def key_now(key: object) -> str:
    return (key if type(key) is str and key.isascii() and len(key) <= MAX_LABEL_CHARS
            else level_key(key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    before, now = PreviousBoundedCounter(50), BoundedCounter(50)
    before.add("yes")
    now.add("yes")
    surrogate = b"caf\xe9".decode("utf-8", "surrogateescape")
    huge = "c" * 100_000
    pairs = {
        "BoundedCounter.add, known label": (lambda: before.add("yes"), lambda: now.add("yes")),
        "update_counts key step, str value": (lambda: key_before("basic"),
                                              lambda: key_now("basic")),
        "update_counts key step, float value": (lambda: key_before(3.0),
                                                lambda: key_now(3.0)),
        "level_key, str": (lambda: previous_level_key("basic"), lambda: level_key("basic")),
        "level_key, int": (lambda: previous_level_key(7), lambda: level_key(7)),
    }
    singles = {
        "label_value, short ASCII": lambda: label_value("ValueError"),
        "label_value, short non-ASCII": lambda: label_value("café"),
        "label_value, lone surrogate": lambda: label_value(surrogate),
        "label_value, 100 kB value": lambda: label_value(huge),
    }
    samples: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (old, new) in pairs.items():
            samples.setdefault(name + " [before]", []).append(
                timeit.timeit(old, number=args.number) / args.number)
            samples.setdefault(name + " [now]", []).append(
                timeit.timeit(new, number=args.number) / args.number)
        for name, fn in singles.items():
            number = args.number // 1000 if "100 kB" in name else args.number
            samples.setdefault(name, []).append(timeit.timeit(fn, number=number) / number)
    medians = {k: statistics.median(v) * 1e9 for k, v in samples.items()}
    print(f"{'variant':50} {'ns/call':>9} {'now/before':>11}")
    for name in pairs:
        b, n = medians[name + " [before]"], medians[name + " [now]"]
        print(f"{name + ' [before]':50} {b:9.1f}")
        print(f"{name + ' [now]':50} {n:9.1f} {n / b:11.2f}")
    for name in singles:
        print(f"{name:50} {medians[name]:9.1f}")


if __name__ == "__main__":
    main()
