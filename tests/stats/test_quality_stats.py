"""Quality statistics against scikit-learn and exact arithmetic; merges against one pass.

Tolerances: counts-based metrics (accuracy, precision, recall, F1) are compared with 1e-15
relative (they are ratios of the same integers); sums-based ones (log loss, MAE, RMSE, MAPE,
bias) with 1e-12 relative (mlprobe rounds an exact sum once, scikit-learn adds floats in
order); ECE with 1e-9 absolute (scores are summed in fixed point, 2**-32 per value); ROC AUC
within the returned bound of the exact AUC.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from mlprobe.stats._classification import Confusion, ScoreCounts, binned_auc, logit_edges
from mlprobe.stats._detectors import detect_change
from mlprobe.stats._exact import SCALE_BITS, exact_scalar, exact_sum, exact_to_float
from mlprobe.stats._regression import RegressionCounts

EDGES = logit_edges(extra=(0.5,))


def _keys(values: np.ndarray) -> list[str]:
    return [str(v) for v in values.tolist()]


def _binary_data(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(g.normal(0, 1.5, n) + 1.2 * (2 * y - 1))))
    if ties:
        p = np.round(p, 2)  # many exact ties, and 0.0 / 1.0 scores
    return y, p


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=60))
@settings(max_examples=300)
def test_exact_sum_is_the_exact_sum(values):
    """exact_sum equals the rational sum of the floats, whatever their magnitudes; one value
    gives what exact_scalar gives; the float is the correctly rounded quotient."""
    total = exact_sum(np.asarray(values, dtype=np.float64))
    exact = sum((Fraction(v) for v in values), Fraction(0))
    assert Fraction(total, 2 ** SCALE_BITS) == exact
    for v in values[:3]:
        assert exact_scalar(v) == exact_sum(np.asarray([v]))
    if values and abs(exact) < 1e300:
        assert exact_to_float(total, len(values)) == float(exact / len(values))


def test_exact_sum_is_order_independent_and_refuses_nonfinite():
    """Sums of the same values in any order and split are the same integer; NaN is refused."""
    g = np.random.default_rng(3)
    v = g.normal(0, 1, 5000) * 10.0 ** g.integers(-30, 30, 5000)
    whole = exact_sum(v)
    parts = np.array_split(g.permutation(v), 7)
    assert sum(exact_sum(p) for p in parts) == whole
    with pytest.raises(ValueError):
        exact_sum(np.array([1.0, np.nan]))


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_binary_metrics_equal_sklearn(ties):
    """Accuracy, precision, recall, F1, log loss and ECE equal scikit-learn's on the same pairs;
    the binned ROC AUC is within its bound of roc_auc_score (ties and 0/1 scores included)."""
    y, p = _binary_data(20_000, 1, ties)
    predicted = (p > 0.5).astype(int)
    c = Confusion(["0", "1"], fixed=True)
    c.add(_keys(y), _keys(predicted))
    scores = ScoreCounts(EDGES)
    scores.add_binary(p, y == 1)
    got = {**c.binary("1"), "accuracy": c.accuracy(), **scores.metrics()}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), rel=1e-15)
    assert got["precision"] == pytest.approx(skm.precision_score(y, predicted), rel=1e-15)
    assert got["recall"] == pytest.approx(skm.recall_score(y, predicted), rel=1e-15)
    assert got["f1"] == pytest.approx(skm.f1_score(y, predicted), rel=1e-15)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10)
    counts = np.bincount(ScoreCounts.calibration_bin(p), minlength=10)
    ece = float(np.sum(counts[counts > 0] / y.size * np.abs(prob_true - prob_pred)))
    assert got["ece"] == pytest.approx(ece, abs=1e-9)
    exact_auc = skm.roc_auc_score(y, p)
    assert abs(got["roc_auc"] - exact_auc) <= got["roc_auc_bound"] + 1e-12
    assert got["roc_auc_bound"] < (0.03 if ties else 0.005)


@given(st.integers(0, 10_000), st.integers(2, 400))
@settings(max_examples=60)
def test_binned_auc_bound_holds(seed, n):
    """On random scores (continuous, rounded, constant), the exact AUC lies within the bound."""
    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    p = g.random(n) if seed % 3 else np.round(g.random(n), 1)
    if seed % 7 == 0:
        p = np.full(n, 0.3)
    bins = np.searchsorted(EDGES, p, side="left")
    pos = np.bincount(bins[y == 1], minlength=EDGES.size + 1)
    neg = np.bincount(bins[y == 0], minlength=EDGES.size + 1)
    auc, bound = binned_auc(pos, neg)
    assert abs(auc - skm.roc_auc_score(y, p)) <= bound + 1e-12


def test_binned_auc_undefined_without_both_classes():
    """No positives (or no negatives): no AUC, as scikit-learn refuses one."""
    assert binned_auc(np.zeros(3), np.ones(3)) is None
    assert binned_auc(np.ones(3), np.zeros(3)) is None


def test_multiclass_metrics_equal_sklearn():
    """Macro precision/recall/F1, micro F1 (accuracy), log loss, top-label ECE against a direct
    computation, and one-vs-rest macro ROC AUC within its bound, on a 6-class problem."""
    g = np.random.default_rng(2)
    n, k = 30_000, 6
    y = g.integers(0, k, n)
    logits = g.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = proba.argmax(axis=1)
    c = Confusion()
    c.add(_keys(y), _keys(predicted))
    scores = ScoreCounts(logit_edges(), k)
    scores.add_proba(proba, y)
    macro, m = c.macro(), scores.metrics()
    for name, fn in (("precision_macro", skm.precision_score), ("recall_macro", skm.recall_score),
                     ("f1_macro", skm.f1_score)):
        assert macro[name] == pytest.approx(fn(y, predicted, average="macro"), rel=1e-12)
    assert c.accuracy() == pytest.approx(skm.f1_score(y, predicted, average="micro"), rel=1e-15)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-12)
    exact = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert abs(m["roc_auc"] - exact) <= m["roc_auc_bound"] + 1e-12
    conf, correct = proba.max(axis=1), predicted == y
    b = np.searchsorted(np.linspace(0, 1, 11)[1:-1], conf)
    ece = sum(abs(correct[b == i].sum() - conf[b == i].sum()) for i in range(10)) / n
    assert m["ece"] == pytest.approx(ece, abs=1e-9)


def test_macro_counts_classes_only_predicted_as_zero_recall():
    """A class that is only ever predicted counts in the macro average with recall 0 and a
    class only ever actual with precision 0 (scikit-learn's zero_division default)."""
    y = np.array(["a", "a", "b", "b", "c"])
    predicted = np.array(["a", "b", "b", "d", "c"])
    c = Confusion()
    c.add(list(y), list(predicted))
    for name, fn in (("precision_macro", skm.precision_score), ("recall_macro", skm.recall_score),
                     ("f1_macro", skm.f1_score)):
        expected = fn(y, predicted, average="macro", zero_division=0.0)
        assert c.macro()[name] == pytest.approx(expected, rel=1e-12)


def test_binary_undefined_precision_is_none():
    """No positive prediction: precision is undefined (None), as scikit-learn's
    zero_division=nan says; recall and F1 are 0."""
    c = Confusion(["0", "1"], fixed=True)
    c.add(["1", "0", "1"], ["0", "0", "0"])
    got = c.binary("1")
    assert got["precision"] is None
    assert got["recall"] == skm.recall_score([1, 0, 1], [0, 0, 0], zero_division=np.nan)
    assert got["f1"] == 0.0


def test_vocabulary_cap_folds_labels_but_keeps_accuracy_exact():
    """Past the class cap labels count as __other__; accuracy still counts only equal labels."""
    c = Confusion(max_classes=2)
    c.add(["a", "b", "c", "d"], ["a", "b", "d", "c"])
    assert c.labels == ["a", "b"]
    assert c.accuracy() == 0.5
    assert c.actual_counts() == {"a": 1, "b": 1, "__other__": 2}


def test_regression_metrics_equal_sklearn():
    """MAE, RMSE, MAPE and bias equal scikit-learn's (and numpy's mean error)."""
    g = np.random.default_rng(4)
    actual = g.normal(10, 4, 20_000)
    actual[:10] = 0.0  # MAPE's epsilon branch
    predicted = actual + g.normal(0.3, 1.0, actual.size)
    r = RegressionCounts()
    for part in np.array_split(np.arange(actual.size), 5):
        r.add(predicted[part], actual[part])
    m = r.metrics()
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(actual, predicted), rel=1e-12)
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(actual, predicted), rel=1e-12)
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(actual, predicted),
                                      rel=1e-12)
    assert m["bias"] == pytest.approx(float(np.mean(predicted - actual)), rel=1e-10)
    assert RegressionCounts().metrics()["mae"] is None


