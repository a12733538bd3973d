"""Change detection on a bucketed loss stream: an ADWIN-style two-window test.

ADWIN (Bifet and Gavaldà, 2007) keeps a window of a stream and drops its older part when, at
some split, the means of the two parts differ by more than a Hoeffding/Bernstein bound. Here
the stream is bucketed in time (per-bucket count, sum and sum of squares of the loss: 0/1
error of a classifier, absolute error of a regressor), and the same test runs at collect time
on every bucket boundary of the history: for a split into an older part (``n0`` values, mean
``mu0``) and a recent part (``n1``, ``mu1``), with ``m = 1 / (1/n0 + 1/n1)``, the whole
history's variance ``s2`` and ``d = delta / splits`` (Bonferroni over the splits tested)::

    eps = sqrt(2 * s2 * ln(2/d) / m) + 2 * R * ln(2/d) / (3 * m)

and a change is detected where ``|mu1 - mu0| > eps``. ``R`` is the range of the loss: 1 for
0/1 errors (the Bernstein bound; the per-evaluation false-alarm rate is then at most
``delta``); for unbounded losses the second term is left out (a normal approximation).

Why this shape: bucket counts and sums merge exactly across processes and windows, so the
detector's state is mergeable by construction (the test runs once on the merged buckets), and
no NaN can reach it (invalid pairs are counted and dropped before they become buckets; a
single NaN silently disables River's ADWIN and Page-Hinkley). The measured false-alarm rate
on stable streams is in ``docs/quality.md`` (``benchmarks/bench_detector.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ChangeResult", "detect_change"]


@dataclass(frozen=True)
class ChangeResult:
    """The strongest change found in a bucketed history (or that none was).

    Attributes:
        detected: True when some split's mean difference exceeds its bound.
        direction: ``"increase"`` (the recent loss is higher: worse), ``"decrease"`` or ``""``.
        split: Buckets before the split of the strongest evidence (the recent part starts
            there).
        mean_before: Mean loss before that split.
        mean_after: Mean loss after it.
        epsilon: The bound at that split.
        score: ``|mean_after - mean_before| / epsilon`` (a change when above 1).
        n_before: Values before the split.
        n_after: Values after it.
    """

    detected: bool
    direction: str
    split: int
    mean_before: float
    mean_after: float
    epsilon: float
    score: float
    n_before: int
    n_after: int


def detect_change(counts: np.ndarray, sums: np.ndarray, squares: np.ndarray, *,
                  delta: float = 0.002, bounded: bool = True,
                  min_side: int = 30) -> ChangeResult | None:
    """Test every bucket boundary of a history for a change of the mean (module docstring).

    Args:
        counts: Values per bucket, oldest first.
        sums: Sum of the values per bucket.
        squares: Sum of the squared values per bucket.
        delta: Confidence parameter: the false-alarm probability per evaluation (bounded).
        bounded: The values lie in [0, 1] (0/1 errors): use the Bernstein term.
        min_side: Values each side of a split needs before it is tested.

    Returns:
        The split with the strongest evidence, or None when no split has ``min_side`` values
        on each side.
    """
    n = np.asarray(counts, dtype=np.float64)
    s = np.asarray(sums, dtype=np.float64)
    q = np.asarray(squares, dtype=np.float64)
    total = float(n.sum())
    if n.size < 2 or total < 2 * min_side:
        return None
    n0 = np.cumsum(n)[:-1]  # values before each boundary 1 .. B-1
    s0 = np.cumsum(s)[:-1]
    n1 = total - n0
    usable = (n0 >= min_side) & (n1 >= min_side)
    if not usable.any():
        return None
    mean = float(s.sum()) / total
    variance = max(float(q.sum()) / total - mean * mean, 0.0)
    splits = int(usable.sum())
    log_term = math.log(2.0 * splits / delta)
    n0, s0, n1 = n0[usable], s0[usable], n1[usable]
    mu0, mu1 = s0 / n0, (float(s.sum()) - s0) / n1
    m = 1.0 / (1.0 / n0 + 1.0 / n1)
    eps = np.sqrt(2.0 * variance * log_term / m)
    if bounded:
        eps = eps + 2.0 * log_term / (3.0 * m)
    diff = mu1 - mu0
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(eps > 0, np.abs(diff) / eps, np.where(diff != 0, np.inf, 0.0))
    best = int(np.argmax(score))
    detected = bool(score[best] > 1.0)
    direction = ("increase" if diff[best] > 0 else "decrease") if detected else ""
    boundary = int(np.flatnonzero(usable)[best]) + 1
    return ChangeResult(detected, direction, boundary, float(mu0[best]), float(mu1[best]),
                        float(eps[best]), float(score[best]), int(n0[best]), int(n1[best]))
