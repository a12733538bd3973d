"""A minimal YAML writer for rule files and provisioning files (no PyYAML at run time).

It writes the block style people read in rule files: mappings and lists indented by two
spaces, multi-line strings (PromQL expressions, runbook text) as literal blocks, and every
other string double-quoted with JSON escapes (a subset of YAML's double-quoted style) unless it
is a plain word that YAML cannot mistake for another type. ``tests/test_rules.py`` parses the
output back with PyYAML and compares it with the input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump"]

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./:-]*[A-Za-z0-9_./-]|[A-Za-z_]")
# Words YAML 1.1 (PyYAML) or 1.2 reads as booleans or null when unquoted.
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("YAML output holds finite numbers only")
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    lines = text.rstrip("\n").split("\n")
    if lines[0].startswith(" ") or any(line != line.rstrip() for line in lines):
        return _scalar(text)  # leading or trailing spaces: keep them exact in quotes
    return "|-\n" + "\n".join(pad + line if line else "" for line in lines)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        for key, item in value.items():
            head = f"{pad}{_scalar(key)}:"
            out += _entry(head, item, indent)
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [pad + "[]"]
        for item in value:
            if isinstance(item, Mapping) and item:
                inner = _lines(item, indent + 2)
                out.append(pad + "- " + inner[0][indent + 2:])
                out += inner[1:]
            else:
                out += _entry(pad + "-", item, indent)
        return out
    return [pad + _scalar(value)]


def _entry(head: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, (Mapping, list, tuple)) and item:
        return [head] + _lines(item, indent + 2)
    if isinstance(item, str) and "\n" in item:
        return [f"{head} {_block(item, indent + 2)}"]
    return [f"{head} {_lines(item, 0)[0]}"]


def dump(document: Any, *, header: str = "") -> str:
    """``document`` (mappings, lists, strings, numbers, booleans, None) as block YAML.

    ``header`` lines are written first as ``#`` comments.
    """
    comments = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join(comments + _lines(document, 0)) + "\n"
