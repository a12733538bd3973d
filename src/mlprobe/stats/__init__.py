"""Pure, mergeable summaries and drift statistics (numpy and the standard library only).

Summaries (all with vectorised ``update``, in-place ``merge``, ``copy``, ``to_dict`` /
``from_dict``):

* :class:`Moments`: count, mean, M2, min, max (Chan et al. parallel merge).
* :class:`BinnedCounts`: counts on fixed interior edges with open outer bins.
* :class:`CategoryCounts`: counts over a fixed vocabulary plus ``__other__``.
* :class:`QuantileSketch`: DDSketch-style quantiles with relative error ``alpha``.

Label values: :func:`label_value` is the rule that makes any text a valid, bounded label value
(:func:`level_key` applies it to category levels).

Drift functions live in :mod:`mlprobe.stats.drift` and are re-exported here. Definitions,
error bounds and tolerances are in ``docs/stats.md``.
"""

from __future__ import annotations

from ._coerce import NumericColumn, coerce_numeric, is_missing, tally_categorical
from ._categorical import CategoryCounts, level_key
from ._histogram import BinnedCounts, coarse_groups, reference_edges
from ._labels import MAX_LABEL_CHARS, distinct_label_values, label_value
from ._moments import Moments
from ._sketch import QuantileSketch
from ._special import chi2_sf, gammaincc, kolmogorov_sf
from .drift import (
    ChiSquareResult,
    chi_square,
    evidently_jensenshannon,
    evidently_psi,
    evidently_wasserstein_norm,
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
    "MAX_LABEL_CHARS",
    "CategoryCounts",
    "ChiSquareResult",
    "Moments",
    "NumericColumn",
    "QuantileSketch",
    "chi2_sf",
    "chi_square",
    "coerce_numeric",
    "coarse_groups",
    "distinct_label_values",
    "evidently_jensenshannon",
    "evidently_psi",
    "evidently_wasserstein_norm",
    "gammaincc",
    "is_missing",
    "jensen_shannon",
    "kolmogorov_sf",
    "ks_exact",
    "ks_from_counts",
    "ks_pvalue",
    "label_value",
    "level_key",
    "linf_distance",
    "normed",
    "psi",
    "reference_edges",
    "tally_categorical",
    "wasserstein_exact",
    "wasserstein_from_counts",
]
