"""Drift results: the JSON-ready document of one evaluation (what ``drift_status()`` returns).

The second drift layer. :class:`FeatureDrift` is one feature's (or the prediction's, or the
target's) result; :class:`DriftReport` is a dataset's, with the aggregate statuses read from its
parts: the overall status is the worse of the drift verdict and the quality status. How the
numbers and statuses are decided is the evaluation policy's job (:mod:`mlprobe._drift_eval`);
the settings come from :class:`~mlprobe._drift_spec.DriftSpec`. Pure data, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._drift_spec import DriftSpec

__all__ = ["STATUSES", "STATUS_RANK", "DriftReport", "FeatureDrift", "json_float", "worst"]

STATUSES = ("ok", "warning", "critical", "insufficient_data")
"""Every status a result can have."""

STATUS_RANK = {"ok": 0, "warning": 1, "critical": 2}
"""Severity of the statuses that are a verdict (``insufficient_data`` is none)."""


def json_float(x: float) -> float | None:
    """``x`` rounded to 12 digits, or None when it is NaN or infinite (JSON has neither)."""
    return round(float(x), 12) if math.isfinite(x) else None


def worst(statuses: Iterable[str]) -> str:
    """The worst of ok / warning / critical among ``statuses``; ``insufficient_data`` if none."""
    ranked = [s for s in statuses if s in STATUS_RANK]
    return max(ranked, key=STATUS_RANK.__getitem__) if ranked else "insufficient_data"


@dataclass(frozen=True)
class FeatureDrift:
    """The drift evaluation of one feature (or of the prediction).

    Attributes:
        status: Drift status from the spec's methods: ok / warning / critical /
            insufficient_data.
        quality_status: Data-quality status (separate on purpose: missing values alone never
            make a feature "drifted"): ``critical`` when no row of the window has a valid
            value and the reference makes that unlikely (see
            :func:`~mlprobe._drift_eval.feature_quality_status`), else from the missing-share
            increase once the window has ``min_count`` rows.
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
        n_eval = sum(f.status in STATUS_RANK for f in self.features.values())
        return {
            "status": self.status,
            "drift_verdict": self.drift_verdict,
            "quality_status": self.quality_status,
            "drift_share": json_float(self.drift_share) if self.drift_share is not None else None,
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
