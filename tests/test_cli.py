"""The mlprobe CLI: profile and drift commands, exit codes, errors without tracebacks."""

from __future__ import annotations

import argparse
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


# -- errors: one line, exit 2, never a traceback ---------------------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr (notes aside), asserting there is nothing else."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("mlprobe: note:")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("mlprobe: error:"), err
    return lines[0]


@pytest.mark.parametrize("data,needle", [
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'{"format": "mlprobe.profile", "version": 1, "n_rows": ' + b"7" * 5_000 + b"}",
     "integer literal"),
    (b'{"format": "mlprobe.profile", "version": 1, "n_rows": 1, "n_bins": 10, '
     b'"max_categories": 5, "features": [3]}', "features[0] must be an object"),
    (b'{"format": "mlprobe.profile", "version": 1, "n_rows": 1, "n_bins": 10, '
     b'"max_categories": 5, "features": [{"name": "a", "type": "numeric", "edges": "x"}]}',
     "must be"),
    ("{}".encode("utf-16"), "not UTF-8"),
])
def test_bad_profiles_exit_2_in_one_line(files: dict[str, Path], tmp_path: Path, data: bytes,
                                         needle: str, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    """Deep nesting, a 5,000-digit literal, wrong types inside and UTF-16: exit 2, one line."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(data)
    assert main(["drift", str(bad), str(files["same"])]) == 2
    assert needle in _one_line_error(capsys)


def test_profile_size_limit_flag(files: dict[str, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--max-profile-bytes caps the profile read, and the message says how to raise it."""
    assert main(["drift", str(files["profile"]), str(files["same"]),
                 "--max-profile-bytes", "100"]) == 2
    assert "--max-profile-bytes" in _one_line_error(capsys)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16-le"])
def test_csv_in_another_encoding(files: dict[str, Path], tmp_path: Path, encoding: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes that are not UTF-8 exit 2 with a hint to pass --encoding; with it, they read."""
    text = "a,b,c\n" + "".join(f"{i / 10},{i % 5},caf\xe9\n" for i in range(50))
    path = tmp_path / "latin.csv"
    data = text.encode(encoding)
    if encoding == "latin-1":
        path.write_bytes(data)
        assert main(["drift", str(files["profile"]), str(path)]) == 2
        assert "--encoding" in _one_line_error(capsys)
    else:  # UTF-16 with its byte-order mark is recognised without --encoding
        path.write_bytes(b"\xff\xfe" + data)
        assert main(["drift", str(files["profile"]), str(path), "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["rows"] == 50
    assert main(["drift", str(files["profile"]), str(path), "--encoding", encoding,
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 50 and doc["features"]["a"]["quality"]["count"] == 50
    assert main(["drift", str(files["profile"]), str(path), "--encoding", "klingon"]) == 2
    assert "unknown encoding" in _one_line_error(capsys)


def test_long_fields_read_and_overlong_fields_exit_2(files: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A field over csv's default 131,072 characters reads; one over the raised, bounded
    limit exits 2 naming the line."""
    from mlprobe import _cli_io

    path = tmp_path / "long.csv"
    path.write_text("a,b,c\n1.0,2," + "x" * 200_000 + "\n2.0,3,y\n")
    assert main(["drift", str(files["profile"]), str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 2 and doc["features"]["c"]["quality"]["unseen"] == 1
    monkeypatch.setattr(_cli_io, "MAX_FIELD_CHARS", 100_000)
    assert main(["drift", str(files["profile"]), str(path)]) == 2
    assert "line 2" in _one_line_error(capsys)
    import csv as stdlib_csv
    assert stdlib_csv.field_size_limit() == 131_072  # restored after the command


def test_odd_bytes_in_csv_never_trace(files: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """NUL bytes, an unclosed quote, a header only, an empty file, a directory: 0 or 2."""
    cases = {
        "nul.csv": b"a,b,c\n1\x00,2,x\n",
        "quote.csv": b'a,b,c\n1,2,"x\n3,4,y\n',
        "header.csv": b"a,b,c\n",
        "empty.csv": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code = main(["drift", str(files["profile"]), str(path)])
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, (name, err)
        assert code == 0 or err.strip().count("\n") == 0
    assert main(["drift", str(files["profile"]), str(tmp_path)]) == 2
    assert "cannot read" in _one_line_error(capsys)


def test_unwritable_output(files: dict[str, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """-o into a missing directory or onto a directory exits 2 before reading the data."""
    assert main(["profile", str(files["train"]), "-o", str(tmp_path / "nope" / "p.json")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    assert main(["profile", str(files["train"]), "-o", str(tmp_path)]) == 2
    assert "is a directory" in _one_line_error(capsys)


def test_profile_refuses_ragged_rows_and_duplicate_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Building a profile is strict: a ragged row or a duplicated column name exits 2."""
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n4,5\n")
    assert main(["profile", str(ragged), "-o", str(tmp_path / "p.json")]) == 2
    assert "data row 2 has 1 cells" in _one_line_error(capsys)
    dupes = tmp_path / "dupes.csv"
    dupes.write_text("a,a\n1,2\n")
    assert main(["profile", str(dupes), "-o", str(tmp_path / "p.json")]) == 2
    assert "two columns named 'a'" in _one_line_error(capsys)
    assert not (tmp_path / "p.json").exists()


def test_bad_numbers_in_options(files: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Out-of-range --bins / --max-categories / --min-count exit 2 with a usage message."""
    out = str(tmp_path / "p.json")
    for args in (["--bins", "5"], ["--bins", "100000"], ["--max-categories", "0"]):
        assert main(["profile", str(files["train"]), "-o", out, *args]) == 2
        assert "must be an int" in _one_line_error(capsys)
    assert main(["drift", str(files["profile"]), str(files["same"]), "--min-count", "0"]) == 2
    assert "positive" in capsys.readouterr().err


def test_version_help_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version; --help documents the exit codes and every option."""
    from mlprobe import __version__
    from mlprobe._cli import _parser

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mlprobe {__version__}"
    for argv in (["--help"], ["profile", "--help"], ["drift", "--help"]):
        assert main(argv) == 0
        text = capsys.readouterr().out
        assert "exit codes:" in text and "1  mlprobe drift" in text and "2  usage error" in text
    parser = _parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = [parser, *subparsers[0].choices.values()]
    for p in parsers:
        for action in p._actions:
            assert action.help and action.help != argparse.SUPPRESS, (p.prog, action.dest)


def test_internal_errors_are_one_line_unless_asked(files: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A bug inside mlprobe is one 'internal error' line and exit 2; --traceback re-raises."""
    from mlprobe import _cli

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(_cli, "evaluate_dataset", broken)
    assert main(["drift", str(files["profile"]), str(files["same"])]) == 2
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--traceback", "drift", str(files["profile"]), str(files["same"])])


def test_subprocess_errors_and_version(files: dict[str, Path], tmp_path: Path) -> None:
    """As a subprocess: --version exits 0; a deeply nested profile exits 2 with one line."""
    version = subprocess.run([sys.executable, "-m", "mlprobe", "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("mlprobe ")
    bad = tmp_path / "deep.json"
    bad.write_bytes(b"[" * 100_000)
    proc = subprocess.run([sys.executable, "-m", "mlprobe", "drift", str(bad),
                           str(files["same"])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_closed_stdout_is_not_a_traceback(files: dict[str, Path], tmp_path: Path) -> None:
    """`mlprobe drift ... | head -c 100`: the reader leaves early, the verdict exit code
    stands and nothing is printed about a broken pipe."""
    g = np.random.default_rng(8)
    wide = {f"f{i}": g.normal(size=300) for i in range(150)}
    train = _write(tmp_path / "wide.csv", wide)
    prof = tmp_path / "wide.json"
    assert main(["profile", str(train), "-o", str(prof)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "mlprobe", "drift", str(prof), str(train),
                             "--format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()  # the report (~180 KiB) outgrows the pipe: the writer meets EPIPE
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# -- the training columns' roles ---------------------------------------------------------------


def test_profile_remembers_target_and_prediction(files: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """After `profile --target label --prediction score`, plain `drift` on the same columns
    reports no unexpected features, prediction drift and label drift."""
    p = ReferenceProfile.load(files["profile"])
    assert (p.target_name, p.prediction_name) == ("label", "score")
    assert main(["drift", str(files["profile"]), str(files["same"]), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_violations"] == {}
    assert doc["prediction"]["status"] == "ok" and doc["prediction"]["quality"]["count"] == 5000
    assert doc["target"]["status"] == "ok" and doc["target"]["kind"] == "categorical"


def test_label_drift_is_reported_and_fails(files: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A label distribution moved from 50/50 to 80/20 is critical target drift and exits 1
    with --fail-on; markdown shows the target row next to the prediction row."""
    data = _data(5_000, seed=4)
    data["label"] = (np.random.default_rng(4).random(5_000) < 0.8).astype(int)
    path = _write(tmp_path / "labels.csv", data)
    assert main(["drift", str(files["profile"]), str(path), "--fail-on", "critical"]) == 1
    out = capsys.readouterr().out
    assert "| label | target | categorical | critical |" in out
    assert "| score | prediction | numeric | ok |" in out


def test_labels_written_as_floats_match_integer_levels(files: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Labels profiled from "0"/"1" match current labels written "0.0"/"1.0" (as pandas
    writes an integer column with a gap): no unseen level, no label drift."""
    data = _data(3_000, seed=9)
    data["label"] = data["label"].astype(float)
    path = _write(tmp_path / "float-labels.csv", data)
    assert "0.0" in path.read_text()
    assert main(["drift", str(files["profile"]), str(path), "--format", "json"]) == 0
    target = json.loads(capsys.readouterr().out)["target"]
    assert target["quality"]["unseen"] == 0 and target["status"] == "ok"


def test_target_flag_errors_and_missing_stored_columns(files: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """--target on a profile without a target exits 2; stored role columns absent from the
    current file are noted, not errors."""
    plain = tmp_path / "plain.json"
    assert main(["profile", str(files["train"]), "--exclude", "label", "score",
                 "-o", str(plain)]) == 0
    capsys.readouterr()
    assert main(["drift", str(plain), str(files["same"]), "--target", "label"]) == 2
    assert "has no target" in _one_line_error(capsys)
    data = _data(2_000, seed=6)
    del data["label"], data["score"]
    path = _write(tmp_path / "features-only.csv", data)
    assert main(["drift", str(files["profile"]), str(path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "no prediction drift" in captured.err and "no target drift" in captured.err
    doc = json.loads(captured.out)
    assert doc["prediction"]["quality"]["rows"] == 0 and doc["target"] is None


def test_version_1_profiles_without_roles_still_load(files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """A version-1 document written before roles existed loads, with no roles."""
    doc = json.loads(files["profile"].read_text())
    doc.pop("target_name")
    doc.pop("prediction_name")
    assert doc["version"] == 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    p = ReferenceProfile.load(old)
    assert p.target_name is None and p.prediction_name is None and p.target is not None
    assert main(["drift", str(old), str(files["same"]), "--prediction", "score"]) == 0
