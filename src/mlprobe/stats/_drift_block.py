"""Numeric drift statistics for many features at once: PSI, JS, binned KS and Wasserstein.

:mod:`mlprobe.stats.drift` has the one-feature definitions (and their oracle tests). At
collect time a model with 100 features would call them 100 times, at about 60 small numpy
calls each; here every feature is one row of a padded matrix and each statistic is a few
calls along one axis. Padding is chosen so it cannot change a result: padded bins hold zero
on both sides and have zero width, so they add nothing to PSI (both floored to the same
epsilon), JS, the KS maximum (the cumulative shares stay flat) or the Wasserstein area.
``tests/test_drift_block.py`` checks every statistic against the one-feature functions.

Pure statistics over arrays, like the rest of :mod:`mlprobe.stats`: a feature is described by
its fine-bin proportions, edges, coarse groups and tails, not by a profile or a window (the
adapter from those lives in core, ``mlprobe/_drift_block.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["NumericReferenceBlock", "numeric_drift_block"]


class NumericReferenceBlock:
    """The reference side of :func:`numeric_drift_block`, padded into matrices once.

    Row ``i`` is one feature's reference on its fine bins ``(-inf, e_0), [e_0, e_1), ...,
    [e_last, inf)``. Every argument has one entry per feature, in the same order.

    Args:
        proportions: Reference share of each fine bin (at least two bins: one edge).
        edges: Interior edges, one fewer than bins.
        groups: Coarse (decile) bin index of each fine bin, for PSI and JS (see
            :func:`~mlprobe.stats._histogram.coarse_groups`).
        minimum: Smallest reference value.
        maximum: Largest reference value.
        outer_means: Mean reference value in the lower and upper open bins (NaN when empty).
        step: True when each bin's mass sits at its left edge (a discrete feature, one bin per
            value), False when it is spread uniformly over the bin.
    """

    def __init__(self, *, proportions: Sequence[np.ndarray], edges: Sequence[np.ndarray],
                 groups: Sequence[np.ndarray], minimum: ArrayLike, maximum: ArrayLike,
                 outer_means: ArrayLike, step: ArrayLike) -> None:
        k = len(proportions)
        width = max(p.size for p in proportions)  # fine bins
        n_groups = max(int(g.max()) + 1 for g in groups)
        self.n_bins = np.array([p.size for p in proportions])
        self.proportions = np.zeros((k, width))
        group_index = np.zeros((k, width), dtype=np.int64)
        self.inner_edges = np.zeros((k, width - 1))
        for i, (p, e, g) in enumerate(zip(proportions, edges, groups)):
            n = p.size
            self.proportions[i, :n] = p
            group_index[i, :n] = g
            group_index[i, n:] = g[-1]  # padded bins hold zero: any group will do
            self.inner_edges[i, : n - 1] = e
            self.inner_edges[i, n - 1:] = e[-1]  # replaced by each call's ``hi``
        # Flat bincount index of every (feature, fine bin) into (feature, decile group).
        self._group_flat = (np.arange(k)[:, None] * n_groups + group_index).ravel()
        self.n_groups = n_groups
        self.deciles = self.decile_counts(self.proportions)
        self.cdf = np.cumsum(self.proportions, axis=1)
        self.first_edge = np.array([e[0] for e in edges])
        self.last_edge = np.array([e[-1] for e in edges])
        self.min = np.array(minimum, dtype=np.float64)
        self.max = np.array(maximum, dtype=np.float64)
        self.outer_means = np.nan_to_num(np.array(outer_means, dtype=np.float64), nan=0.0)
        self.step = np.array(step, dtype=bool)
        # Boundaries at or after each row's upper end: they are set to that row's ``hi``,
        # so padded bins have exactly zero width.
        self.padded_boundary = np.arange(width + 1)[None, :] >= self.n_bins[:, None]

    def decile_counts(self, fine: np.ndarray) -> np.ndarray:
        """Sum ``(features, fine bins)`` counts into ``(features, decile groups)``."""
        k = fine.shape[0]
        return np.bincount(self._group_flat, weights=fine.ravel(),
                           minlength=k * self.n_groups).reshape(k, self.n_groups)


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def numeric_drift_block(block: NumericReferenceBlock, counts: Sequence[np.ndarray], *,
                        minimum: ArrayLike, maximum: ArrayLike, outer_means: ArrayLike,
                        eps: np.ndarray, js_base: np.ndarray) -> dict[str, np.ndarray]:
    """PSI, JS, binned KS (with its bound) and Wasserstein for every row of ``block``.

    Args:
        block: The reference side; row ``i`` belongs to the ``i``-th current entries.
        counts: Current counts on each feature's fine bins, each with at least one value.
        minimum: Smallest current value per feature.
        maximum: Largest current value per feature.
        outer_means: Mean current value in the lower and upper open bins, ``(features, 2)``
            (NaN when empty).
        eps: PSI floor per feature.
        js_base: Jensen-Shannon log base per feature.

    Returns:
        Arrays of one value per feature under ``psi``, ``js``, ``ks``, ``ks_bound`` and
        ``wasserstein`` (in the feature's units, not yet normalised).
    """
    k, width = block.proportions.shape
    current = np.zeros((k, width))
    for i, c in enumerate(counts):
        current[i, : c.size] = c
    cur = _normalise(current)
    ref = block.proportions

    # PSI and JS on the reference deciles (docs/stats.md, "Drift statistics")
    rd = block.deciles
    cd = _normalise(block.decile_counts(current))
    r_floor = np.maximum(rd, eps[:, None])
    c_floor = np.maximum(cd, eps[:, None])
    psi = np.sum((c_floor - r_floor) * np.log(c_floor / r_floor), axis=1)
    mix = 0.5 * (rd + cd)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(rd > 0, rd * np.log(rd / mix), 0.0).sum(axis=1)
        kl_c = np.where(cd > 0, cd * np.log(cd / mix), 0.0).sum(axis=1)
    js = np.sqrt(np.maximum(0.5 * (kl_r + kl_c) / np.log(js_base), 0.0))

    # KS on the fine bins, with the bound max(largest reference share, largest current share)
    cdf_gap = block.cdf - np.cumsum(cur, axis=1)
    ks = np.abs(cdf_gap).max(axis=1)
    bound = np.maximum(ref.max(axis=1), cur.max(axis=1))

    wasserstein = _wasserstein(block, np.array(minimum, dtype=np.float64),
                               np.array(maximum, dtype=np.float64),
                               np.array(outer_means, dtype=np.float64), ref, cur, cdf_gap)
    return {"psi": psi, "js": js, "ks": ks, "ks_bound": bound, "wasserstein": wasserstein}


def _wasserstein(block: NumericReferenceBlock, win_min: np.ndarray, win_max: np.ndarray,
                 win_outer_means: np.ndarray, ref: np.ndarray, cur: np.ndarray,
                 cdf_gap: np.ndarray) -> np.ndarray:
    """Binned W1 per row, as :func:`mlprobe.stats.wasserstein_from_counts` with tail means."""
    k = ref.shape[0]
    rows = np.arange(k)
    last = block.n_bins - 1  # index of each row's upper open bin
    lo = np.minimum(np.minimum(block.min, win_min), block.first_edge)
    hi = np.maximum(np.maximum(block.max, win_max), block.last_edge)
    # Bin boundaries [lo, e_0, ..., e_last, hi, hi, ...]: padded bins get zero width.
    x = np.empty((k, ref.shape[1] + 1))
    x[:, 0] = lo
    x[:, 1:-1] = block.inner_edges
    x = np.where(block.padded_boundary, hi[:, None], x)
    width = np.diff(x, axis=1)
    gap = np.zeros((k, ref.shape[1] + 1))  # F_R - F_C at each boundary
    gap[:, 1:] = cdf_gap
    gap[rows, last + 1] = 0.0
    left, right = gap[:, :-1], gap[:, 1:]
    abs_sum = np.abs(left) + np.abs(right)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(abs_sum > 0, (left**2 + right**2) / (2.0 * abs_sum), 0.0)
    linear = np.where(left * right >= 0, 0.5 * abs_sum, crossing)
    area = np.where(block.step[:, None], np.abs(right), linear) * width
    # Open outer bins from the tail means (exact when one side's tail dominates).
    cur_means = np.nan_to_num(win_outer_means, nan=0.0)
    r0, c0 = ref[:, 0], cur[:, 0]
    rk, ck = ref[rows, last], cur[rows, last]
    e0, ek = block.first_edge, block.last_edge
    area[:, 0] = np.where((r0 > 0) | (c0 > 0), np.abs(r0 * (e0 - block.outer_means[:, 0])
                                                     - c0 * (e0 - cur_means[:, 0])), 0.0)
    area[rows, last] = np.where((rk > 0) | (ck > 0),
                                np.abs(ck * (cur_means[:, 1] - ek)
                                       - rk * (block.outer_means[:, 1] - ek)), 0.0)
    return area.sum(axis=1)
