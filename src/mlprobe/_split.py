"""Split: sticky A/B and canary assignment of requests to model versions by a key.

A key (a user id, a session, an account) is hashed with a salt into a number ``u`` in [0, 1)
(BLAKE2b, so the same on every host, process and restart) and the version is the one whose
share of [0, 1) holds ``u``, shares laid out in the order given. Hence a key always gets the
same version while the weights stay, and raising the first version's weight (a canary listed
first: ``{"v4": 10, "v3": 90}`` to ``{"v4": 20, "v3": 80}``) only moves keys *into* it. A new
salt reshuffles every key (a new experiment).

What to compare, and how, is the probes' job: each version has its own probe with the same
model name, so every metric is comparable in PromQL by ``model_version``
(``docs/quality.md``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from hashlib import blake2b
from typing import Any

from .errors import ConfigurationError

__all__ = ["Split"]

_SCALE = float(1 << 64)


class Split:
    """Assign keys to versions, stickily, in proportion to ``weights``.

    Args:
        weights: ``{version: weight}``, weights non-negative with a positive total; the order
            is the layout of the shares (put a canary first).
        salt: Distinguishes experiments: the same key lands independently in two splits with
            different salts.

    Raises:
        ConfigurationError: Empty or negative weights, a zero total, a version that is not a
            string or an int.

    Example:
        >>> split = Split({"4": 10, "3": 90}, salt="churn-canary")
        >>> version = split.choose(user_id)
    """

    def __init__(self, weights: Mapping[Any, float], *, salt: str = "") -> None:
        if not isinstance(weights, Mapping) or not weights:
            raise ConfigurationError("Split needs weights: a mapping {version: weight}")
        if not isinstance(salt, str):
            raise ConfigurationError(f"salt must be a string, got {salt!r}")
        versions, values = [], []
        for version, weight in weights.items():
            if isinstance(version, bool) or not isinstance(version, (str, int)):
                raise ConfigurationError(f"Split versions must be strings or ints, got "
                                         f"{version!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not math.isfinite(weight) or weight < 0:
                raise ConfigurationError(f"Split weight of {version!r} must be a finite number "
                                         f">= 0, got {weight!r}")
            versions.append(str(version))
            values.append(float(weight))
        total = sum(values)
        if total <= 0:
            raise ConfigurationError("Split weights must not all be zero")
        self.versions: tuple[str, ...] = tuple(versions)
        self.shares: tuple[float, ...] = tuple(v / total for v in values)
        bounds, running = [], 0.0
        for share in self.shares[:-1]:
            running += share
            bounds.append(running)
        self._bounds = bounds
        self._salt = salt.encode("utf-8", "surrogatepass") + b"\0"

    def position(self, key: Any) -> float:
        """The key's place ``u`` in [0, 1) (uniform over keys, fixed per key and salt)."""
        text = key if isinstance(key, str) else str(key)
        digest = blake2b(self._salt + text.encode("utf-8", "surrogatepass"),
                         digest_size=8).digest()
        return int.from_bytes(digest, "big") / _SCALE

    def choose(self, key: Any) -> str:
        """The version for ``key`` (the same every time while the weights stay)."""
        index = bisect_right(self._bounds, self.position(key))
        # a zero-weight version has an empty share: skip to the next one with a share
        while self.shares[index] == 0.0:
            index = index + 1 if index + 1 < len(self.shares) else index - 1
        return self.versions[index]

    def __repr__(self) -> str:
        shares = ", ".join(f"{v!r}: {s:.3g}" for v, s in zip(self.versions, self.shares))
        return f"Split({{{shares}}})"
