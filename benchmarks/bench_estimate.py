"""Error of the label-free estimate (CBPE-style) against the realised metric, on the demo model.

The demo's logistic regression (examples/demo) scores windows of rows drawn like the demo's
traffic: normal, drifting (ten features scaled by 1.25) and drifted (twenty). For each window
the realised accuracy and ROC AUC (from the labels) and the estimate (from the scores alone,
through the same counts a probe keeps) are compared. Also a calibrated synthetic model under
pure covariate shift, where the estimate's assumptions hold.

Run: ``python benchmarks/bench_estimate.py [--windows N] [--rows N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "examples"))

from mlprobe import QualitySpec  # noqa: E402
from mlprobe._quality_counts import QualityCounts  # noqa: E402
from mlprobe._quality_eval import estimate, realised_metrics  # noqa: E402
from mlprobe._quality_task import resolve_task  # noqa: E402

TASK = resolve_task(QualitySpec(task="binary"))


def window_errors(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    counts = QualityCounts(TASK)
    counts.add_pairs(scores, [str(int(v)) for v in labels])
    counts.add_predictions(scores)
    real, est = realised_metrics(counts), estimate(counts)
    assert est is not None
    return (real["accuracy"], est["accuracy"], real["roc_auc"] or float("nan"),
            est["roc_auc"] or float("nan"))


def report(name: str, rows: list[tuple[float, float, float, float]]) -> None:
    acc = [abs(e - r) for r, e, _, _ in rows]
    auc = [abs(e - r) for _, _, r, e in rows if r == r and e == e]
    real = statistics.mean(r for r, _, _, _ in rows)
    est = statistics.mean(e for _, e, _, _ in rows)
    print(f"  {name:<28} accuracy realised {real:.3f} estimate {est:.3f}: |error| mean "
          f"{statistics.mean(acc):.3f} max {max(acc):.3f};  ROC AUC |error| mean "
          f"{statistics.mean(auc) if auc else float('nan'):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args(argv)
    from demo import model_service, traffic

    trained = model_service.train()
    g = np.random.default_rng(0)
    print(f"demo model (examples/demo), {args.windows} windows of {args.rows} rows per phase")
    for name, drifted in traffic.PHASES:
        rows = []
        for _ in range(args.windows):
            X, y = traffic.make_batch(trained, g, args.rows, drifted)
            rows.append(window_errors(trained.pipeline.predict_proba(X)[:, 1], y))
        report(name, rows)
    print("\ncalibrated synthetic model (scores = true probabilities), covariate shift only")
    for shift in (0.0, 0.5, 1.0):
        rows = []
        for _ in range(args.windows):
            x = g.normal(shift, 1, args.rows)
            p = 1 / (1 + np.exp(-2 * x))
            y = (g.random(args.rows) < p).astype(int)
            rows.append(window_errors(p, y))
        report(f"input mean shifted by {shift}", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
