"""Loading a profile checks every field and caps every size: what loads, works."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlprobe
from mlprobe import ProfileLimits
from mlprobe._profile import ReferenceProfile
from mlprobe.errors import ConfigurationError, ProfileError
from mlprobe.stats._categorical import level_key
from profiles import exercise, small_document, small_profile

Doc = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation that sets ``doc[path]`` (dotted, with integer list indices)."""
    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _edges(fn: Callable[[list[float]], list[Any]]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        f = doc["features"][0]
        f["edges"] = fn(f["edges"])
    return mutate


def _levels(levels: list[Any], counts: list[int] | None = None) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        f = doc["features"][1]
        f["levels"] = levels
        f["counts"] = counts if counts is not None else [0] * len(levels) + [f["count"]]
        f["n_distinct"] = max(f["n_distinct"], len(levels))
    return mutate


CORRUPTIONS: dict[str, tuple[Callable[[Doc], None], str]] = {
    "nan edge": (_edges(lambda e: [e[0], math.nan, *e[2:]]), "edges"),
    "infinite edge": (_edges(lambda e: [*e[:-1], math.inf]), "edges"),
    "huge edge": (_edges(lambda e: [*e[:-1], 1e308]), "edges"),
    "unsorted edges": (_edges(lambda e: list(reversed(e))), "strictly increasing"),
    "duplicate edges": (_edges(lambda e: [e[0], *e[:-1]]), "strictly increasing"),
    "string edge": (_edges(lambda e: ["1.5", *e[1:]]), "edges[0] must be a number"),
    "bool edge": (_edges(lambda e: [True, *e[1:]]), "edges[0] must be a number"),
    "nested edge": (_edges(lambda e: [[1.0], *e[1:]]), "edges[0] must be a number"),
    "edges not a list": (_set("features.0.edges", {"a": 1}), "edges must be a list"),
    "no edges with values": (_set("features.0.edges", []), "edges must be non-empty"),
    "too many edges": (_edges(lambda e: [float(i) for i in range(5000)]), "over the limit"),
    "psi index out of range": (_set("features.0.psi_edge_index", [0, 99]), "psi_edge_index"),
    "negative psi index": (_set("features.0.psi_edge_index", [-1, 2]), "psi_edge_index"),
    "unsorted psi index": (_set("features.0.psi_edge_index", [3, 1]), "strictly increasing"),
    "empty psi index": (_set("features.0.psi_edge_index", []), "psi_edge_index"),
    "float psi index": (_set("features.0.psi_edge_index", [1.0]), "psi_edge_index"),
    "negative count": (_set("features.0.counts_base", -5), "counts"),
    "counts do not sum": (_set("features.0.count", 499), "sum to"),
    "count as string": (_set("features.0.count", "500"), "count"),
    "count as float": (_set("features.0.count", 500.0), "count"),
    "count over 2**53": (_set("features.0.count", 2**60), "count"),
    "short counts": (_set("features.0.counts_delta", [0]), "counts_delta"),
    "nan mean": (_set("features.0.mean", math.nan), "mean"),
    "missing mean": (_set("features.0.mean", None), "mean, min and max"),
    "min over max": (_set("features.0.min", 1e9), "min"),
    "negative std": (_set("features.0.std", -1.0), "std"),
    "outer means wrong length": (_set("features.0.outer_means", [0.0]), "outer_means"),
    "unknown quantile": (_set("features.0.quantiles", {"p42": 1.0}), "quantiles"),
    "quantiles not an object": (_set("features.0.quantiles", [1.0]), "quantiles"),
    "discrete not a bool": (_set("features.0.discrete", "yes"), "discrete"),
    "unknown type": (_set("features.0.type", "text"), "type"),
    "feature not an object": (_set("features.0", "a"), "features[0] must be an object"),
    "name not a string": (_set("features.0.name", 7), "name"),
    "name with a lone surrogate": (_set("features.0.name", "a\udc80"), "surrogate"),
    "duplicate feature names": (_set("features.1.name", "a"), "uniquely named"),
    "duplicate levels": (_levels(["x", "x"]), "unique"),
    "levels equal after level_key": (_levels(["x", "y", "x"]), "unique"),
    "a blank level (blank values are missing)": (_levels(["x", "  "]), "blank"),
    "reserved __other__ level": (_levels(["x", "__other__"]), "__other__"),
    "level not a string": (_levels(["x", 3]), "levels[1]"),
    "level too long": (_levels(["x" * 5000]), "levels[0]"),
    "more levels than max_categories": (_levels([f"l{i}" for i in range(51)]), "over the limit"),
    "levels and counts differ": (_levels(["x"], [1, 2, 3]), "counts"),
    "other renamed": (_set("features.1.other", "rest"), "other"),
    "n_distinct below levels": (_set("features.1.n_distinct", 1), "n_distinct"),
    "rows disagree with n_rows": (_set("n_rows", 499), "n_rows"),
    "n_bins below 10": (_set("n_bins", 3), "n_bins"),
    "max_categories over the limit": (_set("max_categories", 10**6), "max_categories"),
    "features empty": (_set("features", []), "non-empty"),
    "features not a list": (_set("features", "ab"), "features must be a list"),
    "too many features": (lambda d: d.__setitem__("features", d["features"] * 600),
                          "over the limit"),
    "importance of an unknown feature": (_set("importance", {"zz": 1.0}), "importance"),
    "negative importance": (_set("importance", {"a": -1.0}), "importance"),
    "importance not an object": (_set("importance", [1.0]), "importance"),
    "prediction not an object": (_set("prediction", 3), "prediction"),
    "sensitive in a version 1 file": (_set("features.0.sensitive", True), "sensitive"),
    "sensitive not a bool": (lambda d: (d.__setitem__("version", 2),
                                        d["features"][0].__setitem__("sensitive", 1)),
                             "sensitive"),
    "target_name not a string": (_set("target_name", 5), "target_name"),
    "version as bool": (_set("version", True), "unsupported profile version"),
    "version 3": (_set("version", 3), "unsupported profile version 3"),
    "wrong format": (_set("format", "evidently"), "not an mlprobe profile"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_is_a_one_line_profile_error(name: str) -> None:
    """Every corrupt field is refused with a one-line ProfileError naming the field."""
    mutate, needle = CORRUPTIONS[name]
    doc = small_document()
    mutate(doc)
    with pytest.raises(ProfileError) as info:
        ReferenceProfile.from_dict(doc)
    message = str(info.value)
    assert needle in message and "\n" not in message and len(message) < 300, message


def test_the_unmutated_document_loads_and_works() -> None:
    """The base document of the corruption table is itself accepted and works end to end."""
    text, document = exercise(ReferenceProfile.from_dict(small_document()), rows=2000)
    assert 'feature="c"' in text and document["features"]["a"]["status"] != "error"


def test_odd_but_valid_documents_load_and_work() -> None:
    """Unicode levels and names, a profile without values, and extreme-but-finite numbers
    are accepted, and the probe built on each scrapes and reports."""
    doc = small_document()
    doc["features"][1]["levels"] = ["é", "日本", "a\u0000b"]
    doc["features"][1]["name"] = "\U0001F600 feature"
    exercise(ReferenceProfile.from_dict(doc))
    empty = small_document()
    a = empty["features"][0]
    missing = a["count"] + a["missing"] + a["invalid"]
    a.update(count=0, missing=missing, invalid=0, edges=[], psi_edge_index=[], counts_base=0,
             counts_delta=[0], mean=None, std=None, min=None, max=None)
    exercise(ReferenceProfile.from_dict(empty))
    wide = small_document()
    a = wide["features"][0]
    a["edges"] = [-1e299, *a["edges"][1:-1], 1e299]
    a["min"], a["max"], a["outer_means"] = -1e300, 1e300, [-1e300, 1e300]
    exercise(ReferenceProfile.from_dict(wide))


def test_loaded_levels_go_through_level_key() -> None:
    """A loaded level is stored in level_key form, so the live value it names matches it."""
    profile = ReferenceProfile.from_dict(small_document())
    levels = profile.features["c"].levels
    assert all(isinstance(level, str) for level in levels)
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("keys", registry=registry, reference=profile)
    probe.observe(inputs={"a": [0.0], "c": [levels[0]]})
    assert probe.drift_status()["features"]["c"]["quality"]["unseen"] == 0


# -- files ---------------------------------------------------------------------------------


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "profile.json"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data,needle", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"format": "mlprobe.profile", "version": 1, "n_rows": ' + b"9" * 5000 + b"}",
     "integer literal"),
    (b'{"format": "mlprobe.profile", "version": 1, "n_rows": NaN}', "NaN is not JSON"),
    (b'{"format": "mlprobe.profile", "version": Infinity}', "Infinity is not JSON"),
    ('{"format": "mlprobe.profile"}'.encode("utf-16"), "not UTF-8"),
    (b'{"format": "caf\xe9"}', "not UTF-8"),
    (b"", "not valid JSON"),
    (b"\x00\x01", "not valid JSON"),
    (b'{"format": "mlprobe.profile", "version": 1, "features": 3}', "corrupt profile"),
])
def test_unreadable_files_are_one_line_profile_errors(tmp_path: Path, data: bytes,
                                                      needle: str) -> None:
    """Deep nesting, huge int literals, NaN, other encodings and junk: one-line ProfileError."""
    with pytest.raises(ProfileError) as info:
        ReferenceProfile.load(_write(tmp_path, data))
    message = str(info.value)
    assert needle in message and "\n" not in message, message


