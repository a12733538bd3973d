"""Property campaign over profile documents and CSV bytes (deterministic in CI).

* A mutated profile document (wrong types, NaN/inf/huge numbers, unsorted or duplicate
  edges, bad indices, odd Unicode, deleted or duplicated entries, corrupted bytes) is either
  refused with a one-line ProfileError, or it loads and then works: a probe on it serves
  traffic, scrapes to a parseable exposition and answers ``drift_status()``.
* Any CSV bytes (encodings, quotes, NULs, ragged rows, long fields) make the CLI exit 0, 1 or
  2, never with a traceback or an internal error, and with one error line when it is 2.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlprobe._cli import main
from mlprobe._profile import ReferenceProfile
from mlprobe.errors import ProfileError
from profiles import exercise

G = np.random.default_rng(21)


def _templates() -> list[dict[str, Any]]:
    n = 300
    numeric = {"a": G.normal(0, 1, n), "k": G.poisson(2, n).astype(float)}
    categorical = {"c": G.choice(["x", "y", "z", "w"], n), "flag": G.random(n) < 0.3}
    mixed = ReferenceProfile.from_data({**numeric, **categorical}, y=G.integers(0, 3, n),
                                       predictions=G.random(n), n_bins=10,
                                       sensitive=["c"], target_name="t", prediction_name="p")
    classes = ReferenceProfile.from_data(categorical, predictions=G.choice(["yes", "no"], n),
                                         n_bins=10)
    plain = ReferenceProfile.from_data(numeric, n_bins=12, importance={"a": 1.0, "k": 2.0})
    return [json.loads(json.dumps(p.to_dict())) for p in (mixed, classes, plain)]


TEMPLATES = _templates()

ODD_TEXT = st.sampled_from(["", "__other__", "nan", "None", "\udc80bad", "a\x00b", "é", "日本語",
                            "\U0001F600", " x ", "x" * 2000, "\u202e", "a\nb", "1.0", "True"])
TEXT = st.one_of(ODD_TEXT, st.text(st.characters(exclude_categories=()), max_size=6))
NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 2**53, 2**53 + 1, 2**63, -2**63, 10**30, 1e308, -1e308,
                     1e300, 5e-324, -0.0, float("nan"), float("inf"), float("-inf"), 0.5]),
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True))
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
# Containers are drawn from a fixed set: cheaper than recursive strategies, and a mutation
# of a container's entries is another mutation anyway.
CONTAINERS = st.sampled_from([[], {}, [1.0], [None], ["x", "x"], [[1.0]], {"name": "a"},
                              [3.0, 1.0, 2.0], {"type": "numeric"}, [0, -1], [True]]
                             ).map(copy.deepcopy)  # later mutations must not change the set
JSON_VALUES = st.one_of(LEAVES, CONTAINERS)
LIST_OPS = ("reverse", "duplicate", "drop", "swap", "append", "clear", "sort")


def _mutate(draw: Any, root: Any) -> Any:
    """Apply one mutation at a random place of the document; return the (new) root."""
    parent: Any = None
    key: Any = None
    node = root
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 4)) > 0:
        key = draw(st.sampled_from(sorted(node, key=str))) if isinstance(node, dict) else \
            draw(st.integers(0, len(node) - 1))
        parent, node = node, node[key]
    op = draw(st.sampled_from(["replace", "delete", "number", "list", "text"]))
    if op == "list" and isinstance(node, list):
        which = draw(st.sampled_from(LIST_OPS))
        if which == "reverse":
            node.reverse()
        elif which == "duplicate" and node:
            node.insert(draw(st.integers(0, len(node))), copy.deepcopy(node[0]))
        elif which == "drop" and node:
            node.pop(draw(st.integers(0, len(node) - 1)))
        elif which == "swap" and len(node) > 1:
            i, j = draw(st.integers(0, len(node) - 1)), draw(st.integers(0, len(node) - 1))
            node[i], node[j] = node[j], node[i]
        elif which == "append":
            node.append(draw(JSON_VALUES))
        elif which == "clear":
            node.clear()
        elif which == "sort" and all(isinstance(v, str) for v in node):
            node.sort()
        return root
    if op == "number" and isinstance(node, (int, float)) and not isinstance(node, bool):
        new: Any = draw(st.sampled_from([node + 1, node - 1, -node, node * 1e300, node / 3]))
    elif op == "text":
        new = draw(TEXT)
    elif op == "delete" and parent is not None:
        del parent[key]
        return root
    else:
        new = draw(JSON_VALUES)
    if parent is None:
        return new
    parent[key] = new
    return root


@st.composite
def mutated_documents(draw: Any) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 3))):
        doc = _mutate(draw, doc)
    return doc


def _refused_in_one_line(exc: ProfileError) -> None:
    message = str(exc)
    assert message and "\n" not in message and len(message) < 500, message


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_documents_are_refused_in_one_line_or_work(doc: Any) -> None:
    """from_dict refuses a broken document with one line, and what it accepts works."""
    try:
        profile = ReferenceProfile.from_dict(doc)
    except ProfileError as exc:
        _refused_in_one_line(exc)
        return
    exercise(profile, rows=16, parse=False)


@st.composite
def valid_documents(draw: Any) -> dict[str, Any]:
    """Documents built to be valid: random Unicode levels, random sorted edges and counts."""
    doc = copy.deepcopy(TEMPLATES[0])
    cat = next(f for f in doc["features"] if f["name"] == "c")
    levels = draw(st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
                           min_size=0, max_size=8, unique=True))
    levels = [v for v in levels if v != "__other__" and v.strip()]  # blank is missing
    cat["levels"] = levels
    cat["counts"] = [draw(st.integers(0, 50)) for _ in levels] + [draw(st.integers(0, 50))]
    cat["count"] = sum(cat["counts"])
    cat["missing"] = 300 - cat["count"] if cat["count"] <= 300 else 0
    cat["n_distinct"] = len(levels) + draw(st.integers(0, 5))
    num = next(f for f in doc["features"] if f["name"] == "a")
    edges = sorted(set(draw(st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=11))))
    num["edges"] = edges
    num["psi_edge_index"] = sorted(set(draw(st.lists(st.integers(0, len(edges) - 1),
                                                     min_size=1, max_size=9))))
    counts = [draw(st.integers(0, 40)) for _ in range(len(edges) + 1)]
    counts[0] += 1  # at least one reference value
    num["counts_base"], num["counts_delta"] = 0, counts
    num["count"] = sum(counts)
    num["missing"], num["invalid"] = 0, 0
    num["min"], num["max"] = edges[0] - 1.0, edges[-1] + 1.0
    num["mean"], num["std"] = (edges[0] + edges[-1]) / 2, draw(st.floats(0, 1e6))
    for f in doc["features"] + [doc["prediction"], doc["target"]]:
        if f is cat and cat["count"] > 300:
            pass
    rows = {f["count"] + f["missing"] + f.get("invalid", 0) for f in (cat, num)}
    doc["n_rows"] = 300
    if rows != {300}:  # keep every entry on n_rows: pad missing counts
        for f in (cat, num):
            f["missing"] = max(0, 300 - f["count"] - f.get("invalid", 0))
        doc["n_rows"] = max(f["count"] + f["missing"] + f.get("invalid", 0)
                            for f in doc["features"] + [doc["prediction"], doc["target"]])
        for f in doc["features"] + [doc["prediction"], doc["target"]]:
            f["missing"] += doc["n_rows"] - (f["count"] + f["missing"] + f.get("invalid", 0))
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_documents())
def test_valid_documents_load_and_work(doc: dict[str, Any]) -> None:
    """Documents valid by construction (any Unicode level, any sorted edges) are accepted and
    work end to end."""
    exercise(ReferenceProfile.from_dict(doc), rows=16)


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield directory


@pytest.fixture(scope="module")
def scratch() -> Iterator[str]:
    """One directory for the module's generated files (each example overwrites its own)."""
    with _scratch() as directory:
        yield directory


