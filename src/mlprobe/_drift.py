"""Drift evaluation: current-window summaries against a ReferenceProfile (pure, no threads).

Three pieces, shared by the ``mlprobe drift`` CLI and the serving side's collect path:

* :class:`DriftSpec`: methods, thresholds and minimum counts (per-feature overridable).
* :class:`FeatureWindow` / :class:`DatasetWindow` (defined in :mod:`mlprobe._window`,
  re-exported here): mergeable current summaries built from raw batches without raising.
* :func:`evaluate_feature` / :func:`evaluate_dataset`: statistics, definitions, thresholds
  and statuses, as a JSON-ready :class:`DriftReport`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ._drift_block import NumericReferenceBlock, binned_numeric_stats, numeric_drift_block
from ._profile import CategoricalProfile, FeatureProfile, NumericProfile, ReferenceProfile
from ._window import DatasetWindow, FeatureWindow
from .errors import ConfigurationError
from .stats import drift as D

__all__ = [
    "DatasetWindow", "DriftReport", "DriftSpec", "FeatureDrift", "FeatureWindow",
    "STATUSES", "evaluate_dataset", "evaluate_feature",
]

STATUSES = ("ok", "warning", "critical", "insufficient_data")
_RANK = {"ok": 0, "warning": 1, "critical": 2}
ALL_MISSING_CHANCE = 1e-3
"""A window in which every row lacks a feature is critical once that is less likely than this
under the reference's missing share (at once when the reference had no missing values)."""
NUMERIC_METHODS = ("psi", "ks", "wasserstein", "js")
CATEGORICAL_METHODS = ("psi", "js", "linf", "chi2")

# Effect-size thresholds (warning, critical), listed in docs/stats.md. PSI and KS use the
# common MLOps rule of thumb 0.1 / 0.2: PSI 0.2 is where a normal mean shift reaches ~0.45σ,
# slightly stricter than the textbook 0.25 (~0.5σ) so "critical" fires before a shift is significant
# in the credit-risk sense. Wasserstein/σ warns at Evidently's 0.1 ("a 0.1σ-equivalent move";
# noise at 10k rows is <= 0.025) and is critical at 0.4σ-equivalent, so a 0.3σ move is a
# steady warning and a 0.5σ move (PSI ~0.25, KS ~0.2) a steady critical. JS (base 2) uses 0.1 /
# 0.2. L-infinity (largest category share change, NannyML's statistic) warns at 5 points and
# is critical at 10: a 30% -> 38% move is 8 points while its PSI is only 0.03.
DEFAULT_THRESHOLDS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "psi": (0.1, 0.2), "ks": (0.1, 0.2), "wasserstein": (0.1, 0.4), "js": (0.1, 0.2),
    "linf": (0.05, 0.1), "chi2": (math.inf, math.inf),
})


