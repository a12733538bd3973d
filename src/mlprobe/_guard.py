"""The single place where mlprobe swallows its own failures.

Everything mlprobe does after user code has run (recording, extraction, user-supplied
extractors) happens inside :func:`guard`. A failure there must never reach the model, so it is
counted (exported as ``mlprobe_internal_errors_total``), logged at most once per
``LOG_INTERVAL_S`` per site, and dropped. Tests flip :data:`raise_errors` (see
``mlprobe.testing``) so that a swallowed bug fails the suite instead of hiding.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["guard", "internal_error_count", "local_error_count", "report_internal_error",
           "set_elsewhere"]

_log = logging.getLogger("mlprobe")

LOG_INTERVAL_S = 60.0
"""Minimum seconds between two log lines for the same site."""

raise_errors = False
"""When True (tests), internal errors are re-raised after being counted."""

# A plain locked integer: the guard sits below the registry and must not depend on it.
_lock = threading.Lock()
_count = 0
# Multi-process mode: the other workers' counts as of the last merge (mlprobe._mp_merge).
_elsewhere = 0
_last_logged: dict[str, float] = {}
_MAX_SITES = 256  # bounds _last_logged whatever the site strings are


def _reset_after_fork() -> None:
    # A forked worker starts from zero, and with a fresh lock: another thread of the parent
    # may have held the old one at the moment of the fork, and that thread does not exist in
    # the child to release it (every later internal error would then block forever).
    global _lock, _count, _elsewhere, _last_logged
    _lock = threading.Lock()
    _count = 0
    _elsewhere = 0
    _last_logged = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def internal_error_count() -> int:
    """Return how many internal errors were swallowed since the process started; in
    multi-process mode, plus the other workers' (as of the last merge of their states)."""
    return _count + _elsewhere


def local_error_count() -> int:
    """Internal errors swallowed in this process alone (what a worker publishes)."""
    return _count


def set_elsewhere(count: int) -> None:
    """Record the other workers' internal errors (multi-process mode, at each merge)."""
    global _elsewhere
    _elsewhere = count


def report_internal_error(site: str, exc: BaseException) -> None:
    """Count ``exc`` as an internal error at ``site`` and log it at a bounded rate.

    ``site`` names where it happened (``"myexporter.translate"``); it is logged, not exported.
    Call it from an ``except Exception`` block that swallows a failure which must not reach
    the application. In mlprobe's own tests it re-raises (see :mod:`mlprobe.testing`).
    """
    global _count
    now = time.monotonic()
    with _lock:
        _count += 1
        last = _last_logged.get(site)
        should_log = last is None or now - last >= LOG_INTERVAL_S
        if should_log and (last is not None or len(_last_logged) < _MAX_SITES):
            _last_logged[site] = now
        else:
            should_log = False
    if should_log:
        _log.warning("mlprobe internal error in %s (swallowed, the model is unaffected)", site,
                     exc_info=exc)
    if raise_errors:
        raise exc


@contextmanager
def guard(site: str) -> Iterator[None]:
    """Run a block whose failure must not reach user code; see the module docstring."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - this is the one deliberate swallow point
        report_internal_error(site, exc)
