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
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._feature_input import table_columns
from ._feature_profile import CategoricalProfile, FeatureProfile, NumericProfile
from ._profile_format import (
    FORMAT,
    ProfileLimits,
    feature_to_document,
    profile_from_document,
)
from ._profile_quality import ReferenceQuality, quality_from_data, prediction_labels
from ._quality_spec import QualitySpec
from ._version import __version__
from .errors import ConfigurationError, ProfileError
from .stats._coerce import coerce_numeric

__all__ = ["ReferenceProfile"]



def _is_categorical_dtype(col: Any) -> bool:
    a = col if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)
    if a.dtype.kind in "USb":
        return True
    if a.dtype.kind == "O":
        return coerce_numeric(a).invalid > 0 or any(
            isinstance(v, (str, bytes, bool, np.bool_)) for v in a[:1000].tolist())
    return False


def _build(name: str, column: Any, categorical: bool, n_bins: int, max_categories: int,
           limits: ProfileLimits, *, sensitive: bool = False) -> FeatureProfile:
    if categorical:
        return CategoricalProfile.build(name, column, max_categories,
                                        max_level_chars=limits.max_level_chars,
                                        sensitive=sensitive)
    return NumericProfile.build(name, column, n_bins, sensitive=sensitive)


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

    Attributes:
        target_name: The training data's label column, when known (``mlprobe drift`` reads it
            from the current data by default).
        prediction_name: The training data's model-output column, when known.
        quality: The model's quality on the reference data (built with both labels and
            predictions), which serving judges its windows against.

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
                 n_bins: int = 100, max_categories: int = 50,
                 target_name: str | None = None, prediction_name: str | None = None,
                 quality: ReferenceQuality | None = None) -> None:
        self.features: dict[str, FeatureProfile] = {f.name: f for f in features}
        self.prediction = prediction
        self.target = target
        self.importance = dict(importance) if importance else None
        self.n_rows = n_rows
        self.n_bins = n_bins
        self.max_categories = max_categories
        self.target_name = target_name
        self.prediction_name = prediction_name
        self.quality = quality

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in column order."""
        return tuple(self.features)

    @property
    def sensitive(self) -> frozenset[str]:
        """Names of the features marked sensitive (see ``docs/privacy.md``)."""
        return frozenset(n for n, f in self.features.items() if f.sensitive)

    @classmethod
    def from_data(
        cls, X: Any, y: Any = None, predictions: Any = None, *,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        importance: Mapping[str, float] | Sequence[float] | None = None,
        n_bins: int = 100, max_categories: int = 50,
        sensitive: Sequence[str] | None = None,
        target_name: str | None = None, prediction_name: str | None = None,
        limits: ProfileLimits | None = None,
        quality: QualitySpec | None = None,
    ) -> ReferenceProfile:
        """Profile reference data.

        Args:
            X: 2-D ``np.ndarray`` or list of rows, list of dict rows, mapping of name to
                column, or pandas DataFrame (read by the one input adapter, in strict mode:
                :func:`mlprobe._feature_input.table_columns`).
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
            n_bins: Fine bins per numeric feature (10 to ``limits.max_edges``; KS error bound
                ≈ 1 / n_bins).
            max_categories: Levels kept per categorical feature (up to
                ``limits.max_categories``); rarer ones fold into ``__other__``.
            sensitive: Features whose raw values must not leave the serving process: their
                category bins are exported by index and their min, max, mean, stddev and
                quantiles are withheld (see ``docs/privacy.md``). Stored in the profile.
            target_name: The name of the ``y`` column in the training data, stored so that
                ``mlprobe drift`` finds the labels in current data by that name.
            prediction_name: The name of the ``predictions`` column, likewise.
            limits: Caps to respect (:class:`ProfileLimits`; the defaults when omitted).
            quality: How to measure the model's reference quality when ``y`` and
                ``predictions`` are both given (a :class:`~mlprobe.QualitySpec`: task,
                positive label, threshold, probability columns). ``predictions`` may then be a
                ``(n, k)`` probability matrix. Without it the task is inferred from the labels
                and predictions, and a quality that cannot be measured is left out.

        Raises:
            ConfigurationError: On empty data, duplicate or unknown names, mismatched lengths,
                bad weights or a value over a limit; the message names the argument.
        """
        limits = limits or ProfileLimits()
        if not isinstance(limits, ProfileLimits):
            raise ConfigurationError("limits must be a mlprobe.ProfileLimits")
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or \
                not 10 <= n_bins <= limits.max_edges:
            raise ConfigurationError(f"n_bins must be an int in [10, {limits.max_edges}] "
                                     "(default 100; ProfileLimits.max_edges caps it)")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) or \
                not 1 <= max_categories <= limits.max_categories:
            raise ConfigurationError(f"max_categories must be an int in [1, "
                                     f"{limits.max_categories}] (default 50; "
                                     "ProfileLimits.max_categories caps it)")
        cols = table_columns(X, feature_names)
        if not cols:
            raise ConfigurationError("X has no columns; pass at least one feature")
        if len(cols) > limits.max_features:
            raise ConfigurationError(f"X has {len(cols)} features, over the limit of "
                                     f"{limits.max_features}; profile fewer columns or pass "
                                     "limits=ProfileLimits(max_features=...)")
        for name in cols:
            _check_name(name, "feature name", limits)
        for arg, role in (("target_name", target_name), ("prediction_name", prediction_name)):
            if role is not None:
                _check_name(role, arg, limits)
        lengths = {n: len(c) for n, c in cols.items()}
        n_rows = next(iter(lengths.values()))
        if any(v != n_rows for v in lengths.values()):
            raise ConfigurationError(f"columns of X have different lengths: {lengths}")
        if n_rows == 0:
            raise ConfigurationError("X has no rows; profile at least one row of data")
        if quality is not None and not isinstance(quality, QualitySpec):
            raise ConfigurationError("quality must be a mlprobe.QualitySpec")
        for arg, extra in (("y", y), ("predictions", predictions)):
            if extra is not None and len(extra) != n_rows:
                raise ConfigurationError(
                    f"{arg} has {len(extra)} rows but X has {n_rows}; pass one per row")
        cat_set = set(categorical or ())
        for arg, given in (("categorical", cat_set), ("sensitive", set(sensitive or ()))):
            unknown = sorted(given - set(cols), key=str)
            if unknown:
                raise ConfigurationError(f"{arg} names {unknown} are not features of X; "
                                         f"known features: {sorted(cols)}")
        if isinstance(sensitive, str):
            raise ConfigurationError("sensitive must be a list of feature names, not a string")
        secret = set(sensitive or ())
        names = list(cols)
        weights = cls._importance(importance, names)
        feats = []
        for name, col in cols.items():
            is_cat = name in cat_set if categorical is not None else _is_categorical_dtype(col)
            feats.append(_build(name, col, is_cat, n_bins, max_categories, limits,
                                sensitive=name in secret))
        pred = tgt = None
        if y is not None:
            tgt = _build("target", y, _target_is_categorical(y, max_categories), n_bins,
                         max_categories, limits)
        if predictions is not None:
            outputs = prediction_labels(predictions, quality, tgt)  # a matrix: its classes
            pred = _build("prediction", outputs,
                          _target_is_categorical(outputs, max_categories), n_bins,
                          max_categories, limits)
        measured = None
        if y is not None and predictions is not None:
            try:
                measured = quality_from_data(y, predictions, target=tgt, prediction=pred,
                                             spec=quality)
            except ConfigurationError:
                if quality is not None:  # asked for: say why it cannot be measured
                    raise
        return cls(feats, prediction=pred, target=tgt, importance=weights, n_rows=n_rows,
                   n_bins=n_bins, max_categories=max_categories, target_name=target_name,
                   prediction_name=prediction_name, quality=measured)

    @staticmethod
    def _importance(importance: Mapping[str, float] | Sequence[float] | None,
                    names: list[str]) -> dict[str, float] | None:
        if importance is None:
            return None
        try:
            if isinstance(importance, Mapping):
                weights = {str(k): float(v) for k, v in importance.items()}
            else:
                vals = list(importance)
                if len(vals) != len(names):
                    raise ConfigurationError(f"importance has {len(vals)} weights for "
                                             f"{len(names)} features; pass one per feature")
                weights = dict(zip(names, (float(v) for v in vals)))
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"importance weights must be numbers ({exc})") from None
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ConfigurationError(f"importance names {unknown} are not features")
        if any(not math.isfinite(w) or w < 0 for w in weights.values()):
            raise ConfigurationError("importance weights must be finite and >= 0")
        return weights

    def to_dict(self) -> dict[str, Any]:
        """Return the versioned, JSON-ready document (see ``docs/stats.md``).

        The document is version 1 unless a feature is marked sensitive (version 2), so
        profiles without sensitive features stay readable by older mlprobe releases.
        """
        doc: dict[str, Any] = {
            "format": FORMAT, "version": 2 if self.sensitive else 1,
            "created_by": f"mlprobe {__version__}",
            "n_rows": self.n_rows, "n_bins": self.n_bins, "max_categories": self.max_categories,
            "importance": self.importance,
            "features": [feature_to_document(f) for f in self.features.values()],
            "prediction": feature_to_document(self.prediction) if self.prediction else None,
            "target": feature_to_document(self.target) if self.target else None,
        }
        for key, value in (("target_name", self.target_name),
                           ("prediction_name", self.prediction_name)):
            if value is not None:
                doc[key] = value
        if self.quality is not None:
            doc["quality"] = self.quality.to_document()
        return doc

    @classmethod
    def from_dict(cls, data: Any, *, limits: ProfileLimits | None = None) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output, checking every field.

        Args:
            data: The parsed JSON document.
            limits: Caps the document must respect (the :class:`ProfileLimits` defaults when
                omitted).

        Raises:
            ProfileError: On a wrong format, an unknown version, a missing, mistyped,
                inconsistent or out-of-range field, or a value over a limit; one line naming
                the field.
        """
        parts = profile_from_document(data, limits or ProfileLimits())
        return cls(parts.features, prediction=parts.prediction, target=parts.target,
                   importance=parts.importance, n_rows=parts.n_rows, n_bins=parts.n_bins,
                   max_categories=parts.max_categories, target_name=parts.roles.target,
                   prediction_name=parts.roles.prediction, quality=parts.quality)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile as compact JSON (no raw rows; a few KiB per feature).

        The file is written next to its destination and renamed into place, so a reader
        never sees half a profile.

        Raises:
            OSError: When the destination cannot be written.
        """
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        target = os.fspath(path)
        fd, tmp = tempfile.mkstemp(prefix=".mlprobe-", suffix=".tmp",
                                   dir=os.path.dirname(os.path.abspath(target)))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             limits: ProfileLimits | None = None) -> ReferenceProfile:
        """Read a profile written by :meth:`save`.

        Args:
            path: The profile file.
            limits: Caps the profile must respect; the default :class:`ProfileLimits` reads
                files up to 16 MiB.

        Raises:
            ProfileError: If the file is missing, over ``limits.max_bytes``, not UTF-8 JSON,
                or not a valid supported profile (one line, naming the field).
        """
        limits = limits or ProfileLimits()
        name = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(limits.max_bytes + 1)  # bounded: also for /dev/zero or a FIFO
        except OSError as exc:
            raise ProfileError(f"cannot read profile {name!r}: {exc.strerror or exc}") from exc
        if len(raw) > limits.max_bytes:
            raise ProfileError(
                f"profile {name!r} is larger than the limit of {limits.max_bytes} bytes; raise "
                "it with ReferenceProfile.load(path, limits=ProfileLimits(max_bytes=...)) or "
                "`mlprobe drift --max-profile-bytes N`")
        try:
            data = _parse_json(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProfileError(f"profile {name!r} is not UTF-8 text (byte {exc.start})") from None
        except _JsonError as exc:
            raise ProfileError(f"profile {name!r} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data, limits=limits)
        except ProfileError as exc:
            raise ProfileError(f"profile {name!r}: {exc}") from None

    def __repr__(self) -> str:
        return (f"ReferenceProfile(features={len(self.features)}, n_rows={self.n_rows}, "
                f"prediction={self.prediction is not None}, target={self.target is not None})")


class _JsonError(Exception):
    """A document json cannot or must not turn into Python objects (message: one line)."""


def _reject_constant(name: str) -> Any:
    raise _JsonError(f"{name} is not JSON (profiles store missing statistics as null)")


def _parse_json(text: str) -> Any:
    """``json.loads`` that turns every failure into one :class:`_JsonError` line."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise _JsonError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _JsonError("nested too deeply") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # over Python's 4,300-digit limit
            raise _JsonError("integer literal too long (over 4,300 digits)") from None
        raise _JsonError(" ".join(str(exc).split()) or "unreadable value") from None


def _check_name(name: Any, what: str, limits: ProfileLimits) -> None:
    if not isinstance(name, str):
        raise ConfigurationError(f"{what} {name!r} must be a string")
    if len(name) > limits.max_level_chars:
        raise ConfigurationError(f"{what} {name[:40]!r}... is longer than "
                                 f"{limits.max_level_chars} characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} {name!r} is not valid Unicode text (a lone "
                                 "surrogate); rename it") from None
