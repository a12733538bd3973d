"""Exact sums of floats, for merging histogram sums across processes.

A histogram's ``_sum`` is a counter to Prometheus: ``rate()`` reads any decrease as a reset.
Merged with plain float additions, the total would depend on the order of the additions, so
two workers answering scrapes (or the same worker before and after a dead worker's counts move
into the archive) could report totals one rounding apart, sometimes downwards. Merged sums are
therefore kept exact and rounded once when reported: the same value whoever merges, in
whatever order, and never below an earlier value when no term decreased.

The arithmetic is :mod:`mlprobe.stats._exact`'s (the model-quality sums): an exact sum is the
integer ``T`` of ``T * 2**-SCALE_BITS``, held in an :class:`Exact` so it is never mistaken for a
plain number. Within one process a sum stays a float (added as it always was); it becomes
exact when merged. Infinite or NaN terms have no exact value: they fall back to float addition.

Plain data form: a float, or ``[numerator, denominator]`` (a power of two) for an exact sum.
"""

from __future__ import annotations

import math
from typing import Any, Union

from .stats._exact import SCALE_BITS, exact_scalar, exact_to_float

__all__ = ["Exact", "ExactSum", "add", "from_plain", "to_float", "to_plain"]


class Exact:
    """An exact sum: ``scaled * 2**-SCALE_BITS``. No arithmetic: use :func:`add`."""

    __slots__ = ("scaled",)

    def __init__(self, scaled: int) -> None:
        self.scaled = scaled

    def __eq__(self, other: object) -> bool:
        return type(other) is Exact and other.scaled == self.scaled

    def __hash__(self) -> int:
        return hash(self.scaled)

    def __repr__(self) -> str:
        return f"Exact({exact_to_float(self.scaled)!r})"


ExactSum = Union[float, Exact]


def _scaled(value: ExactSum) -> int:
    return value.scaled if type(value) is Exact else exact_scalar(value)  # type: ignore[union-attr]


def add(a: ExactSum, b: ExactSum) -> ExactSum:
    """``a + b`` exactly (an :class:`Exact`) when both are finite, else as floats."""
    if (type(a) is float and not math.isfinite(a)) or (type(b) is float and not math.isfinite(b)):
        return to_float(a) + to_float(b)
    return Exact(_scaled(a) + _scaled(b))


def to_float(value: ExactSum) -> float:
    """The value, rounded once to the nearest float (``±inf`` beyond the float range)."""
    if type(value) is Exact:
        return exact_to_float(value.scaled)
    return float(value)


def to_plain(value: ExactSum) -> Any:
    """Plain data: the float, or ``[numerator, denominator]`` in lowest terms."""
    if type(value) is not Exact:
        return float(value)
    scaled = value.scaled
    if scaled == 0:
        return [0, 1]
    # the denominator is a power of two: drop the factors of two the numerator shares with it
    shift = min((scaled & -scaled).bit_length() - 1, SCALE_BITS)
    return [scaled >> shift, 1 << (SCALE_BITS - shift)]


def from_plain(data: Any) -> ExactSum:
    """Read :func:`to_plain` output (``ValueError``/``TypeError`` if malformed)."""
    if isinstance(data, (list, tuple)):
        numerator, denominator = data
        numerator, denominator = int(numerator), int(denominator)
        bits = denominator.bit_length() - 1
        if denominator <= 0 or denominator != 1 << bits or bits > SCALE_BITS:
            raise ValueError(f"an exact sum's denominator must be a power of two up to "
                             f"2**{SCALE_BITS}, got {denominator}")
        return Exact(numerator << (SCALE_BITS - bits))
    return float(data)
