"""mlprobe snapshots as OpenTelemetry metrics: the data model, start times and delta."""

from __future__ import annotations

import time

import pytest
from expositions import asgi_traffic, bare_probe, profiled_probe, target_for, text
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    Sum,
)
from otlp import as_prometheus, exposition_samples, otlp_json, otlp_metrics

import mlprobe
from mlprobe.exporters import otel
from mlprobe.exporters._otel_data import Temporalities, Translator
from mlprobe.registry import FamilyBuilder
from mlprobe.snapshot import HistogramSample, Sample, metric_specs

DELTA = AggregationTemporality.DELTA
CUMULATIVE = AggregationTemporality.CUMULATIVE


def _metrics(registry: mlprobe.Registry, translator: Translator | None = None) -> dict:
    translator = translator or Translator(Temporalities())
    translation = translator.translate(registry.collect())
    return {m.name: m for m in translation.metrics}


def _busy_registry() -> mlprobe.Registry:
    registry = mlprobe.Registry()
    bare_probe(registry)
    profiled_probe(registry)
    asgi_traffic(registry)
    return registry


def test_pushed_data_read_as_a_collector_reads_it_equals_the_prometheus_exposition():
    """For the same traffic (calls, features, drift, HTTP), OTLP converted by the collector's
    rules gives exactly the samples, labels and values of mlprobe's Prometheus exposition."""
    registry = _busy_registry()
    pushed = as_prometheus(otlp_json(otel.metrics_data(registry)))
    scraped = exposition_samples(text(target_for(registry)))
    assert len(scraped) > 400
    assert pushed == scraped


def test_every_catalogue_metric_has_its_otel_name_unit_type_and_description():
    """Each family comes out under its OTel name with its unit and description, as a
    monotonic sum, a histogram, a gauge or an up-down (non-monotonic) sum."""
    registry = _busy_registry()
    metrics = _metrics(registry)
    expected = {"sum": Sum, "updown_sum": Sum, "gauge": Gauge, "histogram": Histogram,
                "summary_gauges": Gauge}
    present = {f.name for f in registry.collect()}
    for spec in metric_specs():
        if spec.name not in present:
            continue
        metric = metrics[spec.otel_name]
        assert (metric.unit, metric.description) == (spec.unit, spec.description)
        assert isinstance(metric.data, expected[spec.otel_type]), spec.name
        if isinstance(metric.data, Sum):
            assert metric.data.is_monotonic == (spec.otel_type == "sum")
            assert metric.data.aggregation_temporality == CUMULATIVE


def test_histograms_keep_mlprobes_bucket_boundaries_and_leave_min_max_unset(registry):
    """Bounds are the probe's latency buckets, counts per bucket (len(bounds) + 1); min and
    max, which mlprobe does not track, are absent from the OTLP message."""
    probe = mlprobe.Probe("h", registry=registry, latency_buckets=[0.1, 1.0, 10.0])
    probe.track(lambda x: time.sleep(0.11) or 0.5)([1.0])
    point = _metrics(registry)["mlprobe.prediction.duration"].data.data_points[0]
    assert list(point.explicit_bounds) == [0.1, 1.0, 10.0]
    assert list(point.bucket_counts) == [0, 1, 0, 0] and point.count == 1
    assert point.sum >= 0.11
    encoded = otlp_metrics(otlp_json(otel.metrics_data(registry)))
    assert "min" not in encoded["mlprobe.prediction.duration"]["histogram"]["dataPoints"][0]


def test_attributes_use_semconv_keys_int_status_codes_and_leave_empty_values_out(registry):
    """HTTP points carry http.request.method, http.route, an int http.response.status_code,
    and error.type only on failure; an unversioned model has no model_version attribute."""
    asgi_traffic(registry)
    mlprobe.Probe("unversioned", registry=registry).observe(outputs=[0.5])
    metrics = _metrics(registry)
    points = metrics["http.server.request.duration"].data.data_points
    ok = next(p for p in points if p.attributes["http.response.status_code"] == 200)
    assert set(ok.attributes) == {"http.request.method", "http.route",
                                  "http.response.status_code"}
    failed = next(p for p in points if p.attributes["http.response.status_code"] == 500)
    assert failed.attributes["error.type"] and isinstance(
        failed.attributes["http.response.status_code"], int)
    (score,) = metrics["mlprobe.prediction.score"].data.data_points
    assert score.attributes == {"model": "unversioned", "output": "score"}


