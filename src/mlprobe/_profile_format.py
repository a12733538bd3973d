"""The profile document: JSON in and out, every field type-checked and every size capped.

A profile is read from a file its user trusts, but files get truncated, edited by hand, merged
badly or produced by another tool. Whatever :func:`profile_from_document` accepts must work:
``Probe(reference=profile)``, every scrape and every status call. So every field is checked
here for its type, range and consistency with the others, and :class:`ProfileLimits` caps what
the document may make mlprobe hold or export (features, levels, edges, level length). Every
failure is a one-line :class:`~mlprobe.errors.ProfileError` naming the field. The checks of
single fields and of one feature entry are in :mod:`mlprobe._profile_fields`.

Versions: 1 is the original format; 2 adds per-feature ``"sensitive": true``. A profile is
written as version 1 unless it marks a feature sensitive, so older mlprobe releases keep
reading it; an older release that meets version 2 refuses it ("upgrade mlprobe") instead of
exporting the raw values of a feature marked sensitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._feature_profile import CategoricalProfile, FeatureProfile
from ._profile_quality import ReferenceQuality
from ._profile_fields import (
    FeatureReader,
    as_int,
    as_list,
    as_number,
    as_object,
    as_text,
    bad,
    short,
)
from .errors import ConfigurationError, ProfileError

__all__ = ["FORMAT", "READ_VERSIONS", "ProfileLimits", "ProfileParts", "Roles",
           "feature_to_document", "profile_from_document"]

FORMAT = "mlprobe.profile"
READ_VERSIONS = (1, 2)


@dataclass(frozen=True, slots=True)
class ProfileLimits:
    """Caps on what a profile may make mlprobe hold in memory and export as series.

    Checked when a profile is loaded (:meth:`ReferenceProfile.load` / ``from_dict``) and, where
    they apply, when one is built (``from_data``). The defaults fit any profile built with
    mlprobe's own defaults many times over; raise one by passing ``limits=`` with a new value.

    Attributes:
        max_bytes: Largest profile file read (16 MiB; a 25-feature profile is about 32 KiB).
        max_features: Most features (each exports about 30 series).
        max_categories: Most levels per categorical feature (each level is two series:
            ``mlprobe_feature_bin_total`` and ``mlprobe_feature_reference_ratio``).
        max_edges: Most fine bin edges per numeric feature (memory: 8 bytes per edge per
            window sub-bucket); also the largest ``n_bins`` a profile can be built with.
        max_level_chars: Longest categorical level or feature name (label values). Longer
            values are never kept as levels when a profile is built: they count in
            ``__other__``, at build time and when serving alike.

    Raises:
        ConfigurationError: A limit that is not a positive integer.
    """

    max_bytes: int = 16 * 1024 * 1024
    max_features: int = 1_000
    max_categories: int = 1_000
    max_edges: int = 1_000
    max_level_chars: int = 1_024

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_features", "max_categories", "max_edges",
                     "max_level_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ProfileLimits.{name} must be a positive integer, "
                                         f"got {value!r}")
        if self.max_edges < 10:
            raise ConfigurationError("ProfileLimits.max_edges must be >= 10 (profiles have at "
                                     "least 10 bins)")


@dataclass(frozen=True, slots=True)
class Roles:
    """The columns of the training data that were not features, by their original names."""

    target: str | None = None
    prediction: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileParts:
    """The validated content of a profile document, ready for ``ReferenceProfile(...)``."""

    features: list[FeatureProfile]
    prediction: FeatureProfile | None
    target: FeatureProfile | None
    importance: dict[str, float] | None
    n_rows: int
    n_bins: int
    max_categories: int
    roles: Roles
    quality: ReferenceQuality | None = None


def _rows(f: FeatureProfile) -> int:
    return f.count + f.missing + f.invalid


def profile_from_document(data: Any, limits: ProfileLimits) -> ProfileParts:
    """Validate a parsed profile document and return its parts.

    Raises:
        ProfileError: One line naming the first field that is missing, of the wrong type,
            out of range, inconsistent with another field, or over a limit.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ProfileError(f"not an mlprobe profile: expected \"format\": \"{FORMAT}\"")
    version = data.get("version")
    if type(version) is not int or version not in READ_VERSIONS:
        raise ProfileError(f"unsupported profile version {short(version)}; this mlprobe reads "
                           f"versions {', '.join(map(str, READ_VERSIONS))} (upgrade mlprobe or "
                           "rebuild the profile)")
    n_rows = as_int(data.get("n_rows"), "n_rows")
    n_bins = as_int(data.get("n_bins"), "n_bins", 10, limits.max_edges)
    max_categories = as_int(data.get("max_categories"), "max_categories", 1,
                            limits.max_categories)
    checker = FeatureReader(limits, n_bins, max_categories)
    raw_features = as_list(data.get("features"), "features", limits.max_features)
    if not raw_features:
        raise bad("features", "a non-empty list")
    features = [checker.feature(f, f"features[{i}]", version) for i, f in enumerate(raw_features)]
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise bad("features", "uniquely named")
    extras = {}
    for key in ("prediction", "target"):
        raw = data.get(key)
        extras[key] = None if raw is None else checker.feature(raw, key, version)
    for where, f in [*((f"features[{i}]", f) for i, f in enumerate(features)),
                     *((k, f) for k, f in extras.items() if f is not None)]:
        if _rows(f) != n_rows:
            raise ProfileError(f"corrupt profile: {where} counts {_rows(f)} rows "
                               "(count + missing + invalid), but n_rows is "
                               f"{n_rows}")
    importance = data.get("importance")
    if importance is not None:
        weights = as_object(importance, "importance")
        importance = {}
        for key, value in weights.items():
            if key not in names:
                raise bad("importance", "keyed by feature names", key)
            importance[key] = as_number(value, f"importance[{key!r}]", nullable=False)
            if importance[key] < 0:
                raise bad(f"importance[{key!r}]", ">= 0", value)
    roles = {}
    for key in ("target_name", "prediction_name"):
        raw = data.get(key)
        roles[key] = None if raw is None else as_text(raw, key, limits.max_level_chars)
    quality = data.get("quality")
    if quality is not None:
        quality = ReferenceQuality.from_document(quality, limits.max_categories,
                                                 limits.max_level_chars)
    return ProfileParts(features, extras["prediction"], extras["target"], importance or None,
                        n_rows, n_bins, max_categories,
                        Roles(roles["target_name"], roles["prediction_name"]), quality)


