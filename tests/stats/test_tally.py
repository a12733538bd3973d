"""Categorical tallies: the pandas hash-table path and the Counter path count alike."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlprobe.stats import CategoryCounts
from mlprobe.stats._coerce import PANDAS_MIN_ROWS, tally_categorical

VALUES = st.one_of(
    st.sampled_from(["a", "b", "premium", "", " ", "None", "1"]),
    st.none(), st.just(float("nan")), st.just(pd.NA), st.integers(-3, 3), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)


def _counts(column: list, with_pandas: bool) -> tuple:
    with pytest.MonkeyPatch.context() as m:
        if not with_pandas:
            m.setitem(sys.modules, "pandas", None)  # as in a process that never imported it
        tally, missing = tally_categorical(np.array(column, dtype=object))
        counts = CategoryCounts(["a", "b", "premium", "1", "True", "0"])
        counts.update_counts(tally)
    return counts.counts.tolist(), missing


@settings(max_examples=40)
@given(st.lists(VALUES, min_size=1, max_size=8))
def test_pandas_and_counter_tallies_agree(pattern: list) -> None:
    """Both paths give the same level counts and missing count on mixed, dirty columns."""
    column = (pattern * (PANDAS_MIN_ROWS // len(pattern) + 1))[:PANDAS_MIN_ROWS + 3]
    assert _counts(column, True) == _counts(column, False)


def test_missing_values_and_unhashable_values_never_raise() -> None:
    """None, NaN, NA and blank strings are missing; a list value is counted by its text."""
    column = ["a", None, float("nan"), pd.NA, "", " ", ["x"], "a"] * 200
    for with_pandas in (True, False):
        with pytest.MonkeyPatch.context() as m:
            if not with_pandas:
                m.setitem(sys.modules, "pandas", None)
            tally, missing = tally_categorical(np.array(column, dtype=object))
        assert missing == 5 * 200
        assert tally == {"a": 400, "['x']": 200}
