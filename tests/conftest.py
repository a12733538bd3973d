"""Shared fixtures: internal errors fail tests, a clean environment, fresh registries."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Property tests explore the same examples on every run: CI stays reproducible, and a
# failure seen once can be replayed. Run with HYPOTHESIS_PROFILE=explore to search anew.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

import mlprobe
from mlprobe import _guard

# Browser fixtures live in one place (imported into two test modules, a fixture would be
# defined twice).
from browser import chromium_browser, web_page  # noqa: E402, F401


def pytest_report_header() -> list[str]:
    """Print the versions of the dependencies the suite runs against."""
    import numpy
    import prometheus_client  # noqa: F401

    from importlib.metadata import version

    return [f"mlprobe {mlprobe.__version__}; numpy {numpy.__version__}; "
            f"prometheus-client {version('prometheus-client')}; "
            f"opentelemetry-sdk {version('opentelemetry-sdk')}"]


@pytest.fixture(autouse=True)
def internal_errors_fail(request: pytest.FixtureRequest) -> Iterator[None]:
    """Turn mlprobe's swallow point into a failure, unless a test expects swallowing."""
    expect_swallow = request.node.get_closest_marker("allow_internal_errors") is not None
    previous = _guard.raise_errors
    _guard.raise_errors = not expect_swallow
    try:
        yield
    finally:
        _guard.raise_errors = previous


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove MLPROBE_* and OTEL_* variables so the host environment cannot change a test."""
    for key in list(os.environ):
        if key.startswith(("MLPROBE_", "OTEL_")):
            monkeypatch.delenv(key)


@pytest.fixture
def registry() -> mlprobe.Registry:
    """A fresh registry, attached to nothing."""
    return mlprobe.Registry()