def feature_to_document(f: FeatureProfile) -> dict[str, Any]:
    """The JSON-ready entry of one feature (``sensitive`` only when set: version 2)."""
    if isinstance(f, CategoricalProfile):
        out: dict[str, Any] = {
            "name": f.name, "type": "categorical", "count": f.count, "missing": f.missing,
            "n_distinct": f.n_distinct, "levels": list(f.levels), "other": f.other,
            "counts": f.counts.tolist()}
    else:
        # Quantile bins hold nearly equal counts, so counts are stored as base + small deltas.
        base = int(np.median(f.counts)) if f.counts.size else 0
        out = {
            "name": f.name, "type": "numeric", "count": f.count, "missing": f.missing,
            "invalid": f.invalid, "discrete": f.discrete,
            "mean": _json_float(f.mean), "std": _json_float(f.std),
            "min": _json_float(f.min), "max": _json_float(f.max),
            "quantiles": {k: _json_float(v) for k, v in f.quantiles.items()},
            "outer_means": [_json_float(x) for x in f.outer_means],
            "edges": f.edges.tolist(), "psi_edge_index": list(f.psi_edge_index),
            "counts_base": base, "counts_delta": (f.counts - base).tolist(),
        }
    if f.sensitive:
        out["sensitive"] = True
    return out


def _json_float(x: float) -> float | None:
    # JSON has no NaN/inf: store them as null.
    x = float(x)
    return x if math.isfinite(x) else None
