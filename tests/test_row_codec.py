"""Encoded rows count exactly what the raw values would: the codec against the window's own
per-column update (the offline path), value kinds one by one and in bulk."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import mlprobe
from mlprobe._features import FeatureMonitor
from mlprobe._row_codec import RowCodec
from mlprobe._value_codes import INVALID, MISSING, UNSEEN, category_codes, category_counts
from mlprobe._window import DatasetWindow

LEVELS = ["basic", "pro", "team"]


@pytest.fixture(scope="module")
def profile() -> mlprobe.ReferenceProfile:
    rng = np.random.default_rng(0)
    return mlprobe.ReferenceProfile.from_data(
        {"age": rng.normal(40, 10, 3000), "income": rng.lognormal(10, 0.5, 3000),
         "plan": rng.choice(LEVELS, 3000).astype(object),
         "code": rng.choice([1, 2, 3], 3000).astype(object)},
        categorical=["plan", "code"])


def dirty_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    ages = rng.normal(40, 10, n).tolist()
    plans = rng.choice(LEVELS + ["zzz", "", None], n).tolist()
    rows = []
    for i in range(n):
        age: object = ages[i]
        if i % 17 == 0:
            age = None
        elif i % 19 == 0:
            age = float("inf")
        elif i % 23 == 0:
            age = "forty"
        elif i % 29 == 0:
            age = int(age)
        rows.append({"age": age, "income": float(i % 50) * 1000.0, "plan": plans[i],
                     "code": [1, 2, 3, 4, 2.0, "3", 3.0][i % 7]})
    return rows


def test_buffered_rows_count_what_the_offline_update_counts(profile):
    """3,000 dirty single rows (None, inf, strings, ints, unseen and blank categories, int
    codes as ints, floats and strings) buffered and flushed give the same counts, bins and
    moments as DatasetWindow.update on the same rows as columns (the offline path). (Booleans
    mixed with 0/1 are left out: the offline Counter groups True with 1, see _value_codes.)"""
    rows = dirty_rows(3000, 1)
    monitor = FeatureMonitor(profile)
    for row in rows:
        monitor.observe(row)
    served = monitor.totals()
    offline = DatasetWindow(profile, sketch=True)
    offline.update({name: np.array([r[name] for r in rows], dtype=object)
                    for name in profile.features})
    for name in profile.features:
        mine, oracle = served.features[name], offline.features[name]
        assert (mine.missing, mine.count) == (oracle.missing, oracle.count), name
        if mine.bins is not None:
            assert mine.invalid == oracle.invalid
            assert mine.bins.counts.tolist() == oracle.bins.counts.tolist()
            assert mine.moments.mean == pytest.approx(oracle.moments.mean, rel=1e-12)
            assert mine.moments.std() == pytest.approx(oracle.moments.std(), rel=1e-9)
        else:
            assert mine.categories.counts.tolist() == oracle.categories.counts.tolist(), name


def test_codes_and_counts_agree_for_every_column_kind():
    """category_counts equals a bincount of category_codes for lists, object, string, int
    and float arrays, with missing, blank, unseen and hostile values."""

    class BadHash:
        def __hash__(self) -> int:
            raise RuntimeError("no hash")

    index = {v: i for i, v in enumerate(["a", "b", "1", "2"])}
    size = len(index)
    columns = [
        ["a", "b", "zz", None, "", " ", float("nan"), 1, 2.0, BadHash(), [1]],
        np.array(["a", "b", "a", "q"]),
        np.array([1, 2, 2, 7]),
        np.array([1.0, np.nan, 2.0]),
        np.array(["a", None, "b"] * 500, dtype=object),  # long: the Counter/pandas path
    ]
    for column in columns:
        rows = len(column)
        codes = category_codes(column, rows, index, size)
        counts = category_counts(column, rows, index, size)
        assert codes.size == rows
        assert np.bincount(codes, minlength=size + INVALID + 1).tolist() == counts.tolist()
    codes = category_codes(columns[0], len(columns[0]), index, size).tolist()
    assert codes[:3] == [0, 1, size + UNSEEN]
    assert codes[3:7] == [size + MISSING] * 4  # None, "", " ", NaN
    assert codes[7:9] == [2, 3]  # 1 and 2.0 match the levels "1" and "2"
    assert codes[9] == size + INVALID and codes[10] == size + UNSEEN  # hostile; a list


def test_generated_packer_matches_the_general_encoder(profile):
    """For clean rows the generated packer and the value-by-value encoder give the same
    bytes, and a row it refuses is encoded by the general one."""
    codec = RowCodec(profile)
    row = {"age": 41.5, "income": 1e4, "plan": "pro", "code": "2"}
    violations: Counter[str] = Counter()
    assert codec.pack_row(row) == codec.encode_dict_row(row, violations)
    assert not violations
    odd = {"age": 41.5, "income": 1e4, "plan": "pro", "code": 2}  # an int code
    import struct

    with pytest.raises(struct.error):  # the int code is not a known string level: refused
        codec.pack_row(odd)
    assert codec.encode_row(odd, violations) == codec.pack_row(row)
    assert codec.row_bytes % 8 == 0
