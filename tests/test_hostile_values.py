"""One hostile value costs one value, never the batch, the call's counts or the model.

Hostile: a ``__hash__``, ``__eq__``, ``__str__``/``__repr__``, ``__float__``, ``__len__``,
``__array__``, ``__class__`` or ``to_numpy`` that raises, or an int too long to print. The
suite's autouse fixture turns any swallowed internal error into a failure, so every test here
also checks that nothing was swallowed: the values are counted (invalid, unseen, missing),
not failed on.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import mlprobe
from mlprobe._extract import class_counts, input_size, output_values
from mlprobe._features import FeatureMonitor
from mlprobe.stats import CategoryCounts
from mlprobe.stats._coerce import INVALID_LEVEL, coerce_numeric, tally_categorical
from mlprobe.testing import sample_value
from profiles import age_plan_profile


class BadHash:
    def __hash__(self) -> int:
        raise RuntimeError("no hash")


class BadEq:
    """Hashes like the level "pro", so a lookup must compare, and comparing raises."""

    def __hash__(self) -> int:
        return hash("pro")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("no float")


class BadClass:
    @property
    def __class__(self) -> type:  # type: ignore[override]
        raise RuntimeError("no class")


class LyingList(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("no len")


class BadArray:
    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise RuntimeError("no array")

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> float:
        return 0.5


class BadFrame:
    """DataFrame-shaped: columns, shape and indexing, but to_numpy raises."""

    columns = ["age", "plan"]
    shape = (2, 2)

    def __getitem__(self, key: str) -> Any:
        return self

    def to_numpy(self) -> np.ndarray:
        raise RuntimeError("no numpy")

    def memory_usage(self, **kwargs: Any) -> int:
        raise RuntimeError("no memory usage")


class HostileMeta(type):
    def __getattribute__(cls, name: str) -> Any:
        if name == "__qualname__":
            raise RuntimeError("no name")
        return super().__getattribute__(name)


class HostileError(Exception, metaclass=HostileMeta):
    pass


def params(*values: Any) -> list[Any]:
    """pytest.param per value, named by its type (pytest would call isinstance on a bare
    parameter, which a hostile __class__ answers with an exception)."""
    return [pytest.param(v, id=type(v).__name__) for v in values]


HOSTILE = params(BadHash(), BadEq(), BadStr(), BadFloat(), BadClass())


@pytest.fixture(scope="module")
def profile() -> mlprobe.ReferenceProfile:
    return age_plan_profile()


@pytest.mark.parametrize("bad", HOSTILE)
def test_tally_counts_the_good_values_and_one_invalid(bad):
    """tally_categorical counts 1,000 good values exactly and the hostile one as one unseen
    (overflow) value."""
    tally, missing = tally_categorical(["pro"] * 600 + ["basic"] * 400 + [bad])
    good = {k: n for k, n in tally.items() if type(k) is str}
    assert good.get("pro") == 600 and good.get("basic") == 400
    assert sum(tally.values()) == 1001 and missing == 0
    if type(bad) in (BadHash, BadEq):
        assert good.get(INVALID_LEVEL) == 1


@pytest.mark.parametrize("bad", HOSTILE)
def test_category_counts_count_the_hostile_value_as_unseen(bad):
    """CategoryCounts.update keeps the batch: the good values by level, the hostile one in
    __other__."""
    counts = CategoryCounts(["basic", "pro"])
    counts.update(["pro"] * 600 + ["basic"] * 400 + [bad])
    assert counts.counts.tolist() == [400, 600, 1]


@pytest.mark.parametrize("bad", HOSTILE)
def test_numeric_coercion_counts_the_hostile_value_as_invalid(bad):
    """coerce_numeric keeps 1,000 good numbers and counts the hostile value invalid."""
    column = coerce_numeric([1.5] * 1000 + [bad])
    assert column.values.size == 1000 and column.invalid == 1 and column.missing == 0


def test_coercion_of_unreadable_columns_counts_them_invalid():
    """A column whose iteration or length raises is invalid as a whole, not an error."""
    assert coerce_numeric(BadArray()).invalid == 3  # its __len__ still answers
    column = coerce_numeric(LyingList([1.0, 2.0]))  # no length at all: one invalid value
    assert (column.values.size, column.missing, column.invalid) == (0, 0, 1)


def test_class_counting_survives_unprintable_classes():
    """A class whose str() raises, or an int too long to print, counts as __other__."""
    counts = dict(class_counts(["a"] * 5 + [BadStr(), 10 ** 5000]))
    assert counts == {"a": 5, "__other__": 2}


@pytest.mark.parametrize("batch", params(BadArray(), BadFrame(), LyingList([1, 2]), BadClass(),
                                          BadHash()))
def test_input_size_of_lying_objects_is_unknown(batch):
    """input_size returns (None, None) or a sane size for objects that lie about themselves."""
    rows, nbytes = input_size(batch)
    assert rows is None or (isinstance(rows, int) and rows >= 0)
    assert nbytes is None or (isinstance(nbytes, int) and nbytes >= 0)


@pytest.mark.parametrize("result", [
    pytest.param(BadArray(), id="array"), pytest.param([0.5, BadArray()], id="list"),
    pytest.param({"a": 0.5, BadStr(): 0.7}, id="mapping"),
    pytest.param([10 ** 5000, 1], id="huge-int"),
    pytest.param([0.2, None, 0.9, "x"], id="partial"), pytest.param(BadClass(), id="class")])
def test_output_values_never_raise(result):
    """output_values reads what it can of a hostile result and never raises."""
    values = output_values(result, 16)
    if type(result) is list and result[0] == 0.2:
        assert values.scores["score"].tolist() == [0.2, 0.9]  # the numbers are kept


def test_monitor_counts_a_hostile_value_as_one_invalid_value(profile):
    """A batch of 1,000 rows with one hostile category and one hostile number counts 999 good
    values per feature plus one invalid one; single rows do the same."""
    rows = [{"age": 40.0, "plan": "pro"} for _ in range(1000)]
    rows[10]["plan"] = BadHash()
    rows[20]["age"] = BadFloat()
    monitor = FeatureMonitor(profile)
    monitor.observe(rows)  # a large batch: ingested by the call
    for row in ({"age": 1.0, "plan": BadEq()}, {"age": BadFloat(), "plan": "pro"},
                {"age": 2.0, "plan": BadStr()}, {"age": 3.0, "plan": BadClass()}):
        monitor.observe(row)  # single rows: buffered
    monitor.observe(rows[:10] + [{"age": 1.0, "plan": BadHash()}])  # a small batch
    totals = monitor.totals()
    plan, age = totals.features["plan"], totals.features["age"]
    assert plan.categories.counts.tolist()[1] == 999 + 1 + 10  # "pro"
    assert plan.invalid + plan.categories.unseen == 1 + 3 + 1
    assert age.invalid == 1 + 1
    assert age.count == 999 + 3 + 11
    assert totals.rows == 1000 + 4 + 11


@pytest.mark.parametrize("batch", [
    *params(BadArray(), BadFrame(), LyingList([{"age": 1.0}]), BadClass(), BadHash()),
    pytest.param({"age": BadArray(), "plan": "pro"}, id="column-bad-array"),
    pytest.param({BadEq(): 1.0, "plan": "pro"}, id="key-bad-eq")])
def test_tracked_call_with_a_hostile_input_is_counted_and_unchanged(profile, batch):
    """A tracked call given a hostile input returns the model's result (the same object),
    counts the call, leaves nothing in flight and swallows nothing."""
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("hostile", registry=registry, reference=profile)
    result = object()

    @probe.track
    def predict(x: Any) -> Any:
        return result

    assert predict(batch) is result
    probe.drift_status()
    labels = {"model": "hostile"}
    assert sample_value(registry, "mlprobe_predictions", {**labels, "outcome": "ok"}) == 1
    assert sample_value(registry, "mlprobe_predictions_in_flight", labels) == 0


@pytest.mark.allow_internal_errors
def test_failing_input_extractor_still_counts_the_call(profile):
    """When reading the input fails inside mlprobe (here a user extractor raises), the call's
    outcome, latency and in-flight count are still recorded (they used to be skipped, leaving
    the call in flight forever)."""
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("extract", registry=registry, reference=profile)

    def extractor(batch: Any) -> int:
        raise RuntimeError("extractor bug")

    @probe.track(inputs=extractor)
    def predict(x: Any) -> float:
        return 0.5

    before = mlprobe._guard.internal_error_count()
    assert predict({"age": 1.0, "plan": "pro"}) == 0.5
    assert mlprobe._guard.internal_error_count() == before + 1
    labels = {"model": "extract"}
    assert sample_value(registry, "mlprobe_predictions", {**labels, "outcome": "ok"}) == 1
    assert sample_value(registry, "mlprobe_predictions_in_flight", labels) == 0
    assert sample_value(registry, "mlprobe_prediction_duration_seconds", labels,
                        suffix="count") == 1


def test_exception_with_a_hostile_type_name_is_counted(profile):
    """An exception whose type's __qualname__ raises passes through unchanged and is counted
    under error_type __other__."""
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("err", registry=registry)
    error = HostileError("model failed")

    @probe.track
    def predict(x: Any) -> float:
        raise error

    with pytest.raises(HostileError) as caught:
        predict(1.0)
    assert caught.value is error
    counts = Counter({dict(s.labels)["error_type"]: s.value for f in registry.collect()
                      if f.name == "mlprobe_prediction_errors" for s in f.samples})
    assert counts == {"__other__": 1}
    assert sample_value(registry, "mlprobe_predictions_in_flight", {"model": "err"}) == 0


def test_hostile_predicted_classes_cost_one_value(profile):
    """Predicted classes with an unprintable one: the others are counted, nothing raised."""
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("classes", registry=registry)

    @probe.track
    def predict(x: Any) -> list[Any]:
        return ["a", "a", 10 ** 5000, "b"]

    predict(1.0)
    classes = {dict(s.labels)["class"]: s.value for f in registry.collect()
               if f.name == "mlprobe_predicted_class" for s in f.samples}
    assert classes == {"a": 2, "b": 1, "__other__": 1}
