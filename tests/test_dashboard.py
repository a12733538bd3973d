"""The Grafana dashboard: built by Grafana's SDK, importable, and every panel's PromQL returns
data from a real Prometheus scraping the demo service (with the rules loaded).

Grafana itself is not installable here (no Debian package; no network), so the panel pictures
for the README are drawn from the same Prometheus results with mlprobe's own SVG charts in
Chromium, not by Grafana.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from browser import need, screenshot, serve_asgi
from realservers import prometheus_server

import mlprobe
from mlprobe._alerts import rule_file_yaml
from mlprobe._cli import main
from mlprobe._dashboard import dashboard, dashboard_json
from mlprobe._svg import bar_pairs, line_chart

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FEATURES = ("mean radius", "worst area", "mean texture", "__prediction__")
SUBSTITUTE = {"$model": "breast-cancer", "$version": "1", "$feature": "|".join(FEATURES),
              "$__rate_interval": "20s"}


# JavaScript: [problem, panel title] of every line-chart legend entry outside its chart or
# overlapping another (each chart inside a .panel with an h4 title)
LEGEND_PROBLEMS = """() => {
        const bad = [], title = svg => svg.closest('.panel').querySelector('h4').textContent;
        for (const svg of document.querySelectorAll('svg.lines')) {
            const w = svg.width.baseVal.value, h = svg.height.baseVal.value;
            const boxes = [...svg.querySelectorAll('text.legend')].map(t => t.getBBox());
            boxes.forEach((b, i) => {
                if (b.x < 0 || b.y < 0 || b.x + b.width > w || b.y + b.height > h)
                    bad.push(['outside', title(svg)]);
                boxes.slice(i + 1).forEach(o => {
                    if (b.x < o.x + o.width && o.x < b.x + b.width &&
                        b.y < o.y + o.height && o.y < b.y + b.height)
                        bad.push(['overlap', title(svg)]);
                });
            });
        }
        return bad; }"""


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def substituted(expr: str) -> str:
    for name, value in SUBSTITUTE.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def test_packaged_dashboard_is_what_the_builder_builds(monkeypatch):
    """src/mlprobe/resources/grafana-dashboard.json equals what build_dashboard.py builds
    with grafana-foundation-sdk (regenerate with: python examples/grafana/build_dashboard.py)."""
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        need("grafana-foundation-sdk is not installed (pip install -e '.[test]')")
    monkeypatch.syspath_prepend(str(EXAMPLES / "grafana"))
    import build_dashboard

    assert build_dashboard.render(build_dashboard.build()) == dashboard_json()


def test_dashboard_variables_and_datasource():
    """Datasource, model, version and feature variables exist; every panel and query uses the
    $datasource variable; model panels filter by $model and $version."""
    doc = dashboard()
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert set(variables) == {"datasource", "model", "version", "feature"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["version"]["multi"] and variables["feature"]["includeAll"]
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            if "mlprobe_" in target["expr"] and "internal" not in target["expr"]:
                assert 'model=~"$model"' in target["expr"], panel["title"]
    titles = " ".join(p["title"] for p in panels()).lower()
    for topic in ("latency", "errors", "in flight", "batch", "score", "drift status",
                  "fleet psi", "quantiles", "reference", "data-quality", "http"):
        assert topic in titles, topic


def test_cli_dashboard_and_provisioning_files(capsys, tmp_path):
    """mlprobe dashboard prints the JSON (or writes it with -o); the provisioning files are
    valid Grafana provisioning YAML pointing where the README says to write it."""
    assert main(["dashboard"]) == 0
    assert json.loads(capsys.readouterr().out) == dashboard()
    assert main(["dashboard", "-o", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text()) == dashboard()
    provisioning = EXAMPLES / "grafana" / "provisioning"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "mlprobe.yml").read_text())
    assert dashboards["apiVersion"] == 1
    assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/mlprobe"
    sources = yaml.safe_load((provisioning / "datasources" / "mlprobe-prometheus.yml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"


def _query(port: int, path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _demo_traffic(base: str) -> int:
    """Normal, then drifted rows, each batch's labels posted back (model quality, the shadow's
    comparisons), and one batch with NaN that makes the model raise."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from demo import model_service, traffic
    finally:
        sys.path.remove(str(EXAMPLES))
    trained = model_service.train()
    g = np.random.default_rng(0)
    calls = 0
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(40):
            drifted = traffic.PHASES[2][1] if i >= 20 else None
            rows, labels = traffic.make_batch(trained, g, 50, drifted)
            answer = client.post("/predict", json={"rows": rows.tolist()})
            assert answer.status_code == 200
            calls += 1
            assert client.post("/outcome", json={"prediction_id": answer.json()["prediction_id"],
                                                 "labels": labels.tolist()}).status_code == 200
        # JSON with NaN (Python's json writes it; httpx's refuses): the model raises on it
        nan_rows = json.dumps({"rows": [[math.nan] * len(trained.feature_names)]})
        assert client.post("/predict", content=nan_rows,
                           headers={"content-type": "application/json"}).status_code == 500
        calls += 1
    return calls