def test_regression_flags_pairs_whose_square_overflows():
    """A pair whose squared error is not finite is not valid (it is counted by the caller)."""
    ok = RegressionCounts.valid(np.array([1.0, 1e200, np.nan]), np.array([0.0, 0.0, 1.0]))
    assert ok.tolist() == [True, False, False]


labels3 = st.sampled_from(["0", "1", "2"])


@given(st.lists(st.tuples(labels3, labels3, st.floats(0, 1), st.floats(-1e6, 1e6),
                          st.floats(-1e6, 1e6)), max_size=80),
       st.integers(1, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_split_merged_state_equals_single_pass(rows, k, seed):
    """Pairs split at random over k summaries, serialised (JSON) and merged, give the same
    counts, exact sums and metrics as one summary of every pair, bit for bit."""
    g = np.random.default_rng(seed)
    owner = g.integers(0, k, len(rows))

    def fill(select: list[int]) -> tuple[Confusion, ScoreCounts, RegressionCounts]:
        c, s, r = Confusion(["0", "1", "2"], fixed=True), ScoreCounts(EDGES), RegressionCounts()
        part = [rows[i] for i in select]
        if part:
            actual, predicted, score, x, y = (list(col) for col in zip(*part))
            c.add(actual, predicted)
            s.add_binary(np.asarray(score), np.asarray(actual) == "1")
            r.add(np.asarray(x), np.asarray(y))
        return c, s, r

    single = fill(list(range(len(rows))))
    merged = (Confusion(["0", "1", "2"], fixed=True), ScoreCounts(EDGES), RegressionCounts())
    for j in range(k):
        c, s, r = fill([i for i in range(len(rows)) if owner[i] == j])
        c2 = Confusion.from_dict(json.loads(json.dumps(c.to_dict())))
        s2 = ScoreCounts.from_dict(json.loads(json.dumps(s.to_dict())), EDGES)
        r2 = RegressionCounts.from_dict(json.loads(json.dumps(r.to_dict())))
        merged[0].merge(c2)
        merged[1].merge(s2)
        merged[2].merge(r2)
    assert merged[0].to_dict() == single[0].to_dict()
    assert merged[1].to_dict() == single[1].to_dict()
    assert merged[2].to_dict() == single[2].to_dict()
    assert (merged[0].accuracy(), merged[0].macro()) == (single[0].accuracy(), single[0].macro())
    assert merged[1].metrics() == single[1].metrics()
    assert merged[2].metrics() == single[2].metrics()


def test_open_vocabularies_merge_by_label():
    """Summaries whose open vocabularies grew in different orders merge by label name."""
    a, b, single = Confusion(), Confusion(), Confusion()
    a.add(["x", "y"], ["y", "y"])
    b.add(["z", "x"], ["x", "z"])
    single.add(["x", "y", "z", "x"], ["y", "y", "x", "z"])
    a.merge(Confusion.from_dict(b.to_dict()))
    assert a.macro() == single.macro() and a.accuracy() == single.accuracy()
    assert a.actual_counts() == single.actual_counts()


# -- the change detector ------------------------------------------------------------------------


def _bernoulli_history(g: np.random.Generator, rates: np.ndarray, per: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.full(rates.size, per)
    errors = g.binomial(per, rates)
    return n, errors, errors


def test_detector_is_quiet_on_stable_streams():
    """Stable 0/1 error streams (rates 0.05-0.3, 20-500 values per bucket, 48 buckets): at most
    a few false alarms in 3,000 evaluations (the bound promises at most delta = 0.2%)."""
    g = np.random.default_rng(5)
    alarms = 0
    for trial in range(3000):
        rate = (0.05, 0.1, 0.3)[trial % 3]
        per = (20, 100, 500)[trial % 3 - 1]
        result = detect_change(*_bernoulli_history(g, np.full(48, rate), per))
        alarms += bool(result and result.detected)
    assert alarms <= 6


def test_detector_finds_a_rise_and_says_where():
    """An error rate going from 0.1 to 0.2 for the last 8 of 48 buckets is detected as an
    increase, split near the change; a fall is detected as a decrease."""
    g = np.random.default_rng(6)
    rates = np.r_[np.full(40, 0.1), np.full(8, 0.2)]
    result = detect_change(*_bernoulli_history(g, rates, 300))
    assert result is not None and result.detected and result.direction == "increase"
    assert 36 <= result.split <= 42
    assert result.mean_after > result.mean_before
    fall = detect_change(*_bernoulli_history(g, rates[::-1], 300))
    assert fall is not None and fall.detected and fall.direction == "decrease"


def test_detector_needs_data_on_both_sides():
    """Without min_side values on each side of some boundary there is no result."""
    assert detect_change(np.array([100, 0]), np.array([10, 0]), np.array([10, 0])) is None
    assert detect_change(np.array([5, 5]), np.array([1, 1]), np.array([1, 1])) is None


def test_detector_unbounded_losses_use_the_variance():
    """Absolute errors (unbounded): a doubled mean error is found; a stable one is not."""
    g = np.random.default_rng(7)
    per = 200

    def history(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values = [np.abs(g.normal(0, s, per)) for s in scales]
        return (np.full(scales.size, per), np.array([v.sum() for v in values]),
                np.array([(v * v).sum() for v in values]))

    stable = [detect_change(*history(np.ones(24)), bounded=False) for _ in range(200)]
    assert sum(r.detected for r in stable if r) <= 2
    shifted = detect_change(*history(np.r_[np.ones(20), np.full(4, 2.0)]), bounded=False)
    assert shifted is not None and shifted.detected and shifted.direction == "increase"
