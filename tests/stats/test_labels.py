"""The label rule: any text becomes a valid-UTF-8 label value of bounded length, idempotently."""

from __future__ import annotations

import numpy as np
import pytest

from mlprobe.stats import CategoryCounts
from mlprobe.stats._categorical import level_key
from mlprobe.stats._labels import MAX_LABEL_CHARS, distinct_label_values, label_value

CAFE = b"caf\xe9".decode("utf-8", "surrogateescape")  # what a latin-1 byte decodes to


def test_short_ascii_text_is_returned_as_is():
    """The common case costs nothing: a short ASCII string comes back as the same object."""
    text = "churn-model_v3 with spaces, \t tabs and \x00 controls"
    assert label_value(text) is text


def test_valid_unicode_text_is_kept():
    """Every code point UTF-8 can encode is kept, control characters and BOM included."""
    text = "café ☕ 😀 \u2028 \ufeff \x85"
    assert label_value(text) == text


def test_lone_surrogates_become_backslash_escapes():
    """A lone surrogate is written as its backslash escape, and the result encodes as UTF-8."""
    assert label_value(CAFE) == "caf\\udce9"
    assert label_value("\udc80bad") == "\\udc80bad"
    assert label_value("\ud800\udfff") == "\\ud800\\udfff"  # a surrogate pair in a str is two
    label_value("x\udcff" * 10).encode("utf-8")


def test_long_text_is_cut_with_a_hash_of_the_whole_value():
    """Over the cap, a value keeps a prefix and ends with ~ and 16 hex digits of its hash."""
    long = "c" * 100_000
    short = label_value(long)
    assert len(short) == MAX_LABEL_CHARS
    prefix, digest = short.rsplit("~", 1)
    assert long.startswith(prefix) and len(digest) == 16 and int(digest, 16) >= 0
    # values sharing the prefix stay distinct series; the same value always maps alike
    assert label_value(long + "x") != short
    assert label_value("c" * 100_000) == short


def test_escaped_values_and_their_look_alikes_are_distinct_when_cut():
    """The hash is of the original text, so a surrogate and its escape differ when cut."""
    tail = "a" * MAX_LABEL_CHARS
    assert label_value(CAFE + tail) != label_value("caf\\udce9" + tail)


def test_the_rule_is_idempotent():
    """A label value maps to itself: applying the rule again at export changes nothing."""
    for text in ("plain", CAFE, "é" * 500, "\udc80" * 100, "x" * 201, ""):
        once = label_value(text)
        assert label_value(once) == once
        once.encode("utf-8")
        assert len(once) <= MAX_LABEL_CHARS


def test_str_subclasses_and_other_objects_become_plain_strings():
    """A str subclass that cannot hash or check itself, or any object, becomes a plain str."""

    class Hostile(str):
        def __hash__(self) -> int:
            raise RuntimeError("no hash")

        def isascii(self) -> bool:
            raise RuntimeError("no isascii")

        def __str__(self) -> str:
            raise RuntimeError("no str")

    out = label_value(Hostile("ValueError"))
    assert type(out) is str and out == "ValueError"
    assert label_value(42) == "42"

    class Odd:
        def __str__(self) -> str:
            return Hostile(CAFE)

    odd = label_value(Odd())
    assert type(odd) is str and odd == "caf\\udce9"


@pytest.mark.parametrize("value, key", [
    ("basic", "basic"), (True, "True"), (np.bool_(False), "False"), (3, "3"), (3.0, "3"),
    (np.float32(2.0), "2"), (np.int64(7), "7"), (0.5, "0.5"), (np.str_("pro"), "pro"),
    (CAFE, "caf\\udce9"), ("\udc80bad", "\\udc80bad"),
])
def test_level_key_gives_label_values(value, key):
    """level_key keeps its string forms and applies the label rule to them."""
    assert level_key(value) == key


def test_level_key_of_a_long_level_is_bounded_and_idempotent():
    """A 100 kB level keys to a bounded label value, and keying that key again keeps it."""
    key = level_key("v" * 100_000)
    assert len(key) == MAX_LABEL_CHARS and level_key(key) == key


def test_live_values_count_under_levels_written_raw_or_keyed():
    """A live surrogate value counts under a vocabulary level given raw or already keyed."""
    for vocabulary in (["\udc80bad", CAFE], [level_key("\udc80bad"), level_key(CAFE)]):
        counts = CategoryCounts(vocabulary)
        counts.update(np.array(["\udc80bad", CAFE, CAFE, "other"], dtype=object))
        assert counts.labels == ("\\udc80bad", "caf\\udce9", "__other__")
        assert counts.counts.tolist() == [1, 2, 1]


def test_category_counts_key_long_live_values_like_long_levels():
    """A long live value matches its long level, and the overflow name is a label too."""
    level = "L" * 5000
    counts = CategoryCounts([level], other="__other__")
    counts.update_counts({level: 3, "L" * 4999: 1})
    assert counts.counts.tolist() == [3, 1]
    assert all(len(label) <= MAX_LABEL_CHARS for label in counts.labels)


def test_distinct_label_values_keep_texts_that_render_alike_apart():
    """Texts the rule maps to one value get distinct values, distinct from reserved ones too."""
    texts = ["a\udc80", "a\\udc80", "__prediction__", "plain"]
    labels = distinct_label_values(texts, reserved=["__prediction__"])
    assert labels[0] == "a\\udc80" and labels[3] == "plain"
    assert len(set(labels) | {"__prediction__"}) == 5
    assert labels[1].startswith("a\\udc80~") and labels[2].startswith("__prediction__~")
    assert all(label_value(label) == label for label in labels)
    assert distinct_label_values(texts, reserved=["__prediction__"]) == labels  # deterministic
