"""Per-feature reference summaries: what a profile stores for one numeric or categorical column.

:class:`NumericProfile` keeps fine reference-quantile edges and counts (decile groups derive
from them), moments, tail means and quantiles; :class:`CategoricalProfile` a bounded vocabulary
with counts. Both serialise to the compact JSON of :mod:`mlprobe._profile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .stats import BinnedCounts, CategoryCounts, reference_edges
from .stats._categorical import level_key
from .stats._histogram import coarse_groups
from .stats._coerce import coerce_numeric, tally_categorical

__all__ = ["CategoricalProfile", "FeatureProfile", "NumericProfile", "OTHER", "QUANTILES"]

OTHER = "__other__"
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95,
             "p99": 0.99}


def _sig(x: float, digits: int = 10) -> float:
    # Statistics are stored to 10 significant digits: far below any drift threshold, and it
    # keeps a 25-feature profile under 32 KiB.
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def _round(values: np.ndarray, digits: int) -> np.ndarray:
    return np.array([float(f"{e:.{digits}g}") for e in values.tolist()])


def _compact_edges(edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Round continuous edges to the fewest significant digits (>= 6) that keep them distinct.

    The reference counts are computed on the rounded edges, so the profile stays exactly
    self-consistent; rounding moves an edge by at most 5e-7 relative, which changes no
    statistic beyond noise, and keeps 100 edges at about 0.9 KiB of JSON.
    """
    for digits in range(6, 17):
        r = _round(edges, digits)
        if np.all(np.diff(r) > 0):
            return r, digits
    return edges, 17


MAX_MAGNITUDE = 1e300
"""The largest magnitude of a number a profile holds (edges, statistics): what the loader
accepts, so that sums and differences of profile numbers stay finite."""

@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference summary of a numeric feature (or numeric prediction score / target).

    Attributes:
        edges: Fine interior bin edges; bins are ``(-inf, e0), [e0, e1), ..., [e_last, inf)``.
        counts: Reference counts per fine bin (``len(edges) + 1``).
        psi_edge_index: Indices into ``edges`` of the decile edges used for PSI.
        discrete: True when every distinct reference value has its own bin.
        outer_means: Mean reference value in the lower and upper open bins.
        sensitive: Its raw values must not leave the process (no min, max, mean, stddev or
            quantile gauges; see ``docs/privacy.md``).
    """

    name: str
    count: int
    missing: int
    invalid: int
    edges: np.ndarray
    counts: np.ndarray
    psi_edge_index: tuple[int, ...]
    discrete: bool
    mean: float
    std: float
    std_sample: float
    min: float
    max: float
    outer_means: tuple[float, float]
    quantiles: dict[str, float] = field(default_factory=dict)
    kind: str = "numeric"
    sensitive: bool = False

    @property
    def missing_share(self) -> float:
        """Share of rows that were missing or invalid in the reference."""
        total = self.count + self.missing + self.invalid
        return (self.missing + self.invalid) / total if total else 0.0

    def proportions(self) -> np.ndarray:
        """Reference proportions per fine bin."""
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(self.counts.size)

    def decile_groups(self) -> np.ndarray:
        """Coarse (reference-decile) bin index of each fine bin, for PSI.

        Summing fine counts by these groups gives exactly the counts on the reference deciles
        (the textbook PSI bins), because each decile is one of the fine edges.
        """
        return coarse_groups(self.edges, self.edges[list(self.psi_edge_index)])

    def empty_bins(self) -> BinnedCounts:
        """A :class:`BinnedCounts` on this feature's edges, for a current window."""
        return self._bins_template.copy()

    @cached_property
    def search_points(self) -> np.ndarray:
        """The edges, then ``min`` and the float just above ``max``: one ``searchsorted`` of
        a sorted batch at these points gives its bin counts and its out-of-range count."""
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            return self.edges
        return np.concatenate([self.edges, [self.min, np.nextafter(self.max, np.inf)]])

    @cached_property
    def _bins_template(self) -> BinnedCounts:
        # Validated once; windows are created per batch and per scrape, and copies share
        # the (never mutated) edges array, which also makes merges an identity check.
        return BinnedCounts(self.edges)

    @classmethod
    def build(cls, name: str, column: Any, n_bins: int, *,
              sensitive: bool = False) -> NumericProfile:
        """Summarise a raw reference column (bad entries are counted, not raised)."""
        col = coerce_numeric(column, parse_strings=True)
        v = col.values
        invalid = col.invalid
        # A profile holds numbers of magnitude <= 1e300 (what the loader accepts, so sums and
        # differences of them stay finite): reference values from 1e300 up count as invalid
        # entries (below it, even the edge just above the maximum is <= 1e300), so that what is
        # built always loads.
        huge = np.abs(v) >= MAX_MAGNITUDE
        if huge.any():
            v = v[~huge]
            invalid += int(huge.sum())
        edges = reference_edges(v, n_bins)
        discrete = bool(v.size) and edges.size == np.unique(v).size + 1
        digits = 17
        if not discrete and edges.size:
            edges, digits = _compact_edges(edges)
        h = BinnedCounts(edges)
        h.update(v)
        idx = np.zeros(0, dtype=np.int64)
        if v.size and edges.size:
            # Deciles rounded exactly like the fine edges are equal to fine edges (the same
            # quantiles, since k/10 == 10k/100 in floating point); for discrete features the
            # first edge >= each decile splits the reference values the same way.
            deciles = np.quantile(v, np.arange(1, 10) / 10)
            if not discrete:
                deciles = _round(deciles, digits)
            idx = np.unique(np.minimum(np.searchsorted(edges, deciles, side="left"),
                                       edges.size - 1))
        n = v.size
        qs = np.quantile(v, list(QUANTILES.values())) if n else [math.nan] * len(QUANTILES)
        lo_m, hi_m = h.outer_means()
        return cls(
            name=name, count=int(n), missing=col.missing, invalid=invalid,
            edges=edges, counts=h.counts, psi_edge_index=tuple(int(i) for i in idx),
            discrete=discrete,
            mean=_sig(_scaled(np.mean, v)) if n else math.nan,
            std=_sig(_scaled(np.std, v)) if n else math.nan,
            std_sample=_sig(_scaled(np.std, v, ddof=1)) if n > 1 else math.nan,
            min=float(v.min()) if n else math.nan, max=float(v.max()) if n else math.nan,
            outer_means=(_sig(lo_m), _sig(hi_m)),
            quantiles={k: _sig(float(q)) for k, q in zip(QUANTILES, qs)},
            sensitive=sensitive,
        )



