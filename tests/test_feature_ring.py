"""The feature ring (mlprobe._feature_ring) under a fake wall clock: sub-buckets on clock
boundaries, never reopened, expired into totals once per generation."""

from __future__ import annotations

from profiles import small_profile

from mlprobe._feature_ring import Ring
from mlprobe._window import DatasetWindow

TEMPLATE = DatasetWindow(small_profile())


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _rows(n: int) -> DatasetWindow:
    delta = TEMPLATE.copy()
    delta.update({"a": [1.0] * n, "c": ["x"] * n})
    return delta


def _ring(clock: Clock) -> Ring:
    return Ring(TEMPLATE, bucket_seconds=60.0, sub_buckets=3, clock=clock)


def test_a_clock_stepped_back_fills_the_newest_sub_bucket():
    """Rows ingested after the wall clock went back land in the newest sub-bucket, not in a
    new older one."""
    clock = Clock(600.0)  # index 10
    ring = _ring(clock)
    ring.add(_rows(1))
    clock.t = 480.0  # index 8
    ring.add(_rows(2))
    assert [(i, w.rows) for i, w in ring.buckets] == [(10, 3)]


def test_a_sub_bucket_handed_out_as_closed_is_never_written_again():
    """Once parts() has shared a sub-bucket as closed (it has a uid), rows ingested with the
    clock back in its span go to a later sub-bucket and the shared window stays as it was."""
    clock = Clock(600.0)
    ring = _ring(clock)
    ring.add(_rows(1))
    clock.t = 660.0  # index 11: sub-bucket 10 is closed
    buckets, _ = ring.parts()
    [(uid, closed)] = buckets[10]
    assert uid is not None and closed.rows == 1
    clock.t = 630.0  # back in sub-bucket 10's span
    ring.add(_rows(2))
    assert closed.rows == 1
    assert [(i, w.rows) for i, w in ring.buckets] == [(10, 1), (11, 2)]


def test_the_open_sub_bucket_is_copied_and_expired_ones_fold_once_per_generation():
    """parts() copies the open sub-bucket (no uid); a sub-bucket leaving the window moves into
    the expired totals, which get a new uid (generation) each time they change."""
    clock = Clock(600.0)
    ring = _ring(clock)
    ring.add(_rows(1))
    buckets, [(first_uid, expired)] = ring.parts()
    [(uid, open_copy)] = buckets[10]
    assert uid is None and open_copy is not ring.buckets[-1][1]
    assert expired.rows == 0
    clock.t = 600.0 + 3 * 60  # index 13: sub-bucket 10 has left the 3-bucket window
    ring.add(_rows(4))
    buckets, [(uid, expired)] = ring.parts()
    assert sorted(buckets) == [13] and expired.rows == 1 and uid != first_uid
    assert ring.parts()[1][0][0] == uid  # unchanged totals keep their uid
