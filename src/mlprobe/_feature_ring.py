"""The live ring of a feature monitor: sub-buckets on wall-clock boundaries, and expired totals.

Sub-bucket ``i`` holds what was ingested while ``floor(clock() / bucket_seconds) == i``. The
clock is the wall clock (``time.time``), so the same index means the same span of time in every
process and the rings of several processes merge sub-bucket by sub-bucket
(:mod:`mlprobe._feature_state`). Indices never go backwards: a wall clock stepped back keeps
filling the newest sub-bucket rather than reopening an old one, and a sub-bucket once handed
out as closed is never written again (closed sub-buckets are shared by states without copies).

A sub-bucket leaving the window is added into the expired totals once. The totals object is
replaced, never changed in place (copy on write), so a state may hold it without a copy; each
replacement is a new *generation*.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable

import numpy as np

from ._feature_state import Part
from ._window import DatasetWindow

__all__ = ["Ring"]


class Ring:
    """Sub-buckets of a rolling window plus the totals of everything that left it.

    Args:
        template: an empty window (profile, sketch setting) that new buckets copy.
        bucket_seconds: span of one sub-bucket; ``sub_buckets`` of them make the window.
        clock: wall-clock seconds (tests pass a fake).
    """

    def __init__(self, template: DatasetWindow, bucket_seconds: float, sub_buckets: int,
                 clock: Callable[[], float]) -> None:
        self.template = template
        self.bucket_seconds = bucket_seconds
        self.sub_buckets = sub_buckets
        self.clock = clock
        self.lock = threading.Lock()  # serialises changes to the ring and reads of it
        self.buckets: deque[tuple[int, DatasetWindow]] = deque()
        self._expired = template.copy()
        self._generation = 0
        self._closed_through = -(2**62)  # highest index handed out as closed
        # Prefix of this ring's part uids: random, so parts of rings of different processes
        # (or of one process before and after a reset) never share a uid.
        self._token = uuid.uuid4().hex[:12]

    def index_now(self) -> int:
        """The sub-bucket index of the current time."""
        return int(self.clock() // self.bucket_seconds)

    def add(self, delta: DatasetWindow) -> None:
        """Add an ingested batch to the current sub-bucket (``delta`` becomes it if new)."""
        with self.lock, np.errstate(over="ignore", invalid="ignore"):  # see _features._ingest
            index = self.index_now()
            if self.buckets:
                index = max(index, self.buckets[-1][0])
            index = max(index, self._closed_through + 1)
            if self.buckets and self.buckets[-1][0] == index:
                self.buckets[-1][1].merge(delta)
            else:  # the first ingest of a sub-bucket becomes the sub-bucket: no merge
                self.buckets.append((index, delta))
                self._expire(index)

    def _expire(self, now_index: int) -> None:
        # A sub-bucket leaving the window is folded into the totals once (lock held), so the
        # totals cost one merge per sub-bucket lifetime instead of one per collect.
        if self.buckets and self.buckets[0][0] <= now_index - self.sub_buckets:
            expired = self._expired.copy()
            while self.buckets and self.buckets[0][0] <= now_index - self.sub_buckets:
                expired.merge(self.buckets.popleft()[1])
            self._expired = expired
            self._generation += 1

    def parts(self) -> tuple[dict[int, list[Part]], list[Part]]:
        """The sub-buckets and expired totals as parts of a state (see the module docstring):
        closed sub-buckets and the totals shared (they never change), the open one copied."""
        with self.lock, np.errstate(over="ignore", invalid="ignore"):
            now = self.index_now()
            self._expire(now)
            buckets: dict[int, list[Part]] = {}
            for index, window in self.buckets:
                if index < now:
                    self._closed_through = max(self._closed_through, index)
                    buckets[index] = [(f"{self._token}b{index}", window)]
                else:
                    buckets[index] = [(None, window.copy())]
            return buckets, [(f"{self._token}e{self._generation}", self._expired)]
