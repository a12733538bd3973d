"""The mlprobe CLI: profile and drift commands, exit codes, errors without tracebacks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlprobe._cli import main
from mlprobe._profile import ReferenceProfile


def _write(path: Path, cols: dict[str, np.ndarray]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(cols))
        for row in zip(*cols.values()):
            w.writerow(["" if isinstance(v, float) and np.isnan(v) else v for v in row])
    return path


def _data(n: int, shift: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    a = g.normal(shift, 1, n)
    a[::50] = np.nan
    return {"a": a, "b": g.poisson(4, n), "c": g.choice(["x", "y", "z"], n),
            "label": g.integers(0, 2, n), "score": g.random(n)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    train = _write(d / "train.csv", _data(20_000))
    same = _write(d / "same.csv", _data(5_000, seed=1))
    shifted = _write(d / "shifted.csv", _data(5_000, shift=0.6, seed=2))
    prof = d / "profile.json"
    assert main(["profile", str(train), "--target", "label", "--prediction", "score",
                 "-o", str(prof)]) == 0
    return {"dir": d, "train": train, "same": same, "shifted": shifted, "profile": prof}


def test_profile_command_types_and_content(files: dict[str, Path]) -> None:
    """The CSV profile detects types, excludes target/prediction and keeps missing counts."""
    p = ReferenceProfile.load(files["profile"])
    assert p.feature_names == ("a", "b", "c")
    assert [f.kind for f in p.features.values()] == ["numeric", "numeric", "categorical"]
    assert p.features["a"].missing == 400 and p.features["b"].discrete
    assert p.prediction is not None and p.prediction.kind == "numeric"
    assert p.target is not None and p.target.kind == "categorical"


def test_drift_exit_codes(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 without drift, 1 when --fail-on is crossed, JSON parses, markdown has a table."""
    args = [str(files["profile"]), "--prediction", "score", "--target", "label"]
    assert main(["drift", args[0], str(files["same"]), *args[1:], "--fail-on", "warning"]) == 0
    assert "| a | feature | numeric | ok |" in capsys.readouterr().out
    assert main(["drift", args[0], str(files["shifted"]), *args[1:], "--format", "json",
                 "--fail-on", "critical"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["features"]["a"]["status"] == "critical"
    assert doc["features"]["b"]["status"] == "ok"
    assert main(["drift", args[0], str(files["shifted"]), *args[1:]]) == 0


def test_usage_and_profile_errors(files: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Bad usage, a corrupt profile or a missing column exit 2 with a one-line message."""
    bad = files["dir"] / "bad.json"
    bad.write_text("{nope")
    assert main(["drift", str(bad), str(files["same"])]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err
    assert main(["profile", str(files["train"]), "--target", "zzz", "-o", str(bad)]) == 2
    assert "no column 'zzz'" in capsys.readouterr().err
    assert main(["drift"]) == 2
    assert main(["profile", str(files["dir"] / "missing.csv"), "-o", str(bad)]) == 2


def test_dirty_csv_counts_invalid(files: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Strings in a numeric column and ragged rows are counted per row, not raised; a ragged
    row counts only as wrong_width, and as a row with every feature missing."""
    dirty = files["dir"] / "dirty.csv"
    dirty.write_text("a,b,c,extra\n1.0,3,x,1\noops,4,y,1\n,5\n2.0,6,z,1,9\n")
    assert main(["drift", str(files["profile"]), str(dirty), "--format", "json",
                 "--min-count", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    q = doc["features"]["a"]["quality"]
    assert (q["count"], q["missing"], q["invalid"]) == (1, 2, 1)
    assert doc["schema_violations"] == {"unexpected_feature": 2, "wrong_width": 2,
                                        "wrong_type": 1}


def test_python_dash_m_subprocess(files: dict[str, Path]) -> None:
    """`python -m mlprobe drift` runs as a subprocess with the documented exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlprobe", "drift", str(files["profile"]), str(files["shifted"]),
         "--fail-on", "warning"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Drift report" in proc.stdout


def test_parquet_profile_equals_csv_profile(files: dict[str, Path], tmp_path: Path) -> None:
    """A Parquet file gives the same profile as the same data read from CSV."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    data = _data(3_000, seed=5)
    csv_path = _write(tmp_path / "d.csv", data)
    table = pa.table({k: pa.array(v.tolist()) for k, v in data.items()})
    pq_path = tmp_path / "d.parquet"
    pq.write_table(table, pq_path)
    out_csv, out_pq = tmp_path / "csv.json", tmp_path / "pq.json"
    assert main(["profile", str(csv_path), "--target", "label", "-o", str(out_csv)]) == 0
    assert main(["profile", str(pq_path), "--target", "label", "-o", str(out_pq)]) == 0
    a = ReferenceProfile.load(out_csv).features["a"]
    b = ReferenceProfile.load(out_pq).features["a"]
    assert a.count == b.count and a.missing == b.missing
    assert np.allclose(a.edges, b.edges) and a.counts.tolist() == b.counts.tolist()
    assert ReferenceProfile.load(out_pq).features["c"].levels == \
        ReferenceProfile.load(out_csv).features["c"].levels
