"""Checks of the fields of a profile document, and the reader of one feature entry.

Each check returns the field's value or raises a one-line
:class:`~mlprobe.errors.ProfileError` that names the field (``features[2] ('age').edges``)
and says what it must be. Lists, the bulk of a profile, are checked with C loops (``map``,
``min``, ``max``, numpy); the offending entry is only looked for once there is one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._feature_profile import (MAX_MAGNITUDE, OTHER, QUANTILES, CategoricalProfile,
                               FeatureProfile, NumericProfile)
from .errors import ProfileError
from .stats._categorical import level_key

if TYPE_CHECKING:
    from ._profile_format import ProfileLimits

__all__ = ["FeatureReader", "MAX_COUNT", "MAX_MAGNITUDE", "as_int", "as_list", "as_number",
           "as_object", "as_text", "bad", "short"]

MAX_COUNT = 2**53
"""Largest count a profile may hold: exact as a float, and 1,001 of them fit in an int64."""
_REPR_CHARS = 40


def short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= _REPR_CHARS else text[:_REPR_CHARS] + "..."


def bad(where: str, what: str, value: Any = ...) -> ProfileError:
    got = "" if value is ... else f", got {short(value)}"
    return ProfileError(f"corrupt profile: {where} must be {what}{got}")


def as_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, "an object", value)
    return value


def as_int(value: Any, where: str, lo: int = 0, hi: int = MAX_COUNT) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise bad(where, f"an integer in [{lo}, {hi}]", value)
    return value


def as_number(value: Any, where: str, *, nullable: bool = True) -> float:
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
    raise bad(where, f"a finite number{' or null' if nullable else ''} of magnitude <= 1e300",
               value)


def as_text(value: Any, where: str, max_chars: int) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise bad(where, f"a string of at most {max_chars} characters", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad(where, "valid Unicode text (it holds a lone surrogate)") from None
    return value


def as_list(value: Any, where: str, max_len: int) -> list[Any]:
    if not isinstance(value, list):
        raise bad(where, "a list", value)
    if len(value) > max_len:
        raise ProfileError(f"corrupt profile: {where} has {len(value)} entries, over the limit "
                           f"of {max_len} (see ProfileLimits)")
    return value


def _first_bad(values: list[Any], where: str, ok: Any, what: str) -> ProfileError:
    i = next((i for i, v in enumerate(values) if not ok(v)), 0)  # ``ok`` mirrors the check
    return bad(f"{where}[{i}]", what, values[i])


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
        raise bad(where, "numbers of magnitude <= 1e300") from None
    if out.size and not (np.abs(out) <= MAX_MAGNITUDE).all():
        raise bad(where, "finite numbers of magnitude <= 1e300")
    return out


def _counts(values: list[Any], where: str, total: int, total_where: str) -> np.ndarray:
    _ints(values, where, 0, MAX_COUNT)
    if sum(values) != total:  # Python ints: no overflow
        raise ProfileError(f"corrupt profile: {where} sum to {sum(values)}, but {total_where} "
                           f"is {total}")
    return np.array(values, dtype=np.int64)


class FeatureReader:
    """Reads the feature entries of one document under one set of limits."""

    def __init__(self, limits: ProfileLimits, n_bins: int, max_categories: int) -> None:
        self.limits = limits
        self.n_bins = n_bins
        self.max_categories = max_categories

    def feature(self, raw: Any, where: str, version: int) -> FeatureProfile:
        d = as_object(raw, where)
        name = as_text(d.get("name"), f"{where}.name", self.limits.max_level_chars)
        where = f"{where} ({name!r})" if len(name) <= _REPR_CHARS else where
        kind = d.get("type")
        sensitive = False
        if "sensitive" in d:
            if version < 2 or type(d["sensitive"]) is not bool:
                raise bad(f"{where}.sensitive", "true or false (profile version 2)",
                           d["sensitive"])
            sensitive = d["sensitive"]
        if kind == "categorical":
            return self.categorical(d, name, where, sensitive)
        if kind == "numeric":
            return self.numeric(d, name, where, sensitive)
        raise bad(f"{where}.type", '"numeric" or "categorical"', kind)

    def categorical(self, d: Mapping[str, Any], name: str, where: str,
                    sensitive: bool) -> CategoricalProfile:
        count = as_int(d.get("count"), f"{where}.count")
        missing = as_int(d.get("missing"), f"{where}.missing")
        cap = min(self.max_categories, self.limits.max_categories)
        raw_levels = as_list(d.get("levels"), f"{where}.levels", cap)
        levels = self._texts(raw_levels, f"{where}.levels", unicode=False)
        # Live values are matched by level_key, so a loaded level must be in that form, and
        # that form is what becomes a label value: it must be valid Unicode.
        keys = list(map(level_key, levels))
        levels = self._texts(keys, f"{where}.levels")
        if len(set(levels)) != len(levels):
            raise bad(f"{where}.levels", "unique (after level_key)")
        if d.get("other") != OTHER:
            raise bad(f"{where}.other", f'"{OTHER}"', d.get("other"))
        if OTHER in levels:
            raise bad(f"{where}.levels", f"free of the reserved level {OTHER!r}")
        if any(not level.strip() for level in levels):
            # A blank value is a missing value everywhere (live and offline): such a level
            # could never be counted, and would shadow the missing code when encoding.
            raise bad(f"{where}.levels", "free of blank levels (a blank value is missing)")
        counts = as_list(d.get("counts"), f"{where}.counts", cap + 1)
        if len(counts) != len(levels) + 1:
            raise bad(f"{where}.counts", "one entry per level plus one for __other__")
        n_distinct = as_int(d.get("n_distinct"), f"{where}.n_distinct", len(levels))
        return CategoricalProfile(
            name=name, count=count, missing=missing, levels=tuple(levels),
            counts=_counts(counts, f"{where}.counts", count, f"{where}.count"),
            n_distinct=n_distinct, sensitive=sensitive)

    def _texts(self, values: list[Any], where: str, *, unicode: bool = True) -> list[str]:
        """Every entry a string within the length limit, and (``unicode``) of valid Unicode
        (C loops first)."""
        limit = self.limits.max_level_chars
        if values and (not set(map(type, values)) <= {str}
                       or max(map(len, values)) > limit):
            raise _first_bad(values, where, lambda v: type(v) is str and len(v) <= limit,
                             f"a string of at most {limit} characters")
        if not unicode:
            return values
        try:
            "".join(values).encode("utf-8")
        except UnicodeEncodeError:
            for i, v in enumerate(values):
                as_text(v, f"{where}[{i}]", limit)
        return values

    def numeric(self, d: Mapping[str, Any], name: str, where: str,
                sensitive: bool) -> NumericProfile:
        count = as_int(d.get("count"), f"{where}.count")
        missing = as_int(d.get("missing"), f"{where}.missing")
        invalid = as_int(d.get("invalid"), f"{where}.invalid")
        max_edges = min(self.n_bins + 1, self.limits.max_edges)
        edges = _numbers(as_list(d.get("edges"), f"{where}.edges", max_edges), f"{where}.edges")
        if edges.size > 1 and not (np.diff(edges) > 0).all():
            raise bad(f"{where}.edges", "strictly increasing")
        if count and not edges.size:
            raise bad(f"{where}.edges", "non-empty when count > 0")
        index = as_list(d.get("psi_edge_index"), f"{where}.psi_edge_index", max_edges)
        _ints(index, f"{where}.psi_edge_index", 0, edges.size - 1)
        if any(a >= b for a, b in zip(index, index[1:])):
            raise bad(f"{where}.psi_edge_index", "strictly increasing")
        if count and not index:
            raise bad(f"{where}.psi_edge_index", "non-empty when count > 0")
        base = as_int(d.get("counts_base"), f"{where}.counts_base")
        delta = as_list(d.get("counts_delta"), f"{where}.counts_delta", edges.size + 1)
        if len(delta) != edges.size + 1:
            raise bad(f"{where}.counts_delta", "len(edges) + 1 entries")
        _ints(delta, f"{where}.counts_delta", -MAX_COUNT, MAX_COUNT)
        # |base|, |delta| <= 2**53, so neither the sums nor their total overflow an int64.
        counts = base + np.array(delta, dtype=np.int64)
        if counts.size and (counts.min() < 0 or counts.max() > MAX_COUNT):
            raise bad(f"{where}.counts_base + counts_delta", f"in [0, {MAX_COUNT}]")
        if int(counts.sum()) != count:
            raise ProfileError(f"corrupt profile: {where}.counts_base + counts_delta sum to "
                               f"{int(counts.sum())}, but {where}.count is {count}")
        discrete = d.get("discrete")
        if type(discrete) is not bool:
            raise bad(f"{where}.discrete", "true or false", discrete)
        stats = {k: as_number(d.get(k), f"{where}.{k}") for k in ("mean", "std", "min", "max")}
        if count and not all(math.isfinite(stats[k]) for k in ("mean", "min", "max")):
            raise bad(f"{where}", "given mean, min and max when count > 0")
        if stats["min"] > stats["max"]:
            raise bad(f"{where}.min", "<= max", stats["min"])
        if stats["std"] < 0:
            raise bad(f"{where}.std", ">= 0", stats["std"])
        outer = as_list(d.get("outer_means"), f"{where}.outer_means", 2)
        if len(outer) != 2:
            raise bad(f"{where}.outer_means", "two numbers (or nulls)")
        quantiles = as_object(d.get("quantiles"), f"{where}.quantiles")
        unknown = sorted(set(quantiles) - set(QUANTILES))
        if unknown:
            raise bad(f"{where}.quantiles", f"keyed by {', '.join(QUANTILES)}", unknown[0])
        std = stats["std"]
        return NumericProfile(
            name=name, count=count, missing=missing, invalid=invalid, edges=edges,
            counts=counts, psi_edge_index=tuple(index), discrete=discrete,
            mean=stats["mean"], std=std,
            # the sample std is derived, not stored: std * sqrt(n / (n - 1))
            std_sample=std * math.sqrt(count / (count - 1)) if count > 1 else math.nan,
            min=stats["min"], max=stats["max"],
            outer_means=(as_number(outer[0], f"{where}.outer_means[0]"),
                         as_number(outer[1], f"{where}.outer_means[1]")),
            quantiles={k: as_number(v, f"{where}.quantiles.{k}") for k, v in quantiles.items()},
            sensitive=sensitive)
