"""Drift and data quality as one self-contained HTML document (the live page and the report).

:func:`view_model` turns a profile, a window and its :class:`~mlprobe._drift.DriftReport` into a
JSON-ready dict: verdicts, and per column its statuses, statistics, quality counts and the
reference vs current share of each exported bin. :func:`render_body` draws it (inline SVG
bars, no script) and :func:`render_page` wraps it in a page; the status page served by the
middleware (:mod:`mlprobe._status_page`) and ``mlprobe drift --format html`` both use these,
so the live view and the batch report look the same. Nothing refers to an external asset.

Sensitive features show their bins by index and no edge or level (the same rule as the
metrics, ``docs/privacy.md``).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape
from typing import Any

import numpy as np

from ._drift_report import DriftReport, FeatureDrift, worst
from ._feature_profile import NumericProfile
from ._fingerprint import bin_definition
from ._profile import ReferenceProfile
from ._window import DatasetWindow
from ._svg import bar_pairs
from ._version import __version__

__all__ = ["render_body", "render_page", "view_model"]

STATS = (("psi", "PSI"), ("ks", "KS"), ("wasserstein", "W/σ"), ("js", "JS"), ("linf", "L∞"))


def _current_shares(ref: Any, window: Any) -> list[float] | None:
    if window is None:
        return None
    if isinstance(ref, NumericProfile):
        groups = ref.decile_groups()
        counts = np.bincount(groups, weights=window.bins.counts,
                             minlength=int(groups.max()) + 1 if groups.size else 1)
    else:
        counts = np.asarray(window.categories.counts, dtype=np.float64)
    total = counts.sum()
    return (counts / total).tolist() if total else None


def _column(role: str, name: str, ref: Any, window: Any, result: FeatureDrift,
            sensitive: bool) -> dict[str, Any]:
    labels, shares, edges = bin_definition(ref, sensitive)
    return {
        "name": name, "role": role, "kind": result.kind, "status": result.status,
        "quality_status": result.quality_status, "sensitive": sensitive,
        "statistics": {k: result.statistics.get(k) for k, _ in STATS},
        "method_status": dict(result.method_status), "thresholds": dict(result.thresholds),
        "quality": dict(result.quality),
        "bins": {"labels": labels, "reference": shares.tolist(),
                 "current": _current_shares(ref, window),
                 "edges": None if sensitive else edges},
    }


def view_model(profile: ReferenceProfile, window: DatasetWindow, report: DriftReport, *,
               sensitive: frozenset[str] = frozenset(), title: str = "mlprobe drift report",
               model: str | None = None, version: str | None = None,
               window_seconds: float | None = None, profile_id: str | None = None,
               generated: datetime | None = None,
               model_quality: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-ready content of the page (see the module docstring); ``model_quality`` is
    the ``model_quality`` section of a status document (or of ``mlprobe drift``'s JSON),
    whose status joins the overall one."""
    secret = sensitive | profile.sensitive
    columns = [_column("feature", name, ref, window.features[name], report.features[name],
                       name in secret) for name, ref in profile.features.items()]
    for role, ref, win, result in (("prediction", profile.prediction, window.prediction,
                                    report.prediction),
                                   ("target", profile.target, window.target, report.target)):
        if ref is not None and result is not None:
            columns.append(_column(role, role, ref, win, result, False))
            # the data column it was read from, when the profile knows it ("score")
            columns[-1]["column"] = getattr(profile, f"{role}_name", None)
    d = report.to_dict()
    when = generated or datetime.now(timezone.utc)
    if model_quality is not None:
        d["status"] = worst((d["status"], model_quality.get("status", "")))
    return {
        "title": title, "model": model, "model_version": version, "profile": profile_id,
        "generated": when.strftime("%Y-%m-%d %H:%M:%S UTC"), "window_seconds": window_seconds,
        "mlprobe": __version__,
        **{k: d[k] for k in ("status", "drift_verdict", "quality_status", "drift_share",
                             "n_features", "n_evaluated", "n_drifted", "rows",
                             "schema_violations")},
        "columns": columns,
        "model_quality": _quality_view(model_quality),
    }


QUALITY_SHOWN = ("accuracy", "precision", "recall", "f1", "f1_macro", "roc_auc", "log_loss",
                 "ece", "mae", "rmse", "mape", "bias")