@dataclass(frozen=True)
class DriftSpec:
    """How drift is judged. Frozen; validated at construction.

    The default methods were chosen on the detection benchmark in ``docs/stats.md``:
    numeric features alarm on PSI (reference deciles), the binned KS statistic and
    Wasserstein/σ; categorical features on PSI and L-infinity. Every other statistic (JS,
    chi-square, KS and chi-square p-values) is computed and reported but does not change the
    status unless listed here. A feature's status is the worst of its methods' statuses.

    Args:
        numeric_methods: Methods that drive numeric statuses (subset of psi, ks, wasserstein, js).
        categorical_methods: Methods for categorical features (psi, js, linf; chi2 alarms only
            through ``alarm_on_pvalue``).
        thresholds: ``{method: (warning, critical)}``; merged over the defaults.
        missing_thresholds: Increase of the missing+invalid share over the reference (in share
            points, 0.05 = 5 points) for the separate data-quality status.
        min_count: Non-missing values a window needs before any drift status; below it the
            status is ``insufficient_data``. Default 1000: the null PSI on 10 bins is about
            9 / n, so 100 rows would put half of all unshifted windows at the 0.1 warning.
        js_base: Logarithm base of the JS distance (2: range [0, 1]; e: Evidently's).
        psi_eps: Floor on proportions in PSI and on reference shares in chi-square.
        alarm_on_pvalue: Also warn when a KS / chi-square p-value is below
            ``pvalue_alpha / n_features`` (Bonferroni). Off by default: at serving volumes
            p-values flag negligible shifts.
        pvalue_alpha: Family-wise significance level for ``alarm_on_pvalue``.
        dataset_warning_share: Drifted-feature share (optionally importance-weighted) at which
            the dataset verdict is at least ``warning``.
        dataset_critical_share: Share at which it is ``critical``.
        features: Per-feature overrides, ``{name: DriftSpec}`` (their own ``features`` ignored).

    Raises:
        ConfigurationError: On unknown methods, bad thresholds or out-of-range values.
    """

    numeric_methods: tuple[str, ...] = ("psi", "ks", "wasserstein")
    categorical_methods: tuple[str, ...] = ("psi", "linf")
    thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    missing_thresholds: tuple[float, float] = (0.05, 0.10)
    min_count: int = 1000
    js_base: float = 2.0
    psi_eps: float = 1e-4
    alarm_on_pvalue: bool = False
    pvalue_alpha: float = 0.05
    dataset_warning_share: float = 0.2
    dataset_critical_share: float = 0.5
    features: Mapping[str, DriftSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(msg: str) -> ConfigurationError:
            return ConfigurationError(f"DriftSpec: {msg}")

        for arg, allowed, given in (("numeric_methods", NUMERIC_METHODS, self.numeric_methods),
                                    ("categorical_methods", CATEGORICAL_METHODS,
                                     self.categorical_methods)):
            unknown = [m for m in given if m not in allowed]
            if unknown or isinstance(given, str):
                raise bad(f"{arg} has unknown methods {unknown or given!r}; choose from "
                          f"{allowed}")
        merged = dict(DEFAULT_THRESHOLDS)
        for m, pair in dict(self.thresholds).items():
            if m not in DEFAULT_THRESHOLDS:
                raise bad(f"thresholds has unknown method {m!r}; choose from "
                          f"{tuple(DEFAULT_THRESHOLDS)}")
            w, c = (float(x) for x in pair)
            if not (0 <= w <= c):
                raise bad(f"thresholds[{m!r}] must be (warning, critical) with "
                          f"0 <= warning <= critical, got {pair!r}")
            merged[m] = (w, c)
        object.__setattr__(self, "thresholds", MappingProxyType(merged))
        w, c = self.missing_thresholds
        if not 0 <= w <= c <= 1:
            raise bad("missing_thresholds must be (warning, critical) share increases in [0, 1]")
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise bad("min_count must be an int >= 1")
        if not (self.js_base > 1 and math.isfinite(self.js_base)):
            raise bad("js_base must be > 1 (2 for bits, math.e for Evidently's nats)")
        if not 0 < self.psi_eps < 0.01:
            raise bad("psi_eps must be in (0, 0.01)")
        if not 0 < self.pvalue_alpha < 1:
            raise bad("pvalue_alpha must be in (0, 1)")
        if not 0 < self.dataset_warning_share <= self.dataset_critical_share <= 1:
            raise bad("need 0 < dataset_warning_share <= dataset_critical_share <= 1")
        for name, sub in dict(self.features).items():
            if not isinstance(sub, DriftSpec):
                raise bad(f"features[{name!r}] must be a DriftSpec")
        object.__setattr__(self, "features", MappingProxyType(dict(self.features)))

    def for_feature(self, name: str) -> DriftSpec:
        """Return the spec that applies to ``name`` (its override, or this spec)."""
        return self.features.get(name, self)


def _clean(x: float) -> float | None:
    # JSON-ready: no NaN or inf leaves this module.
    return round(float(x), 12) if math.isfinite(x) else None


@dataclass(frozen=True)
class FeatureDrift:
    """The drift evaluation of one feature (or of the prediction).

    Attributes:
        status: Drift status from the spec's methods: ok / warning / critical /
            insufficient_data.
        quality_status: Data-quality status (separate on purpose: missing values alone never
            make a feature "drifted"): ``critical`` when no row of the window has a valid
            value and the reference makes that unlikely (see :func:`quality_status`), else
            from the missing-share increase once the window has ``min_count`` rows.
        statistics: Every computed statistic by method (reported even when not alarming).
        p_values: KS / chi-square p-values (reported; alarm only with ``alarm_on_pvalue``).
        method_status: Status per alarming method.
        definitions: How each statistic was computed (bins, eps, log base, bound).
        thresholds: ``{method: {"warning": w, "critical": c}}`` for alarming methods.
        quality: Counts and shares: rows, count, missing, invalid, out_of_range, unseen.
    """

    name: str
    kind: str
    status: str
    quality_status: str
    statistics: dict[str, float | None]
    p_values: dict[str, float | None]
    method_status: dict[str, str]
    definitions: dict[str, dict[str, Any]]
    thresholds: dict[str, dict[str, float]]
    quality: dict[str, Any]

    @property
    def drifted(self) -> bool:
        """True when the status is warning or critical."""
        return self.status in ("warning", "critical")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "kind": self.kind, "status": self.status,
                "quality_status": self.quality_status, "statistics": self.statistics,
                "p_values": self.p_values, "method_status": self.method_status,
                "definitions": self.definitions, "thresholds": self.thresholds,
                "quality": self.quality}


