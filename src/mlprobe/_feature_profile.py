"""Per-feature reference summaries: what a profile stores for one numeric or categorical column.

:class:`NumericProfile` keeps fine reference-quantile edges and counts (decile groups derive
from them), moments, tail means and quantiles; :class:`CategoricalProfile` a bounded vocabulary
with counts. Both serialise to the compact JSON of :mod:`mlprobe._profile`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .errors import ProfileError
from .stats import BinnedCounts, CategoryCounts, coarse_groups, level_key, reference_edges
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


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference summary of a numeric feature (or numeric prediction score / target).

    Attributes:
        edges: Fine interior bin edges; bins are ``(-inf, e0), [e0, e1), ..., [e_last, inf)``.
        counts: Reference counts per fine bin (``len(edges) + 1``).
        psi_edge_index: Indices into ``edges`` of the decile edges used for PSI.
        discrete: True when every distinct reference value has its own bin.
        outer_means: Mean reference value in the lower and upper open bins.
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
    def build(cls, name: str, column: Any, n_bins: int) -> NumericProfile:
        """Summarise a raw reference column (bad entries are counted, not raised)."""
        col = coerce_numeric(column, parse_strings=True)
        v = col.values
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
            name=name, count=int(n), missing=col.missing, invalid=col.invalid,
            edges=edges, counts=h.counts, psi_edge_index=tuple(int(i) for i in idx),
            discrete=discrete,
            mean=_sig(float(v.mean())) if n else math.nan,
            std=_sig(float(v.std())) if n else math.nan,
            std_sample=_sig(float(v.std(ddof=1))) if n > 1 else math.nan,
            min=float(v.min()) if n else math.nan, max=float(v.max()) if n else math.nan,
            outer_means=(_sig(lo_m), _sig(hi_m)),
            quantiles={k: _sig(float(q)) for k, q in zip(QUANTILES, qs)},
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference summary of a categorical feature (or predicted class / label).

    Attributes:
        levels: Kept levels, most frequent first (at most ``max_categories``).
        counts: Reference counts per level plus the ``__other__`` bucket last.
        n_distinct: Distinct non-missing levels seen in the reference (before folding).
    """

    name: str
    count: int
    missing: int
    levels: tuple[str, ...]
    counts: np.ndarray
    n_distinct: int
    other: str = OTHER
    kind: str = "categorical"

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
    def build(cls, name: str, column: Any, max_categories: int) -> CategoricalProfile:
        """Summarise a raw reference column; levels beyond the top ``max_categories`` fold."""
        tally, missing = tally_categorical(column)
        merged: dict[str, int] = {}
        for k, n in tally.items():
            key = level_key(k)
            merged[key] = merged.get(key, 0) + n
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [k for k, _ in ranked[:max_categories] if k != OTHER]
        kept_set = set(kept)
        other = sum(n for k, n in merged.items() if k not in kept_set)
        counts = np.array([merged[k] for k in kept] + [other], dtype=np.int64)
        return cls(name=name, count=int(counts.sum()), missing=missing, levels=tuple(kept),
                   counts=counts, n_distinct=len(merged))


FeatureProfile = NumericProfile | CategoricalProfile


def _floats(values: Any) -> list[float | None]:
    # JSON has no NaN/inf: store them as null.
    return [None if not math.isfinite(x) else x for x in (float(v) for v in values)]


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _feature_to_dict(f: FeatureProfile) -> dict[str, Any]:
    if isinstance(f, CategoricalProfile):
        return {"name": f.name, "type": "categorical", "count": f.count, "missing": f.missing,
                "n_distinct": f.n_distinct, "levels": list(f.levels), "other": f.other,
                "counts": f.counts.tolist()}
    # Quantile bins hold nearly equal counts, so counts are stored as base + small deltas.
    base = int(np.median(f.counts)) if f.counts.size else 0
    return {
        "name": f.name, "type": "numeric", "count": f.count, "missing": f.missing,
        "invalid": f.invalid, "discrete": f.discrete,
        "mean": _floats([f.mean])[0], "std": _floats([f.std])[0],
        "min": _floats([f.min])[0], "max": _floats([f.max])[0],
        "quantiles": dict(zip(f.quantiles, _floats(f.quantiles.values()))),
        "outer_means": _floats(f.outer_means),
        "edges": f.edges.tolist(), "psi_edge_index": list(f.psi_edge_index),
        "counts_base": base, "counts_delta": (f.counts - base).tolist(),
    }


def _feature_from_dict(d: Mapping[str, Any]) -> FeatureProfile:
    if d["type"] == "categorical":
        counts = np.asarray(d["counts"], dtype=np.int64)
        levels = tuple(str(x) for x in d["levels"])
        if counts.size != len(levels) + 1:
            raise ProfileError(f"feature {d['name']!r}: counts must have one entry per level "
                               "plus __other__")
        return CategoricalProfile(name=str(d["name"]), count=int(d["count"]),
                                  missing=int(d["missing"]), levels=levels, counts=counts,
                                  n_distinct=int(d["n_distinct"]), other=str(d["other"]))
    if d["type"] != "numeric":
        raise ProfileError(f"feature {d.get('name')!r}: unknown type {d['type']!r}")
    edges = np.asarray(d["edges"], dtype=np.float64)
    counts = int(d["counts_base"]) + np.asarray(d["counts_delta"], dtype=np.int64)
    if counts.size != edges.size + 1 or (edges.size and np.any(np.diff(edges) <= 0)):
        raise ProfileError(f"feature {d['name']!r}: edges must increase and counts must have "
                           "len(edges) + 1 entries")
    lo, hi = d["outer_means"]
    return NumericProfile(
        name=str(d["name"]), count=int(d["count"]), missing=int(d["missing"]),
        invalid=int(d["invalid"]), edges=edges, counts=counts,
        psi_edge_index=tuple(int(i) for i in d["psi_edge_index"]), discrete=bool(d["discrete"]),
        mean=_num(d["mean"]), std=_num(d["std"]),
        # the sample std is derived, not stored: std * sqrt(n / (n - 1))
        std_sample=_num(d["std"]) * math.sqrt(int(d["count"]) / (int(d["count"]) - 1))
        if int(d["count"]) > 1 and d["std"] is not None else math.nan,
        min=_num(d["min"]), max=_num(d["max"]), outer_means=(_num(lo), _num(hi)),
        quantiles={k: _num(v) for k, v in d["quantiles"].items()},
    )
