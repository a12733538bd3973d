"""Data quality reaches the verdict, and every input path counts schema violations alike."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlprobe
from mlprobe._cli import main
from mlprobe._drift_eval import evaluate_dataset
from mlprobe._drift_spec import DriftSpec
from mlprobe._window import DatasetWindow
from mlprobe._feature_input import MISSING_TEXT, table_columns, to_columns
from mlprobe._profile import ReferenceProfile
from mlprobe.errors import ConfigurationError

N_REF = 5_000


def _reference(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    return {"a": g.normal(0, 1, n), "b": g.poisson(4, n).astype(float),
            "c": g.choice(["x", "y", "z"], n), "label": g.integers(0, 2, n),
            "score": g.random(n)}


def _write_csv(path: Path, rows: list[list[Any]], header: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A profile built by the CLI with --target and --prediction, and a clean current file."""
    d = tmp_path_factory.mktemp("quality")
    ref = _reference(N_REF)
    header = list(ref)
    train = _write_csv(d / "train.csv", [list(r) for r in zip(*ref.values())], header)
    profile = d / "profile.json"
    assert main(["profile", str(train), "--target", "label", "--prediction", "score",
                 "-o", str(profile)]) == 0
    cur = _reference(2_000, seed=1)
    return {"dir": d, "profile": profile, "current": cur, "header": header,
            "loaded": ReferenceProfile.load(profile)}