def test_counters_are_integers_and_gauges_floats(registry):
    """Sum points of counts carry ints (OTLP as_int); gauge points carry floats."""
    profiled_probe(registry)
    metrics = _metrics(registry)
    assert all(type(p.value) is int for p in metrics["mlprobe.feature.bin"].data.data_points)
    assert all(type(p.value) is float for p in metrics["mlprobe.feature.mean"].data.data_points)


def test_the_summary_is_three_gauges_that_allow_negative_quantiles(registry):
    """mlprobe_feature_quantile becomes gauges: one point per quantile with a quantile
    attribute, plus .count and .sum of the same window; negative values pass (an OTLP summary
    could not carry them)."""
    profile = mlprobe.ReferenceProfile.from_data({"t": [-5.0, -4.0, -3.0, -2.0, -1.0] * 40})
    probe = mlprobe.Probe("neg", registry=registry, reference=profile)
    probe.observe(inputs={"t": [-10.0, -9.0, -8.0]})
    metrics = _metrics(registry)
    quantiles = {p.attributes["quantile"]: p.value
                 for p in metrics["mlprobe.feature.quantile"].data.data_points}
    assert sorted(quantiles) == ["0.05", "0.5", "0.95"]
    assert quantiles["0.5"] == pytest.approx(-9.0, rel=0.01)
    (count,) = metrics["mlprobe.feature.quantile.count"].data.data_points
    (total,) = metrics["mlprobe.feature.quantile.sum"].data.data_points
    assert (count.value, total.value) == (3, -27.0)
    assert metrics["mlprobe.feature.quantile.count"].description


def test_cumulative_points_start_when_their_stream_started(registry):
    """A cumulative point's start is the sample's start time (the source's creation), and
    its time is the translation's."""
    mlprobe.Probe("s", registry=registry).observe(outputs=[0.5])
    (sample,) = next(f for f in registry.collect() if f.name == "mlprobe_prediction_score").samples
    translation = Translator(Temporalities()).translate(registry.collect(), now=123)
    (point,) = {m.name: m for m in translation.metrics}[
        "mlprobe.prediction.score"].data.data_points
    assert point.start_time_unix_nano == sample.start_time_unix_nano > 0
    assert point.time_unix_nano == 123