def _level(value: float, pair: tuple[float, float]) -> str:
    return "critical" if value >= pair[1] else "warning" if value >= pair[0] else "ok"


def _numeric_stats(ref: NumericProfile, win: FeatureWindow, spec: DriftSpec,
                   binned: dict[str, float] | None = None
                   ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, Any]]]:
    assert win.bins is not None and win.moments is not None
    if binned is None:  # one feature on its own: a block of one row
        result = numeric_drift_block(NumericReferenceBlock([ref]), [win],
                                     np.array([spec.psi_eps]), np.array([spec.js_base]))
        binned = {name: float(v[0]) for name, v in result.items()}
    ks, bound = binned["ks"], binned["ks_bound"]
    n_groups = len(ref.psi_edge_index) + 1
    m = win.moments
    sd = ref.std if math.isfinite(ref.std) else 0.0
    stats = {
        "psi": binned["psi"],
        "ks": ks,
        "wasserstein": D.normed(binned["wasserstein"], sd),
        "js": binned["js"],
        "mean_shift_sd": (m.mean - ref.mean) / max(sd, D.WASSERSTEIN_STD_FLOOR),
        "std_ratio": m.std() / sd if sd > 0 else math.nan,
    }
    pvals = {"ks": D.ks_pvalue(ks, ref.count, m.count)}
    bins = "reference deciles" if not ref.discrete else "reference deciles (snapped to values)"
    defs = {
        "psi": {"bins": bins, "n_bins": n_groups, "open_outer_bins": True, "eps": spec.psi_eps,
                "log": "e"},
        "ks": {"bins": "reference quantiles", "n_bins": int(ref.counts.size), "error_bound": bound,
               "pvalue": "asymptotic Kolmogorov, Stephens-corrected"},
        "wasserstein": {"norm": "reference population std", "std_floor": D.WASSERSTEIN_STD_FLOOR,
                        "bins": "reference quantiles", "n_bins": int(ref.counts.size),
                        "interpolation": "step" if ref.discrete else "linear",
                        "outer_bins": "tail means"},
        "js": {"bins": bins, "n_bins": n_groups, "base": spec.js_base, "kind": "distance"},
    }
    return stats, pvals, defs


def _categorical_stats(ref: CategoricalProfile, win: FeatureWindow, spec: DriftSpec
                       ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, Any]]]:
    assert win.categories is not None
    rp, cp = ref.proportions(), win.categories.proportions()
    chi = D.chi_square(ref.counts, win.categories.counts, spec.psi_eps)
    stats = {"psi": D.psi(rp, cp, spec.psi_eps), "js": D.jensen_shannon(rp, cp, spec.js_base),
             "linf": D.linf_distance(rp, cp), "chi2": chi.statistic}
    bins = {"bins": "reference levels + __other__", "n_bins": int(rp.size)}
    defs = {"psi": {**bins, "eps": spec.psi_eps, "log": "e"},
            "js": {**bins, "base": spec.js_base, "kind": "distance"},
            "linf": {**bins, "definition": "max |current share - reference share|"},
            "chi2": {**bins, "test": "goodness of fit vs reference shares", "dof": chi.dof,
                     "reference_share_floor": spec.psi_eps}}
    return stats, {"chi2": chi.p_value}, defs


def feature_quality_status(ref: FeatureProfile, window: FeatureWindow, increase: float,
                           spec: DriftSpec) -> str:
    """The data-quality status of one feature's window (the rule in ``docs/stats.md``).

    * ``critical`` when no row has a valid value (the column is absent, all strings, all
      missing) although the reference had values, once that is less likely than
      :data:`ALL_MISSING_CHANCE` under the reference's missing share;
    * otherwise, below ``min_count`` rows, ``insufficient_data`` (a share of a few rows is
      noise);
    * otherwise by the increase of the missing + invalid share over the reference:
      ``warning`` / ``critical`` at ``missing_thresholds`` (5 / 10 points by default).
    """
    rows = window.rows
    if not rows:
        return "insufficient_data"
    if window.count == 0 and ref.count > 0 and ref.missing_share ** rows < ALL_MISSING_CHANCE:
        return "critical"
    if rows < spec.min_count:
        return "insufficient_data"
    return _level(increase, spec.missing_thresholds)


