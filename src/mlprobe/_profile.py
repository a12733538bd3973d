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


def _build(name: str, column: Any, categorical: bool, n_bins: int,
           max_categories: int) -> FeatureProfile:
    if categorical:
        return CategoricalProfile.build(name, column, max_categories)
    return NumericProfile.build(name, column, n_bins)


def _target_is_categorical(column: Any, max_categories: int) -> bool:
    # Scores are numeric; strings/bools and integer codes with few distinct values are
    # classes, also when stored as floats (a CSV reader turns 0/1 labels into 0.0/1.0).
    a = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
    if _is_categorical_dtype(a):
        return True
    if a.dtype.kind == "f":
        a = a[np.isfinite(a)]
        if not a.size or not np.all(a == np.round(a)):
            return False
    return a.dtype.kind in "iuf" and np.unique(a).size <= max_categories


class ReferenceProfile:
    """The reference (training) distribution of a model's inputs, predictions and labels.

    Build it once from training data with :meth:`from_data` (or the ``mlprobe profile``
    CLI), :meth:`save` it next to the model, and :meth:`load` it where the model serves.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(1000, 2))
        >>> p = ReferenceProfile.from_data(X, feature_names=["age", "income"])
        >>> p.feature_names
        ('age', 'income')
    """

    def __init__(self, features: Sequence[FeatureProfile], *,
                 prediction: FeatureProfile | None = None, target: FeatureProfile | None = None,
                 importance: Mapping[str, float] | None = None, n_rows: int = 0,
                 n_bins: int = 100, max_categories: int = 50) -> None:
        self.features: dict[str, FeatureProfile] = {f.name: f for f in features}
        self.prediction = prediction
        self.target = target
        self.importance = dict(importance) if importance else None
        self.n_rows = n_rows
        self.n_bins = n_bins
        self.max_categories = max_categories

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in column order."""
        return tuple(self.features)

    @classmethod
    def from_data(
        cls, X: Any, y: Any = None, predictions: Any = None, *,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        importance: Mapping[str, float] | Sequence[float] | None = None,
        n_bins: int = 100, max_categories: int = 50,
    ) -> ReferenceProfile:
        """Profile reference data.

        Args:
            X: 2-D ``np.ndarray``, mapping of name to column, or pandas DataFrame.
            y: Optional labels (1-D); profiled like a feature (classes when str/bool or
                integer codes with at most ``max_categories`` values).
            predictions: Optional model outputs (1-D); scores (floats) are profiled as
                numeric, classes as categorical.
            feature_names: Column names for arrays (default ``f0, f1, ...``); for mappings and
                frames, the subset and order of columns to profile.
            categorical: Names of categorical features. When omitted, columns of str, bytes,
                bool or object dtype holding anything non-numeric are categorical; everything
                else is numeric.
            importance: Optional non-negative weight per feature (mapping or one per feature)
                used to weight the dataset drift share.
            n_bins: Fine bins per numeric feature (>= 10; KS error bound ≈ 1 / n_bins).
            max_categories: Levels kept per categorical feature; rarer ones fold into
                ``__other__``.

        Raises:
            ConfigurationError: On empty data, duplicate or unknown names, mismatched lengths
                or bad weights; the message names the argument.
        """
        if not isinstance(n_bins, int) or n_bins < 10:
            raise ConfigurationError("n_bins must be an int >= 10 (default 100)")
        if not isinstance(max_categories, int) or max_categories < 1:
            raise ConfigurationError("max_categories must be an int >= 1 (default 50)")
        cols = as_columns(X, feature_names)
        if not cols:
            raise ConfigurationError("X has no columns; pass at least one feature")
        lengths = {n: len(c) for n, c in cols.items()}
        n_rows = next(iter(lengths.values()))
        if any(v != n_rows for v in lengths.values()):
            raise ConfigurationError(f"columns of X have different lengths: {lengths}")
        if n_rows == 0:
            raise ConfigurationError("X has no rows; profile at least one row of data")
        for arg, extra in (("y", y), ("predictions", predictions)):
            if extra is not None and len(extra) != n_rows:
                raise ConfigurationError(
                    f"{arg} has {len(extra)} rows but X has {n_rows}; pass one per row")
        cat_set = set(categorical or ())
        unknown = sorted(cat_set - set(cols))
        if unknown:
            raise ConfigurationError(f"categorical names {unknown} are not features of X; "
                                     f"known features: {sorted(cols)}")
        names = list(cols)
        weights = cls._importance(importance, names)
        feats = []
        for name, col in cols.items():
            is_cat = name in cat_set if categorical is not None else _is_categorical_dtype(col)
            feats.append(_build(name, col, is_cat, n_bins, max_categories))
        pred = tgt = None
        if predictions is not None:
            pred = _build("prediction", predictions,
                          _target_is_categorical(predictions, max_categories), n_bins,
                          max_categories)
        if y is not None:
            tgt = _build("target", y, _target_is_categorical(y, max_categories), n_bins,
                         max_categories)
        return cls(feats, prediction=pred, target=tgt, importance=weights, n_rows=n_rows,
                   n_bins=n_bins, max_categories=max_categories)

    @staticmethod
    def _importance(importance: Mapping[str, float] | Sequence[float] | None,
                    names: list[str]) -> dict[str, float] | None:
        if importance is None:
            return None
        if isinstance(importance, Mapping):
            weights = {str(k): float(v) for k, v in importance.items()}
        else:
            vals = list(importance)
            if len(vals) != len(names):
                raise ConfigurationError(f"importance has {len(vals)} weights for "
                                         f"{len(names)} features; pass one per feature")
            weights = dict(zip(names, (float(v) for v in vals)))
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ConfigurationError(f"importance names {unknown} are not features")
        if any(not math.isfinite(w) or w < 0 for w in weights.values()):
            raise ConfigurationError("importance weights must be finite and >= 0")
        return weights

    def to_dict(self) -> dict[str, Any]:
        """Return the versioned, JSON-ready document (see ``docs/stats.md``)."""
        return {
            "format": FORMAT, "version": VERSION, "created_by": f"mlprobe {__version__}",
            "n_rows": self.n_rows, "n_bins": self.n_bins, "max_categories": self.max_categories,
            "importance": self.importance,
            "features": [_feature_to_dict(f) for f in self.features.values()],
            "prediction": _feature_to_dict(self.prediction) if self.prediction else None,
            "target": _feature_to_dict(self.target) if self.target else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises:
            ProfileError: On a wrong format, an unknown version or missing/invalid fields.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ProfileError(f"not an mlprobe profile: expected \"format\": \"{FORMAT}\"")
        if data.get("version") != VERSION:
            raise ProfileError(f"unsupported profile version {data.get('version')!r}; this "
                               f"mlprobe reads version {VERSION} (upgrade mlprobe or rebuild "
                               "the profile)")
        try:
            feats = [_feature_from_dict(f) for f in data["features"]]
            pred = _feature_from_dict(data["prediction"]) if data.get("prediction") else None
            tgt = _feature_from_dict(data["target"]) if data.get("target") else None
            return cls(feats, prediction=pred, target=tgt, importance=data.get("importance"),
                       n_rows=int(data["n_rows"]), n_bins=int(data["n_bins"]),
                       max_categories=int(data["max_categories"]))
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ProfileError(f"corrupt profile: missing or invalid field ({exc!r})") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile as compact JSON (no raw rows; a few KiB per feature)."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, separators=(",", ":"), allow_nan=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        """Read a profile written by :meth:`save`.

        Raises:
            ProfileError: If the file is missing, not JSON, or not a supported profile.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise ProfileError(f"cannot read profile {os.fspath(path)!r}: {exc.strerror}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"profile {os.fspath(path)!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def __repr__(self) -> str:
        return (f"ReferenceProfile(features={len(self.features)}, n_rows={self.n_rows}, "
                f"prediction={self.prediction is not None}, target={self.target is not None})")