class TestDelta:
    """Delta temporality computed from successive collects."""

    def _delta(self) -> Translator:
        return Translator(Temporalities(sum=DELTA, histogram=DELTA))

    def test_deltas_follow_successive_collects_with_contiguous_intervals(self, registry):
        """First point: the whole count since the stream's start; then each point holds
        only what happened since the previous export, over (previous time, now]."""
        probe = mlprobe.Probe("d", registry=registry)
        predict = probe.track(lambda x: 0.5)
        translator = self._delta()
        for _ in range(3):
            predict([1.0])
        first = translator.translate(registry.collect(), now=10)
        translator.commit(first)
        for _ in range(2):
            predict([1.0])
        second = translator.translate(registry.collect(), now=20)
        translator.commit(second)
        third = translator.translate(registry.collect(), now=30)

        def point(t, name):
            return next(p for p in {m.name: m for m in t.metrics}[name].data.data_points
                        if p.attributes.get("outcome", "ok") == "ok")

        calls = [point(t, "mlprobe.predictions") for t in (first, second, third)]
        assert [p.value for p in calls] == [3, 2, 0]
        assert calls[0].start_time_unix_nano == point(
            first, "mlprobe.prediction.duration").start_time_unix_nano
        assert [(p.start_time_unix_nano, p.time_unix_nano) for p in calls[1:]] == [
            (10, 20), (20, 30)]
        durations = [point(t, "mlprobe.prediction.duration") for t in (first, second, third)]
        assert [p.count for p in durations] == [3, 2, 0]
        assert sum(durations[1].bucket_counts) == 2
        temporalities = {m.name: m.data.aggregation_temporality for m in second.metrics
                         if isinstance(m.data, (Sum, Histogram))}
        assert temporalities.pop("mlprobe.predictions.in_flight") == CUMULATIVE
        assert set(temporalities.values()) == {DELTA}

    def test_an_uncommitted_export_is_included_in_the_next_delta(self, registry):
        """A failed export does not advance the baseline: the next delta covers both
        intervals, from the last successful export."""
        probe = mlprobe.Probe("f", registry=registry)
        probe.observe(outputs=[0.5])
        translator = self._delta()
        translator.commit(translator.translate(registry.collect(), now=10))
        probe.observe(outputs=[0.5])
        translator.translate(registry.collect(), now=20)  # its export failed: not committed
        probe.observe(outputs=[0.5])
        third = translator.translate(registry.collect(), now=30)
        (point,) = {m.name: m for m in third.metrics}["mlprobe.prediction.score"].data.data_points
        assert (point.count, point.start_time_unix_nano) == (2, 10)

    def test_a_reset_after_fork_restarts_the_delta_from_the_new_start(self, registry):
        """When a stream's start time changes (the registry reset it after fork), the point
        starts at the new start with the whole new count, never a negative delta."""
        probe = mlprobe.Probe("r", registry=registry)
        translator = self._delta()
        for _ in range(5):
            probe.observe(outputs=[0.5])
        translator.commit(translator.translate(registry.collect(), now=10))
        registry._reset_after_fork()
        probe.observe(outputs=[0.5])
        samples = {f.name: f for f in registry.collect()}
        new_start = samples["mlprobe_prediction_score"].samples[0].start_time_unix_nano
        after = translator.translate(registry.collect(), now=20)
        (point,) = {m.name: m for m in after.metrics}["mlprobe.prediction.score"].data.data_points
        assert (point.count, point.start_time_unix_nano) == (1, new_start)

    def test_a_counter_that_goes_down_with_the_same_start_is_a_reset(self):
        """A value below the previous one (a source that reset without the registry knowing)
        is reported whole, from the stream's start, not as a negative delta."""
        registry = mlprobe.Registry()
        source = _Counting()
        registry.get_or_create("c", lambda: source)
        translator = self._delta()
        source.value = 7
        translator.commit(translator.translate(registry.collect(), now=10))
        source.value = 2
        after = translator.translate(registry.collect(), now=20)
        (point,) = {m.name: m for m in after.metrics}["mlprobe.schema.violations"].data.data_points
        start = next(f for f in registry.collect()
                     if f.name == "mlprobe_schema_violations").samples[0].start_time_unix_nano
        assert (point.value, point.start_time_unix_nano) == (2, start)

    def test_gauges_and_updown_sums_stay_as_they_are(self, registry):
        """Gauges are not differenced; an up-down counter follows its own (cumulative)
        preference."""
        profiled_probe(registry)
        translator = Translator(Temporalities(sum=DELTA, histogram=DELTA))
        translator.commit(translator.translate(registry.collect(), now=10))
        metrics = {m.name: m for m in translator.translate(registry.collect(), now=20).metrics}
        means = [p.value for p in metrics["mlprobe.feature.mean"].data.data_points]
        assert means and all(v != 0 for v in means)
        in_flight = metrics["mlprobe.predictions.in_flight"].data
        assert in_flight.aggregation_temporality == CUMULATIVE and not in_flight.is_monotonic

    def test_delta_state_stays_bounded_by_the_series(self, registry):
        """However many exports fail or succeed, the state holds one entry per series."""
        bare_probe(registry)
        translator = self._delta()
        series = None
        for i in range(20):
            translation = translator.translate(registry.collect(), now=i)
            if i % 3:
                translator.commit(translation)
            series = series or len(translation.pending)
        assert len(translator._state) == series


class _Counting:
    """A source reporting one counter whose value the test sets."""

    value = 0

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report the value."""
        builder.add("mlprobe_schema_violations",
                    [Sample((("model", "c"), ("model_version", ""), ("kind", "k")),
                            float(self.value))])

    def reset(self) -> None:
        """Nothing to forget."""


@pytest.mark.allow_internal_errors
def test_a_family_that_cannot_be_translated_costs_only_itself():
    """A malformed histogram is counted as an internal error and left out; the other
    families still come out."""
    registry = mlprobe.Registry()

    class Broken:
        def collect_into(self, builder: FamilyBuilder) -> None:
            """Report a histogram whose counts do not fit its bounds."""
            builder.add("mlprobe_batch_rows", [HistogramSample(
                (("model", "b"), ("model_version", "")), (1.0, 2.0), (1,), 1.0)])

        def reset(self) -> None:
            """Nothing to forget."""

    registry.get_or_create("broken", Broken)
    mlprobe.Probe("fine", registry=registry).observe(outputs=[0.5])
    before = mlprobe.errors.internal_error_count()
    metrics = _metrics(registry)
    assert "mlprobe.prediction.score" in metrics
    assert all(p.attributes.get("model") != "b"
               for p in metrics.get("mlprobe.batch.rows", _Empty()).data.data_points)
    assert mlprobe.errors.internal_error_count() == before + 1


class _Empty:
    class data:  # noqa: N801 - mimics Metric.data
        data_points: list = []