def worst(statuses: Any) -> str:
    """The worst of ok / warning / critical among ``statuses``; ``insufficient_data`` if none."""
    ranked = [s for s in statuses if s in _RANK]
    return max(ranked, key=_RANK.__getitem__) if ranked else "insufficient_data"


def evaluate_feature(ref: FeatureProfile, window: FeatureWindow, spec: DriftSpec | None = None,
                     *, n_features: int = 1, binned: dict[str, float] | None = None
                     ) -> FeatureDrift:
    """Evaluate one feature's current window against its reference.

    Args:
        ref: The feature's reference profile.
        window: Its current summary (built on the same edges / vocabulary).
        spec: Drift settings (its per-feature override is applied here); default
            ``DriftSpec()``.
        n_features: Number of features tested together (for the Bonferroni correction when
            ``alarm_on_pvalue`` is on).
        binned: A numeric feature's binned statistics when already computed with the other
            features' (:func:`evaluate_dataset` does that); computed here otherwise.

    Returns:
        A :class:`FeatureDrift`; never NaN: a window without enough values gets
        ``insufficient_data`` and ``None`` statistics.
    """
    spec = (spec or DriftSpec()).for_feature(ref.name)
    numeric = isinstance(ref, NumericProfile)
    methods = spec.numeric_methods if numeric else spec.categorical_methods
    thresholds = {m: {"warning": spec.thresholds[m][0], "critical": spec.thresholds[m][1]}
                  for m in methods if m != "chi2"}
    rows = window.rows
    bad_share = (window.missing + window.invalid) / rows if rows else math.nan
    increase = bad_share - ref.missing_share if rows else math.nan
    quality = {"rows": rows, "count": window.count, "missing": window.missing,
               "invalid": window.invalid, "missing_share": _clean(bad_share),
               "reference_missing_share": _clean(ref.missing_share),
               "missing_share_increase": _clean(increase)}
    if numeric:
        quality["out_of_range"] = window.out_of_range
        quality["out_of_range_share"] = _clean(window.out_of_range / window.count
                                               if window.count else math.nan)
    else:
        assert window.categories is not None
        quality["unseen"] = window.categories.unseen
        quality["unseen_share"] = _clean(window.categories.unseen / window.count
                                         if window.count else math.nan)
    quality_status = feature_quality_status(ref, window, increase, spec)
    if window.count == 0 or ref.count == 0:
        return FeatureDrift(ref.name, ref.kind, "insufficient_data", quality_status, {}, {}, {},
                            {}, thresholds, quality)
    if isinstance(ref, NumericProfile):
        stats, pvals, defs = _numeric_stats(ref, window, spec, binned)
    else:
        stats, pvals, defs = _categorical_stats(ref, window, spec)
    method_status = {m: _level(stats[m], spec.thresholds[m]) for m in methods if m != "chi2"}
    if spec.alarm_on_pvalue:
        cutoff = spec.pvalue_alpha / max(n_features, 1)
        for m, p in pvals.items():
            method_status[f"{m}_pvalue"] = "warning" if p < cutoff else "ok"
    if window.count < spec.min_count:
        status = "insufficient_data"
    else:
        status = max(method_status.values(), key=_RANK.__getitem__, default="ok")
    return FeatureDrift(ref.name, ref.kind, status, quality_status,
                        {k: _clean(v) for k, v in stats.items()},
                        {k: _clean(v) for k, v in pvals.items()}, method_status, defs,
                        thresholds, quality)


