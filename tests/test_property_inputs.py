"""Property campaign: whatever a model takes and returns, tracking never hurts it.

Hypothesis generates model inputs and outputs of every odd kind (NaN, inf, None, huge ints,
strings with surrogates, bytes, nested and ragged lists, empty batches, unknown columns,
objects whose dunder methods raise, numpy arrays, DataFrames) and sends them through a tracked
function whose probe has a reference profile. For each case: no exception escapes except the
model's own (the very same object), the result is the same object and unchanged, the input is
unchanged, and mlprobe swallowed nothing (the suite's autouse fixture makes every swallowed
internal error raise). Every 50 cases the registry is collected and exposed, as a scrape would.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

import mlprobe
from mlprobe.exporters import prometheus as prom_export

FEATURES = ("age", "income", "plan")


class Hostile:
    """An object whose every dunder mlprobe might call raises (it stays hashable by id)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __float__(self) -> float:
        raise RuntimeError(f"{self.what}: no float")

    def __index__(self) -> int:
        raise RuntimeError(f"{self.what}: no index")

    def __str__(self) -> str:
        raise RuntimeError(f"{self.what}: no str")

    def __repr__(self) -> str:  # kept working: hypothesis prints the cases it draws
        return f"Hostile({self.what!r})"

    def __len__(self) -> int:
        raise RuntimeError(f"{self.what}: no len")

    def __iter__(self) -> Any:
        raise RuntimeError(f"{self.what}: no iter")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise RuntimeError(f"{self.what}: no array")


class Unhashable(Hostile):
    __hash__ = None  # type: ignore[assignment]


class BadHash(Hostile):
    def __hash__(self) -> int:
        raise RuntimeError("no hash")


class BadEq(Hostile):
    def __hash__(self) -> int:
        return hash("pro")  # collides with a level: a lookup must compare

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")


class ModelError(Exception):
    """The model's own failure; it must reach the caller as the same object."""


HOSTILE = [Hostile("h"), Unhashable("u"), BadHash("b"), BadEq("e")]
hostile = st.integers(0, len(HOSTILE) - 1).map(HOSTILE.__getitem__)

scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.none(),
    st.booleans(),
    st.text(st.characters(codec=None), max_size=12),  # any code point, lone surrogates too
    st.sampled_from(["basic", "pro", "team", "", " ", "nan", "None", "1.5"]),
    st.binary(max_size=8),
    hostile,
    st.builds(np.float64, st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(np.int64, st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)),
)
keys = st.one_of(st.sampled_from(FEATURES), st.text(max_size=6), st.integers(0, 3))
dict_rows = st.dictionaries(keys, scalars, max_size=4)
clean_rows = st.fixed_dictionaries({"age": st.floats(0, 100), "income": st.floats(0, 1e6),
                                    "plan": st.sampled_from(["basic", "pro", "team", "zzz"])})
positional = st.lists(scalars, max_size=4)
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
columns = st.dictionaries(keys, st.lists(scalars, max_size=4), max_size=3)
def object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # element by element: np.array() would call __array__
        out[i] = v
    return out


arrays = st.one_of(
    st.integers(0, 4).flatmap(lambda w: st.lists(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=w, max_size=w),
        max_size=6).map(lambda rows, w=w: np.array(rows, dtype=np.float64).reshape(len(rows),
                                                                                   w))),
    st.lists(scalars, max_size=4).map(object_array),
)


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(0, 3))
    names = draw(st.lists(st.sampled_from([*FEATURES, "other"]), unique=True, max_size=4))
    return pd.DataFrame({name: draw(st.lists(scalars, min_size=n, max_size=n))
                         for name in names}, dtype=object)


_BIG = np.random.default_rng(1).normal(40, 10, (80, 3))
_BIG[3, 0], _BIG[5, 2] = np.nan, np.inf
FIXED_INPUTS = [  # shapes worth a case every time the campaign runs; big ones ingest at once
    [], {}, (), np.zeros((0, 3)), np.zeros((2, 3, 4)), "not rows", b"\xff", _BIG,
    [{"age": 1.0, "income": 2.0, "plan": "pro"}] * 70,
    {"age": list(range(70)), "income": [1.5] * 70, "plan": ["basic", None] * 35},
    pd.DataFrame({"age": [1.0, None], "income": ["x", 2.0], "plan": ["pro", 1]}),
]
inputs = st.one_of(
    clean_rows, dict_rows, st.lists(st.one_of(clean_rows, dict_rows), max_size=4),
    positional, nested, columns, arrays, frames(), hostile, scalars,
    st.sampled_from(FIXED_INPUTS),
)
outputs = st.one_of(
    scalars, st.lists(scalars, max_size=4), nested, arrays,
    st.dictionaries(st.text(max_size=4), st.one_of(scalars, st.lists(scalars, max_size=3)),
                    max_size=2),
    st.lists(st.floats(0, 1), min_size=1, max_size=6).map(np.array),
    st.lists(st.lists(st.floats(0, 1), min_size=2, max_size=2), min_size=1, max_size=4).map(
        np.array),
)


