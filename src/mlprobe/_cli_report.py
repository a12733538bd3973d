"""The ``mlprobe drift`` report as Markdown (the JSON form is ``DriftReport.to_dict()``)."""

from __future__ import annotations

import math

from ._drift_report import DriftReport

__all__ = ["markdown"]


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _cell(text: str) -> str:
    # A feature name is data: keep it from breaking the table.
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def markdown(report: DriftReport, *, prediction: str | None = None,
             target: str | None = None) -> str:
    """Render the report: verdicts, counts, schema violations and one row per column
    (``prediction`` and ``target`` name the columns those rows came from)."""
    d = report.to_dict()
    share = d["drift_share"]
    lines = [
        f"# Drift report: **{d['status']}**", "",
        f"Drift: {d['drift_verdict']}; data quality: {d['quality_status']}. "
        f"{d['n_drifted']} of {d['n_evaluated']} evaluated features drifted "
        f"(share {_fmt(share)}{', importance-weighted' if d['drift_share_weighted'] else ''}); "
        f"{d['rows']} rows.",
    ]
    if d["schema_violations"]:
        lines.append("Schema violations (per row): " + ", ".join(
            f"{k} {v}" for k, v in sorted(d["schema_violations"].items())))
    lines += ["", "| column | role | type | status | psi | ks | wasserstein/σ | js | linf | "
              "missing share | quality |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(f.name, "feature", f) for f in report.features.values()]
    rows += [(column or role, role, r) for column, role, r in (
        (prediction, "prediction", report.prediction), (target, "target", report.target))
        if r is not None]
    for column, role, f in rows:
        s = f.statistics
        lines.append(
            f"| {_cell(column)} | {role} | {f.kind} | {f.status} | {_fmt(s.get('psi'))} | "
            f"{_fmt(s.get('ks'))} | {_fmt(s.get('wasserstein'))} | {_fmt(s.get('js'))} | "
            f"{_fmt(s.get('linf'))} | {_fmt(f.quality.get('missing_share'))} | "
            f"{f.quality_status} |")
    lines += ["", "PSI: reference deciles (categorical: levels + __other__), eps 1e-4, natural "
              "log. KS: 100 reference-quantile bins (error bound in the JSON output). "
              "Wasserstein: normalised by the reference population std. JS: distance, base "
              f"{report.spec.js_base:g}. Quality: missing + invalid share against the "
              "reference; a column without any valid value is critical."]
    return "\n".join(lines)
