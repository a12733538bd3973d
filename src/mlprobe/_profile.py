"""ReferenceProfile: the training-side baseline every drift statistic compares against.

A profile holds, per feature, what serving needs and nothing more (no raw rows): for numeric
features the fine reference-quantile bin edges and counts, coarse decile groups for PSI,
moments, tail means and quantiles; for categorical features a bounded vocabulary with counts.
It is saved as versioned JSON (see ``docs/stats.md`` for the format).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._version import __version__
from .errors import ConfigurationError, ProfileError
from .stats import BinnedCounts, coarse_groups, level_key, reference_edges
from .stats._coerce import coerce_numeric, tally_categorical

__all__ = ["CategoricalProfile", "NumericProfile", "ReferenceProfile", "as_columns"]

FORMAT = "mlprobe.profile"
VERSION = 1
OTHER = "__other__"
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95,
             "p99": 0.99}


def _sig(x: float, digits: int = 10) -> float:
    # Statistics are stored to 10 significant digits: far below any drift threshold, and it
    # keeps a 25-feature profile under 32 KiB.
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def _compact_edges(edges: np.ndarray) -> np.ndarray:
    """Round continuous edges to the fewest significant digits (>= 6) that keep them distinct.

    The reference counts are computed on the rounded edges, so the profile stays exactly
    self-consistent; rounding only moves an edge by < 1e-6 relative.
    """
    for digits in range(6, 18):
        r = np.array([float(f"{e:.{digits}g}") for e in edges.tolist()])
        if np.all(np.diff(r) > 0):
            return r
    return edges


def as_columns(X: Any, feature_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Map a 2-D array, a dict of columns or a DataFrame (duck-typed) to ``{name: column}``.

    Args:
        X: ``np.ndarray`` of shape (n, k), a mapping of name to 1-D array-like, or any object
            with ``columns`` and ``__getitem__`` (a pandas DataFrame).
        feature_names: Names for array columns (default ``f0 .. f{k-1}``); for mappings and
            frames, an optional subset/order of the columns to use.

    Raises:
        ConfigurationError: On unsupported input, duplicate or unknown names, bad shapes.
    """
    if hasattr(X, "columns") and hasattr(X, "__getitem__") and not isinstance(X, Mapping):
        names = [str(c) for c in X.columns]
        cols = {str(c): X[c].to_numpy() if hasattr(X[c], "to_numpy") else X[c] for c in X.columns}
    elif isinstance(X, Mapping):
        names = [str(k) for k in X]
        cols = {str(k): v for k, v in X.items()}
    else:
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ConfigurationError(f"X must be 2-D (rows x features), got shape {arr.shape}")
        if feature_names is None:
            feature_names = [f"f{i}" for i in range(arr.shape[1])]
        if len(feature_names) != arr.shape[1]:
            raise ConfigurationError(
                f"feature_names has {len(feature_names)} names but X has {arr.shape[1]} "
                "columns; pass one name per column")
        names = [str(n) for n in feature_names]
        cols = {n: arr[:, i] for i, n in enumerate(names)}
        feature_names = None
    if len(set(names)) != len(names):
        raise ConfigurationError("feature names must be unique; rename the duplicated columns")
    if feature_names is not None:
        unknown = [n for n in feature_names if n not in cols]
        if unknown:
            raise ConfigurationError(f"feature_names {unknown} are not columns of X")
        if len(set(feature_names)) != len(feature_names):
            raise ConfigurationError("feature_names must be unique")
        cols = {n: cols[n] for n in feature_names}
    return cols


def _is_categorical_dtype(col: Any) -> bool:
    a = col if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)
    if a.dtype.kind in "USb":
        return True
    if a.dtype.kind == "O":
        return coerce_numeric(a).invalid > 0 or any(
            isinstance(v, (str, bytes, bool, np.bool_)) for v in a[:1000].tolist())
    return False


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
        return BinnedCounts(self.edges)

    @classmethod
    def build(cls, name: str, column: Any, n_bins: int) -> NumericProfile:
        """Summarise a raw reference column (bad entries are counted, not raised)."""
        col = coerce_numeric(column, parse_strings=True)
        v = col.values
        edges = reference_edges(v, n_bins)
        discrete = bool(v.size) and np.unique(v).size <= n_bins
        if not discrete and edges.size:
            edges = _compact_edges(edges)
        h = BinnedCounts(edges)
        h.update(v)
        if v.size and edges.size:
            deciles = np.quantile(v, np.arange(1, 10) / 10)
            if not discrete:
                deciles = np.array([float(f"{d:.17g}") for d in _compact_edges_like(deciles, edges)])
            idx = np.unique(np.minimum(np.searchsorted(edges, deciles, side="left"),
                                       edges.size - 1))
        else:
            idx = np.zeros(0, dtype=np.int64)
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


def _compact_edges_like(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Round the deciles exactly as the fine edges were rounded: pick each decile's nearest
    # fine edge when it is within rounding distance (they are the same quantile).
    pos = np.clip(np.searchsorted(edges, values), 0, edges.size - 1)
    out = values.copy()
    for i, (v, p) in enumerate(zip(values.tolist(), pos.tolist())):
        for j in (p - 1, p):
            if 0 <= j < edges.size and abs(edges[j] - v) <= 1e-6 * max(abs(v), 1e-300):
                out[i] = edges[j]
    return out


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


from ._profile_io import ReferenceProfile  # noqa: E402  (re-export; io needs the classes above)
