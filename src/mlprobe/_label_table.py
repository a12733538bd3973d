"""Bounded label values, and a counter incremented without a lock.

:class:`LabelTable` is the one implementation of "at most N distinct values of a label, then
``__other__``" (predicted classes, error types, score outputs, HTTP routes, status codes and
error types all use it). It also remembers when each value was first seen, which is what lets
tables of several processes merge into one bounded table (:func:`merge_first_seen`,
:func:`kept_values`): the merged table keeps the ``limit`` values seen earliest, so it is the
same whichever process builds it, and a value kept once stays kept when more processes' tables
join (up to the publish lag of a process whose value was seen earlier).

:class:`Tally` counts with ``next()`` on an :class:`itertools.count`: one C call, atomic under
the GIL, so the request path takes no lock. It is read by taking a ticket too (see
:meth:`Tally.value`), never through the counter's ``repr``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["OVERFLOW", "LabelTable", "Tally", "kept_values", "merge_first_seen"]

OVERFLOW = "__other__"
"""Label value that absorbs every value past a cardinality cap."""


class LabelTable:
    """The admitted values of one bounded label, each with the time it was first seen.

    Args:
        limit: distinct values admitted; later new values map to :data:`OVERFLOW`.
        free: values that are always admitted and never count against the limit (the overflow
            value itself is always free), e.g. the unmatched route or "no error".
        clock: wall-clock nanoseconds of first sight (tests pass a fake).
    """

    __slots__ = ("_clock", "_lock", "_seen", "free", "limit")

    def __init__(self, limit: int, free: Iterable[str] = (),
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.limit = limit
        self.free = frozenset((OVERFLOW, *free))
        self._clock = clock
        # admitted value -> first seen (ns); only ever inserted into, under the lock, so a
        # lock-free membership test never sees a value half-added
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, value: str) -> str:
        """Return ``value`` if it is (or can now be) admitted, else :data:`OVERFLOW`.

        ``value`` must already be a label value (:func:`mlprobe.stats._labels.label_value`).
        """
        if value in self._seen or value in self.free:
            return value
        with self._lock:
            seen = self._seen
            if value in seen:
                return value
            if len(seen) >= self.limit:
                return OVERFLOW
            seen[value] = self._clock()
            return value

    def first_seen(self) -> dict[str, int]:
        """A copy of the admitted values with their first-seen times (free values left out)."""
        with self._lock:
            return dict(self._seen)


def merge_first_seen(mine: dict[str, int], theirs: Mapping[str, int]) -> dict[str, int]:
    """Add ``theirs`` into ``mine`` (in place): the earlier time of each value wins."""
    for value, t in theirs.items():
        if value not in mine or t < mine[value]:
            mine[value] = t
    return mine


def kept_values(first_seen: Mapping[str, int], limit: int) -> set[str]:
    """The ``limit`` values seen first (ties broken by the value); the rest overflow."""
    if len(first_seen) <= limit:
        return set(first_seen)
    ordered = sorted(first_seen.items(), key=lambda item: (item[1], item[0]))
    return {value for value, _ in ordered[:limit]}


def capped(counts: Mapping[str, Any], first_seen: Mapping[str, int], limit: int,
           free: frozenset[str], add: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """``counts`` with every value past the cap folded into :data:`OVERFLOW` by ``add``.

    Used on merged states, whose union of values may exceed the limit each process kept to.
    """
    if sum(1 for v in first_seen if v not in free) <= limit:
        return dict(counts)
    keep = kept_values({v: t for v, t in first_seen.items() if v not in free}, limit) | free
    out: dict[str, Any] = {}
    for value, count in counts.items():
        target = value if value in keep else OVERFLOW
        out[target] = count if target not in out else add(out[target], count)
    return out


class Tally:
    """Per-slot counters incremented lock-free with ``next(tally.ticks[i])``.

    Reading takes a ticket: ``next()`` on the same counter returns how many tickets were
    drawn so far, increments and reads together; the reads are subtracted. So a read is exact
    and atomic without a lock on the increment side and without ``repr``.
    """

    __slots__ = ("_lock", "_reads", "ticks")

    def __init__(self, slots: int) -> None:
        self.ticks = [itertools.count() for _ in range(slots)]
        self._reads = [0] * slots
        self._lock = threading.Lock()  # serialises readers (each read draws one ticket)

    def value(self, slot: int) -> int:
        """How many times ``next(self.ticks[slot])`` was called by recorders."""
        with self._lock:
            n = next(self.ticks[slot]) - self._reads[slot]
            self._reads[slot] += 1
        return n

    def values(self) -> list[int]:
        """Every slot's count."""
        return [self.value(i) for i in range(len(self.ticks))]