def _drift_json(built: dict[str, Any], rows: list[list[Any]], header: list[str],
                capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    path = _write_csv(built["dir"] / "current.csv", rows, header)
    code = main(["drift", str(built["profile"]), str(path), "--format", "json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _rows(cur: dict[str, np.ndarray], columns: list[str]) -> list[list[Any]]:
    return [list(r) for r in zip(*(cur[c] for c in columns))]


# -- the three CSV cases ----------------------------------------------------------


def test_clean_file_passes_fail_on_warning(built: dict[str, Any],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The control: an unshifted, complete file is ok overall and exits 0 on --fail-on warning."""
    cur = built["current"]
    code, doc = _drift_json(built, _rows(cur, built["header"]), built["header"], capsys,
                            "--fail-on", "warning")
    assert code == 0, doc["status"]
    assert (doc["status"], doc["drift_verdict"], doc["quality_status"]) == ("ok", "ok", "ok")


def test_missing_column_fails(built: dict[str, Any],
                              capsys: pytest.CaptureFixture[str]) -> None:
    """A file without a profiled column is critical for quality and exits 1 (was: ok, 0)."""
    cur = built["current"]
    header = ["b", "c", "label", "score"]
    code, doc = _drift_json(built, _rows(cur, header), header, capsys, "--fail-on", "warning")
    assert code == 1
    assert doc["features"]["a"]["quality_status"] == "critical"
    assert doc["quality_status"] == "critical" and doc["status"] == "critical"
    assert doc["schema_violations"] == {"missing_feature": 2_000}  # once per row


def test_numeric_column_of_strings_fails(built: dict[str, Any],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A numeric column holding only strings is critical for quality and exits 1."""
    cur = dict(built["current"])
    cur["a"] = np.array(["n/a-ish"] * 2_000)
    code, doc = _drift_json(built, _rows(cur, built["header"]), built["header"], capsys,
                            "--fail-on", "warning")
    assert code == 1
    a = doc["features"]["a"]
    assert a["quality"]["invalid"] == 2_000 and a["quality_status"] == "critical"
    assert doc["schema_violations"] == {"wrong_type": 2_000}


def test_every_feature_missing_fails(built: dict[str, Any],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A file with none of the features is critical (was: insufficient_data, exit 0)."""
    g = np.random.default_rng(3)
    rows = [[v] for v in g.random(500)]
    code, doc = _drift_json(built, rows, ["unrelated"], capsys, "--fail-on", "warning")
    assert code == 1
    assert doc["drift_verdict"] == "insufficient_data" and doc["status"] == "critical"
    assert {f["quality_status"] for f in doc["features"].values()} == {"critical"}
    assert doc["schema_violations"] == {"missing_feature": 3 * 500, "unexpected_feature": 500}


# -- the serving equivalents ------------------------------------------------------------------


def _samples(registry: mlprobe.Registry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of family ``name`` keyed by their labels after model and model_version."""
    for family in registry.collect():
        if family.name == name:
            return {tuple(s.labels[2:]): getattr(s, "value", 0.0) for s in family.samples}
    return {}


def _serve(profile: ReferenceProfile, rows: list[Any]
           ) -> tuple[mlprobe.Registry, dict[str, Any]]:
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("q", registry=registry, reference=profile)
    scores = np.random.default_rng(9).random(len(rows)).tolist()  # the reference's scores

    @probe.track
    def predict(row: Any) -> float:
        return scores.pop()

    for row in rows:
        predict(row)
    return registry, probe.drift_status()


def _dict_rows(cur: dict[str, np.ndarray], columns: list[str], n: int = 1_200
               ) -> list[dict[str, Any]]:
    return [{c: (cur[c][i].item() if hasattr(cur[c][i], "item") else cur[c][i])
             for c in columns} for i in range(n)]


def test_serving_control_is_ok(built: dict[str, Any]) -> None:
    """Complete single-row traffic is ok overall; every feature has a quality series."""
    registry, doc = _serve(built["loaded"], _dict_rows(built["current"], ["a", "b", "c"]))
    assert doc["status"] == "ok" and doc["quality_status"] == "ok"
    quality = _samples(registry, "mlprobe_feature_quality_status")
    assert {k[0][1]: v for k, v in quality.items() if k[0][1] != "__prediction__"} == {
        "a": 0.0, "b": 0.0, "c": 0.0}


@pytest.mark.parametrize("case", ["missing column", "strings", "every feature missing"])
def test_serving_quality_reaches_status_and_metrics(built: dict[str, Any], case: str) -> None:
    """Serving: an absent feature, a numeric feature of strings, or rows without any feature
    make the overall status critical, in drift_status() and in the status gauges, and the
    feature keeps a quality series although its drift status is absent."""
    cur = built["current"]
    if case == "missing column":
        rows = _dict_rows(cur, ["b", "c"])
    elif case == "strings":
        rows = [{**r, "a": "oops"} for r in _dict_rows(cur, ["a", "b", "c"])]
    else:
        rows = [{"unrelated": 1.0} for _ in range(50)]
    registry, doc = _serve(built["loaded"], rows)
    assert doc["status"] == "critical" and doc["features"]["a"]["quality_status"] == "critical"
    assert doc["features"]["a"]["status"] == "insufficient_data"
    quality = _samples(registry, "mlprobe_feature_quality_status")
    assert quality[(("feature", "a"),)] == 2.0
    assert (("feature", "a"),) not in _samples(registry, "mlprobe_feature_drift_status")
    dataset = _samples(registry, "mlprobe_dataset_status")
    assert dataset[(("aspect", "overall"),)] == 2.0
    assert dataset[(("aspect", "quality"),)] == 2.0


def test_one_missing_value_in_a_small_window_is_not_an_alarm(built: dict[str, Any]) -> None:
    """Below min_count rows a missing share is insufficient data, unless no row has a value
    (and the reference makes that unlikely)."""
    rows = _dict_rows(built["current"], ["a", "b", "c"], n=20)
    rows[0]["a"] = None
    _, doc = _serve(built["loaded"], rows)
    assert doc["features"]["a"]["quality_status"] == "insufficient_data"
    assert doc["status"] == "insufficient_data"


# -- one counting rule on every path ----------------------------------------------------------


def _dirty(cur: dict[str, np.ndarray], n: int = 1_500) -> list[dict[str, Any]]:
    """Rows without feature b, with an extra column, strings and gaps in a, gaps in c."""
    rows = []
    for i in range(n):
        a: Any = float(cur["a"][i])
        if i % 17 == 0:
            a = "oops"
        elif i % 13 == 0:
            a = None
        rows.append({"a": a, "c": None if i % 11 == 0 else str(cur["c"][i]), "extra": 1})
    return rows


def _as_csv_cells(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [["" if r[k] is None else r[k] for k in ("a", "c", "extra")] for r in rows]


def _counts(doc: dict[str, Any]) -> dict[str, Any]:
    return {"rows": doc["rows"], "violations": doc["schema_violations"],
            **{name: {k: f["quality"][k] for k in ("rows", "count", "missing", "invalid")}
               for name, f in doc["features"].items()}}


def test_serving_observe_dataframe_and_cli_count_alike(built: dict[str, Any],
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """The same dirty data through @track single rows, probe.observe (list of dict rows and a
    DataFrame), DatasetWindow.update and the CLI gives the same schema violation counts, row
    counts and per-feature counts (a missing column counts once per row everywhere)."""
    profile: ReferenceProfile = built["loaded"]
    rows = _dirty(built["current"])
    bad_row = [1.0]  # a positional row of the wrong width (a ragged CSV row)
    _, tracked = _serve(profile, [*rows, bad_row])

    def observed(inputs: list[Any]) -> dict[str, Any]:
        registry = mlprobe.Registry()
        probe = mlprobe.Probe("o", registry=registry, reference=profile)
        for item in inputs:
            probe.observe(inputs=item)
        return probe.drift_status()

    batch = observed([rows, bad_row])
    frame = observed([pd.DataFrame(rows), bad_row])
    window = DatasetWindow(profile)
    window.update(rows)
    window.update(bad_row)
    direct = evaluate_dataset(profile, window).to_dict()
    path = _write_csv(built["dir"] / "dirty.csv", [*_as_csv_cells(rows), ["1.0"]],
                      ["a", "c", "extra"])
    assert main(["drift", str(built["profile"]), str(path), "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    expected = _counts(cli)
    assert expected["violations"] == {"missing_feature": 1_500, "unexpected_feature": 1_500,
                                      "wrong_type": 89, "wrong_width": 1}
    strings = sum(r["a"] == "oops" for r in rows)
    gaps = sum(r["a"] is None for r in rows)
    assert strings == 89
    assert expected["a"] == {"rows": 1_501, "count": 1_500 - strings - gaps,
                             "missing": gaps + 1, "invalid": strings}
    for name, doc in (("track", tracked), ("observe", batch), ("DataFrame", frame),
                      ("DatasetWindow", direct)):
        assert _counts(doc) == expected, name


def test_strict_mode_raises_where_counting_mode_counts() -> None:
    """Profile building refuses what serving counts: ragged rows, rows without a feature,
    columns of unequal length, a 1-D array, a non-table; with messages saying what to do."""
    cases = [
        ([[1.0, 2.0], [3.0]], "different widths"),
        ([{"a": 1.0, "b": 2.0}, {"a": 1.0}], "row 1"),
        ({"a": [1.0, 2.0], "b": [1.0]}, "different lengths"),
        (np.zeros(5), "reshape"),
        ("text", "must be a table"),
        ({"a": 1.0}, "dict of scalars"),
        ([1.0, 2.0], "flat list"),
    ]
    for X, needle in cases:
        with pytest.raises(ConfigurationError, match=needle):
            ReferenceProfile.from_data(X)
    from collections import Counter
    violations: Counter[str] = Counter()
    for X, _ in cases[:4]:
        to_columns(X, ("a", "b"), violations)  # counting mode: never raises
    assert sum(violations.values()) > 0
    assert table_columns([{"a": 1, "b": 2}, {"b": 3, "a": 4}]).keys() == {"a", "b"}


def test_missing_text_markers_match_the_coercion() -> None:
    """The CSV parser's missing markers are the ones the numeric coercion uses."""
    from mlprobe.stats import _coerce

    assert MISSING_TEXT == _coerce._MISSING_STRINGS


# -- the quality rule ---------------------------------------------------------------------------


def test_quality_rule_thresholds_and_all_missing_probability() -> None:
    """Share increases warn at 5 and go critical at 10 points once min_count rows are in;
    an all-missing feature is critical once that is under 0.1% likely under the reference."""
    g = np.random.default_rng(7)
    ref = {"x": g.normal(size=10_000), "h": np.where(g.random(10_000) < 0.5, np.nan, 1.0)}
    profile = ReferenceProfile.from_data(ref)

    def status(x: np.ndarray, h: np.ndarray, spec: DriftSpec | None = None) -> tuple[str, str]:
        w = DatasetWindow(profile)
        w.update({"x": x, "h": h})
        r = evaluate_dataset(profile, w, spec)
        return r.features["x"].quality_status, r.features["h"].quality_status

    x = g.normal(size=2_000)
    half = np.where(g.random(2_000) < 0.5, np.nan, 1.0)
    assert status(x, half) == ("ok", "ok")
    x7 = x.copy()
    x7[: 140] = np.nan
    assert status(x7, half)[0] == "warning"
    x12 = x.copy()
    x12[: 240] = np.nan
    assert status(x12, half)[0] == "critical"
    assert status(x12[:500], half[:500])[0] == "insufficient_data"  # below min_count
    # "h" is missing in half the reference: 9 missing rows in a row are 0.2% likely, 10 are 0.1%
    assert status(np.ones(9), np.full(9, np.nan))[1] == "insufficient_data"
    assert status(np.ones(10), np.full(10, np.nan))[1] == "critical"
    assert status(np.full(1, np.nan), np.ones(1))[0] == "critical"  # never missing before
