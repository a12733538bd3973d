"""The live status page and the HTML report in a real headless Chromium.

A Starlette app with the middleware's status page runs under uvicorn on 127.0.0.1; known
drifted traffic goes through HTTP, and its labels come back through an outcome endpoint (the
model quality drops); the browser checks what the page shows (statuses, flagged features, bar
heights of a known distribution, no raw level of a sensitive feature, the model-quality table
against scikit-learn), that it refreshes itself, loads nothing from outside and logs no
error; screenshots are kept (they are the README's pictures).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser import screenshot, serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import mlprobe
from mlprobe._fingerprint import bin_definition
from mlprobe.asgi import ProbeMiddleware

ROOT = Path(__file__).resolve().parent.parent
ODD = 'spend <R&D> "eur"'  # a feature name is data: it must show as text, never as markup
ID_HEADER = "x-prediction-id"
PLOT_HEIGHT = 96 - 4 - 16  # bar_pairs: height minus top and bottom margins


def make_profile() -> mlprobe.ReferenceProfile:
    """Five features, the model's scores and the labels (drawn with the score's probability:
    the reference accuracy at the 0.5 threshold is about 0.75)."""
    g = np.random.default_rng(0)
    n = 5000
    scores = g.random(n)
    return mlprobe.ReferenceProfile.from_data(
        {"age": g.normal(40, 10, n), "income": g.lognormal(10, 0.5, n),
         "plan": g.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]),
         "region": g.choice(["north-secret", "south-secret"], n), ODD: g.normal(0, 1, n)},
        (g.random(n) < scores).astype(int), scores, categorical=["plan", "region"],
        sensitive=["region"], target_name="churned", prediction_name="score")


def rows(g: np.random.Generator, n: int, *, age_shift: float = 0.0,
         income_factor: float = 1.0) -> dict[str, list[Any]]:
    return {"age": g.normal(40 + age_shift, 10, n).tolist(),
            "income": (g.lognormal(10, 0.5, n) * income_factor).tolist(),
            "plan": ["basic"] * n,  # every row on one plan: a known current distribution
            "region": g.choice(["north-secret", "south-secret"], n).tolist(),
            ODD: g.normal(0, 1, n).tolist()}


def make_app(profile: mlprobe.ReferenceProfile) -> Any:
    probe = mlprobe.Probe("churn", version="7", reference=profile, registry=mlprobe.Registry(),
                          quality=True)
    scores = np.random.default_rng(1)

    @probe.track
    def predict(columns: dict[str, list[Any]]) -> np.ndarray:
        return scores.random(len(columns["age"]))

    async def predict_endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"scores": predict(await request.json()).tolist()})

    async def outcome_endpoint(request: Request) -> JSONResponse:
        body = await request.json()
        probe.record_outcome(body["prediction_id"], body["labels"])
        return JSONResponse({"status": "recorded"})

    app = Starlette(routes=[Route("/predict", predict_endpoint, methods=["POST"]),
                            Route("/outcome", outcome_endpoint, methods=["POST"])])
    return ProbeMiddleware(app, probe=probe, status_page_path="/mlprobe",
                           status_page_refresh=1, drift_path="/drift",
                           prediction_id_header=ID_HEADER)


def send(base: str, batches: int, **kwargs: Any) -> tuple[list[float], list[int]]:
    """``batches`` of 1,000 rows; each batch's labels come back at once, drawn independently of
    the scores (the model is no better than chance now). Returns the scores and labels."""
    g = np.random.default_rng(len(kwargs) + batches)
    scores: list[float] = []
    labels: list[int] = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(batches):
            answer = client.post("/predict", json=rows(g, 1000, **kwargs))
            assert answer.status_code == 200
            batch = (g.random(1000) < 0.5).astype(int).tolist()
            assert client.post("/outcome", json={"prediction_id": answer.headers[ID_HEADER],
                                                 "labels": batch}).status_code == 200
            scores += answer.json()["scores"]
            labels += batch
    return scores, labels


def bars(page: Any, feature: str, kind: str) -> list[dict[str, float]]:
    return page.eval_on_selector_all(
        f'section.card[data-feature="{feature}"] svg rect.{kind}',
        "els => els.map(e => ({bin: e.dataset.bin, share: Number(e.dataset.share), "
        "height: e.getBBox().height}))")


def test_live_status_page_shows_known_drift_and_refreshes(web_page, tmp_path):
    """Drifted age and plan are flagged critical, income and the rest ok; plan's bars have the
    heights of its known shares; the sensitive feature shows bins by index only; the labels
    that came back make the accuracy (equal to scikit-learn's) critical against the
    profile's, and the overall status with it; the page refreshes itself when the traffic
    changes; nothing outside 127.0.0.1 is requested."""
    from sklearn.metrics import accuracy_score

    profile = make_profile()
    with serve_asgi(make_app(profile)) as base:
        scores, labels = send(base, 3, age_shift=15.0)
        web_page.goto(base + "/mlprobe")
        web_page.wait_for_selector("body[data-ready='1']")
        statuses = web_page.eval_on_selector_all(
            "section.card", "els => Object.fromEntries(els.map(e => [e.dataset.feature, "
            "e.dataset.status]))")
        assert statuses == {"age": "critical", "plan": "critical", "income": "ok",
                            "region": "ok", ODD: "ok", "prediction": "ok", "target": "ok"}
        # drift alone is a warning (2 of 5 drifted); the model's quality makes it critical
        assert web_page.text_content("#summary .badge") == "warning"
        assert web_page.get_attribute("#summary", "data-status") == "critical"
        assert web_page.text_content(".drifted") == "drifted: age, plan"
        # the prediction and the labels are titled by their data columns, then their role
        assert [web_page.text_content(f'section.card[data-feature="{role}"] h3')
                for role in ("prediction", "target")] == ["score prediction", "churned target"]
        assert web_page.get_attribute("#model-quality", "data-status") == "critical"
        accuracy = web_page.locator('#model-quality tr[data-metric="accuracy"] td')
        assert accuracy.nth(4).text_content() == "critical"
        oracle = accuracy_score(labels, np.asarray(scores) >= 0.5)
        assert float(accuracy.nth(1).text_content()) == pytest.approx(oracle, abs=5e-4)
        assert float(accuracy.nth(2).text_content()) == pytest.approx(
            profile.quality.metrics["accuracy"], abs=5e-4)
        # the odd name is text, not markup
        odd = web_page.evaluate(
            "name => { const c = [...document.querySelectorAll('section.card')]"
            ".find(e => e.dataset.feature === name); const h = c.querySelector('h3'); "
            "return {elements: h.children.length, text: h.textContent}; }", ODD)
        assert odd == {"elements": 0, "text": ODD}

        labels, ref_shares, _ = bin_definition(profile.features["plan"])
        current = [1.0, 0.0, 0.0, 0.0]  # basic, pro, team, __other__
        peak = max(max(ref_shares), 1.0)
        for kind, shares in (("ref", ref_shares), ("cur", current)):
            drawn = bars(web_page, "plan", kind)
            assert [b["bin"] for b in drawn] == labels
            for bar, share in zip(drawn, shares):
                assert bar["share"] == pytest.approx(share, abs=1e-12)
                assert bar["height"] == pytest.approx(share / peak * PLOT_HEIGHT, abs=0.01)
        assert len(bars(web_page, "age", "cur")) == 10 == len(bars(web_page, "age", "ref"))

        html = web_page.content()
        assert "north-secret" not in html and "south-secret" not in html
        assert [b["bin"] for b in bars(web_page, "region", "ref")] == ["0", "1", "__other__"]

        screenshot(web_page, tmp_path, "status-page.png", full_page=True)
        # now income drifts too: the page notices on its own (it refreshes every second)
        send(base, 3, income_factor=3.0)
        web_page.wait_for_selector('section.card[data-feature="income"][data-status="critical"]',
                                   timeout=15_000)
        assert int(web_page.get_attribute("body", "data-refreshed")) >= 1
        assert web_page.text_content(".drifted") == "drifted: age, income, plan"
    assert web_page.js_errors == []
    assert all(url.startswith(base) for url in web_page.requests), web_page.requests


def test_html_report_is_self_contained(web_page, tmp_path):
    """mlprobe drift --format html writes one page that renders the same views offline, with
    the model quality of the file's score and label columns (equal to scikit-learn's, ok
    against the profile's: the model is as good as on its reference data)."""
    from sklearn.metrics import accuracy_score

    profile = make_profile()
    profile_path = tmp_path / "p.json"
    profile.save(profile_path)
    g = np.random.default_rng(3)
    data = rows(g, 2000, age_shift=15.0)
    data["score"] = g.random(2000).tolist()
    data["churned"] = (g.random(2000) < np.asarray(data["score"])).astype(int).tolist()
    csv_path = tmp_path / "current.csv"
    import csv

    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(data))
        writer.writerows(zip(*data.values()))
    out = subprocess.run([sys.executable, "-m", "mlprobe", "drift", str(profile_path),
                          str(csv_path), "--format", "html"], capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr
    page_path = tmp_path / "report.html"
    page_path.write_text(out.stdout)
    assert "http://" not in out.stdout and "https://" not in out.stdout
    web_page.goto(page_path.as_uri())
    web_page.wait_for_selector("body[data-ready='1']")
    assert web_page.get_attribute("#summary", "data-status") == "warning"  # 2 of 5 drifted
    assert web_page.text_content(".drifted") == "drifted: age, plan"
    # one card per feature, the prediction's and the labels'
    assert web_page.locator("section.card").count() == len(profile.features) + 2
    for role in ("prediction", "target"):
        assert web_page.get_attribute(f'section.card[data-feature="{role}"]',
                                      "data-status") == "ok"
    assert web_page.get_attribute("#model-quality", "data-status") == "ok"
    accuracy = web_page.locator('#model-quality tr[data-metric="accuracy"] td')
    oracle = accuracy_score(data["churned"], np.asarray(data["score"]) >= 0.5)
    assert float(accuracy.nth(1).text_content()) == pytest.approx(oracle, abs=5e-4)
    assert "north-secret" not in web_page.content()
    assert web_page.js_errors == []
    assert all(url.startswith("file://") for url in web_page.requests), web_page.requests
    screenshot(web_page, tmp_path, "drift-report.png", full_page=True)