def _quality_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model-quality part of the page: per metric its current, reference and label-free
    estimate values and status; the outcome counts and the concept-drift signal."""
    if doc is None:
        return None
    estimate = doc.get("estimate") or {}
    rows = [{"metric": m, "current": doc["metrics"].get(m), "reference": doc["reference"].get(m),
             "estimate": estimate.get(m), "status": doc["metric_status"].get(m),
             "change": doc["relative_change"].get(m)}
            for m in QUALITY_SHOWN if m in doc["metrics"] or m in doc["reference"]]
    drift = doc.get("concept_drift") or {}
    return {"status": doc["status"], "task": doc["task"], "pairs": doc["pairs"],
            "rows": rows, "outcomes": doc.get("outcomes"),
            "concept_drift": drift.get("status", "insufficient_data"),
            "mean_label_delay_seconds": doc.get("mean_label_delay_seconds")}


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _badge(status: str) -> str:
    return f'<span class="badge s-{escape(status)}">{escape(status.replace("_", " "))}</span>'


def _card(c: dict[str, Any]) -> str:
    stats = "".join(
        f'<span class="stat" data-stat="{key}" data-status="{escape(c["method_status"].get(key, ""))}"'
        f'>{label} <b>{_fmt(c["statistics"][key])}</b></span>'
        for key, label in STATS if c["statistics"].get(key) is not None)
    q = c["quality"]
    quality = (f'rows {q.get("rows", 0)}, missing {_fmt(q.get("missing_share"))} '
               f'(reference {_fmt(q.get("reference_missing_share"))})')
    extra = ("out of range " + str(q["out_of_range"]) if "out_of_range" in q
             else "unseen " + str(q.get("unseen", 0)))
    bins = c["bins"]
    chart = bar_pairs(bins["labels"], bins["reference"], bins["current"],
                      caption=f"{c['name']}: reference vs current share per bin")
    note = ' <span class="note">sensitive: bins by index</span>' if c["sensitive"] else ""
    heading = c.get("column") or c["name"]  # "score (prediction)", not "prediction prediction"
    role = ("" if c["role"] in ("feature", heading)
            else f' <span class="note">{c["role"]}</span>')
    return (f'<section class="card" data-feature="{escape(c["name"])}" '
            f'data-status="{escape(c["status"])}" data-quality="{escape(c["quality_status"])}">'
            f'<h3>{escape(heading)}{role}{note}</h3>'
            f'<div class="row">drift {_badge(c["status"])} quality '
            f'{_badge(c["quality_status"])}</div>'
            f'<div class="chart">{chart}</div><div class="stats">{stats}</div>'
            f'<div class="quality">{escape(quality)}; {escape(extra)}</div></section>')


def _quality_section(q: dict[str, Any] | None) -> str:
    if q is None:
        return ""
    rows = "".join(
        f'<tr data-metric="{escape(r["metric"])}" data-status="{escape(r["status"] or "")}">'
        f'<td>{escape(r["metric"])}</td><td>{_fmt(r["current"])}</td>'
        f'<td>{_fmt(r["reference"])}</td><td>{_fmt(r["estimate"])}</td>'
        f'<td>{_badge(r["status"]) if r["status"] else ""}</td></tr>' for r in q["rows"])
    outcomes = q.get("outcomes") or {}
    counts = ", ".join(f"{escape(k)} {v}" for k, v in outcomes.items() if v)
    delay = q.get("mean_label_delay_seconds")
    return (f'<section class="quality-section" id="model-quality" '
            f'data-status="{escape(q["status"])}"><h2>Model quality '
            f'{_badge(q["status"])}</h2><div class="note">{escape(q["task"])} · '
            f'{q["pairs"]} labelled pairs in the window · concept drift '
            f'{_badge(q["concept_drift"])}'
            + (f" · mean label delay {delay:.3g} s" if delay is not None else "")
            + (f" · outcomes: {counts}" if counts else "")
            + '</div><table class="metrics"><tr><th>metric</th><th>current</th>'
            '<th>reference</th><th>estimate (no labels)</th><th>status</th></tr>'
            f'{rows}</table></section>')


def render_body(model: dict[str, Any]) -> str:
    """The page's content (header, summary, model quality, one card per column) as an HTML
    fragment."""
    who = " ".join(escape(str(x)) for x in (model.get("model"), model.get("model_version") and
                   "v" + str(model["model_version"])) if x)
    share = model.get("drift_share")
    window = (f"rolling window {model['window_seconds']:g} s · "
              if model.get("window_seconds") else "")
    violations = ", ".join(f"{escape(k)} {v}" for k, v in
                           sorted(model.get("schema_violations", {}).items())) or "none"
    ordered = sorted(model["columns"], key=lambda c: (
        c["role"] != "feature", -{"critical": 2, "warning": 1}.get(c["status"], 0)))
    drifted = [c for c in model["columns"] if c["status"] in ("warning", "critical")]
    return (
        f'<header><h1>{escape(model["title"])}</h1><div class="who">{who}</div>'
        f'<div class="overall">{_badge(model["status"])}</div></header>'
        f'<div class="summary" id="summary" data-status="{escape(model["status"])}">'
        f'drift {_badge(model["drift_verdict"])} · data quality '
        f'{_badge(model["quality_status"])} · <span id="drifted">{model["n_drifted"]}</span> of '
        f'{model["n_evaluated"]} evaluated features drifted (share {_fmt(share)}) · '
        f'{model["rows"]} rows · schema violations {violations}</div>'
        + (f'<div class="drifted">drifted: {", ".join(escape(c["name"]) for c in drifted)}'
           '</div>' if drifted else "")
        + _quality_section(model.get("model_quality"))
        + '<div class="legend"><i class="k ref"></i>reference <i class="k cur"></i>current '
          '(share of values per bin: reference deciles, or categories and __other__)</div>'
        + f'<main class="grid">{"".join(_card(c) for c in ordered)}</main>'
        + f'<footer>{window}generated {escape(model["generated"])} · mlprobe '
          f'{escape(model["mlprobe"])}'
        + (f' · profile {escape(model["profile"])}' if model.get("profile") else "")
        + "</footer>")


_CSS = """
body{font:13px/1.4 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:16px;color:#1f2933;
background:#f7f8fa}header{display:flex;gap:12px;align-items:baseline}h1{font-size:18px;margin:0}
.who{color:#52606d}.summary,.drifted,.legend{margin:8px 0}.drifted{color:#b42318}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:8px 10px}
.card[data-status=warning]{border-color:#f0b429}.card[data-status=critical]{border-color:#d64545}
h3{font-size:13px;margin:0 0 4px;overflow-wrap:anywhere}.stats{display:flex;flex-wrap:wrap;gap:6px}
.stat[data-status=warning] b{color:#b7791f}.stat[data-status=critical] b{color:#c81e1e}
.quality,.note,footer{color:#616e7c;font-size:11px}footer{margin-top:12px}
.badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px}
.s-ok{background:#27ab83}.s-warning{background:#de911d}.s-critical{background:#d64545}
.s-insufficient_data,.s-no_reference,.s-error{background:#9aa5b1}
.k{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px}.k.ref{background:#9aa5b1}
.k.cur{background:#2f6fdf}
.quality-section{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:8px 10px;
margin:8px 0}h2{font-size:14px;margin:0 0 4px}table.metrics{border-collapse:collapse}
table.metrics td,table.metrics th{padding:2px 10px 2px 0;text-align:left}
"""

_LIVE_JS = """
(function(){
  var body=document.body, every=%d*1000, url=%s;
  function refresh(){
    fetch(url,{cache:"no-store"}).then(function(r){
      if(!r.ok) throw new Error("status "+r.status); return r.text();
    }).then(function(html){
      document.getElementById("content").innerHTML=html;
      body.dataset.refreshed=String(Number(body.dataset.refreshed||0)+1);
      body.dataset.stale="0";
    }).catch(function(){ body.dataset.stale="1"; });
  }
  body.dataset.ready="1";
  setInterval(refresh, every);
})();
"""


def render_page(model: dict[str, Any], *, refresh_seconds: float | None = None,
                fragment_url: str = "") -> str:
    """A complete HTML document; with ``refresh_seconds`` it re-fetches its content from
    ``fragment_url`` (same origin) on that interval."""
    import json

    script = ""
    if refresh_seconds:
        script = "<script>" + _LIVE_JS % (max(int(refresh_seconds), 1),
                                          json.dumps(fragment_url)) + "</script>"
    else:
        script = '<script>document.body.dataset.ready="1";</script>'
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(model['title'])}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<style>{_CSS}</style></head><body data-status=\"{escape(model['status'])}\">"
            f'<div id="content">{render_body(model)}</div>{script}</body></html>')