def fingerprint(obj: Any, depth: int = 0) -> Any:
    """A structural snapshot that calls no user method, to see that nothing was changed."""
    kind = type(obj)
    if depth > 20:
        return ("deep", id(obj))
    if kind is float:
        return (kind, struct.pack("<d", obj))
    if kind in (int, str, bytes, bool) or obj is None:
        return (kind, obj)
    if kind in (list, tuple):
        return (kind, tuple(fingerprint(v, depth + 1) for v in obj))
    if kind is dict:
        return (kind, tuple((fingerprint(k, depth + 1), fingerprint(v, depth + 1))
                            for k, v in obj.items()))
    if kind is np.ndarray:
        if obj.dtype == object:
            return (kind, obj.shape, tuple(fingerprint(v, depth + 1) for v in obj.ravel()))
        return (kind, obj.dtype.str, obj.shape, obj.tobytes())
    if kind is pd.DataFrame:
        return (kind, tuple(obj.columns), tuple(fingerprint(obj[c].to_numpy(), depth + 1)
                                                for c in obj.columns))
    return (kind, id(obj))  # np scalars, hostile objects: the same object


@pytest.fixture(scope="module")
def tracked() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    profile = mlprobe.ReferenceProfile.from_data(
        {"age": rng.normal(40, 10, 2000), "income": rng.lognormal(10, 0.5, 2000),
         "plan": rng.choice(["basic", "pro", "team"], 2000).astype(object)},
        predictions=rng.random(2000), categorical=["plan"])
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("property", registry=registry, reference=profile)
    box: dict[str, Any] = {}

    @probe.track
    def predict(x: Any) -> Any:
        if box.get("error") is not None:
            raise box["error"]
        return box["result"]

    prometheus = CollectorRegistry()
    prom_export.register(registry, prometheus)
    return {"predict": predict, "box": box, "registry": registry, "prometheus": prometheus,
            "probe": probe, "cases": 0}


CASES_PER_EXAMPLE = 8  # hypothesis' fixed cost per example is about 1 ms: draw cases in eights


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(cases=st.lists(st.tuples(inputs, outputs, st.integers(0, 19)),
                      min_size=CASES_PER_EXAMPLE, max_size=CASES_PER_EXAMPLE))
def test_tracking_never_changes_a_result_or_raises(tracked, cases):
    """For any input and output (4,000 cases), the tracked call returns the same, unchanged
    object (or raises the model's own exception object) and mlprobe swallows nothing."""
    box = tracked["box"]
    for x, result, fails in cases:
        before_in, before_out = fingerprint(x), fingerprint(result)
        box["result"] = result
        box["error"] = ModelError("the model failed") if fails == 0 else None
        if box["error"] is not None:
            with pytest.raises(ModelError) as caught:
                tracked["predict"](x)
            assert caught.value is box["error"]
        else:
            assert tracked["predict"](x) is result
        assert fingerprint(x) == before_in
        assert fingerprint(result) == before_out
    tracked["cases"] += len(cases)
    if tracked["cases"] % (10 * CASES_PER_EXAMPLE) == 0:  # a scrape every 80 cases
        tracked["registry"].collect()
        generate_latest(tracked["prometheus"])
        assert tracked["probe"].drift_status()["model"] == "property"


def test_the_campaign_counted_its_calls(tracked):
    """The shared probe saw calls (so the property test above really exercised it), and every
    counter it exports is a finite, non-negative count. (Window gauges may be infinite or NaN
    once a value near the double range has overflowed a sum: that is their honest value.)"""
    families = {f.name: f for f in tracked["registry"].collect()}
    calls = sum(s.value for s in families["mlprobe_predictions"].samples)
    assert calls >= 4000
    for family in families.values():
        if family.kind != "counter":
            continue
        for sample in family.samples:
            assert math.isfinite(sample.value) and sample.value >= 0, family.name