@pytest.mark.real_prometheus
def test_every_panel_query_returns_data_from_the_demo(tmp_path, web_page):
    """With Prometheus scraping the demo service (rules loaded) after normal, drifted and
    failing traffic, every panel's query (variables substituted) parses and returns finite
    data; the panels are then drawn from those results with mlprobe's SVG charts."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from demo import model_service
    finally:
        sys.path.remove(str(EXAMPLES))
    app = model_service.create_app(registry=mlprobe.Registry(), window_seconds=120)
    rules = tmp_path / "rules.yml"
    rules.write_text(rule_file_yaml())
    with serve_asgi(app) as base:
        target = base.removeprefix("http://")
        with prometheus_server(tmp_path, [target], rules) as port:
            # scraped once before any traffic: increase() counts from that first sample
            deadline = time.monotonic() + 30
            while not _query(port, "query", query="mlprobe_feature_bin_total")["data"]["result"]:
                assert time.monotonic() < deadline, "Prometheus did not scrape the demo"
                time.sleep(0.25)
            calls = _demo_traffic(base)
            deadline = time.monotonic() + 30
            while True:  # scraped after the traffic, and the fleet rule has a value
                done = _query(port, "query",  # the primary's calls (not the shadow's)
                              query='sum(mlprobe_predictions_total{model_version="1"})')
                rule = _query(port, "query", query="mlprobe:feature_psi:increase1h")
                got = done["data"]["result"]
                if got and float(got[0]["value"][1]) == calls and rule["data"]["result"]:
                    break
                assert time.monotonic() < deadline, "Prometheus did not scrape the traffic"
                time.sleep(0.5)
            time.sleep(2.5)  # a few more scrapes, so every rate window holds two samples
            end = time.time()
            results = {}
            for panel in panels():
                for target in panel["targets"]:
                    expr = substituted(target["expr"])
                    answer = _query(port, "query", query=expr, time=str(end))
                    assert answer["status"] == "success", (panel["title"], answer)
                    series = answer["data"]["result"]
                    finite = [float(s["value"][1]) for s in series
                              if math.isfinite(float(s["value"][1]))]
                    assert finite, f"{panel['title']}: no finite data for {expr}"
                    ranged = _query(port, "query_range", query=expr, start=str(end - 40),
                                    end=str(end), step="1")
                    results[(panel["title"], target["refId"])] = (target, series,
                                                                  ranged["data"]["result"])
    page = _panel_pictures(results)
    web_page.set_content(page)
    assert web_page.locator(".panel").count() == len(panels())
    assert web_page.locator("svg polyline.series").count() >= 10
    assert web_page.locator("svg.heatmap rect.cell").count() > 100
    # the picture's layout: every legend entry inside its chart, none overlapping another
    overflow = web_page.evaluate(LEGEND_PROBLEMS)
    assert overflow == [], overflow
    assert web_page.js_errors == []
    screenshot(web_page, tmp_path, "dashboard-panels.png", full_page=True)


def test_line_chart_legend_fits_many_series_with_long_names(web_page):
    """line_chart with more series than colours and names longer than a legend column: every
    legend entry inside the chart and none overlapping another, each line told apart by its
    colour and dash pattern, and every full name in its entry's tooltip."""
    names = [f"{i}: a feature name much longer than one column of the legend" for i in range(11)]
    series = [(name, [(0.0, float(i)), (1.0, i + 1.0)]) for i, name in enumerate(names)]
    svg = line_chart(series, width=480, height=190, title="many")
    web_page.set_content(f"<div class='panel'><h4>many</h4>{svg}</div>")
    assert web_page.evaluate(LEGEND_PROBLEMS) == []
    looks = web_page.eval_on_selector_all(
        "polyline.series", "els => els.map(e => [e.getAttribute('stroke'), "
        "e.getAttribute('stroke-dasharray')])")
    assert len(looks) == len(names) and len({tuple(x) for x in looks}) == len(names)
    assert web_page.locator("text.legend title").all_text_contents() == names
    assert web_page.js_errors == []


