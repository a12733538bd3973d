"""Mergeable sums of a regression model's errors, and the metrics they give.

Every sum is exact (:mod:`mlprobe.stats._exact`), so merging the sums of split traffic gives
the metrics of one pass over it, bit for bit. The metrics are scikit-learn's definitions:
``mean_absolute_error``, ``root_mean_squared_error``, ``mean_absolute_percentage_error``
(``|e| / max(|y|, eps)`` with ``eps`` the float64 machine epsilon) and the bias
``mean(prediction - actual)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._exact import exact_sum, exact_to_float

__all__ = ["RegressionCounts"]

_SUMS = ("over", "under", "squared", "percentage")


class RegressionCounts:
    """Count and exact sums of errors ``e = prediction - actual`` of (prediction, actual) pairs.

    ``over`` and ``under`` are the sums of the positive and negative parts of ``e`` (so both
    only grow, and can be exported as counters): ``sum(|e|) = over + under`` and
    ``sum(e) = over - under``. ``squared`` is the sum of ``e**2``, ``percentage`` the sum of
    ``|e| / max(|y|, eps)``.
    """

    __slots__ = ("n", *_SUMS)

    def __init__(self) -> None:
        self.n = 0
        self.over = self.under = self.squared = self.percentage = 0

    @staticmethod
    def valid(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
        """Pairs whose every term is finite (a square past 1.3e154 overflows: not a pair the
        sums can hold, counted invalid by the caller)."""
        with np.errstate(over="ignore", invalid="ignore"):
            e = predicted - actual
            return np.isfinite(e) & np.isfinite(e * e)

    def add(self, predicted: np.ndarray, actual: np.ndarray) -> None:
        """Count pairs (finite float64 arrays of one length; see :meth:`valid`)."""
        if not predicted.size:
            return
        e = predicted - actual
        eps = np.finfo(np.float64).eps
        self.n += int(e.size)
        self.over += exact_sum(np.maximum(e, 0.0))
        self.under += exact_sum(np.maximum(-e, 0.0))
        self.squared += exact_sum(e * e)
        self.percentage += exact_sum(np.abs(e) / np.maximum(np.abs(actual), eps))

    def merge(self, other: RegressionCounts) -> RegressionCounts:
        """Add ``other`` into this one, in place."""
        self.n += other.n
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def copy(self) -> RegressionCounts:
        """An independent copy."""
        return RegressionCounts().merge(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the sums are integers in units of ``2**-SCALE_BITS``)."""
        return {"n": self.n, **{name: getattr(self, name) for name in _SUMS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegressionCounts:
        """Rebuild from :meth:`to_dict` output."""
        out = cls()
        out.n = int(data["n"])
        for name in _SUMS:
            setattr(out, name, int(data[name]))
        return out

    def sums(self) -> dict[str, float]:
        """The sums as floats (each rounded once): absolute, positive and negative error,
        squared error, absolute percentage error."""
        over, under = exact_to_float(self.over), exact_to_float(self.under)
        return {"absolute_error": exact_to_float(self.over + self.under),
                "over_error": over, "under_error": under,
                "squared_error": exact_to_float(self.squared),
                "absolute_percentage_error": exact_to_float(self.percentage)}

    def metrics(self) -> dict[str, float | None]:
        """MAE, RMSE, MAPE and bias; None while there is no pair."""
        n = self.n
        if not n:
            return {"mae": None, "rmse": None, "mape": None, "bias": None}
        return {"mae": exact_to_float(self.over + self.under, n),
                "rmse": math.sqrt(exact_to_float(self.squared, n)),
                "mape": exact_to_float(self.percentage, n),
                "bias": exact_to_float(self.over - self.under, n)}
