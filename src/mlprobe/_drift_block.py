"""Numeric drift statistics for many features at once: PSI, JS, binned KS and Wasserstein.

:func:`mlprobe.stats.drift` has the one-feature definitions (and their oracle tests). At
collect time a model with 100 features would call them 100 times, at about 60 small numpy
calls each; here every feature is one row of a padded matrix and each statistic is a few
calls along one axis. Padding is chosen so it cannot change a result: padded bins hold zero
on both sides and have zero width, so they add nothing to PSI (both floored to the same
epsilon), JS, the KS maximum (the cumulative shares stay flat) or the Wasserstein area.
``tests/test_drift_block.py`` checks every statistic against the one-feature functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from ._feature_profile import NumericProfile
from ._profile import ReferenceProfile
from ._window import DatasetWindow, FeatureWindow

__all__ = ["NumericReferenceBlock", "binned_numeric_stats", "numeric_drift_block"]


class NumericReferenceBlock:
    """The reference side of :func:`numeric_drift_block`, padded into matrices once.

    Args:
        refs: Numeric feature profiles with at least one edge and one reference value.
    """

    def __init__(self, refs: Sequence[NumericProfile]) -> None:
        k = len(refs)
        width = max(r.counts.size for r in refs)  # fine bins
        groups = [r.decile_groups() for r in refs]
        n_groups = max(int(g.max()) + 1 for g in groups)
        self.n_bins = np.array([r.counts.size for r in refs])
        self.proportions = np.zeros((k, width))
        group_index = np.zeros((k, width), dtype=np.int64)
        self.inner_edges = np.zeros((k, width - 1))
        for i, (r, g) in enumerate(zip(refs, groups)):
            n = r.counts.size
            self.proportions[i, :n] = r.proportions()
            group_index[i, :n] = g
            group_index[i, n:] = g[-1]  # padded bins hold zero: any group will do
            self.inner_edges[i, : n - 1] = r.edges
            self.inner_edges[i, n - 1:] = r.edges[-1]  # replaced by each call's ``hi``
        # Flat bincount index of every (feature, fine bin) into (feature, decile group).
        self._group_flat = (np.arange(k)[:, None] * n_groups + group_index).ravel()
        self.n_groups = n_groups
        self.deciles = self.decile_counts(self.proportions)
        self.cdf = np.cumsum(self.proportions, axis=1)
        self.first_edge = np.array([r.edges[0] for r in refs])
        self.last_edge = np.array([r.edges[-1] for r in refs])
        self.min = np.array([r.min for r in refs])
        self.max = np.array([r.max for r in refs])
        self.outer_means = np.nan_to_num(np.array([r.outer_means for r in refs]), nan=0.0)
        self.step = np.array([r.discrete for r in refs])
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


def numeric_drift_block(block: NumericReferenceBlock, windows: Sequence[FeatureWindow],
                        eps: np.ndarray, js_base: np.ndarray) -> dict[str, np.ndarray]:
    """PSI, JS, binned KS (with its bound) and Wasserstein for every row of ``block``.

    Args:
        block: The reference side; row ``i`` belongs to ``windows[i]``.
        windows: Current windows, each with at least one value.
        eps: PSI floor per feature.
        js_base: Jensen-Shannon log base per feature.

    Returns:
        Arrays of one value per feature under ``psi``, ``js``, ``ks``, ``ks_bound`` and
        ``wasserstein`` (in the feature's units, not yet normalised).
    """
    k, width = block.proportions.shape
    current = np.zeros((k, width))
    for i, w in enumerate(windows):
        counts = w.bins.counts  # type: ignore[union-attr]
        current[i, : counts.size] = counts
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

    wasserstein = _wasserstein(block, windows, ref, cur, cdf_gap)
    return {"psi": psi, "js": js, "ks": ks, "ks_bound": bound, "wasserstein": wasserstein}


def _wasserstein(block: NumericReferenceBlock, windows: Sequence[FeatureWindow],
                 ref: np.ndarray, cur: np.ndarray, cdf_gap: np.ndarray) -> np.ndarray:
    """Binned W1 per row, as :func:`mlprobe.stats.wasserstein_from_counts` with tail means."""
    k = ref.shape[0]
    rows = np.arange(k)
    last = block.n_bins - 1  # index of each row's upper open bin
    win_min = np.array([w.moments.min for w in windows])  # type: ignore[union-attr]
    win_max = np.array([w.moments.max for w in windows])  # type: ignore[union-attr]
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
    cur_means = np.nan_to_num(np.array([w.bins.outer_means() for w in windows]),  # type: ignore[union-attr]
                              nan=0.0)
    r0, c0 = ref[:, 0], cur[:, 0]
    rk, ck = ref[rows, last], cur[rows, last]
    e0, ek = block.first_edge, block.last_edge
    area[:, 0] = np.where((r0 > 0) | (c0 > 0), np.abs(r0 * (e0 - block.outer_means[:, 0])
                                                     - c0 * (e0 - cur_means[:, 0])), 0.0)
    area[rows, last] = np.where((rk > 0) | (ck > 0),
                                np.abs(ck * (cur_means[:, 1] - ek)
                                       - rk * (block.outer_means[:, 1] - ek)), 0.0)
    return area.sum(axis=1)


_BLOCKS: WeakKeyDictionary[ReferenceProfile, tuple[list[str], NumericReferenceBlock]] = (
    WeakKeyDictionary())


def binned_numeric_stats(profile: ReferenceProfile, window: DatasetWindow,
                         spec_for: Callable[[str], Any]) -> dict[str, dict[str, float]]:
    """The binned statistics of every numeric feature with values, computed as one block.

    ``spec_for(name)`` gives the feature's drift settings (``psi_eps``, ``js_base``). The
    reference side is padded once per profile and kept while the profile lives.
    """
    cached = _BLOCKS.get(profile)
    if cached is None:
        names = [n for n, f in profile.features.items()
                 if isinstance(f, NumericProfile) and f.count and f.edges.size]
        cached = (names, NumericReferenceBlock([profile.features[n] for n in names])
                  if names else None)
        _BLOCKS[profile] = cached  # type: ignore[assignment]
    names, block = cached
    if block is None or not any(window.features[n].count for n in names):
        return {}
    specs = [spec_for(n) for n in names]
    result = numeric_drift_block(block, [window.features[n] for n in names],
                                 np.array([s.psi_eps for s in specs]),
                                 np.array([s.js_base for s in specs]))
    columns = {stat: values.tolist() for stat, values in result.items()}
    return {name: {stat: values[i] for stat, values in columns.items()}
            for i, name in enumerate(names) if window.features[name].count}