def test_file_size_limit_is_enforced_and_can_be_raised(tmp_path: Path) -> None:
    """A file over max_bytes is refused with a message that says how to raise the limit;
    the same file loads with a higher limit."""
    path = tmp_path / "p.json"
    small_profile().save(path)
    size = path.stat().st_size
    with pytest.raises(ProfileError, match=r"limits=ProfileLimits\(max_bytes=\.\.\.\)"):
        ReferenceProfile.load(path, limits=ProfileLimits(max_bytes=size - 1))
    assert ReferenceProfile.load(path, limits=ProfileLimits(max_bytes=size)).feature_names == (
        "a", "c")
    assert ProfileLimits().max_bytes == 16 * 1024 * 1024


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_reading_is_bounded_even_without_a_size() -> None:
    """A device that never ends is read up to the limit, not forever."""
    with pytest.raises(ProfileError, match="larger than the limit"):
        ReferenceProfile.load("/dev/zero", limits=ProfileLimits(max_bytes=1024))


def test_directory_and_missing_file(tmp_path: Path) -> None:
    """A directory or a missing path is a one-line 'cannot read' ProfileError."""
    for path in (tmp_path, tmp_path / "missing.json"):
        with pytest.raises(ProfileError, match="cannot read profile"):
            ReferenceProfile.load(path)


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """save() replaces the file in one step and cleans up; an unwritable place raises OSError."""
    path = tmp_path / "p.json"
    path.write_text("old")
    small_profile().save(path)
    assert json.loads(path.read_text())["format"] == "mlprobe.profile"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    with pytest.raises(OSError):
        small_profile().save(tmp_path / "no-such-dir" / "p.json")


