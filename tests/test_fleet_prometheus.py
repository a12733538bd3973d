"""Fleet-wide drift from the recording rules, against a real Prometheus scraping replicas.

Three replicas serve one profile and get different slices of traffic (one drifts); one of them
restarts mid-run; a fourth serves another profile of the same model version. The drifting,
restarted replica is a real multi-worker server (gunicorn, two workers, multi-process mode:
``tests/workers.py``), the others are in-process replicas. Prometheus
scrapes every second with the generated rules loaded. The recorded fleet PSI must equal
mlprobe's own PSI on the union of the rows sent to the first three (``evaluate_dataset``), up
to ``increase()``'s per-replica extrapolation, which the test measures and states.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fleet import InProcessReplica
from realservers import prom_query, prometheus_server
from workers import MultiWorkerReplica

import mlprobe
from mlprobe import stats
from mlprobe._alerts import rule_file_yaml
from mlprobe._drift_eval import evaluate_dataset
from mlprobe._window import DatasetWindow
from mlprobe._fingerprint import bin_definition
from mlprobe._rules import RuleNames, RuleParams

pytestmark = pytest.mark.real_prometheus

PARAMS = RuleParams(drift_range="10m", min_count=500, for_drift="1s", for_profile_mix="1s")
NAMES = RuleNames(PARAMS)
ROWS = 400  # per batch


def make_profile(shift: float = 0.0, seed: int = 0) -> mlprobe.ReferenceProfile:
    g = np.random.default_rng(seed)
    n = 5000
    return mlprobe.ReferenceProfile.from_data(
        {"x": g.normal(shift, 1, n), "y": g.normal(0, 1, n), "c": g.choice(["u", "v", "w"], n)},
        predictions=g.random(n), categorical=["c"])


def batch(g: np.random.Generator, x_shift: float, other_share: float = 0.0
          ) -> tuple[dict[str, Any], np.ndarray]:
    levels = g.choice(["u", "v", "w"], ROWS).astype(object)
    levels[g.random(ROWS) < other_share] = "new-level"  # counts in __other__ (reference 0)
    return ({"x": g.normal(x_shift, 1, ROWS), "y": g.normal(0, 1, ROWS), "c": levels},
            g.random(ROWS))


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def values(port: int, query: str) -> dict[tuple[str, ...], float]:
    """{tuple of label values in key order: value} of an instant query (no polling)."""
    out = {}
    for r in prom_query(port, query, timeout=0):
        metric = r["metric"]
        out[tuple(metric.get(k, "") for k in ("instance", "profile", "feature", "bin"))] = \
            float(r["value"][1])
    return out


def scraped_bins(port: int, replica: InProcessReplica, expected_rows: int) -> bool:
    got = values(port, f'sum by (instance) (mlprobe_feature_bin_total{{instance='
                       f'"{replica.target}",feature="x"}})')
    return got.get((replica.target, "", "", ""), -1) == expected_rows


def test_fleet_psi_equals_mlprobe_on_the_union(tmp_path):
    """Fleet PSI/JS/L-inf from the rules equal mlprobe's on the union of the rows (after a
    replica restart, beside a replica with another profile); the fleet drift alert fires for
    the drifted feature only; the profile-mixing alert fires; request counts match."""
    profile, other = make_profile(), make_profile(shift=0.5, seed=1)
    a1, a3 = InProcessReplica(profile), InProcessReplica(profile)
    a2 = MultiWorkerReplica(profile, tmp_path / "a2")
    b = InProcessReplica(other)
    replicas = [a1, a2, a3, b]
    for r in replicas:
        r.start()
    rules = tmp_path / "rules.yml"
    rules.write_text(rule_file_yaml(PARAMS))
    g = np.random.default_rng(42)
    union = DatasetWindow(profile)
    # rows per replica (profile A), over its whole life, restart included
    per_replica = {r.target: DatasetWindow(profile) for r in (a1, a2, a3)}
    sent = {r.target: 0 for r in replicas}
    try:
        with prometheus_server(tmp_path, [r.target for r in replicas], rules) as port:
            # every replica scraped once before traffic: each bin series starts at 0
            for r in replicas:
                wait_for(lambda r=r: scraped_bins(port, r, 0), f"first scrape of {r.target}")

            def send(replica: Any, n: int, x_shift: float,
                     other_share: float = 0.0) -> None:
                for _ in range(n):
                    columns, scores = batch(g, x_shift, other_share)
                    replica.predict(columns, scores)
                    sent[replica.target] += ROWS
                    if replica is not b:
                        union.update(columns, predictions=scores)
                        per_replica[replica.target].update(columns, predictions=scores)

            send(a1, 3, 0.0)
            send(a2, 3, 1.5, other_share=0.2)  # the drifting slice
            send(a3, 2, 0.0)
            send(b, 2, 0.5)
            wait_for(lambda: all(scraped_bins(port, r, sent[r.target]) for r in replicas),
                     "scrape before restart")
            assert values(port, 'sum by (instance) (mlprobe_predictions_total{outcome="ok"})'
                          ) == {(r.target, "", "", ""): float(r.calls) for r in replicas}
            a2.restart()  # a fresh process state on the same port: its counters restart at 0
            wait_for(lambda: scraped_bins(port, a2, 0), "scrape after restart")
            send(a2, 2, 1.5, other_share=0.2)
            send(a1, 1, 0.0)
            wait_for(lambda: all(scraped_bins(port, r, sent[r.target] - (
                0 if r is not a2 else 3 * ROWS)) for r in replicas), "scrape after traffic")
            assert a2.calls == 2 and values(
                port, f'mlprobe_predictions_total{{outcome="ok",instance="{a2.target}"}}'
            ) == {(a2.target, "", "", ""): 2.0}

            # alerts (for: 1s): x drifted fleet-wide, y did not; two profiles of version 1
            firing = wait_for(lambda: values(
                port, 'ALERTS{alertname="MlprobeFleetFeatureDrift",alertstate="firing"}'),
                "fleet drift alert")
            assert {k[2] for k in firing} == {"x", "c"}, firing
            assert values(port, 'ALERTS{alertname="MlprobeProfileMixed",'
                                'alertstate="firing"}') or wait_for(lambda: values(
                port, 'ALERTS{alertname="MlprobeProfileMixed",alertstate="firing"}'),
                "profile mixing alert")

            # stop every replica: after 1.1 scrape intervals increase() extrapolates each by
            # half an interval and stops moving, so the comparison below is deterministic
            for r in replicas:
                r.stop()
            time.sleep(3.0)
            profiles = {k[1] for k in values(port, NAMES.psi)}
            assert len(profiles) == 2, profiles
            fingerprint = _fingerprint_of(port, a1)
            report = evaluate_dataset(profile, union)
            factors = values(port, f'sum by (instance) (increase(mlprobe_feature_bin_total'
                                   f'{{profile="{fingerprint}",feature="x"}}[10m]))')
            checks = _compare(port, profile, fingerprint, report, union, per_replica,
                              factors, sent)
    finally:
        for r in replicas:
            r.stop()
    assert checks  # every feature and statistic compared


def _fingerprint_of(port: int, replica: InProcessReplica) -> str:
    rows = prom_query(port, f'mlprobe_feature_reference_ratio{{instance="{replica.target}"}}'
                            f'[1m]', timeout=0)
    return rows[0]["metric"]["profile"]


def _compare(port: int, profile: mlprobe.ReferenceProfile, fingerprint: str, report: Any,
             union: DatasetWindow, per_replica: dict[str, DatasetWindow],
             factors: dict[tuple[str, ...], float], sent: dict[str, int]) -> list[str]:
    """Assert the recorded statistics against the library's, feature by feature.

    ``increase()`` scales each replica's counts by its own extrapolation factor ``f_t`` (the
    same for all of a replica's series, since they share scrape times and start at 0), which
    the test measures as the replica's increase over the rows it was sent. The recorded value
    must equal the library's statistic of those scaled counts to float precision, and the
    library's statistic of the exact union within the bound that scaling implies: every share
    moves by a relative ``s = max f / min f - 1`` at most, so PSI moves by at most
    ``s * sum(c |ln(c/r)| + |c - r|)`` to first order (doubled here for the second order).
    """
    f = {t: factors[(t, "", "", "")] / sent[t] for t in per_replica}
    spread = max(f.values()) / min(f.values()) - 1
    assert all(1.0 <= v < 1.5 for v in f.values()), f
    done = []
    for feature, library in [*report.features.items(), ("__prediction__", report.prediction)]:
        ref = profile.prediction if feature == "__prediction__" else profile.features[feature]
        _, r, _ = bin_definition(ref)

        exact = _exported_counts(ref, union, feature)
        scaled = sum(f[t] * _exported_counts(ref, w, feature) for t, w in per_replica.items())
        recorded = {}
        for stat, record in (("psi", NAMES.psi), ("js", NAMES.js), ("linf", NAMES.linf)):
            got = values(port, f'{record}{{profile="{fingerprint}",feature="{feature}"}}')
            assert len(got) == 1, (record, feature, got)
            recorded[stat] = next(iter(got.values()))

        want, oracle = _library_stats(r, scaled), _library_stats(r, exact)
        # the library's own report agrees with the bin-level oracle (deciles, levels)
        assert library.statistics["psi"] == pytest.approx(oracle["psi"], rel=1e-9, abs=1e-12)
        for stat, value in recorded.items():
            assert value == pytest.approx(want[stat], rel=1e-9, abs=1e-12), (feature, stat)
        c = np.maximum(exact / exact.sum(), 1e-4)
        rf = np.maximum(r, 1e-4)
        bound = 2 * spread * float(np.sum(c * np.abs(np.log(c / rf)) + np.abs(c - rf)))
        assert abs(recorded["psi"] - oracle["psi"]) <= bound + 1e-12, (feature, bound)
        done.append(feature)
    return done


def _library_stats(r: np.ndarray, c: np.ndarray) -> dict[str, float]:
    return {"psi": stats.psi(r, c / c.sum()), "js": stats.jensen_shannon(r, c),
            "linf": stats.linf_distance(r, c / c.sum())}


def _exported_counts(ref: Any, dataset: DatasetWindow, feature: str) -> np.ndarray:
    """The counts of the feature's exported bins (decile groups, or levels + __other__)."""
    window = dataset.prediction if feature == "__prediction__" else dataset.features[feature]
    if window.categories is not None:
        return np.asarray(window.categories.counts, dtype=float)
    return np.bincount(ref.decile_groups(), weights=window.bins.counts,
                       minlength=int(ref.decile_groups().max()) + 1)
