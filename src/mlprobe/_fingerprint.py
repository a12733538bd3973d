"""Profile identity for the bin series: a short fingerprint of what the bins mean.

``mlprobe_feature_bin_total`` labels numeric bins ``0``-``9`` (reference deciles), so two
replicas serving different profiles of the same model would add up in ``sum by (feature,
bin)`` without anything showing it. Every bin series therefore carries ``profile``: eight hex
digits of a SHA-256 over exactly what gives the bins their meaning (per feature: its label, kind,
bin labels, decile edges and reference shares). It is computed once per profile and is the same
on every host and Python version, since it hashes exact float representations (``float.hex``)
of numbers that are themselves deterministic functions of the profile document.

:func:`config_fingerprint` is the other identity: of every setting that shapes a source's raw
counts (bucket bounds, caps, the whole profile document), which states of two processes must
share to be merged.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from ._feature_profile import NumericProfile
from ._profile import ReferenceProfile

__all__ = ["FINGERPRINT_CHARS", "bin_definition", "config_fingerprint", "profile_fingerprint",
           "profile_document_digest"]

FINGERPRINT_CHARS = 8
"""Hex digits kept: 32 bits, so two distinct profiles of one model collide with odds ~2e-10."""

_CACHE: WeakKeyDictionary[ReferenceProfile, dict[frozenset[str], str]] = WeakKeyDictionary()
_DOCUMENTS: WeakKeyDictionary[ReferenceProfile, str] = WeakKeyDictionary()


def profile_document_digest(profile: ReferenceProfile) -> str:
    """SHA-256 of the whole profile document (every bin edge, level and moment); cached."""
    digest = _DOCUMENTS.get(profile)
    if digest is None:
        text = json.dumps(profile.to_dict(), sort_keys=True, separators=(",", ":"))
        digest = _DOCUMENTS[profile] = hashlib.sha256(text.encode()).hexdigest()
    return digest


def config_fingerprint(*settings: Any) -> str:
    """A short, stable digest of settings made of numbers, strings, tuples and None (their
    ``repr``, which is exact for floats), e.g. a probe's buckets, caps and profile digest."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def bin_definition(ref: Any, sensitive: bool = False) -> tuple[list[str], np.ndarray,
                                                                   list[float]]:
    """``(bin labels, reference shares, interior edges)`` of one feature's exported bins.

    Numeric features have the reference-decile groups ``"0"``, ``"1"``, ... with the decile
    edges between them; categorical ones their levels (keyed as label values) and
    ``__other__``, by index when ``sensitive``. This is the reference side of what
    :func:`mlprobe._feature_metrics.collect_feature_metrics` exports.
    """
    counts = np.asarray(ref.counts, dtype=np.float64)
    if isinstance(ref, NumericProfile):
        groups = ref.decile_groups()
        n_groups = int(groups.max()) + 1 if groups.size else 1
        grouped = np.bincount(groups, weights=counts, minlength=n_groups)
        labels = [str(i) for i in range(n_groups)]
        edges = [float(e) for e in ref.edges[list(ref.psi_edge_index)]] if ref.edges.size \
            else []
    else:
        grouped = counts
        labels = list(ref.empty_counts().labels)
        if sensitive:
            labels = [str(i) for i in range(len(labels) - 1)] + [labels[-1]]
        edges = []
    total = grouped.sum()
    shares = grouped / total if total else np.zeros(grouped.size)
    return labels, shares, edges


def profile_fingerprint(profile: ReferenceProfile, feature_labels: dict[str, str],
                        sensitive: frozenset[str] = frozenset(),
                        prediction_label: str | None = None) -> str:
    """The ``profile`` label of a profile's bin series (cached per profile and sensitive set).

    Args:
        profile: The reference profile.
        feature_labels: The exported ``feature`` label of each feature name.
        sensitive: Features exported by index (their bins mean something else, so they change
            the fingerprint).
        prediction_label: The ``feature`` label of the prediction's bins, when exported.
    """
    by_sensitive = _CACHE.setdefault(profile, {})
    cached = by_sensitive.get(sensitive)
    if cached is not None:
        return cached
    entries = []
    parts = [(feature_labels[name], ref, name in sensitive)
             for name, ref in profile.features.items()]
    if prediction_label is not None and profile.prediction is not None:
        parts.append((prediction_label, profile.prediction, False))
    for label, ref, secret in parts:
        labels, shares, edges = bin_definition(ref, secret)
        entries.append([label, ref.kind, labels, [float(e).hex() for e in edges],
                        [float(s).hex() for s in shares.tolist()]])
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()[:FINGERPRINT_CHARS]
    by_sensitive[sensitive] = digest
    return digest
