"""ReferenceProfile: construction from arrays/dicts/frames, PSI deciles, JSON format, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlprobe._profile import ReferenceProfile
from mlprobe.errors import ConfigurationError, ProfileError
from mlprobe.stats import BinnedCounts, psi


def _data(n: int = 20_000, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    return {
        "age": g.normal(40, 12, n),
        "income": g.lognormal(10, 1, n),
        "visits": g.poisson(3, n).astype(float),
        "plan": g.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
        "flag": g.random(n) < 0.2,
    }


def test_from_dict_detects_types_and_summaries() -> None:
    """Str/bool columns are categorical, numeric summaries equal numpy's."""
    d = _data()
    p = ReferenceProfile.from_data(d)
    assert [f.kind for f in p.features.values()] == ["numeric", "numeric", "numeric",
                                                     "categorical", "categorical"]
    age = p.features["age"]
    assert age.count == 20_000 and age.counts.sum() == 20_000
    assert age.mean == pytest.approx(d["age"].mean(), rel=1e-9)
    assert age.std == pytest.approx(d["age"].std(), rel=1e-9)
    assert age.std_sample == pytest.approx(d["age"].std(ddof=1), rel=1e-9)
    assert age.quantiles["p50"] == pytest.approx(np.median(d["age"]), rel=1e-9)
    assert (age.min, age.max) == (d["age"].min(), d["age"].max())
    assert age.edges.size == 99 and not age.discrete
    assert p.features["visits"].discrete
    plan = p.features["plan"]
    assert plan.levels == ("basic", "pro", "team")
    assert plan.counts[:3].tolist() == [int(np.sum(d["plan"] == v)) for v in plan.levels]
    assert p.features["flag"].levels == ("False", "True")


def test_array_and_dataframe_inputs_agree() -> None:
    """A 2-D array with names, a dict and a DataFrame give the same numeric profile."""
    d = _data()
    num = {k: d[k] for k in ("age", "income")}
    a = ReferenceProfile.from_data(np.column_stack(list(num.values())), feature_names=list(num))
    b = ReferenceProfile.from_data(pd.DataFrame(num))
    for name in num:
        assert np.array_equal(a.features[name].edges, b.features[name].edges)
        assert np.array_equal(a.features[name].counts, b.features[name].counts)
    assert ReferenceProfile.from_data(np.zeros((5, 3)) + np.arange(5)[:, None]).feature_names == (
        "f0", "f1", "f2")


@pytest.mark.parametrize("seed", [1, 2])
def test_decile_psi_equals_textbook(seed: int) -> None:
    """PSI from fine bins grouped by decile_groups equals a direct reference-decile PSI."""
    g = np.random.default_rng(seed)
    ref = g.gamma(2.0, 3.0, 50_000)
    cur = g.gamma(2.0, 3.6, 8_000)
    f = ReferenceProfile.from_data({"x": ref}).features["x"]
    h = BinnedCounts(f.edges)
    h.update(cur)
    groups = f.decile_groups()
    r = np.bincount(groups, weights=f.counts) / f.count
    c = np.bincount(groups, weights=h.counts) / cur.size
    deciles = np.quantile(ref, np.arange(1, 10) / 10)
    bins = np.concatenate([[-np.inf], deciles, [np.inf]])
    rt = np.histogram(ref, bins)[0] / ref.size
    ct = np.histogram(cur, bins)[0] / cur.size
    rt, ct = np.maximum(rt, 1e-4), np.maximum(ct, 1e-4)
    textbook = float(np.sum((ct - rt) * np.log(ct / rt)))
    # Edges are stored to >= 6 significant digits; at most a handful of rows change bins.
    assert psi(r, c) == pytest.approx(textbook, rel=1e-3, abs=1e-5)


