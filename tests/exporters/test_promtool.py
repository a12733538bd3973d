"""Every exposition mlprobe can produce passes ``promtool check metrics`` with nothing to say.

promtool checks the text format and lints names, HELP, counters' ``_total`` and reserved
labels (``quantile`` outside summaries, ``le`` outside histograms). Each test checks its whole
output, warnings included, and one test holds that together the expositions cover every
family of the catalogue.
"""

from __future__ import annotations

import pytest
from expositions import (
    app_metrics_present,
    asgi_traffic,
    bare_probe,
    parse,
    profiled_probe,
    promtool_problems,
    quality_probe,
    target_for,
    text,
)

import mlprobe
from mlprobe import multiprocess
from mlprobe._catalog import CATALOG
from mlprobe.exporters._otel_push import ExportFailures
from mlprobe.testing import sample_value

pytestmark = pytest.mark.real_prometheus


def test_promtool_accepts_a_probe_without_profile(registry):
    """Calls, errors, scores and classes of a probe without a profile lint clean."""
    bare_probe(registry)
    exposition = text(target_for(registry))
    assert promtool_problems(exposition) == ""
    assert app_metrics_present(exposition)


def test_promtool_accepts_a_profiled_probe_after_traffic(registry):
    """Feature bins, window gauges, the quantile summary and drift gauges lint clean."""
    profiled_probe(registry)
    exposition = text(target_for(registry))
    families = parse(exposition)
    assert families["mlprobe_feature_quantile"].type == "summary"
    assert "mlprobe_feature_drift" in families and "mlprobe_dataset_drift_share" in families
    assert promtool_problems(exposition) == ""


def test_feature_quantiles_are_a_summary_with_window_count_and_sum(registry):
    """mlprobe_feature_quantile has quantile samples plus _count and _sum of its window."""
    profiled_probe(registry)
    family = parse(text(target_for(registry)))["mlprobe_feature_quantile"]
    age = [s for s in family.samples if s.labels["feature"] == "age"]
    assert sorted(s.labels["quantile"] for s in age if "quantile" in s.labels) == [
        "0.05", "0.5", "0.95"]
    count = next(s.value for s in age if s.name.endswith("_count"))
    total = next(s.value for s in age if s.name.endswith("_sum"))
    assert count == 1201  # 1,200 rows of traffic plus one valid age of the odd batch
    assert total / count == pytest.approx(
        sample_value(registry, "mlprobe_feature_mean", {"feature": "age"}),
        rel=1e-12)


def test_promtool_accepts_the_asgi_middlewares_http_metrics(registry):
    """The HTTP histograms and active-requests gauge after real requests lint clean."""
    asgi_traffic(registry)
    exposition = text(target_for(registry))
    assert "http_server_time_to_first_byte_seconds_bucket" in exposition
    assert promtool_problems(exposition) == ""


def test_promtool_accepts_model_quality_and_a_shadow(registry):
    """Outcome counters, quality gauges, the delay histogram, store gauges and the shadow's
    families lint clean."""
    quality_probe(registry)
    exposition = text(target_for(registry))
    families = parse(exposition)
    assert families["mlprobe_outcome_delay_seconds"].type == "histogram"
    assert families["mlprobe_outcome_stats"].type == "counter"
    assert promtool_problems(exposition) == ""


def test_promtool_accepts_everything_at_once_and_it_covers_the_catalogue(tmp_path):
    """All sources in one exposition lint clean, and every catalogue family appears in it
    (one registry in multi-process mode, for the families only that mode reports)."""
    probes, profiled, http = mlprobe.Registry(), mlprobe.Registry(), mlprobe.Registry()
    quality = mlprobe.Registry()
    multiprocess.attach(probes, str(tmp_path), interval=1.0, background=False)
    bare_probe(probes)
    probes.get_or_create("export", lambda: ExportFailures("otlp_http")).add()
    profiled_probe(profiled)
    asgi_traffic(http)
    quality_probe(quality)
    exposition = text(target_for(probes, profiled, http, quality))
    assert promtool_problems(exposition) == ""
    assert sorted(set(CATALOG) - set(parse(exposition))) == []
    assert app_metrics_present(exposition)
