"""Prometheus recording rules for fleet-wide drift and serving quantiles, generated from Python.

``mlprobe rules`` prints them (with the alerting rules of :mod:`mlprobe._alerts`) as one rule
file; :class:`RuleParams` holds every range, threshold and duration. The fleet-wide drift rules
compute, from ``mlprobe_feature_bin_total`` summed over every replica, exactly the statistics
``mlprobe.stats`` computes on the union of the rows (``docs/operating.md`` states the
definitions and the one approximation, ``increase()``'s extrapolation). What makes them correct:

* ``increase()``, not raw counters: a replica that restarts resets its counters to zero, and
  ``increase`` adds the value before the reset back;
* the reference ratio is the same on every replica, so it is taken with ``max``, never summed
  (``max_over_time`` over the range, so replicas that served in the range but are gone still
  have their reference);
* shares are only formed where the range holds values (``> 0``): 0/0 is NaN, which
  ``clamp_min`` keeps;
* both sides are floored at ``psi_eps`` exactly like :func:`mlprobe.stats.psi` (``__other__``
  of a vocabulary with no folded levels has reference share 0);
* every grouping keeps ``model``, ``model_version`` and ``profile`` (the fingerprint of the
  bins' meaning), so versions in a rollout and replicas with different profiles never mix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigurationError
from .stats.drift import PSI_EPS

__all__ = ["RuleNames", "RuleParams", "recording_groups"]

_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
LATENCY_QUANTILES = (0.5, 0.95, 0.99)
SCORE_QUANTILES = (0.05, 0.5, 0.95)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class RuleParams:
    """Ranges, thresholds and ``for:`` durations of the generated rules. Frozen; validated.

    Every field is also a ``mlprobe rules`` option (``drift_range`` is ``--drift-range``).
    Durations are Prometheus durations (``30s``, ``5m``, ``1h30m``, ``7d``).

    Raises:
        ConfigurationError: A malformed duration, label or selector, or an out-of-range
            threshold; the message names the field.
    """

    drift_range: str = field(default="1h", metadata=_help(
        "range of the fleet-wide drift rules (increase() over it)"))
    rate_range: str = field(default="5m", metadata=_help(
        "range of rates, latency and score quantiles and error ratios"))
    psi_warning: float = field(default=0.1, metadata=_help("fleet PSI warning level"))
    psi_critical: float = field(default=0.2, metadata=_help("fleet PSI critical level"))
    psi_eps: float = field(default=PSI_EPS, metadata=_help(
        "floor on shares in PSI (mlprobe's DriftSpec.psi_eps)"))
    js_base: float = field(default=2.0, metadata=_help("log base of the JS distance"))
    min_count: int = field(default=1000, metadata=_help(
        "values a feature needs in the range before a fleet drift alert"))
    latency_baseline: str = field(default="1d", metadata=_help(
        "offset of the latency baseline window"))
    latency_warning: float = field(default=1.5, metadata=_help(
        "p95/p99 over baseline ratio for a warning (1.5 = +50%%)"))
    latency_critical: float = field(default=2.0, metadata=_help(
        "p95/p99 over baseline ratio for critical (2 = +100%%)"))
    error_warning: float = field(default=0.01, metadata=_help(
        "error ratio (predict calls, HTTP 5xx) for a warning"))
    error_critical: float = field(default=0.05, metadata=_help("error ratio for critical"))
    gradual_range: str = field(default="1d", metadata=_help(
        "recent range of the gradual-drift comparison"))
    gradual_baseline: str = field(default="7d", metadata=_help(
        "baseline range just before it"))
    gradual_interval: str = field(default="10m", metadata=_help(
        "evaluation interval of the (expensive) gradual-drift group"))
    schema_critical: float = field(default=0.1, metadata=_help(
        "schema violations per row for critical"))
    quality_range: str = field(default="1h", metadata=_help(
        "range of the fleet-wide model-quality rules (increase() of outcome sums over it)"))
    quality_warning: float = field(default=0.02, metadata=_help(
        "relative accuracy drop against the reference for a warning (0.02 = 2%%)"))
    quality_critical: float = field(default=0.05, metadata=_help(
        "relative accuracy drop against the reference for critical"))
    quality_min_count: int = field(default=500, metadata=_help(
        "labelled pairs in the range before a model-quality alert"))
    by: tuple[str, ...] = field(default=(), metadata=_help(
        "extra labels kept in every grouping (e.g. cluster)"))
    selector: str = field(default="", metadata=_help(
        "label matchers added to every raw series, e.g. 'job=\"churn\"'"))
    for_latency: str = field(default="10m", metadata=_help("for: of latency alerts"))
    for_errors: str = field(default="5m", metadata=_help("for: of error-rate alerts"))
    for_drift: str = field(default="15m", metadata=_help("for: of drift alerts"))
    for_gradual: str = field(default="1h", metadata=_help("for: of the gradual-drift alert"))
    for_quality: str = field(default="15m", metadata=_help("for: of data-quality alerts"))
    for_schema: str = field(default="5m", metadata=_help("for: of schema-violation alerts"))
    for_no_traffic: str = field(default="15m", metadata=_help("for: of the no-traffic alert"))
    for_internal: str = field(default="5m", metadata=_help("for: of the internal-error alert"))
    for_model_quality: str = field(default="15m", metadata=_help(
        "for: of the accuracy-drop and concept-drift alerts"))
    for_profile_mix: str = field(default="30m", metadata=_help(
        "for: of the profile-mixing alert (a profile rollout mixes briefly)"))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_range", "_baseline", "_interval")) or \
                    f.name.startswith("for_"):
                if not isinstance(value, str) or not _DURATION.fullmatch(value):
                    raise ConfigurationError(f"RuleParams.{f.name} must be a Prometheus "
                                             f"duration such as 5m, 1h or 7d, got {value!r}")
        checks = [
            ("psi_warning", 0 < self.psi_warning <= self.psi_critical,
             "need 0 < psi_warning <= psi_critical"),
            ("psi_eps", 0 < self.psi_eps < 0.01, "must be in (0, 0.01)"),
            ("js_base", self.js_base > 1 and math.isfinite(self.js_base), "must be > 1"),
            ("min_count", isinstance(self.min_count, int) and self.min_count >= 0,
             "must be a whole number >= 0"),
            ("latency_warning", 1 < self.latency_warning <= self.latency_critical,
             "need 1 < latency_warning <= latency_critical (ratios to the baseline)"),
            ("error_warning", 0 < self.error_warning <= self.error_critical <= 1,
             "need 0 < error_warning <= error_critical <= 1"),
            ("schema_critical", 0 < self.schema_critical <= 1, "must be in (0, 1]"),
            ("quality_warning", 0 < self.quality_warning <= self.quality_critical < 1,
             "need 0 < quality_warning <= quality_critical < 1 (relative drops)"),
            ("quality_min_count", isinstance(self.quality_min_count, int)
             and self.quality_min_count >= 0, "must be a whole number >= 0")]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigurationError(f"RuleParams.{name} is out of range: {rule}")
        by = tuple(self.by)
        reserved = {"model", "model_version", "profile", "feature", "bin", "le", "output"}
        if any(not isinstance(b, str) or not _LABEL.fullmatch(b) or b in reserved for b in by):
            raise ConfigurationError(f"RuleParams.by must be label names other than "
                                     f"{sorted(reserved)}, got {by!r}")
        object.__setattr__(self, "by", by)
        if self.selector and not re.fullmatch(r'(\s*[a-zA-Z_]\w*\s*(=|!=|=~|!~)\s*"'
                                              r'([^"\\]|\\.)*"\s*,?)+', self.selector):
            raise ConfigurationError("RuleParams.selector must be label matchers such as "
                                     f'job="churn",env!~"dev.*"; got {self.selector!r}')

    def metric(self, name: str, *matchers: str) -> str:
        """A raw series selector with the ``selector`` matchers added."""
        parts = [*matchers, self.selector.strip().rstrip(",")] if self.selector else matchers
        parts = [p for p in parts if p]
        return f"{name}{{{','.join(parts)}}}" if parts else name

    def group(self, *labels: str) -> str:
        """A ``by (...)`` label list: ``labels`` plus the extra ``by`` labels."""
        return ", ".join([*labels, *self.by])


def _q(q: float) -> str:
    return f"p{round(q * 100):02d}"


class RuleNames:
    """The recorded series' names for one :class:`RuleParams` (ranges are part of the name)."""

    def __init__(self, p: RuleParams) -> None:
        r, rr = p.drift_range, p.rate_range
        self.bin_values = f"mlprobe:feature_bin_values:increase{r}"
        self.values = f"mlprobe:feature_values:increase{r}"
        self.share = f"mlprobe:feature_bin_share:increase{r}"
        self.reference = f"mlprobe:feature_reference_ratio:max{r}"
        self.psi = f"mlprobe:feature_psi:increase{r}"
        self.js = f"mlprobe:feature_js:increase{r}"
        self.linf = f"mlprobe:feature_linf:increase{r}"
        g, gb = p.gradual_range, p.gradual_baseline
        self.recent_bin_values = f"mlprobe:feature_bin_values:increase{g}"
        self.recent_values = f"mlprobe:feature_values:increase{g}"
        self.recent_share = f"mlprobe:feature_bin_share:increase{g}"
        self.baseline_share = f"mlprobe:feature_bin_share:increase{gb}_offset{g}"
        self.gradual_psi = f"mlprobe:feature_psi:{g}_vs_previous_{gb}"
        self.rate = f"mlprobe:predictions:rate{rr}"
        self.error_ratio = f"mlprobe:prediction_errors:ratio_rate{rr}"
        self.latency = {q: f"mlprobe:prediction_duration_seconds:{_q(q)}_rate{rr}"
                        for q in LATENCY_QUANTILES}
        self.score = {q: f"mlprobe:prediction_score:{_q(q)}_rate{rr}" for q in SCORE_QUANTILES}
        self.http_latency = {q: f"mlprobe:http_server_request_duration_seconds:{_q(q)}_rate{rr}"
                             for q in LATENCY_QUANTILES}
        self.http_errors = f"mlprobe:http_server_errors:ratio_rate{rr}"
        q = p.quality_range
        self.pairs = f"mlprobe:model_pairs:increase{q}"
        self.accuracy = f"mlprobe:model_accuracy:ratio_increase{q}"
        self.rmse = f"mlprobe:model_rmse:increase{q}"


