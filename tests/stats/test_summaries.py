"""Summaries against numpy on the same rows; merges against one pass over the union."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlprobe.stats import (
    BinnedCounts,
    CategoryCounts,
    Moments,
    QuantileSketch,
    reference_edges,
)
from mlprobe.stats._histogram import coarse_groups
from mlprobe.stats._sketch import subbucket_bits

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
batches = st.lists(finite, max_size=40).map(lambda v: np.asarray(v, dtype=np.float64))


def test_moments_match_numpy() -> None:
    """Count, mean, variances, min and max equal numpy's on the same rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 10_001)
    m = Moments()
    for chunk in np.array_split(x, 7):
        m.update(chunk)
    assert m.count == x.size
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    assert m.variance(0) == pytest.approx(x.var(), rel=1e-10)
    assert m.std(1) == pytest.approx(x.std(ddof=1), rel=1e-10)
    assert (m.min, m.max) == (x.min(), x.max())


def test_moments_ignore_nonfinite_and_roundtrip() -> None:
    """Non-finite values never enter, and to_dict/from_dict survives JSON."""
    m = Moments()
    m.update(np.array([1.0, np.nan, np.inf, 3.0]))
    assert (m.count, m.mean) == (2, 2.0)
    back = Moments.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back.to_dict() == m.to_dict()
    empty = Moments.from_dict(json.loads(json.dumps(Moments().to_dict())))
    assert empty.count == 0 and np.isnan(empty.std())


