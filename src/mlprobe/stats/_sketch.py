"""A mergeable, deterministic quantile sketch with relative accuracy (DDSketch-style)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["QuantileSketch", "subbucket_bits"]


def subbucket_bits(alpha: float) -> int:
    """Mantissa bits ``s`` of the log-linear mapping: the smallest with ``2^-(s+1) <= alpha``."""
    return max(0, math.ceil(math.log2(1.0 / alpha)) - 1)


class _Store:
    """Dense counts over consecutive integer bucket indices ``offset .. offset + len - 1``."""

    __slots__ = ("offset", "counts")

    def __init__(self) -> None:
        self.offset = 0
        self.counts = np.zeros(0, dtype=np.int64)

    def add_dense(self, lo: int, cnt: np.ndarray) -> None:
        """Add counts for the consecutive indices ``lo .. lo + len(cnt) - 1`` (one slice add)."""
        hi = lo + cnt.size - 1
        self._grow(lo, hi)
        start = lo - self.offset
        self.counts[start:start + cnt.size] += cnt

    def _grow(self, lo: int, hi: int) -> None:
        # Grow the dense array so it covers [lo, hi] as well as what it covers already.
        if self.counts.size == 0:
            new_lo, new_hi = lo, hi
        else:
            new_lo = min(lo, self.offset)
            new_hi = max(hi, self.offset + self.counts.size - 1)
        if self.counts.size == 0 or new_lo != self.offset or new_hi != self.offset + self.counts.size - 1:
            grown = np.zeros(new_hi - new_lo + 1, dtype=np.int64)
            if self.counts.size:
                start = self.offset - new_lo
                grown[start:start + self.counts.size] = self.counts
            self.offset, self.counts = new_lo, grown

    def collapse(self, max_buckets: int) -> None:
        # Fold every bucket below (top index - max_buckets + 1) into that bucket. The floor
        # depends only on the highest index ever seen, so collapsing is the same whatever the
        # order of updates and merges: merge(a, b) equals one pass over a ∪ b exactly.
        n = self.counts.size
        if n <= max_buckets:
            return
        cut = n - max_buckets
        folded = int(self.counts[:cut + 1].sum())
        self.counts = self.counts[cut:].copy()
        self.counts[0] = folded
        self.offset += cut

    def copy(self) -> _Store:
        out = _Store()
        out.offset, out.counts = self.offset, self.counts.copy()
        return out

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        return {"offset": self.offset,
                "counts": self.counts.copy() if arrays else self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Store:
        out = cls()
        out.offset = int(data["offset"])
        out.counts = np.array(data["counts"], dtype=np.int64)  # a copy the store owns
        if out.counts.ndim != 1:
            raise ValueError("sketch counts must be one-dimensional")
        return out


class QuantileSketch:
    """Quantiles with relative error at most ``alpha``, in bounded memory, exactly mergeable.

    A DDSketch (Masson, Rim & Lee, VLDB 2019) with the *log-linear* index mapping: a
    magnitude's bucket is its IEEE-754 bit pattern shifted right, ``bits >> (52 - s)``, i.e.
    its binary exponent followed by the top ``s`` mantissa bits. Each octave ``[2^e, 2^(e+1))``
    is therefore split into ``2^s`` equal-width buckets, whose relative width is at most
    ``2^-s``; a bucket is reported as its midpoint, which is within ``2^-(s+1)`` (relative) of
    every value in it. ``s`` is the smallest with ``2^-(s+1) <= alpha`` (``s = 6``, 0.78%,
    for the default 1%). Why not the logarithmic mapping: computing ``log`` costs about ten
    times more per value than a shift (this is the per-row hot path), for about 1.85 times
    fewer buckets at equal accuracy (the DDSketch paper's "linearly interpolated" mapping
    makes the same trade).

    Positive and negative values have their own stores; ``|x| < min_value`` counts as zero.
    Guarantee: for ``n`` values and ``q`` in [0, 1], :meth:`quantile` returns ``x̂`` with
    ``|x̂ - x| <= alpha * |x|`` where ``x`` is the value of rank ``floor(q * (n - 1))``
    (``np.quantile(..., method="lower")``), as long as that value is not in a collapsed
    bucket (see below) and ``|x| >= min_value``. Estimates are clamped to the exact min/max.

    Each store keeps at most ``max_buckets`` buckets: when wider, its lowest-magnitude buckets
    fold into one, so the *small-magnitude* end loses accuracy first (with the defaults,
    alpha = 0.01 and 4096 buckets, 64 octaves fit: values spanning 1e-9..1e9 do not
    collapse). Memory is dense over the range actually seen, not over ``max_buckets``.
    Everything is deterministic; merging two sketches with the same parameters gives exactly
    the sketch of one pass over both inputs.

    Args:
        alpha: Relative accuracy, in (0, 1).
        max_buckets: Maximum buckets per sign store (>= 16).
        min_value: Magnitudes below this are counted as zero.

    Raises:
        ValueError: On parameters out of range.
    """

    __slots__ = ("alpha", "max_buckets", "min_value", "_shift", "_zero_band", "count", "zero",
                 "min", "max", "_pos", "_neg")

    def __init__(self, alpha: float = 0.01, max_buckets: int = 4096,
                 min_value: float = 1e-12) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if max_buckets < 16:
            raise ValueError("max_buckets must be >= 16")
        if not min_value > 0.0:
            raise ValueError("min_value must be > 0")
        self.alpha = float(alpha)
        self.max_buckets = int(max_buckets)
        self.min_value = float(min_value)
        self._shift = 52 - subbucket_bits(self.alpha)
        self._zero_band = np.array([np.nextafter(-self.min_value, np.inf), self.min_value])
        self.count = 0
        self.zero = 0
        self.min = math.inf
        self.max = -math.inf
        self._pos = _Store()
        self._neg = _Store()

    def _add(self, store: _Store, mags: np.ndarray, smallest: int) -> None:
        # ``smallest`` is the lowest bucket index of the batch (its smallest magnitude's).
        idx = mags.view(np.int64) >> self._shift
        # bincount over the batch's own index range: one pass, no Python loop over rows;
        # the result is dense over [lo, hi], so it is added to the store as one slice.
        store.add_dense(smallest, np.bincount(idx - smallest))
        store.collapse(self.max_buckets)

    def update(self, values: np.ndarray) -> None:
        """Add a batch of float64 values (non-finite values are ignored as a guard)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size and not np.isfinite(v).all():
            v = v[np.isfinite(v)]
        if v.size == 0:
            return
        self.update_sorted(np.sort(v))

    def update_sorted(self, v: np.ndarray) -> None:
        """Add a non-empty, sorted batch of finite float64 values.

        Sorted input needs no masks: negatives, zeros and positives are three slices, and
        each slice's smallest magnitude is at one end. The serving side sorts each batch
        once for all its summaries.
        """
        n = int(v.size)
        self.count += n
        self.min = min(self.min, float(v[0]))
        self.max = max(self.max, float(v[-1]))
        # #{v <= -min_value} and #{v < min_value}
        neg_end, pos_start = np.searchsorted(v, self._zero_band, side="left").tolist()
        self.zero += pos_start - neg_end
        if neg_end:
            mags = -v[:neg_end]  # descending magnitudes: the smallest is last
            self._add(self._neg, mags, int(mags[-1:].view(np.int64)[0]) >> self._shift)
        if pos_start < n:
            mags = v[pos_start:]
            self._add(self._pos, mags, int(mags[:1].view(np.int64)[0]) >> self._shift)

    def _check_compatible(self, other: QuantileSketch) -> None:
        if (other.alpha, other.max_buckets, other.min_value) != (
            self.alpha, self.max_buckets, self.min_value
        ):
            raise ValueError("cannot merge sketches with different parameters")

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """Add another sketch into this one, in place; returns ``self``.

        Raises:
            ValueError: If the parameters differ.
        """
        self._check_compatible(other)
        if other.count == 0:
            return self
        for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg)):
            if theirs.counts.size:
                mine.add_dense(theirs.offset, theirs.counts)
                mine.collapse(self.max_buckets)
        self.count += other.count
        self.zero += other.zero
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def copy(self) -> QuantileSketch:
        """Return an independent copy."""
        out = QuantileSketch.__new__(QuantileSketch)  # parameters are already validated
        out.alpha, out.max_buckets, out.min_value = self.alpha, self.max_buckets, self.min_value
        out._shift, out._zero_band = self._shift, self._zero_band
        out.count, out.zero, out.min, out.max = self.count, self.zero, self.min, self.max
        out._pos, out._neg = self._pos.copy(), self._neg.copy()
        return out

    def quantile(self, q: float | np.ndarray) -> float | np.ndarray:
        """Estimate quantile(s) ``q`` in [0, 1]; NaN when the sketch is empty.

        Args:
            q: A scalar or an array of levels.

        Returns:
            A float for a scalar ``q``, else an array of the same shape.

        Raises:
            ValueError: If a level is outside [0, 1].
        """
        qa = np.asarray(q, dtype=np.float64)
        if np.any((qa < 0) | (qa > 1)) or np.isnan(qa).any():
            raise ValueError("quantile levels must be in [0, 1]")
        if self.count == 0:
            out = np.full(qa.shape, np.nan)
            return float(out) if out.ndim == 0 else out
        neg, pos = self._neg, self._pos
        # Buckets in increasing value order: negatives from the largest magnitude down, the
        # zero bucket, then positives upwards.
        values = np.concatenate([-self._midpoints(neg)[::-1], [0.0], self._midpoints(pos)])
        counts = np.concatenate([neg.counts[::-1], [self.zero], pos.counts])
        cum = np.cumsum(counts)
        rank = np.floor(qa * (self.count - 1))
        where = np.searchsorted(cum, rank, side="right")
        out = np.clip(values[np.minimum(where, values.size - 1)], self.min, self.max)
        # The extremes are known exactly; report them rather than their bucket's midpoint.
        out = np.where(qa == 0.0, self.min, np.where(qa == 1.0, self.max, out))
        return float(out) if out.ndim == 0 else out

    def _midpoints(self, store: _Store) -> np.ndarray:
        # Bucket k holds the magnitudes whose bits lie in [k << shift, (k + 1) << shift).
        k = np.arange(store.offset, store.offset + store.counts.size + 1, dtype=np.int64)
        bounds = (k << self._shift).view(np.float64)
        # Halved before adding: (a + b) / 2 overflows (with a RuntimeWarning) for the buckets
        # near the largest double; a / 2 + b / 2 is exact here (powers of two apart).
        return bounds[:-1] / 2.0 + bounds[1:] / 2.0

    def to_dict(self, *, arrays: bool = False) -> dict[str, Any]:
        """Return a JSON-ready dict (``arrays=True``: bucket counts as numpy arrays)."""
        empty = self.count == 0
        return {
            "mapping": "log-linear", "subbucket_bits": 52 - self._shift,
            "alpha": self.alpha, "max_buckets": self.max_buckets, "min_value": self.min_value,
            "count": self.count, "zero": self.zero,
            "min": None if empty else self.min, "max": None if empty else self.max,
            "positive": self._pos.to_dict(arrays), "negative": self._neg.to_dict(arrays),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileSketch:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: For a sketch written with another index mapping.
        """
        if data.get("mapping") != "log-linear":
            raise ValueError(f"unsupported sketch mapping {data.get('mapping')!r}")
        out = cls(float(data["alpha"]), int(data["max_buckets"]), float(data["min_value"]))
        out.count = int(data["count"])
        out.zero = int(data["zero"])
        if out.count:
            out.min, out.max = float(data["min"]), float(data["max"])
        out._pos = _Store.from_dict(data["positive"])
        out._neg = _Store.from_dict(data["negative"])
        return out

    def __repr__(self) -> str:
        return f"QuantileSketch(alpha={self.alpha}, count={self.count})"