def _rec(name: str, expr: str) -> dict[str, Any]:
    return {"record": name, "expr": expr}


def _shares(bins: str, by: str) -> str:
    # Formed only where the range holds values: 0/0 would be NaN, which clamp_min keeps.
    return f"{bins}\n  / ignoring(bin) group_left()\n(sum by ({by}) ({bins}) > 0)"


def psi_expr(current: str, reference: str, eps: float, by: str) -> str:
    """PSI of two share vectors, both floored at ``eps`` as :func:`mlprobe.stats.psi` does."""
    c, r = f"clamp_min({current}, {eps!r})", f"clamp_min({reference}, {eps!r})"
    return f"sum by ({by}) (\n  ({c} - {r})\n  * ln({c} / {r})\n)"


def recording_groups(p: RuleParams) -> list[dict[str, Any]]:
    """The recording rule groups: fleet drift, gradual drift and serving quantiles."""
    n = RuleNames(p)
    g = p.group("model", "model_version", "profile")
    gf = f"{g}, feature"
    js = (f"sqrt(clamp_min(\n  (\n    sum by ({gf}) (({n.reference} > 0) * ln(({n.reference} > 0)"
          f" / (({n.reference} + {n.share}) / 2)))\n"
          f"    + sum by ({gf}) (({n.share} > 0) * ln(({n.share} > 0)"
          f" / (({n.reference} + {n.share}) / 2)))\n"
          f"  ) / {2 * math.log(p.js_base)!r},\n  0))")
    drift = [
        _rec(n.bin_values, f"sum by ({gf}, bin) (increase("
                           f"{p.metric('mlprobe_feature_bin_total')}[{p.drift_range}]))"),
        _rec(n.values, f"sum by ({gf}) ({n.bin_values})"),
        _rec(n.share, f"{n.bin_values}\n  / ignoring(bin) group_left()\n({n.values} > 0)"),
        _rec(n.reference, f"max by ({gf}, bin) (max_over_time("
                          f"{p.metric('mlprobe_feature_reference_ratio')}[{p.drift_range}]))"),
        _rec(n.psi, psi_expr(n.share, n.reference, p.psi_eps, gf)),
        _rec(n.js, js),
        _rec(n.linf, f"max by ({gf}) (abs({n.share} - {n.reference}))"),
    ]
    bins = p.metric("mlprobe_feature_bin_total")
    baseline_bins = (f"sum by ({gf}, bin) (increase({bins}[{p.gradual_baseline}] "
                     f"offset {p.gradual_range}))")
    gradual = [
        _rec(n.recent_bin_values,
             f"sum by ({gf}, bin) (increase({bins}[{p.gradual_range}]))"),
        _rec(n.recent_values, f"sum by ({gf}) ({n.recent_bin_values})"),
        _rec(n.recent_share, f"{n.recent_bin_values}\n  / ignoring(bin) group_left()\n"
                             f"({n.recent_values} > 0)"),
        _rec(n.baseline_share, _shares(baseline_bins, gf)),
        _rec(n.gradual_psi, psi_expr(n.recent_share, n.baseline_share, p.psi_eps, gf)),
    ]
    m, rr = p.group("model", "model_version"), p.rate_range
    calls = p.metric("mlprobe_predictions_total")
    errors = p.metric("mlprobe_predictions_total", 'outcome="error"')
    serving = [
        _rec(n.rate, f"sum by ({m}) (rate({calls}[{rr}]))"),
        _rec(n.error_ratio, f"sum by ({m}) (rate({errors}[{rr}]))\n  /\n"
                            f"(sum by ({m}) (rate({calls}[{rr}])) > 0)"),
    ]
    latency = p.metric("mlprobe_prediction_duration_seconds_bucket")
    serving += [_rec(name, f"histogram_quantile({q}, sum by ({m}, le) "
                           f"(rate({latency}[{rr}])))") for q, name in n.latency.items()]
    scores = p.metric("mlprobe_prediction_score_bucket")
    serving += [_rec(name, f"histogram_quantile({q}, sum by ({m}, output, le) "
                           f"(rate({scores}[{rr}])))") for q, name in n.score.items()]
    route = p.group("http_route")
    http = p.metric("http_server_request_duration_seconds_bucket")
    http_count = p.metric("http_server_request_duration_seconds_count")
    http_5xx = p.metric("http_server_request_duration_seconds_count",
                        'http_response_status_code=~"5.."')
    serving += [_rec(name, f"histogram_quantile({q}, sum by ({route}, le) "
                           f"(rate({http}[{rr}])))") for q, name in n.http_latency.items()]
    # A route without any 5xx has no 5xx series: its ratio is 0, not absent.
    serving.append(_rec(n.http_errors, (
        f"(\n  sum by ({route}) (rate({http_5xx}[{rr}]))\n"
        f"  or sum by ({route}) (rate({http_count}[{rr}])) * 0\n)\n  /\n"
        f"(sum by ({route}) (rate({http_count}[{rr}])) > 0)")))
    return [{"name": "mlprobe-fleet-drift", "rules": drift},
            {"name": "mlprobe-gradual-drift", "interval": p.gradual_interval, "rules": gradual},
            {"name": "mlprobe-serving", "rules": serving},
            {"name": "mlprobe-model-quality", "rules": quality_rules(p, n)}]


def quality_rules(p: RuleParams, n: RuleNames) -> list[dict[str, Any]]:
    """Fleet-wide model quality per version from the outcome sums of every replica (labelled
    pairs, accuracy, RMSE over ``quality_range``), as the library computes them on the union
    of the pairs."""
    m, q = p.group("model", "model_version"), p.quality_range

    def total(metric: str) -> str:
        stats = p.metric("mlprobe_outcome_stats_total", f'metric="{metric}"')
        return f"sum by ({m}) (increase({stats}[{q}]))"

    return [
        _rec(n.pairs, total("count")),
        _rec(n.accuracy, f"{total('correct')}\n  /\n({n.pairs} > 0)"),
        _rec(n.rmse, f"sqrt(\n  {total('squared_error')}\n  /\n({n.pairs} > 0)\n)"),
    ]
