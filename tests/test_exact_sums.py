"""Merged histogram sums (mlprobe._exact) against rational arithmetic (fractions.Fraction).

Oracle: the exact rational sum of the same floats; tolerance none (the merged value is the
correctly rounded float of that sum, bit for bit).
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlprobe import _exact

finite = st.floats(allow_nan=False, allow_infinity=False)


def _merge(values: list[float]) -> _exact.ExactSum:
    total: _exact.ExactSum = values[0]
    for v in values[1:]:
        total = _exact.add(total, v)
    return total


@given(st.lists(finite, min_size=2, max_size=30), st.randoms(use_true_random=False))
@settings(max_examples=200)
def test_merged_sum_is_the_rounded_rational_sum_in_any_order(values, rng: random.Random):
    """Merged in any order, the sum reads back as the float nearest the rational sum."""
    exact = sum((Fraction(v) for v in values), Fraction(0))
    shuffled = list(values)
    rng.shuffle(shuffled)
    first, second = _merge(values), _merge(shuffled)
    assert first == second
    if abs(exact) < 1e307:  # within the float range, the correctly rounded quotient
        assert _exact.to_float(first) == float(exact)


@given(st.lists(finite, min_size=2, max_size=10))
@settings(max_examples=200)
def test_plain_form_is_the_fraction_in_lowest_terms_and_round_trips(values):
    """to_plain gives [numerator, denominator] of the rational sum; from_plain reads it back."""
    total = _merge(values)
    exact = sum((Fraction(v) for v in values), Fraction(0))
    assert _exact.to_plain(total) == [exact.numerator, exact.denominator]
    assert _exact.from_plain(_exact.to_plain(total)) == total
    assert _exact.from_plain(0.25) == 0.25


def test_a_merged_sum_beyond_the_float_range_reads_as_infinity():
    """Two finite sums whose exact total exceeds the largest float report inf, not an error."""
    assert _exact.to_float(_exact.add(1e308, 1e308)) == float("inf")
    assert _exact.to_float(_exact.add(-1e308, -1e308)) == float("-inf")


def test_non_finite_terms_fall_back_to_float_addition():
    """An infinite term makes the sum a float infinity, whichever side it is on."""
    exact = _exact.add(0.5, 0.25)
    assert _exact.add(exact, float("inf")) == float("inf")
    assert _exact.add(float("-inf"), exact) == float("-inf")


@pytest.mark.parametrize("plain", [[1, 0], [1, 3], [1, -2], [1, 2 ** 2000]])
def test_malformed_plain_sums_raise_value_error(plain):
    """A denominator that is not a power of two an exact sum can have is refused (ValueError,
    which the merger counts as an unreadable state)."""
    with pytest.raises(ValueError):
        _exact.from_plain(plain)
