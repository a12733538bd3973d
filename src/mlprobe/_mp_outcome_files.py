"""The outcome exchange's files and what it works with (see :mod:`mlprobe._mp_outcomes`).

:class:`OutcomeFiles` reads the other workers' ``mlprobe-outcomes-<worker>.state`` files (each
parsed once per change of its bytes) into :class:`OutcomeFile`; :class:`LocalQuality` finds
this worker's prediction stores and quality monitors among a registry's sources;
:func:`plain_label` turns a label into the plain data a file carries.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._mp_files import DEAD_PREFIX, FORMAT, OUTCOMES_PREFIX, SUFFIX, Directory, decode
from ._mp_process import WorkerId
from ._outcomes import PredictionStore, Recipient
from .stats._categorical import level_key

__all__ = ["Claim", "LocalQuality", "OutcomeFile", "OutcomeFiles", "file_name", "plain_label"]

_log = logging.getLogger("mlprobe")

Claim = tuple[str, str, str, int]
"""``(receiving worker, model, key, serial)``: one waiting outcome of one worker."""


def file_name(worker: str) -> str:
    """The outcomes file of ``worker``."""
    return f"{OUTCOMES_PREFIX}{worker}{SUFFIX}"


class LocalQuality:
    """This worker's prediction stores and the quality monitors outcomes count on, by model."""

    def __init__(self, sources: Mapping[object, Any]) -> None:
        self.monitors: dict[str, dict[str, Recipient]] = {}
        self.version_of: dict[int, str] = {}
        stores: dict[str, PredictionStore] = {}
        for key, source in sources.items():
            if not isinstance(key, tuple):
                continue
            if len(key) == 2 and key[0] == "outcomes" \
                    and isinstance(getattr(source, "store", None), PredictionStore):
                stores[key[1]] = source.store
            elif len(key) == 3 and key[0] == "probe" \
                    and getattr(source, "quality", None) is not None:
                self.monitors.setdefault(key[1], {})[key[2]] = source.quality
                self.version_of[id(source.quality)] = key[2]
        # a store joins only where a monitor can count (always, once its probe exists)
        self.stores = {m: s for m, s in stores.items() if m in self.monitors}

    def recipient(self, model: str, version: str) -> Recipient:
        """The monitor of ``model``'s ``version`` here, else of its first version."""
        versions = self.monitors[model]
        return versions.get(version) or next(iter(versions.values()))


class OutcomeFile:
    """Another worker's outcomes file, parsed."""

    __slots__ = ("adopted", "alive", "claims", "index", "name", "waiting")

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.alive = True
        self.waiting: list[tuple[str, str, int, float, Any, str]] = [
            (str(m), str(k), int(n), float(t), label, str(v))
            for m, k, n, t, label, v in data["waiting"]]
        self.claims: set[Claim] = {(str(r), str(m), str(k), int(n))
                                   for r, m, k, n in data["claims"]}
        self.adopted: set[str] = {str(a) for a in data["adopted"]}
        # model -> key -> serials: what it lists, looked up without a pass over the list
        self.index: dict[str, dict[str, list[int]]] = {}
        for model, key, serial, *_ in self.waiting:
            self.index.setdefault(model, {}).setdefault(key, []).append(serial)


class OutcomeFiles:
    """Reads the other workers' outcomes files of one directory, caching each parse."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._cache: dict[str, tuple[bytes, OutcomeFile]] = {}

    def read(self, me: str, alive: Callable[[WorkerId], bool], unreadable: Counter[str]
             ) -> dict[str, OutcomeFile]:
        """Every file but ``me``'s, by worker, each marked alive or dead (``alive``; a worker
        gunicorn's child_exit marked dead is dead); files that cannot be read are counted in
        ``unreadable["unreadable"]`` and left out."""
        directory = self.directory
        names = os.listdir(directory.path)
        marked_dead = {n[len(DEAD_PREFIX):-len(SUFFIX)] for n in names
                       if n.startswith(DEAD_PREFIX) and n.endswith(SUFFIX)}
        files = {}
        for name in names:
            if not (name.startswith(OUTCOMES_PREFIX) and name.endswith(SUFFIX)):
                continue
            worker = name[len(OUTCOMES_PREFIX):-len(SUFFIX)]
            if worker == me:
                continue
            try:
                found = directory.read(name)
                if found is None:
                    continue
                cached = self._cache.get(worker)
                if cached is not None and cached[0] == found[0]:
                    parsed = cached[1]
                else:
                    decoded = decode(found[0])
                    if not isinstance(decoded, dict) or decoded.get("format") != FORMAT:
                        raise ValueError(f"{name} is not an outcomes file of this version")
                    parsed = OutcomeFile(worker, decoded)
                    self._cache[worker] = (found[0], parsed)
            except Exception as exc:  # noqa: BLE001 - a file this worker cannot read is counted
                unreadable["unreadable"] += 1
                _log.warning("mlprobe: cannot read %s: %r", name, exc)
                continue
            ident = WorkerId.parse(worker)
            parsed.alive = worker not in marked_dead and ident is not None \
                and alive(ident)
            files[worker] = parsed
        for gone in [w for w in self._cache if w not in files]:
            del self._cache[gone]
        return files


def plain_label(value: Any) -> Any:
    """An outcome as plain data a state file carries (numbers, strings, lists), read by the
    quality monitor as the value itself would be."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain_label(v) for v in value.ravel().tolist()]
    if isinstance(value, (list, tuple)):
        return [plain_label(v) for v in value]
    if hasattr(value, "to_numpy") and hasattr(value, "shape"):
        return [plain_label(v) for v in value.to_numpy().ravel().tolist()]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return level_key(value)  # the label key a classifier's monitor reads it as