@dataclass(frozen=True)
class DriftReport:
    """Drift and data quality of a whole dataset window.

    Attributes:
        status: The overall status: the worse of ``drift_verdict`` and ``quality_status``
            (``insufficient_data`` only when neither has a status). This is what
            ``drift_status()["status"]``, ``mlprobe_dataset_status{aspect="overall"}`` and the
            CLI's verdict report.
        drift_verdict: ``critical`` when the drifted share reaches ``dataset_critical_share``
            or the prediction or target drift is critical; ``warning`` when the share reaches
            ``dataset_warning_share``, any feature is critical, or the prediction or target
            drifted; ``insufficient_data`` when no feature has a drift status.
        quality_status: The worst data-quality status of the features, prediction and target.
        drift_share: Share of evaluated features that are warning or critical, weighted by
            the profile's importance when it has one.
        target: Label drift (``mlprobe drift --target``), when the window has labels.
    """

    features: dict[str, FeatureDrift]
    prediction: FeatureDrift | None
    drift_share: float | None
    weighted: bool
    drift_verdict: str
    schema_violations: dict[str, int]
    rows: int
    spec: DriftSpec
    target: FeatureDrift | None = None

    @property
    def outputs(self) -> list[FeatureDrift]:
        """The prediction and target results that exist."""
        return [r for r in (self.prediction, self.target) if r is not None]

    @property
    def quality_status(self) -> str:
        """The worst quality status of the features, the prediction and the target."""
        return worst(r.quality_status for r in [*self.features.values(), *self.outputs])

    @property
    def status(self) -> str:
        """The overall status: the worse of the drift verdict and the quality status."""
        return worst((self.drift_verdict, self.quality_status))

    @property
    def worst_status(self) -> str:
        """The worst of the overall status and every feature's, the prediction's and the
        target's drift and quality status (what the CLI's ``--fail-on`` compares)."""
        results = [*self.features.values(), *self.outputs]
        return worst([self.status, *(r.status for r in results),
                      *(r.quality_status for r in results)])

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready status document (what ``probe.drift_status()`` returns)."""
        n_eval = sum(f.status in _RANK for f in self.features.values())
        return {
            "status": self.status,
            "drift_verdict": self.drift_verdict,
            "quality_status": self.quality_status,
            "drift_share": _clean(self.drift_share) if self.drift_share is not None else None,
            "drift_share_weighted": self.weighted,
            "n_features": len(self.features), "n_evaluated": n_eval,
            "n_drifted": sum(f.drifted for f in self.features.values()),
            "rows": self.rows,
            "schema_violations": dict(self.schema_violations),
            "settings": {"min_count": self.spec.min_count,
                         "numeric_methods": list(self.spec.numeric_methods),
                         "categorical_methods": list(self.spec.categorical_methods),
                         "alarm_on_pvalue": self.spec.alarm_on_pvalue,
                         "missing_thresholds": list(self.spec.missing_thresholds),
                         "dataset_warning_share": self.spec.dataset_warning_share,
                         "dataset_critical_share": self.spec.dataset_critical_share},
            "features": {n: f.to_dict() for n, f in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
        }


def evaluate_dataset(profile: ReferenceProfile, window: DatasetWindow,
                     spec: DriftSpec | None = None) -> DriftReport:
    """Evaluate every feature (and the prediction and target) of a window against the profile.

    Args:
        profile: The reference profile.
        window: Current summaries (for example merged from a ring of sub-buckets).
        spec: Drift settings; default ``DriftSpec()``.
    """
    spec = spec or DriftSpec()
    n = len(profile.features)
    binned = binned_numeric_stats(profile, window, spec.for_feature)
    results = {name: evaluate_feature(ref, window.features[name], spec, n_features=n,
                                      binned=binned.get(name))
               for name, ref in profile.features.items()}
    pred = target = None
    if profile.prediction is not None and window.prediction is not None:
        pred = evaluate_feature(profile.prediction, window.prediction, spec, n_features=1)
    if profile.target is not None and window.target is not None:
        target = evaluate_feature(profile.target, window.target, spec, n_features=1)
    outputs = [r for r in (pred, target) if r is not None]
    weights = profile.importance or {}
    evaluated = [f for f in results.values() if f.status in _RANK]
    total = sum(weights.get(f.name, 0.0) if weights else 1.0 for f in evaluated)
    share: float | None = None
    if evaluated and total > 0:
        share = sum((weights.get(f.name, 0.0) if weights else 1.0)
                    for f in evaluated if f.drifted) / total
    if share is None:
        verdict = "insufficient_data"
    elif share >= spec.dataset_critical_share or any(r.status == "critical" for r in outputs):
        verdict = "critical"
    elif (share >= spec.dataset_warning_share or any(f.status == "critical" for f in evaluated)
          or any(r.drifted for r in outputs)):
        verdict = "warning"
    else:
        verdict = "ok"
    return DriftReport(results, pred, share, bool(weights), verdict,
                       dict(window.schema_violations), window.rows, spec, target)
