"""Evidently-compatible drift values on raw arrays, for offline comparison only.

These reproduce Evidently's default column drift numbers (``docs/stats.md``, "Drift
statistics"): numeric columns whose reference has more than 20 distinct values are binned on
``np.histogram_bin_edges(R ∪ C, bins="sturges")``; otherwise one bin per distinct non-NaN
value of R ∪ C. Because the edges depend on the current window these cannot be computed from
a saved profile; mlprobe's own statistics use frozen reference-quantile bins instead.
"""

from __future__ import annotations

import math

import numpy as np

from .drift import jensen_shannon, wasserstein_exact

__all__ = ["evidently_jensenshannon", "evidently_psi", "evidently_wasserstein_norm"]


def _clean(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind in "fc":
        return a[~np.isnan(a)].astype(np.float64)
    if a.dtype.kind in "iub":
        return a.astype(np.float64)
    keep = [v for v in a.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return np.asarray(keep, dtype=object)


def _binned(ref: np.ndarray, cur: np.ndarray, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    # Evidently divides by len(series) including NaN rows; our inputs are NaN-free already
    # in the common case. We follow its recipe on the cleaned arrays.
    r, c = _clean(ref), _clean(cur)
    if numeric and r.dtype != object and np.unique(r).size > 20:
        bins = np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")
        rp = np.histogram(r, bins)[0] / len(r)
        cp = np.histogram(c, bins)[0] / len(c)
        return rp, cp
    keys = sorted(set(r.tolist()) | set(c.tolist()), key=repr)
    index = {k: i for i, k in enumerate(keys)}
    rc = np.zeros(len(keys))
    cc = np.zeros(len(keys))
    for v in r.tolist():
        rc[index[v]] += 1
    for v in c.tolist():
        cc[index[v]] += 1
    return rc / len(r), cc / len(c)


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    # Evidently: zeros become 1e-4, or min(non-zero) / 1e6 when the smallest non-zero share
    # is itself <= 1e-4 (so the floor stays below every real share).
    out = p.copy()
    nz = out[out != 0]
    if nz.size:
        m = nz.min()
        out[out == 0] = m / 10**6 if m <= 0.0001 else 0.0001
    return out


def evidently_psi(ref: np.ndarray, cur: np.ndarray, *, numeric: bool = True) -> float:
    """PSI exactly as Evidently's ``psi`` stat test computes it (Sturges bins over R ∪ C).

    Args:
        ref: Reference values (NaN dropped).
        cur: Current values (NaN dropped).
        numeric: Treat as a numeric column (else one bin per level).
    """
    rp, cp = _binned(ref, cur, numeric)
    rp, cp = _fill_zeroes(rp), _fill_zeroes(cp)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def evidently_jensenshannon(ref: np.ndarray, cur: np.ndarray, *, numeric: bool = True) -> float:
    """Jensen-Shannon distance as Evidently computes it: same bins, natural log, no zero fill."""
    rp, cp = _binned(ref, cur, numeric)
    return jensen_shannon(rp, cp, base=math.e)


def evidently_wasserstein_norm(ref: np.ndarray, cur: np.ndarray) -> float:
    """Wasserstein distance divided by ``max(np.std(ref), 0.001)`` (Evidently's ``wasserstein``)."""
    r, c = _clean(ref), _clean(cur)
    return wasserstein_exact(r, c) / max(float(np.std(r)), 0.001)
