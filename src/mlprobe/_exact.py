"""Exact sums of floats, for merging histogram sums across processes.

A histogram's ``_sum`` is a counter to Prometheus: ``rate()`` reads any decrease as a reset.
Merged with plain float additions, the total would depend on the order of the additions, so
two workers answering scrapes (or the same worker before and after a dead worker's counts move
into the archive) could report totals one rounding apart, sometimes downwards. Merged sums are
therefore kept exact (:class:`fractions.Fraction`, exact for every finite float) and rounded
once when reported: the same value whoever merges, in whatever order, and never below an
earlier value when no term decreased. Infinite or NaN terms fall back to float addition.

Plain data form: a float, or ``[numerator, denominator]`` for an exact sum.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Union

__all__ = ["ExactSum", "add", "from_plain", "to_float", "to_plain"]

ExactSum = Union[float, Fraction]


def add(a: ExactSum, b: ExactSum) -> ExactSum:
    """``a + b`` exactly (a Fraction) when both are finite, else as floats."""
    if (type(a) is float and not math.isfinite(a)) or (type(b) is float and not math.isfinite(b)):
        return float(a) + float(b)
    return Fraction(a) + Fraction(b)


def to_float(value: ExactSum) -> float:
    """The value, rounded once to the nearest float."""
    return float(value)


def to_plain(value: ExactSum) -> Any:
    """Plain data: the float, or ``[numerator, denominator]``."""
    if type(value) is Fraction:
        return [value.numerator, value.denominator]
    return float(value)


def from_plain(data: Any) -> ExactSum:
    """Read :func:`to_plain` output (``ValueError``/``TypeError`` if malformed)."""
    if isinstance(data, (list, tuple)):
        numerator, denominator = data
        return Fraction(int(numerator), int(denominator))
    return float(data)
