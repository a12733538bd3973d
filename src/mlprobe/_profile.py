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
from typing import Any

import numpy as np

from ._version import __version__
from .errors import ConfigurationError, ProfileError
from ._feature_profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    _feature_from_dict,
    _feature_to_dict,
)
from .stats._coerce import coerce_numeric

__all__ = ["CategoricalProfile", "NumericProfile", "ReferenceProfile", "as_columns"]

FORMAT = "mlprobe.profile"
VERSION = 1


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
