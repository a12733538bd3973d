"""Feed numeric profiles and windows to the block drift statistics of :mod:`mlprobe.stats`.

:mod:`mlprobe.stats._drift_block` computes PSI, JS, binned KS and Wasserstein for many features
at once from plain arrays. This adapter is the core side: it reads those arrays from
:class:`~mlprobe._feature_profile.NumericProfile` and
:class:`~mlprobe._window.FeatureWindow`, and keeps each profile's padded reference block while
the profile lives, so a collect pads only the current side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from ._feature_profile import NumericProfile
from ._profile import ReferenceProfile
from ._window import DatasetWindow, FeatureWindow
from .stats._drift_block import NumericReferenceBlock, numeric_drift_block

__all__ = ["binned_numeric_stats", "block_statistics", "reference_block"]


def reference_block(refs: Sequence[NumericProfile]) -> NumericReferenceBlock:
    """The reference side of numeric profiles with at least one edge and one value."""
    return NumericReferenceBlock(
        proportions=[r.proportions() for r in refs], edges=[r.edges for r in refs],
        groups=[r.decile_groups() for r in refs], minimum=[r.min for r in refs],
        maximum=[r.max for r in refs], outer_means=[r.outer_means for r in refs],
        step=[r.discrete for r in refs])


def block_statistics(block: NumericReferenceBlock, windows: Sequence[FeatureWindow],
                     eps: np.ndarray, js_base: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`~mlprobe.stats._drift_block.numeric_drift_block` of numeric windows, each with at
    least one value, against ``block`` (row ``i`` is ``windows[i]``'s reference)."""
    return numeric_drift_block(
        block, [w.bins.counts for w in windows],  # type: ignore[union-attr]
        minimum=[w.moments.min for w in windows],  # type: ignore[union-attr]
        maximum=[w.moments.max for w in windows],  # type: ignore[union-attr]
        outer_means=[w.bins.outer_means() for w in windows],  # type: ignore[union-attr]
        eps=eps, js_base=js_base)


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
        cached = (names, reference_block([profile.features[n] for n in names])
                  if names else None)
        _BLOCKS[profile] = cached  # type: ignore[assignment]
    names, block = cached
    if block is None or not any(window.features[n].count for n in names):
        return {}
    specs = [spec_for(n) for n in names]
    result = block_statistics(block, [window.features[n] for n in names],
                              np.array([s.psi_eps for s in specs]),
                              np.array([s.js_base for s in specs]))
    columns = {stat: values.tolist() for stat, values in result.items()}
    return {name: {stat: values[i] for stat, values in columns.items()}
            for i, name in enumerate(names) if window.features[name].count}