def test_moments_no_cancellation() -> None:
    """A large offset does not destroy the variance (no sum-of-squares formula)."""
    x = 1e9 + np.arange(1000, dtype=np.float64)
    m = Moments()
    m.update(x[:500])
    m.update(x[500:])
    assert m.variance(0) == pytest.approx(np.var(np.arange(1000.0)), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(batches, batches, batches)
def test_moments_merge_associative_commutative(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """Merging in any grouping or order gives the union's count/min/max exactly, mean/var closely."""
    def mk(*xs: np.ndarray) -> Moments:
        m = Moments()
        for x in xs:
            m.update(x)
        return m

    left = mk(a).merge(mk(b)).merge(mk(c))
    right = mk(c).merge(mk(b).merge(mk(a)))
    union = np.concatenate([a, b, c])
    for m in (left, right):
        assert m.count == union.size
        if union.size:
            assert (m.min, m.max) == (union.min(), union.max())
            assert m.mean == pytest.approx(union.mean(), rel=1e-9, abs=1e-6)
            assert m.variance() == pytest.approx(union.var(), rel=1e-7, abs=1e-3)


def test_binned_counts_semantics() -> None:
    """Bins are (-inf,e0), [e0,e1), ..., [e_last,inf): a value equal to an edge goes up."""
    b = BinnedCounts([0.0, 1.0])
    b.update(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan]))
    assert b.counts.tolist() == [1, 2, 2]
    assert b.proportions().sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        BinnedCounts([1.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(batches, batches, batches)
def test_binned_merge_exact(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """Merged bin counts equal one pass over the union exactly, in any order."""
    edges = np.array([-10.0, 0.0, 3.0, 1e3])

    def mk(x: np.ndarray) -> BinnedCounts:
        h = BinnedCounts(edges)
        h.update(x)
        return h

    one = mk(np.concatenate([a, b, c]))
    assert np.array_equal(mk(a).merge(mk(b)).merge(mk(c)).counts, one.counts)
    assert np.array_equal(mk(c).merge(mk(a).merge(mk(b))).counts, one.counts)
    direct = np.histogram(np.concatenate([a, b, c]), np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    # np.histogram's last bin is closed on the right; +inf is never a finite value, so equal.
    assert np.array_equal(one.counts, direct)


def test_binned_roundtrip_and_mismatch() -> None:
    """to_dict/from_dict round-trips; merging different edges is refused."""
    b = BinnedCounts([1.0, 2.0])
    b.update(np.array([0.0, 1.5, 9.0]))
    back = BinnedCounts.from_dict(json.loads(json.dumps(b.to_dict())))
    assert np.array_equal(back.counts, b.counts)
    with pytest.raises(ValueError):
        b.merge(BinnedCounts([1.0, 3.0]))


def test_reference_edges_continuous_ties_constant() -> None:
    """Continuous data get quantile edges; ties de-duplicate; discrete data get one bin per value."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=50_000)
    e = reference_edges(x, 100)
    assert e.size == 99 and np.all(np.diff(e) > 0)
    assert np.allclose(e[9::10], np.quantile(x, np.arange(1, 10) / 10))
    zi = np.where(rng.random(50_000) < 0.4, 0.0, rng.exponential(size=50_000))
    ez = reference_edges(zi, 100)
    assert np.all(np.diff(ez) > 0) and ez.size < 99 and 0.0 in ez
    assert reference_edges(np.full(10, 3.0)).tolist() == [3.0, np.nextafter(3.0, np.inf)]
    d = reference_edges(np.array([0, 1, 1, 2, 2, 2], dtype=float))
    h = BinnedCounts(d)
    h.update(np.array([0, 1, 1, 2, 2, 2], dtype=float))
    assert h.counts.tolist() == [0, 1, 2, 3, 0]
    assert reference_edges(np.array([np.nan])).size == 0


def test_reference_edges_of_discrete_values_up_to_the_largest_double() -> None:
    """Discrete values whose maximum is the largest double: no edge above it exists, so the
    edges stop at it (finite, no overflow warning) and the maximum counts in the top bin."""
    big = np.finfo(np.float64).max
    x = np.array([1.0, 2.0, 2.0, big])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edges = reference_edges(x)
    assert edges.tolist() == [1.0, 2.0, big]
    h = BinnedCounts(edges)
    h.update(x)
    assert h.counts.tolist() == [0, 1, 2, 1]


def test_coarse_groups_sum_to_coarse_counts() -> None:
    """Summing fine counts by group equals counting directly on the coarse (decile) edges."""
    rng = np.random.default_rng(2)
    x = rng.gamma(2.0, size=20_000)
    fine = reference_edges(x, 100)
    coarse = np.quantile(x, np.arange(1, 10) / 10)
    cur = rng.gamma(2.3, size=5_000)
    f = BinnedCounts(fine)
    f.update(cur)
    grouped = np.bincount(coarse_groups(fine, coarse), weights=f.counts, minlength=10)
    direct = BinnedCounts(coarse)
    direct.update(cur)
    assert np.array_equal(grouped.astype(np.int64), direct.counts)


def test_category_counts() -> None:
    """Known levels are counted, unseen ones fold into __other__, mixed types compare as strings."""
    c = CategoryCounts(["a", "b", "1", "True"])
    c.update(np.array(["a", "a", "b", "zz", "yy", 1, 1.0, np.str_("True")], dtype=object))
    assert c.counts.tolist() == [2, 1, 2, 1, 2]
    b = CategoryCounts(["True", "False", "3"])
    b.update(np.array([True, False, False, np.int64(3), 3.0], dtype=object))
    assert b.counts.tolist() == [1, 2, 2, 0]
    assert c.unseen == 2 and c.total == 8
    assert c.labels[-1] == "__other__"
    back = CategoryCounts.from_dict(json.loads(json.dumps(c.to_dict())))
    assert np.array_equal(back.counts, c.counts)
    with pytest.raises(ValueError):
        CategoryCounts(["a", "a"])
    with pytest.raises(ValueError):
        c.merge(CategoryCounts(["a"]))


@settings(max_examples=60, deadline=None)
@given(*(st.lists(st.sampled_from(["a", "b", "c", "new", "x"]), max_size=30) for _ in range(3)))
def test_category_merge_exact(a: list[str], b: list[str], c: list[str]) -> None:
    """Merged category counts equal one pass over the union, in any order."""
    def mk(x: list[str]) -> CategoryCounts:
        cc = CategoryCounts(["a", "b", "c"])
        cc.update(np.asarray(x, dtype=object))
        return cc

    one = mk(a + b + c)
    assert np.array_equal(mk(a).merge(mk(b)).merge(mk(c)).counts, one.counts)
    assert np.array_equal(mk(b).merge(mk(c).merge(mk(a))).counts, one.counts)


@pytest.mark.parametrize("alpha", [0.01, 0.001, 0.05])
@pytest.mark.parametrize("dist", ["normal", "lognormal", "exponential", "mixed_sign", "uniform_wide"])
def test_sketch_relative_error(dist: str, alpha: float) -> None:
    """Every sketch quantile is within alpha (relative) of np.quantile(method='lower')."""
    rng = np.random.default_rng(3)
    x = {
        "normal": rng.normal(10, 3, 50_000),
        "lognormal": rng.lognormal(0, 2, 50_000),
        "exponential": rng.exponential(1e-3, 50_000),
        "mixed_sign": np.concatenate([rng.normal(-5, 2, 25_000), rng.normal(5, 2, 25_000), np.zeros(100)]),
        "uniform_wide": 10 ** rng.uniform(-6, 6, 50_000),
    }[dist]
    # enough buckets for 64 octaves (the default's span at alpha = 0.01), so none collapse
    sk = QuantileSketch(alpha=alpha, max_buckets=64 << subbucket_bits(alpha))
    for chunk in np.array_split(x, 5):
        sk.update(chunk)
    q = np.linspace(0, 1, 201)
    est = sk.quantile(q)
    true = np.quantile(x, q, method="lower")
    assert np.all(np.abs(est - true) <= alpha * np.abs(true) * (1 + 1e-9))
    # the log-linear mapping's own bound, 2^-(s+1), is what the buckets actually give
    bound = 2.0 ** -(subbucket_bits(alpha) + 1)
    assert np.all(np.abs(est - true) <= bound * np.abs(true) * (1 + 1e-9))
    assert sk.quantile(0.0) == x.min() and sk.quantile(1.0) == x.max()
    assert isinstance(sk.quantile(0.5), float)


def test_sketch_merge_equals_one_pass_even_when_collapsing() -> None:
    """merge(a, b) is exactly the sketch of a ∪ b, also when the bucket limit collapses buckets."""
    rng = np.random.default_rng(4)
    a = 10 ** rng.uniform(-8, 8, 5_000) * rng.choice([-1, 1], 5_000)
    b = 10 ** rng.uniform(-3, 12, 5_000)
    for max_buckets in (2048, 64):
        sa, sb, su = (QuantileSketch(max_buckets=max_buckets) for _ in range(3))
        sa.update(a)
        sb.update(b)
        su.update(np.concatenate([a, b]))
        merged = sa.copy().merge(sb)
        assert merged.to_dict() == su.to_dict()
        assert sb.copy().merge(sa).to_dict() == su.to_dict()
    assert len(su.to_dict()["positive"]["counts"]) <= 64


def test_sketch_roundtrip_and_empty() -> None:
    """An empty sketch returns NaN; to_dict/from_dict round-trips through JSON."""
    s = QuantileSketch()
    assert np.isnan(s.quantile(0.5))
    s.update(np.array([1.0, 2.0, 3.0, np.nan]))
    back = QuantileSketch.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.to_dict() == s.to_dict() and back.count == 3
    with pytest.raises(ValueError):
        s.quantile(1.5)
    with pytest.raises(ValueError):
        s.merge(QuantileSketch(alpha=0.02))
    with pytest.raises(ValueError, match="mapping"):
        QuantileSketch.from_dict({**s.to_dict(), "mapping": "logarithmic"})


def test_sketch_array_form_is_independent_of_both_sketches_and_checked() -> None:
    """``to_dict(arrays=True)`` hands out copies of the bucket counts and ``from_dict`` takes
    its own (states of processes share such dicts): updating the original or the rebuilt
    sketch leaves the dict as it was; counts that are not one-dimensional are refused."""
    values = np.array([1.0, 2.0, 3.0, -1.0, -5.0])
    s = QuantileSketch()
    s.update(values)
    data = s.to_dict(arrays=True)
    saved = {side: data[side]["counts"].tolist() for side in ("positive", "negative")}
    back = QuantileSketch.from_dict(data)
    s.update(values)
    back.update(values)
    assert {side: data[side]["counts"].tolist() for side in saved} == saved
    assert back.to_dict() == s.to_dict()
    bad = {**data, "positive": {"offset": 0, "counts": np.ones((2, 2), dtype=np.int64)}}
    with pytest.raises(ValueError, match="one-dimensional"):
        QuantileSketch.from_dict(bad)
