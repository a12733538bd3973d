"""Candidate models for the shadow tests, at module level: a spawned candidate process imports
them by name (tests/ is on sys.path), and a forked one runs them as they are."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


def halve(rows: Any) -> Any:
    """Half of each score; a ValueError when the first value is negative; a float for a
    float."""
    if isinstance(rows, float):
        if rows < 0:
            raise ValueError("negative")
        return rows * 0.5
    array = np.asarray(rows, dtype=float)
    if array.size and array.ravel()[0] < 0:
        raise ValueError("negative")
    return array * 0.5


def exit_on_13(x: float) -> float:
    """Ends its own process (as a crash in C code would) on 13."""
    if x == 13:
        os._exit(3)
    return 0.5


def hang_on_7(x: float) -> float:
    """Never returns on 7."""
    if x == 7:
        time.sleep(600)
    return 0.5


def always_exit(x: float) -> float:
    """Ends its own process on every call."""
    os._exit(4)
