"""Windows as plain data (what processes exchange): ``DatasetWindow.to_dict(arrays=True)`` read
back by ``from_dict`` on an empty window of the same profile.

Oracle: the window itself (the rebuilt one exports the same dict, exactly).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import pytest

from mlprobe._window import DatasetWindow
from profiles import small_profile

PROFILE = small_profile()


def _filled() -> DatasetWindow:
    g = np.random.default_rng(4)
    window = DatasetWindow(PROFILE, sketch=True)
    window.update({"a": np.append(g.normal(0, 2, 200), [np.nan, 50.0]),
                   "c": list(g.choice(["x", "y", "w"], 202))}, predictions=g.random(202))
    return window


def _arrays(data: dict[str, Any]) -> list[list[int]]:
    out = []
    for w in (*data["features"].values(), data["prediction"]):
        for part in ("bins", "categories"):
            if part in w:
                out += [np.asarray(v).tolist() for v in w[part].values()]
    return out


def test_a_window_round_trips_and_owns_its_arrays():
    """The rebuilt window exports what the original does, and updating either leaves the
    exchanged dict's arrays as they were (each window owns its counts)."""
    window = _filled()
    data = window.to_dict(arrays=True)
    saved = _arrays(data)
    back = DatasetWindow.from_dict(data, DatasetWindow(PROFILE, sketch=True))
    assert back.to_dict() == window.to_dict()
    more = {"a": [0.1, 0.2, 99.0], "c": ["x", "y", "z"]}
    window.update(more, predictions=[0.5, 0.5, 0.5])
    back.update(more, predictions=[0.5, 0.5, 0.5])
    assert _arrays(data) == saved
    assert back.to_dict() == window.to_dict()


def _rename(data: dict[str, Any]) -> None:
    data["features"]["a"]["name"] = "b"


def _drop_feature(data: dict[str, Any]) -> None:
    del data["features"]["c"]


def _short_counts(data: dict[str, Any]) -> None:
    data["features"]["a"]["bins"]["counts"] = data["features"]["a"]["bins"]["counts"][:-1]


def _three_outer_sums(data: dict[str, Any]) -> None:
    data["features"]["a"]["bins"]["outer_sums"] = np.zeros(3)


def _no_prediction(data: dict[str, Any]) -> None:
    data["prediction"] = None


@pytest.mark.parametrize("spoil", [_rename, _drop_feature, _short_counts, _three_outer_sums,
                                   _no_prediction])
def test_a_window_of_another_profile_is_refused(spoil: Callable[[dict[str, Any]], None]):
    """Plain data that does not fit the profile (another feature, other bins, a missing
    prediction window) raises ValueError, which the merger counts as an unreadable state."""
    data = copy.deepcopy(_filled().to_dict(arrays=True))
    spoil(data)
    with pytest.raises(ValueError):
        DatasetWindow.from_dict(data, DatasetWindow(PROFILE, sketch=True))
