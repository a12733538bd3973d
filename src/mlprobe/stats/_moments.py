"""Streaming moments: count, mean, M2 (Chan et al.), min and max, mergeable exactly for counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["Moments"]


class Moments:
    """Count, mean, second central moment, min and max of a numeric stream.

    Batches are folded in with Chan, Golub & LeVeque's pairwise update, so merging two
    summaries gives the same count, min and max as one pass over the union, and the same mean
    and variance up to floating-point rounding (no catastrophic cancellation: it never forms
    ``sum(x**2) - n*mean**2``).

    Non-finite values are dropped by :meth:`update` as a guard; callers are expected to filter
    and count them (as missing or invalid) before.

    Example:
        >>> m = Moments()
        >>> m.update(np.array([1.0, 2.0, 3.0]))
        >>> m.mean, m.variance(ddof=1)
        (2.0, 1.0)
    """

    __slots__ = ("count", "mean", "m2", "min", "max")

    def __init__(self) -> None:
        self.count: int = 0
        self.mean: float = 0.0
        self.m2: float = 0.0
        self.min: float = math.inf
        self.max: float = -math.inf

    def update(self, values: np.ndarray) -> None:
        """Fold a batch of float64 values in (one vectorised pass).

        Args:
            values: 1-D array of numbers; NaN and ±inf are ignored.
        """
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size and not np.isfinite(v).all():
            v = v[np.isfinite(v)]
        n = int(v.size)
        if n == 0:
            return
        b_mean = float(v.mean())
        d = v - b_mean
        b_m2 = float(np.einsum("i,i->", d, d))  # not np.dot: see _window._sum_sq_dev
        self.add_summary(n, b_mean, b_m2, float(v.min()), float(v.max()))

    def add_summary(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        """Fold in a batch given by its count, mean, M2, min and max (computed elsewhere,
        e.g. for many features at once along one axis of a matrix)."""
        if n == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2, self.min, self.max = n, mean, m2, lo, hi
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def merge(self, other: Moments) -> Moments:
        """Fold another summary into this one, in place.

        Args:
            other: The summary to add; it is not modified.

        Returns:
            ``self``, so merges can be chained.
        """
        self.add_summary(other.count, other.mean, other.m2, other.min, other.max)
        return self

    def copy(self) -> Moments:
        """Return an independent copy."""
        out = Moments()
        out.count, out.mean, out.m2, out.min, out.max = (
            self.count, self.mean, self.m2, self.min, self.max,
        )
        return out

    def variance(self, ddof: int = 0) -> float:
        """Return the variance (population for ``ddof=0``); NaN when ``count <= ddof``."""
        if self.count <= ddof:
            return math.nan
        return max(self.m2, 0.0) / (self.count - ddof)

    def std(self, ddof: int = 0) -> float:
        """Return the standard deviation (population for ``ddof=0``); NaN when ``count <= ddof``."""
        return math.sqrt(self.variance(ddof))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (min/max are ``None`` while empty)."""
        empty = self.count == 0
        return {
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "min": None if empty else self.min,
            "max": None if empty else self.max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        """Rebuild a summary from :meth:`to_dict` output."""
        out = cls()
        out.count = int(data["count"])
        if out.count:
            out.mean = float(data["mean"])
            out.m2 = float(data["m2"])
            out.min = float(data["min"])
            out.max = float(data["max"])
        return out

    def __repr__(self) -> str:
        return f"Moments(count={self.count}, mean={self.mean:.6g}, std={self.std():.6g})"