@st.composite
def corrupted_bytes(draw: Any) -> bytes:
    data = bytearray(json.dumps(draw(st.sampled_from(TEMPLATES))).encode())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b"[", b"{", b"NaN", b"1e999", b"\xff", b'"',
                                              b"9" * 40, b",", b"\\ud800"]))
        elif op == "delete" and data:
            del data[i:i + draw(st.integers(1, 20))]
    return bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_bytes())
def test_corrupted_files_are_refused_in_one_line_or_work(scratch: str, data: bytes) -> None:
    """load() on a file with flipped, cut or inserted bytes: one-line ProfileError, or works."""
    path = os.path.join(scratch, "corrupt.json")
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        profile = ReferenceProfile.load(path)
    except ProfileError as exc:
        _refused_in_one_line(exc)
        return
    exercise(profile, rows=16, parse=False)


# -- CSV bytes through the CLI -----------------------------------------------------------------

CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", "NA", "null", "oops", "inf", "-1e999", '"', "a,b", "x\ny", "\x00",
                     "é", "x", "y", "z", "w", "True", " 1.5 ", "1_0", "\r", "\ufeff"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
)
HEADERS = st.lists(st.sampled_from(["a", "k", "c", "flag", "extra", "p", "t", "", "a b",
                                    "\ufeffa"]), min_size=1, max_size=6)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "utf-16-le",
                             "cp1252", "raw"])


