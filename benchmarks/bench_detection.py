"""Detection benchmark: which drift methods flag which synthetic shifts (plain script).

Reference: 100,000 rows; windows: 10,000 rows; several seeds per scenario. Scenarios are
classed as *relevant* (must flag), *grey* (reported only), *negligible* / *unshifted* /
*missing-only* (must not flag). Run: ``python benchmarks/bench_detection.py [--seeds N]``.
Prints one row per scenario: the share of windows flagged (warning or worse) by each method
alone and by the default method set, plus the default set's data-quality status.
"""

from __future__ import annotations

import argparse

import numpy as np

from mlprobe._drift_eval import evaluate_feature
from mlprobe._drift_spec import DriftSpec
from mlprobe._window import DatasetWindow
from mlprobe._profile import ReferenceProfile

N_REF, N_CUR = 100_000, 10_000
NUM_METHODS = ("psi", "ks", "wasserstein", "js")
CAT_METHODS = ("psi", "js", "linf")
LEVELS = np.array(["a", "b", "c", "d"])
BASE_P = np.array([0.30, 0.30, 0.25, 0.15])


def _cat_probs(share_a: float) -> np.ndarray:
    # Move level "a" to share_a, scaling the others proportionally.
    rest = BASE_P[1:] / BASE_P[1:].sum() * (1 - share_a)
    return np.concatenate([[share_a], rest])


SCENARIOS = [
    # name, class, numeric generator (rng, n) -> values, categorical share of "a", missing
    ("unshifted", "null", lambda g, n: g.normal(0, 1, n), 0.30, 0.0),
    ("mean +0.05σ (negligible)", "null", lambda g, n: g.normal(0.05, 1, n), 0.30, 0.0),
    ("missing +10 pts only", "null", lambda g, n: g.normal(0, 1, n), 0.30, 0.10),
    ("missing +30 pts only", "null", lambda g, n: g.normal(0, 1, n), 0.30, 0.30),
    ("mean +0.1σ", "grey", lambda g, n: g.normal(0.1, 1, n), 0.30, 0.0),
    ("variance x1.2", "grey", lambda g, n: g.normal(0, np.sqrt(1.2), n), 0.30, 0.0),
    ("mean +0.2σ", "relevant", lambda g, n: g.normal(0.2, 1, n), 0.38, 0.0),
    ("mean +0.3σ", "relevant", lambda g, n: g.normal(0.3, 1, n), 0.45, 0.0),
    ("mean -0.5σ", "relevant", lambda g, n: g.normal(-0.5, 1, n), 0.15, 0.0),
    ("variance x1.5", "relevant", lambda g, n: g.normal(0, np.sqrt(1.5), n), 0.50, 0.0),
]


def _run(seeds: int) -> list[tuple[str, str, str, dict[str, float], float, float]]:
    g = np.random.default_rng(12345)
    ref = {"num": g.normal(0, 1, N_REF), "cat": g.choice(LEVELS, N_REF, p=BASE_P)}
    profile = ReferenceProfile.from_data(ref)
    spec = DriftSpec()
    rows = []
    for name, klass, gen, share_a, miss in SCENARIOS:
        flags = {f"num:{m}": 0.0 for m in NUM_METHODS} | {f"cat:{m}": 0.0 for m in CAT_METHODS}
        default_num = default_cat = quality = 0.0
        for s in range(seeds):
            w = np.random.default_rng(1000 + s)
            num = gen(w, N_CUR)
            cat = w.choice(LEVELS, N_CUR, p=_cat_probs(share_a)).astype(object)
            if miss:
                drop = w.random(N_CUR) < miss
                num = num.copy()
                num[drop] = np.nan
                cat[w.random(N_CUR) < miss] = None
            win = DatasetWindow(profile)
            win.update({"num": num, "cat": cat})
            for feat, methods, prefix in (("num", NUM_METHODS, "num"), ("cat", CAT_METHODS, "cat")):
                full = DriftSpec(numeric_methods=NUM_METHODS, categorical_methods=CAT_METHODS)
                r = evaluate_feature(profile.features[feat], win.features[feat], full)
                for m in methods:
                    flags[f"{prefix}:{m}"] += r.method_status[m] != "ok"
            rn = evaluate_feature(profile.features["num"], win.features["num"], spec)
            rc = evaluate_feature(profile.features["cat"], win.features["cat"], spec)
            default_num += rn.drifted
            default_cat += rc.drifted
            quality += rn.quality_status != "ok"
        rows.append((name, klass, f"{share_a:.0%}", {k: v / seeds for k, v in flags.items()},
                     default_num / seeds, default_cat / seeds, quality / seeds))
    return rows


def main() -> None:
    """Print the detection table (markdown)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    rows = _run(args.seeds)
    head = (["scenario (numeric / cat 'a' share)", "class"] + [f"num {m}" for m in NUM_METHODS]
            + ["**num default**"] + [f"cat {m}" for m in CAT_METHODS]
            + ["**cat default**", "num quality"])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, klass, share, flags, dn, dc, q in rows:
        cells = ([f"{name} / {share}", klass]
                 + [f"{flags['num:' + m]:.0%}" for m in NUM_METHODS] + [f"**{dn:.0%}**"]
                 + [f"{flags['cat:' + m]:.0%}" for m in CAT_METHODS] + [f"**{dc:.0%}**", f"{q:.0%}"])
        print("| " + " | ".join(cells) + " |")
    print(f"\nShare of {args.seeds} windows flagged (warning or critical); reference {N_REF:,} "
          f"rows, windows {N_CUR:,} rows. Defaults: {DriftSpec().numeric_methods} numeric, "
          f"{DriftSpec().categorical_methods} categorical.")


if __name__ == "__main__":
    main()
