"""Pure, mergeable summaries and drift statistics (numpy and the standard library only).

Summaries (all with vectorised ``update``, in-place ``merge``, ``copy``, ``to_dict`` /
``from_dict``):

* :class:`Moments`: count, mean, M2, min, max (Chan et al. parallel merge).
* :class:`BinnedCounts`: counts on fixed interior edges with open outer bins;
  :func:`reference_edges` chooses the edges from reference values.
* :class:`CategoryCounts`: counts over a fixed vocabulary plus ``__other__``.
* :class:`QuantileSketch`: DDSketch-style quantiles with relative error ``alpha``.

Drift statistics over proportions, counts or raw arrays live in :mod:`mlprobe.stats.drift` and
are re-exported here, with the Evidently-compatible ones on raw arrays (``evidently_*``).
Definitions, error bounds and tolerances are in ``docs/stats.md``.

This package is the lowest layer of mlprobe: it imports nothing else of mlprobe (the import
contract in ``pyproject.toml`` enforces it). Its private modules also hold helpers the rest of
mlprobe uses (value coercion, label values, block statistics, special functions); they are not
part of the public API.
"""

from __future__ import annotations

from ._categorical import CategoryCounts
from ._evidently import evidently_jensenshannon, evidently_psi, evidently_wasserstein_norm
from ._histogram import BinnedCounts, reference_edges
from ._moments import Moments
from ._sketch import QuantileSketch
from .drift import (
    ChiSquareResult,
    chi_square,
    jensen_shannon,
    ks_exact,
    ks_from_counts,
    ks_pvalue,
    linf_distance,
    normed,
    psi,
    wasserstein_exact,
    wasserstein_from_counts,
)

__all__ = [
    "BinnedCounts",
    "CategoryCounts",
    "ChiSquareResult",
    "Moments",
    "QuantileSketch",
    "chi_square",
    "evidently_jensenshannon",
    "evidently_psi",
    "evidently_wasserstein_norm",
    "jensen_shannon",
    "ks_exact",
    "ks_from_counts",
    "ks_pvalue",
    "linf_distance",
    "normed",
    "psi",
    "reference_edges",
    "wasserstein_exact",
    "wasserstein_from_counts",
]