def test_missing_and_rare_levels_fold() -> None:
    """Missing values are counted, rare levels fold into __other__ beyond max_categories."""
    x = np.array([1.0, np.nan, 3.0, np.inf, 5.0] * 100)
    c = np.array(["a"] * 300 + ["b"] * 150 + ["c"] * 40 + ["d"] * 9 + [None], dtype=object)
    p = ReferenceProfile.from_data({"x": x, "c": c}, categorical=["c"], max_categories=2)
    fx = p.features["x"]
    assert (fx.count, fx.missing, fx.invalid) == (300, 100, 100)
    assert fx.missing_share == pytest.approx(0.4)
    fc = p.features["c"]
    assert fc.levels == ("a", "b") and fc.counts.tolist() == [300, 150, 49]
    assert fc.missing == 1 and fc.n_distinct == 4


def test_roundtrip_save_load(tmp_path: pytest.TempPathFactory) -> None:
    """save/load round-trips every stored field; the document is versioned JSON."""
    d = _data()
    g = np.random.default_rng(3)
    p = ReferenceProfile.from_data(d, y=g.integers(0, 2, 20_000), predictions=g.random(20_000),
                                   importance={"age": 2.0, "plan": 1.0})
    path = tmp_path / "p.json"  # type: ignore[operator]
    p.save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "mlprobe.profile" and doc["version"] == 1
    q = ReferenceProfile.load(path)
    assert q.to_dict() == p.to_dict()
    assert q.prediction is not None and q.prediction.kind == "numeric"
    assert q.target is not None and q.target.kind == "categorical"
    assert q.features["age"].std_sample == pytest.approx(p.features["age"].std_sample, rel=1e-9)


def test_profile_size_25_features() -> None:
    """A 25-feature profile (20 numeric, 5 categorical) of 100k rows is under 32 KiB."""
    g = np.random.default_rng(4)
    cols = {f"num_{i}": g.normal(i, 1 + i, 100_000) for i in range(20)}
    cols |= {f"cat_{i}": g.choice([f"level_{j}" for j in range(8)], 100_000) for i in range(5)}
    doc = json.dumps(ReferenceProfile.from_data(cols).to_dict(), separators=(",", ":"))
    assert len(doc.encode()) < 32 * 1024


@pytest.mark.parametrize("text,needle", [
    ("{not json", "not valid JSON"),
    ('{"format": "other", "version": 1}', "not an mlprobe profile"),
    ('{"format": "mlprobe.profile", "version": 99}', "unsupported profile version 99"),
    ('{"format": "mlprobe.profile", "version": 1}', "corrupt profile"),
])
def test_bad_files_raise_profile_error(tmp_path: pytest.TempPathFactory, text: str,
                                       needle: str) -> None:
    """Corrupt JSON, a wrong format, an unknown version or missing fields raise ProfileError."""
    path = tmp_path / "bad.json"  # type: ignore[operator]
    path.write_text(text)
    with pytest.raises(ProfileError, match=needle):
        ReferenceProfile.load(path)
    with pytest.raises(ProfileError, match="cannot read"):
        ReferenceProfile.load(tmp_path / "missing.json")  # type: ignore[operator]


@pytest.mark.parametrize("kwargs,needle", [
    ({"X": {"a": [1.0, 2.0], "b": [1.0]}}, "different lengths"),
    ({"X": {"a": []}}, "no rows"),
    ({"X": {}}, "no columns"),
    ({"X": np.zeros((3, 2)), "feature_names": ["a", "a"]}, "unique"),
    ({"X": np.zeros((3, 2)), "feature_names": ["a"]}, "one name per column"),
    ({"X": {"a": [1.0, 2.0]}, "categorical": ["zz"]}, "categorical names"),
    ({"X": {"a": [1.0, 2.0]}, "y": [1]}, "y has 1 rows"),
    ({"X": {"a": [1.0, 2.0]}, "importance": {"b": 1.0}}, "importance names"),
    ({"X": {"a": [1.0, 2.0]}, "n_bins": 3}, "n_bins"),
])
def test_bad_configuration(kwargs: dict, needle: str) -> None:
    """Bad arguments raise ConfigurationError naming the argument."""
    with pytest.raises(ConfigurationError, match=needle):
        ReferenceProfile.from_data(**kwargs)
