"""Exact, order-independent sums of floats, and fixed-point sums of scores.

Model-quality state must merge exactly: the sums of the errors of traffic split across k
workers, merged, must equal the sums of one pass over all of it, to the last bit of every
metric shown. Float addition is not associative, so float accumulators cannot promise that.
Two representations can:

* **Exact sums** (unbounded values: errors, squared errors, log losses). Every finite float64
  is an integer multiple of 2**-1074, so any sum of them is exactly ``T * 2**-SCALE_BITS`` for
  a Python integer ``T`` (a few hundred bits at most). Integer addition is exact and
  associative, so ``T`` does not depend on the order or grouping of the values; the metric
  rounds ``T`` once, correctly (:func:`exact_to_float`). :func:`exact_sum` computes ``T`` for a
  numpy batch with a handful of vectorised passes (split each value into mantissa and
  exponent, add mantissas per exponent with float64 ``bincount`` on 26-bit halves, which is
  exact, and shift the per-exponent totals together in Python).
* **Fixed-point sums** (scores in [0, 1] per histogram bin: calibration and label-free
  estimates). A score is rounded once to a multiple of ``2**-FIXED_BITS`` (an error below
  1.2e-10) and the integers are added in int64, exactly. :func:`fixed_point_bincount` does it
  per bin.

Pure numpy and the standard library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FIXED_BITS", "FIXED_ONE", "SCALE_BITS", "exact_scalar", "exact_sum",
           "exact_to_float", "fixed_point", "fixed_point_bincount"]

SCALE_BITS = 1126
"""An exact sum ``T`` stands for ``T * 2**-SCALE_BITS``: frexp's mantissa has 53 bits and the
smallest exponent of a float64 is -1073, so every finite value is an integer at this scale."""

_EXPONENTS = 2098  # frexp exponents -1073 .. 1024, shifted to 0 .. 2097
_HALF_BITS = 26
_HALF_MASK = (1 << _HALF_BITS) - 1
# float64 holds integers exactly up to 2**53; each half is below 2**27 in magnitude, so a
# bincount of at most 2**25 of them stays exact.
_CHUNK = 1 << 25

FIXED_BITS = 32
"""Fractional bits of a fixed-point score (resolution 2**-32, rounding error < 1.2e-10)."""

FIXED_ONE = 1 << FIXED_BITS
"""The fixed-point value of 1.0."""

_FIXED_CHUNK = 1 << 20
_SMALL = 32  # per-bin int sums of 2**20 values below 2**33 stay under 2**53


def exact_sum(values: Any) -> int:
    """Return ``T`` with ``sum(values) == T * 2**-SCALE_BITS`` exactly.

    Args:
        values: Finite float64 values (any shape). Callers drop NaN and infinities before:
            they have no exact value.

    Raises:
        ValueError: A value is not finite.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return 0
    if not np.isfinite(v).all():
        raise ValueError("exact_sum needs finite values")
    if v.size <= _SMALL:  # a few values: per value in Python beats the vectorised passes
        return sum(exact_scalar(x) for x in v.tolist())
    mantissa, exponent = np.frexp(v)  # v = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
    # mantissa * 2**53 is an integer for every float64 (53 significant bits at most), and
    # v = that integer * 2**(exponent - 53) = integer * 2**(exponent + 1073 - SCALE_BITS).
    whole = (mantissa * 9007199254740992.0).astype(np.int64)
    shift = exponent.astype(np.int64) + 1073
    high = (whole >> _HALF_BITS).astype(np.float64)  # floor division: whole = high*2**26 + low
    low = (whole & _HALF_MASK).astype(np.float64)
    total = 0
    for start in range(0, v.size, _CHUNK):
        part = slice(start, start + _CHUNK)
        highs = np.bincount(shift[part], weights=high[part], minlength=_EXPONENTS)
        lows = np.bincount(shift[part], weights=low[part], minlength=_EXPONENTS)
        for s in np.flatnonzero((highs != 0) | (lows != 0)).tolist():
            total += ((int(highs[s]) << _HALF_BITS) + int(lows[s])) << s
    return total


def exact_scalar(value: float) -> int:
    """``T`` of one finite float (the same integer :func:`exact_sum` gives for it alone)."""
    numerator, denominator = float(value).as_integer_ratio()
    # the denominator is a power of two, at most 2**1074
    return numerator << (SCALE_BITS - denominator.bit_length() + 1)


def exact_to_float(total: int, count: int = 1) -> float:
    """``total * 2**-SCALE_BITS / count``, correctly rounded (inf when out of range)."""
    try:
        return total / (count << SCALE_BITS)  # int / int: one correctly rounded division
    except OverflowError:
        return float("inf") if total > 0 else float("-inf")


def fixed_point(scores: Any) -> np.ndarray:
    """Scores in [0, 1] as int64 multiples of ``2**-FIXED_BITS`` (rounded to nearest)."""
    return np.rint(np.asarray(scores, dtype=np.float64) * float(FIXED_ONE)).astype(np.int64)


def fixed_point_bincount(index: np.ndarray, scores: np.ndarray, minlength: int) -> np.ndarray:
    """Per-bin int64 sums of fixed-point ``scores`` (each in [0, 1]) by bin ``index``."""
    fixed = fixed_point(scores)
    out = np.zeros(minlength, dtype=np.int64)
    for start in range(0, fixed.size, _FIXED_CHUNK):
        part = slice(start, start + _FIXED_CHUNK)
        out += np.bincount(index[part], weights=fixed[part],
                           minlength=minlength).astype(np.int64)
    return out