def _scaled(statistic: Any, v: np.ndarray, **kwargs: Any) -> float:
    """``statistic(v)`` (mean or std) computed on ``v / scale`` and scaled back, so values
    near the largest a profile holds do not overflow in sums or squares."""
    scale = float(np.abs(v).max()) if v.size else 0.0
    if not 1e150 < scale < math.inf:  # (the common case: numpy's own result, bit for bit)
        return float(statistic(v, **kwargs))
    return float(statistic(v / scale, **kwargs)) * scale

@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference summary of a categorical feature (or predicted class / label).

    Attributes:
        levels: Kept levels, most frequent first (at most ``max_categories``).
        counts: Reference counts per level plus the ``__other__`` bucket last.
        n_distinct: Distinct non-missing levels seen in the reference (before folding).
        sensitive: Its levels must not leave the process: bins are exported by index (the
            position of the level in ``levels``), see ``docs/privacy.md``.
    """

    name: str
    count: int
    missing: int
    levels: tuple[str, ...]
    counts: np.ndarray
    n_distinct: int
    other: str = OTHER
    kind: str = "categorical"
    sensitive: bool = False

    def empty_counts(self) -> CategoryCounts:
        """A :class:`CategoryCounts` on this feature's vocabulary, for a current window."""
        return self._counts_template.copy()

    @cached_property
    def _counts_template(self) -> CategoryCounts:
        return CategoryCounts(self.levels, other=self.other)

    @property
    def invalid(self) -> int:
        """Always 0: any non-missing value is a valid level."""
        return 0

    @property
    def missing_share(self) -> float:
        """Share of rows that were missing in the reference."""
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def proportions(self) -> np.ndarray:
        """Reference proportions per level, ``__other__`` last."""
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(self.counts.size)

    @classmethod
    def build(cls, name: str, column: Any, max_categories: int, *,
              max_level_chars: int = 1024, sensitive: bool = False) -> CategoricalProfile:
        """Summarise a raw reference column; levels beyond the top ``max_categories`` fold.

        A level longer than ``max_level_chars``, or that is not valid Unicode text (a lone
        surrogate), is never kept (it would be a label value): it counts in ``__other__``,
        as the same value will when serving.
        """
        tally, missing = tally_categorical(column)
        merged: dict[str, int] = {}
        for k, n in tally.items():
            key = level_key(k)
            merged[key] = merged.get(key, 0) + n
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [k for k, _ in ranked
                if k != OTHER and len(k) <= max_level_chars and _is_text(k)]
        kept = kept[:max_categories]
        kept_set = set(kept)
        other = sum(n for k, n in merged.items() if k not in kept_set)
        counts = np.array([merged[k] for k in kept] + [other], dtype=np.int64)
        return cls(name=name, count=int(counts.sum()), missing=missing, levels=tuple(kept),
                   counts=counts, n_distinct=len(merged), sensitive=sensitive)


def _is_text(level: str) -> bool:
    try:
        level.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


FeatureProfile = NumericProfile | CategoricalProfile
