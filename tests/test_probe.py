"""Probe construction, configuration errors, reuse, and fork behaviour."""

from __future__ import annotations

import logging
import os
import sys

import pytest

import mlprobe
from mlprobe.testing import sample_value


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": ""}, "non-empty string"),
    ({"name": 3}, "non-empty string"),
    ({"name": "m", "version": 1.5}, "version"),
    ({"name": "m", "latency_buckets": [0.1, 0.1]}, "strictly increasing"),
    ({"name": "m", "latency_buckets": []}, "at least one"),
    ({"name": "m", "score_buckets": ["a"]}, "score_buckets"),
    ({"name": "m", "rows_buckets": [1, float("nan")]}, "finite"),
    ({"name": "m", "max_classes": 0}, "max_classes"),
    ({"name": "m", "registry": object()}, "mlprobe.Registry"),
])
def test_bad_configuration_fails_at_construction(kwargs, message):
    """Invalid arguments raise ConfigurationError (a ValueError) naming the argument."""
    name = kwargs.pop("name")
    with pytest.raises(mlprobe.ConfigurationError, match=message):
        mlprobe.Probe(name, **kwargs)
    assert issubclass(mlprobe.ConfigurationError, ValueError)


def test_trailing_inf_bucket_is_accepted(registry):
    """A trailing +Inf bound is implied and dropped rather than rejected."""
    probe = mlprobe.Probe("inf", registry=registry, latency_buckets=[0.1, 1, float("inf")])
    assert probe._state.config.latency_buckets == (0.1, 1.0)


def test_same_probe_twice_shares_instruments(registry):
    """Two Probe objects with the same name and version record into one set of instruments."""
    first = mlprobe.Probe("dup", version=2, registry=registry)
    second = mlprobe.Probe("dup", version="2", registry=registry)
    first.observe(outputs=0.5)
    second.observe(outputs=0.5)
    assert first._state is second._state
    assert sample_value(registry, "mlprobe_prediction_score", {"model": "dup"}) == 2
    names = [f.name for f in registry.collect()]
    assert len(names) == len(set(names))


def test_conflicting_settings_warn_and_keep_first(registry, caplog):
    """Re-creating a probe with other settings logs a warning and keeps the first settings."""
    mlprobe.Probe("conf", registry=registry, max_classes=3)
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        again = mlprobe.Probe("conf", registry=registry, max_classes=9)
    assert again._state.config.max_classes == 3
    assert "other settings" in caplog.text


def test_versions_are_separate_series(registry):
    """Different versions of one model are separate label sets."""
    mlprobe.Probe("ab", version="a", registry=registry).observe(outputs=0.1)
    mlprobe.Probe("ab", version="b", registry=registry).observe(outputs=0.1)
    family = next(f for f in registry.collect() if f.name == "mlprobe_prediction_score")
    assert {dict(s.labels)["model_version"] for s in family.samples} == {"a", "b"}


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_forked_child_starts_from_zero(registry):
    """A forked worker does not report its parent's counts (that would double count a fleet)."""
    probe = mlprobe.Probe("fork", registry=registry)
    probe.observe(outputs=0.5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        count = sample_value(registry, "mlprobe_prediction_score", {"model": "fork"})
        os.write(write, str(count).encode())
        os._exit(0)
    os.close(write)
    child_count = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert child_count == "None"  # the child has no score samples at all
    assert sample_value(registry, "mlprobe_prediction_score", {"model": "fork"}) == 1
