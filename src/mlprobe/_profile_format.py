"""The profile document: JSON in and out, every field type-checked and every size capped.

A profile is read from a file its user trusts, but files get truncated, edited by hand, merged
badly or produced by another tool. Whatever :func:`profile_from_document` accepts must work:
``Probe(reference=profile)``, every scrape and every status call. So every field is checked
here for its type, range and consistency with the others, and :class:`ProfileLimits` caps what
the document may make mlprobe hold or export (features, levels, edges, level length). Every
failure is a one-line :class:`~mlprobe.errors.ProfileError` naming the field.

Versions: 1 is the original format; 2 adds per-feature ``"sensitive": true``. A profile is
written as version 1 unless it marks a feature sensitive, so older mlprobe releases keep
reading it; an older release that meets version 2 refuses it ("upgrade mlprobe") instead of
exporting the raw values of a feature marked sensitive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._feature_profile import OTHER, QUANTILES, CategoricalProfile, FeatureProfile, NumericProfile
from .errors import ConfigurationError, ProfileError
from .stats import level_key

__all__ = ["FORMAT", "READ_VERSIONS", "ProfileLimits", "ProfileParts", "Roles",
           "feature_to_document", "profile_from_document"]

FORMAT = "mlprobe.profile"
READ_VERSIONS = (1, 2)
MAX_COUNT = 2**53
"""Largest count a profile may hold: exact as a float, and 1,001 of them fit in an int64."""
MAX_MAGNITUDE = 1e300
"""Largest absolute value of a stored statistic: differences and squares of edges stay finite."""
_REPR_CHARS = 40


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


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= _REPR_CHARS else text[:_REPR_CHARS] + "..."


def _bad(where: str, what: str, value: Any = ...) -> ProfileError:
    got = "" if value is ... else f", got {_short(value)}"
    return ProfileError(f"corrupt profile: {where} must be {what}{got}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, "an object", value)
    return value


def _int(value: Any, where: str, lo: int = 0, hi: int = MAX_COUNT) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise _bad(where, f"an integer in [{lo}, {hi}]", value)
    return value


def _number(value: Any, where: str, *, nullable: bool = True) -> float:
    """A finite JSON number (null -> NaN when ``nullable``)."""
    if value is None and nullable:
        return math.nan
    if type(value) is float or type(value) is int:
        try:
            x = float(value)
        except OverflowError:
            x = math.inf
        if -MAX_MAGNITUDE <= x <= MAX_MAGNITUDE:  # also False for NaN
            return x
    raise _bad(where, f"a finite number{' or null' if nullable else ''} of magnitude <= 1e300",
               value)


def _text(value: Any, where: str, max_chars: int) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise _bad(where, f"a string of at most {max_chars} characters", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(where, "valid Unicode text (it holds a lone surrogate)") from None
    return value


def _list(value: Any, where: str, max_len: int) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(where, "a list", value)
    if len(value) > max_len:
        raise ProfileError(f"corrupt profile: {where} has {len(value)} entries, over the limit "
                           f"of {max_len} (see ProfileLimits)")
    return value


def _first_bad(values: list[Any], where: str, ok: Any, what: str) -> ProfileError:
    i = next((i for i, v in enumerate(values) if not ok(v)), 0)  # ``ok`` mirrors the check
    return _bad(f"{where}[{i}]", what, values[i])


def _ints(values: list[Any], where: str, lo: int, hi: int) -> None:
    """Every entry a JSON integer in [lo, hi]; checked by C loops (map, min, max), the
    offender is only looked for when there is one."""
    if not values:
        return
    if not set(map(type, values)) <= {int} or min(values) < lo or max(values) > hi:
        raise _first_bad(values, where, lambda v: type(v) is int and lo <= v <= hi,
                         f"an integer in [{lo}, {hi}]")


def _numbers(values: list[Any], where: str) -> np.ndarray:
    # The types first (numpy would happily parse "1.5" or True), then numpy for the range:
    # this is the bulk of a profile, so both are C loops.
    if not set(map(type, values)) <= {int, float}:
        raise _first_bad(values, where, lambda v: type(v) in (int, float), "a number")
    try:
        out = np.array(values, dtype=np.float64)
    except OverflowError:
        raise _bad(where, "numbers of magnitude <= 1e300") from None
    if out.size and not (np.abs(out) <= MAX_MAGNITUDE).all():
        raise _bad(where, "finite numbers of magnitude <= 1e300")
    return out


def _counts(values: list[Any], where: str, total: int, total_where: str) -> np.ndarray:
    _ints(values, where, 0, MAX_COUNT)
    if sum(values) != total:  # Python ints: no overflow
        raise ProfileError(f"corrupt profile: {where} sum to {sum(values)}, but {total_where} "
                           f"is {total}")
    return np.array(values, dtype=np.int64)


class _Checker:
    """Reads feature entries of one document under one set of limits."""

    def __init__(self, limits: ProfileLimits, n_bins: int, max_categories: int) -> None:
        self.limits = limits
        self.n_bins = n_bins
        self.max_categories = max_categories

    def feature(self, raw: Any, where: str, version: int) -> FeatureProfile:
        d = _object(raw, where)
        name = _text(d.get("name"), f"{where}.name", self.limits.max_level_chars)
        where = f"{where} ({name!r})" if len(name) <= _REPR_CHARS else where
        kind = d.get("type")
        sensitive = False
        if "sensitive" in d:
            if version < 2 or type(d["sensitive"]) is not bool:
                raise _bad(f"{where}.sensitive", "true or false (profile version 2)",
                           d["sensitive"])
            sensitive = d["sensitive"]
        if kind == "categorical":
            return self.categorical(d, name, where, sensitive)
        if kind == "numeric":
            return self.numeric(d, name, where, sensitive)
        raise _bad(f"{where}.type", '"numeric" or "categorical"', kind)

    def categorical(self, d: Mapping[str, Any], name: str, where: str,
                    sensitive: bool) -> CategoricalProfile:
        count = _int(d.get("count"), f"{where}.count")
        missing = _int(d.get("missing"), f"{where}.missing")
        cap = min(self.max_categories, self.limits.max_categories)
        raw_levels = _list(d.get("levels"), f"{where}.levels", cap)
        levels = self._texts(raw_levels, f"{where}.levels")
        # Live values are matched by level_key, so a loaded level must be in that form.
        keys = list(map(level_key, levels))
        if keys != levels:
            levels = self._texts(keys, f"{where}.levels")
        if len(set(levels)) != len(levels):
            raise _bad(f"{where}.levels", "unique (after level_key)")
        if d.get("other") != OTHER:
            raise _bad(f"{where}.other", f'"{OTHER}"', d.get("other"))
        if OTHER in levels:
            raise _bad(f"{where}.levels", f"free of the reserved level {OTHER!r}")
        counts = _list(d.get("counts"), f"{where}.counts", cap + 1)
        if len(counts) != len(levels) + 1:
            raise _bad(f"{where}.counts", "one entry per level plus one for __other__")
        n_distinct = _int(d.get("n_distinct"), f"{where}.n_distinct", len(levels))
        return CategoricalProfile(
            name=name, count=count, missing=missing, levels=tuple(levels),
            counts=_counts(counts, f"{where}.counts", count, f"{where}.count"),
            n_distinct=n_distinct, sensitive=sensitive)

    def _texts(self, values: list[Any], where: str) -> list[str]:
        """Every entry a string of valid Unicode within the length limit (C loops first)."""
        limit = self.limits.max_level_chars
        if values and (not set(map(type, values)) <= {str}
                       or max(map(len, values)) > limit):
            raise _first_bad(values, where, lambda v: type(v) is str and len(v) <= limit,
                             f"a string of at most {limit} characters")
        try:
            "".join(values).encode("utf-8")
        except UnicodeEncodeError:
            for i, v in enumerate(values):
                _text(v, f"{where}[{i}]", limit)
        return values

    def numeric(self, d: Mapping[str, Any], name: str, where: str,
                sensitive: bool) -> NumericProfile:
        count = _int(d.get("count"), f"{where}.count")
        missing = _int(d.get("missing"), f"{where}.missing")
        invalid = _int(d.get("invalid"), f"{where}.invalid")
        max_edges = min(self.n_bins + 1, self.limits.max_edges)
        edges = _numbers(_list(d.get("edges"), f"{where}.edges", max_edges), f"{where}.edges")
        if edges.size > 1 and not (np.diff(edges) > 0).all():
            raise _bad(f"{where}.edges", "strictly increasing")
        if count and not edges.size:
            raise _bad(f"{where}.edges", "non-empty when count > 0")
        index = _list(d.get("psi_edge_index"), f"{where}.psi_edge_index", max_edges)
        _ints(index, f"{where}.psi_edge_index", 0, edges.size - 1)
        if any(a >= b for a, b in zip(index, index[1:])):
            raise _bad(f"{where}.psi_edge_index", "strictly increasing")
        if count and not index:
            raise _bad(f"{where}.psi_edge_index", "non-empty when count > 0")
        base = _int(d.get("counts_base"), f"{where}.counts_base")
        delta = _list(d.get("counts_delta"), f"{where}.counts_delta", edges.size + 1)
        if len(delta) != edges.size + 1:
            raise _bad(f"{where}.counts_delta", "len(edges) + 1 entries")
        _ints(delta, f"{where}.counts_delta", -MAX_COUNT, MAX_COUNT)
        # |base|, |delta| <= 2**53, so neither the sums nor their total overflow an int64.
        counts = base + np.array(delta, dtype=np.int64)
        if counts.size and (counts.min() < 0 or counts.max() > MAX_COUNT):
            raise _bad(f"{where}.counts_base + counts_delta", f"in [0, {MAX_COUNT}]")
        if int(counts.sum()) != count:
            raise ProfileError(f"corrupt profile: {where}.counts_base + counts_delta sum to "
                               f"{int(counts.sum())}, but {where}.count is {count}")
        discrete = d.get("discrete")
        if type(discrete) is not bool:
            raise _bad(f"{where}.discrete", "true or false", discrete)
        stats = {k: _number(d.get(k), f"{where}.{k}") for k in ("mean", "std", "min", "max")}
        if count and not all(math.isfinite(stats[k]) for k in ("mean", "min", "max")):
            raise _bad(f"{where}", "given mean, min and max when count > 0")
        if stats["min"] > stats["max"]:
            raise _bad(f"{where}.min", "<= max", stats["min"])
        if stats["std"] < 0:
            raise _bad(f"{where}.std", ">= 0", stats["std"])
        outer = _list(d.get("outer_means"), f"{where}.outer_means", 2)
        if len(outer) != 2:
            raise _bad(f"{where}.outer_means", "two numbers (or nulls)")
        quantiles = _object(d.get("quantiles"), f"{where}.quantiles")
        unknown = sorted(set(quantiles) - set(QUANTILES))
        if unknown:
            raise _bad(f"{where}.quantiles", f"keyed by {', '.join(QUANTILES)}", unknown[0])
        std = stats["std"]
        return NumericProfile(
            name=name, count=count, missing=missing, invalid=invalid, edges=edges,
            counts=counts, psi_edge_index=tuple(index), discrete=discrete,
            mean=stats["mean"], std=std,
            # the sample std is derived, not stored: std * sqrt(n / (n - 1))
            std_sample=std * math.sqrt(count / (count - 1)) if count > 1 else math.nan,
            min=stats["min"], max=stats["max"],
            outer_means=(_number(outer[0], f"{where}.outer_means[0]"),
                         _number(outer[1], f"{where}.outer_means[1]")),
            quantiles={k: _number(v, f"{where}.quantiles.{k}") for k, v in quantiles.items()},
            sensitive=sensitive)


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
        raise ProfileError(f"unsupported profile version {_short(version)}; this mlprobe reads "
                           f"versions {', '.join(map(str, READ_VERSIONS))} (upgrade mlprobe or "
                           "rebuild the profile)")
    n_rows = _int(data.get("n_rows"), "n_rows")
    n_bins = _int(data.get("n_bins"), "n_bins", 10, limits.max_edges)
    max_categories = _int(data.get("max_categories"), "max_categories", 1,
                          limits.max_categories)
    checker = _Checker(limits, n_bins, max_categories)
    raw_features = _list(data.get("features"), "features", limits.max_features)
    if not raw_features:
        raise _bad("features", "a non-empty list")
    features = [checker.feature(f, f"features[{i}]", version) for i, f in enumerate(raw_features)]
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise _bad("features", "uniquely named")
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
        weights = _object(importance, "importance")
        importance = {}
        for key, value in weights.items():
            if key not in names:
                raise _bad("importance", "keyed by feature names", key)
            importance[key] = _number(value, f"importance[{key!r}]", nullable=False)
            if importance[key] < 0:
                raise _bad(f"importance[{key!r}]", ">= 0", value)
    roles = {}
    for key in ("target_name", "prediction_name"):
        raw = data.get(key)
        roles[key] = None if raw is None else _text(raw, key, limits.max_level_chars)
    return ProfileParts(features, extras["prediction"], extras["target"], importance or None,
                        n_rows, n_bins, max_categories,
                        Roles(roles["target_name"], roles["prediction_name"]))


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