class CsvBytes(bytes):
    """File content whose repr stays short (a failing example may hold a 140 kB field)."""

    def __repr__(self) -> str:
        text = bytes.__repr__(self)
        return text if len(text) < 2_000 else f"{text[:1_000]}...<{len(self)} bytes>"


@st.composite
def csv_files(draw: Any) -> CsvBytes:
    header = draw(HEADERS)
    n_rows = draw(st.integers(0, 12))
    rows = []
    for _ in range(n_rows):
        width = len(header) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        rows.append([draw(CELLS) for _ in range(max(width, 0))])
    if draw(st.integers(0, 30)) == 0 and rows:  # rarely: a field over csv's default limit
        rows[0][0:1] = ["L" * 140_000]
    quoted = draw(st.booleans())
    if quoted:
        buffer = io.StringIO()
        import csv

        csv.writer(buffer).writerows([header, *rows])
        text = buffer.getvalue()
    else:  # naive joining: unbalanced quotes, stray separators and line breaks
        text = "\n".join(",".join(r) for r in [header, *rows]) + draw(
            st.sampled_from(["", "\n", "\r\n"]))
    encoding = draw(ENCODINGS)
    if encoding == "raw":
        data = bytearray(text.encode("utf-8", "replace"))
        for _ in range(draw(st.integers(1, 3))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return CsvBytes(data)
    return CsvBytes(text.encode(encoding, "replace"))


@pytest.fixture(scope="module")
def cli_profile(scratch: str) -> str:
    """The profile the CSV campaign checks against (numeric, categorical, roles, sensitive)."""
    path = os.path.join(scratch, "profile.json")
    with open(path, "w") as fh:
        json.dump(TEMPLATES[0], fh)
    return path


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _clean_exit(code: int, out: str, err: str, *, json_out: bool) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if not line.startswith("mlprobe: note:")]
        assert len(errors) == 1 and errors[0].startswith("mlprobe: error:"), err
    elif json_out:
        json.loads(out)


OPTIONS = st.lists(st.sampled_from([("--fail-on", "warning"), ("--min-count", "1"),
                                    ("--target", "t"), ("--prediction", "p"),
                                    ("--exclude", "extra"), ("--encoding", "latin-1")]),
                   max_size=3, unique=True)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), OPTIONS)
def test_any_csv_drift_exits_0_1_or_2(scratch: str, cli_profile: str, data: bytes,
                                      options: list[tuple[str, str]]) -> None:
    """`mlprobe drift` on any CSV bytes: exit 0/1/2, JSON on success, one line on error."""
    path = os.path.join(scratch, "current.csv")
    with open(path, "wb") as fh:
        fh.write(data)
    argv = ["drift", cli_profile, path, "--format", "json", *(x for o in options for x in o)]
    _clean_exit(*_run(argv), json_out=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files())
def test_any_csv_profile_exits_0_or_2(scratch: str, data: bytes) -> None:
    """`mlprobe profile` on any CSV bytes: exit 0 with a loadable profile, or 2 in one line."""
    path = os.path.join(scratch, "train.csv")
    out_path = os.path.join(scratch, "built.json")
    with open(path, "wb") as fh:
        fh.write(data)
    if os.path.exists(out_path):
        os.unlink(out_path)
    code, out, err = _run(["profile", path, "-o", out_path])
    _clean_exit(code, out, err, json_out=False)
    assert code in (0, 2)
    if code == 0:
        exercise(ReferenceProfile.load(out_path), rows=8, parse=False)