# -- limits at build time --------------------------------------------------------------------


def test_build_respects_limits() -> None:
    """from_data refuses n_bins, max_categories and feature counts over the limits, names
    that are not text, and folds levels longer than max_level_chars (or not valid Unicode,
    unless level_key makes them so) into __other__, so that what it builds loads."""
    g = np.random.default_rng(1)
    x = {"a": g.normal(size=100)}
    with pytest.raises(ConfigurationError, match="n_bins"):
        ReferenceProfile.from_data(x, n_bins=5000)
    with pytest.raises(ConfigurationError, match="max_categories"):
        ReferenceProfile.from_data(x, max_categories=5000)
    with pytest.raises(ConfigurationError, match="max_features"):
        ReferenceProfile.from_data({f"f{i}": [1.0] for i in range(3)},
                                   limits=ProfileLimits(max_features=2))
    with pytest.raises(ConfigurationError, match="surrogate"):
        ReferenceProfile.from_data({"a\udc80": [1.0]})
    long = "L" * 2000
    odd = b"caf\xe9".decode("utf-8", "surrogateescape")
    profile = ReferenceProfile.from_data({"c": [long, long, "short", odd]}, categorical=["c"])
    c = profile.features["c"]
    # levels are kept in the form level_key gives them (valid UTF-8 of bounded length, as
    # live values are keyed), never raw
    assert set(c.levels) == {"short", level_key(long), level_key(odd)}
    assert long not in c.levels and odd not in c.levels
    assert all(len(level) <= 200 and level.encode("utf-8") for level in c.levels)
    assert c.counts.sum() == 4
    assert ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict()))).to_dict() == \
        profile.to_dict()  # what is built also loads
    with pytest.raises(ConfigurationError, match="positive integer"):
        ProfileLimits(max_bytes=0)


