"""The one rule that turns any text into an exportable label value.

Every label value mlprobe exports (a predicted class, an error type, a route, a model name, an
output name, a category level, a feature name) goes through :func:`label_value`, where the
value is created and once more where it is exported, so that no string can break a scrape:

* **valid UTF-8**: Python strings may hold lone surrogates (``bytes.decode(...,
  "surrogateescape")`` makes them from undecodable bytes, ``os.listdir`` returns them for
  non-UTF-8 file names). UTF-8 cannot encode them, and one of them made prometheus_client's
  ``generate_latest()`` raise for the whole registry. Each lone surrogate is written as its
  backslash escape: ``"caf\\udce9"`` (the six characters ``\\``, ``u``, ``d``, ``c``, ``e``,
  ``9``). Every other code point, control characters included, is valid UTF-8 and kept: the
  exposition formats escape what they must (backslash, quote, newline).
* **bounded length**: a value longer than :data:`MAX_LABEL_CHARS` characters keeps its first
  characters and ends with ``~`` and 16 hex digits of a BLAKE2b hash of the *whole original*
  value, so two long values that share a prefix stay distinct series (up to a 2**-64 chance)
  and a long value always maps to the same label, in every process and on every host.

The rule is idempotent (a label value maps to itself), so applying it again at export, or to
profile levels that were already keyed, changes nothing. The common case, a short ASCII
string, returns the same object after two O(1) checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

__all__ = ["MAX_LABEL_CHARS", "distinct_label_values", "error_label", "label_value"]

MAX_LABEL_CHARS = 200
"""Longest label value mlprobe exports, in characters (at most 800 bytes of UTF-8)."""

_HASH_HEX = 16
_KEEP = MAX_LABEL_CHARS - _HASH_HEX - 1  # characters kept before "~" and the hash


def label_value(text: object) -> str:
    """Return ``text`` as a valid-UTF-8 label value of at most :data:`MAX_LABEL_CHARS` chars.

    Strings (and ``str`` subclasses, which become plain ``str``) are treated as described in
    the module docstring; any other object is first converted with ``str()``.

    Example:
        >>> label_value("churn")
        'churn'
        >>> label_value(b"caf\\xe9".decode("utf-8", "surrogateescape"))
        'caf\\\\udce9'
    """
    if type(text) is not str:
        # A str subclass may override __hash__, __eq__ or isascii: take its plain characters.
        text = str.__str__(text) if isinstance(text, str) else str(text)
        if type(text) is not str:  # str() of an object may itself return a str subclass
            text = str.__str__(text)
    if text.isascii():  # O(1) in CPython: the string object records it
        if len(text) <= MAX_LABEL_CHARS:
            return text
        return _shorten(text, text)
    try:
        text.encode("utf-8")
        safe = text
    except UnicodeEncodeError:  # lone surrogates: write each as its backslash escape
        safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= MAX_LABEL_CHARS else _shorten(safe, text)


def error_label(exc: BaseException) -> str:
    """The ``error_type`` label of an exception: its class's ``__qualname__``, a ``str``
    subclass through :func:`label_value`, and ``__other__`` when a metaclass makes it
    anything else or raises (a tracked call's error, and a shadow candidate's)."""
    try:
        name = type(exc).__qualname__
        if type(name) is not str:  # a str subclass (kept as plain text), or anything at all
            name = label_value(name) if isinstance(name, str) else "__other__"
    except Exception:  # noqa: BLE001 - a metaclass whose __qualname__ raises
        name = "__other__"
    return name


def _shorten(safe: str, original: str) -> str:
    # Hash the original (surrogatepass encodes every Python string, injectively), so values
    # that escape or truncate to the same prefix still get different suffixes.
    digest = blake2b(original.encode("utf-8", "surrogatepass"), digest_size=_HASH_HEX // 2)
    return f"{safe[:_KEEP]}~{digest.hexdigest()}"


def distinct_label_values(texts: Iterable[object], reserved: Iterable[str] = ()) -> list[str]:
    """Label values of distinct texts that stay distinct, and distinct from ``reserved``.

    :func:`label_value` can map two different texts to one value: a lone surrogate and its
    written-out escape (``"a\\udc80"`` and ``"a\\\\udc80"``). Where that would merge two
    series, the later text gets the ``~`` and hash suffix of its whole original instead.

    Example:
        >>> distinct_label_values(["x", "__prediction__"], reserved=["__prediction__"])[0]
        'x'
    """
    taken = set(reserved)
    out = []
    for text in texts:
        label = label_value(text)
        salt = 0
        while label in taken:  # almost never runs: needs a collision as described above
            original = label_value(text) if salt == 0 else f"{label_value(text)}#{salt}"
            raw = text if isinstance(text, str) else str(text)
            label = _shorten(original, f"{raw}\x00{salt}")
            salt += 1
        taken.add(label)
        out.append(label)
    return out