def _panel_pictures(results: dict[tuple[str, str], Any]) -> str:
    """An HTML page drawing each panel from its query results (mlprobe's SVG charts)."""
    from html import escape

    blocks = []
    for panel in panels():
        targets = [(t, s, r) for (title, _), (t, s, r) in results.items()
                   if title == panel["title"]]
        if panel["type"] == "table":  # Grafana's table: one column per label, then the value
            series = [s for _, found, _ in targets for s in found]
            keys = sorted({k for s in series for k in s["metric"]})
            head = "".join(f"<th>{escape(k)}</th>" for k in keys) + "<th>value</th>"
            rows = "".join(
                "<tr>" + "".join(f"<td>{escape(s['metric'].get(k, ''))}</td>" for k in keys)
                + f"<td>{_status_text(float(s['value'][1]), panel)}</td></tr>"
                for s in sorted(series, key=lambda s: [s["metric"].get(k, "") for k in keys]))
            body = f"<table><tr>{head}</tr>{rows}</table>"
        elif panel["type"] == "heatmap":
            body = _heatmap(targets[0][2], width=480, height=190)
        elif panel["type"] == "barchart":
            current = {s["metric"]["bin"]: float(s["value"][1]) for s in targets[0][1]
                       if s["metric"]["feature"] == FEATURES[0]}
            reference = {s["metric"]["bin"]: float(s["value"][1]) for s in targets[1][1]
                         if s["metric"]["feature"] == FEATURES[0]}
            labels = sorted(reference, key=lambda b: (len(b), b))
            body = (f"<div>{escape(FEATURES[0])}</div>" + bar_pairs(
                labels, [reference[b] for b in labels], [current.get(b, 0.0) for b in labels],
                width=480, height=150))
        else:
            lines = []
            for target, _, ranged in targets:
                for s in ranged:
                    name = target.get("legendFormat", "") or ""
                    for key, value in s["metric"].items():
                        name = name.replace("{{" + key + "}}", value)
                    name = re.sub(r"\{\{\w+\}\}", "", name).strip() or "value"
                    lines.append((name, [(float(t), float(v)) for t, v in s["values"]]))
            body = line_chart(lines, width=480, height=190, title="")
        blocks.append(f'<div class="panel"><h4>{escape(panel["title"])}</h4>{body}</div>')
    css = ("body{font:12px system-ui,'DejaVu Sans',sans-serif;background:#f7f8fa;margin:10px}"
           ".grid{display:grid;grid-template-columns:repeat(2,520px);gap:8px}"
           ".panel{background:#fff;border:1px solid #e4e7eb;border-radius:4px;padding:6px}"
           "h4{margin:0 0 4px}td,th{padding:1px 8px;text-align:left}"
           "th{color:#52606d;font-weight:600;border-bottom:1px solid #e4e7eb}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{css}</style></head>"
            f"<body><div class='grid'>{''.join(blocks)}</div></body></html>")


def _heatmap(ranged: list[dict[str, Any]], *, width: int, height: int) -> str:
    """Grafana's heatmap of cumulative ``le`` buckets (format "heatmap"): per time step the
    count of each bucket (the difference of adjacent cumulative counts), darker for more."""
    from html import escape

    bounds = sorted(ranged, key=lambda s: float(s["metric"]["le"]))
    times = sorted({float(t) for s in bounds for t, _ in s["values"]})
    cumulative = [{float(t): float(v) for t, v in s["values"]} for s in bounds]
    counts = [[max(row.get(t, 0.0) - (cumulative[i - 1].get(t, 0.0) if i else 0.0), 0.0)
               for t in times] for i, row in enumerate(cumulative)]
    peak = max((c for row in counts for c in row), default=0.0) or 1.0
    left, top, bottom = 44, 6, 14
    cw, ch = (width - left - 8) / max(len(times), 1), (height - top - bottom) / len(bounds)
    parts = [f'<svg class="heatmap" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    for i, row in enumerate(counts):
        y = top + (len(bounds) - 1 - i) * ch  # the lowest bucket at the bottom
        for j, count in enumerate(row):
            shade = count / peak
            colour = "rgb({},{},{})".format(*(int(255 - d * shade) for d in (208, 144, 32)))
            parts.append(f'<rect class="cell" x="{left + j * cw:.1f}" y="{y:.1f}" '
                         f'width="{cw + 0.3:.1f}" height="{ch + 0.3:.1f}" fill="{colour}" '
                         f'data-count="{count!r}"/>')
        le = bounds[i]["metric"]["le"]
        if i % 2 == 1:  # every other bound (0.1, 0.2, ... for the default score buckets)
            parts.append(f'<text x="{left - 4}" y="{y + ch / 2 + 3:.1f}" font-size="9" '
                         f'text-anchor="end" fill="#555">≤ {escape(le)}</text>')
    parts.append(f'<text x="{left}" y="{height - 2}" font-size="9" fill="#555">score '
                 f'bucket (le) over time; darker: more predictions</text></svg>')
    return "".join(parts)


def _status_text(value: float, panel: dict[str, Any]) -> str:
    if "status" in panel["title"].lower():
        return {0.0: "ok", 1.0: "warning", 2.0: "critical"}.get(value, f"{value:g}")
    return f"{value:g}"