def test_big_profiles_within_limits_load() -> None:
    """A profile at the limits' scale (1,000 levels, 1,000 edges) round-trips."""
    g = np.random.default_rng(2)
    data = {"num": g.normal(size=20_000), "cat": np.array([f"level-{i}" for i in
                                                            g.integers(0, 1000, 20_000)])}
    profile = ReferenceProfile.from_data(data, n_bins=1000, max_categories=1000)
    doc = json.loads(json.dumps(profile.to_dict()))
    again = ReferenceProfile.from_dict(doc)
    assert again.to_dict() == profile.to_dict()
    assert len(again.features["cat"].levels) == 1000


def test_loaded_surrogate_levels_key_like_live_values(registry):
    """A level with a lone surrogate in a profile document loads keyed by level_key, matches the
    same live value, and exports as valid UTF-8 (it used to make every scrape raise)."""
    document = small_document()
    plan = next(f for f in document["features"] if f["type"] == "categorical")
    odd = "\udc80bad"
    plan["levels"] = [odd] + plan["levels"][1:]
    profile = ReferenceProfile.from_dict(document)
    keyed = profile.features[plan["name"]].levels[0]
    assert keyed == level_key(odd) and keyed.encode("utf-8")
    probe = mlprobe.Probe("m", registry=registry, reference=profile)
    probe.observe(inputs={**{n: [1.0] for n, f in profile.features.items()
                             if f.kind == "numeric"}, plan["name"]: [odd]})
    from mlprobe.testing import sample_value

    assert sample_value(registry, "mlprobe_feature_bin",
                        {"feature": plan["name"], "bin": keyed}) == 1.0


def test_reference_values_beyond_the_loadable_range_count_as_invalid_and_the_profile_loads(
        tmp_path):
    """A reference column holding the largest doubles (what a profile cannot hold: the loader
    accepts magnitudes up to 1e300) built a profile that did not load, and its top edge
    overflowed to inf; such values are now counted invalid and what is built loads."""
    import warnings

    big = np.finfo(np.float64).max
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        built = ReferenceProfile.from_data({"x": [big, big, 1e300, -big, 9e299, 2.0, 3.0]})
    x = built.features["x"]
    assert (x.count, x.invalid) == (3, 4)
    assert x.max == 9e299 and np.isfinite(x.edges).all()
    assert x.mean == pytest.approx(np.mean([9e299, 2.0, 3.0]), rel=1e-9)  # (10 digits kept)
    assert x.std == pytest.approx(np.std(np.array([9e299, 2.0, 3.0]) / 1e299) * 1e299, rel=1e-9)
    path = tmp_path / "p.json"
    built.save(str(path))
    loaded = ReferenceProfile.load(str(path))
    assert loaded.features["x"].invalid == 4
