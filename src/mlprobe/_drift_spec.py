"""Drift configuration: :class:`DriftSpec`, the methods it may name and the default thresholds.

The first of the three drift layers (configuration, then the result document in
:mod:`mlprobe._drift_report`, then the evaluation policy in :mod:`mlprobe._drift_eval`). A spec
is frozen and validated at construction, so a bad setting fails where it is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import ConfigurationError

__all__ = ["CATEGORICAL_METHODS", "DEFAULT_THRESHOLDS", "NUMERIC_METHODS", "DriftSpec"]

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
