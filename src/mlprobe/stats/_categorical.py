"""Bounded categorical counts: a fixed vocabulary plus one ``__other__`` bucket."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._labels import MAX_LABEL_CHARS, label_value

__all__ = ["CategoryCounts", "level_key"]


def level_key(value: object) -> str:
    """Return the string under which a categorical value is counted (and exported as ``bin``).

    Levels are compared as strings so that a profile stored as JSON (whose keys are strings)
    matches live values: ``"a"`` stays ``"a"``, ``True`` becomes ``"True"``, ``3`` becomes
    ``"3"``. Integral floats are written without the fraction (``3.0`` -> ``"3"``) because CSV
    readers and pandas turn integer codes into floats as soon as a value is missing.

    The string then follows the label rule of :func:`~mlprobe.stats._labels.label_value` (lone
    surrogates as backslash escapes, long values shortened with a hash suffix), so a level is
    always a valid label value, and a live value, a level of a profile built from data and a
    level of a loaded profile document key alike. The rule is idempotent: keying a key again
    returns it unchanged.
    """
    if type(value) is not str:
        if isinstance(value, str):
            return label_value(value)
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = str(int(value))
        else:
            value = str(value.item() if isinstance(value, np.generic) else value)
            if type(value) is not str:
                return label_value(value)
    if value.isascii() and len(value) <= MAX_LABEL_CHARS:  # the common case: two O(1) checks
        return value
    return label_value(value)


class CategoryCounts:
    """Counts per known level plus one bucket for every value outside the vocabulary.

    Memory is ``len(vocabulary) + 1`` integers whatever the traffic: an unseen value is
    counted in the last bucket (``other``), never added as a new key. Values are matched by
    :func:`level_key` (their string form).

    Args:
        vocabulary: Distinct known levels, in a fixed order (the profile's order).
        other: Name of the overflow bucket.

    Raises:
        ValueError: If the vocabulary has duplicates or contains ``other``.

    Example:
        >>> c = CategoryCounts(["a", "b"])
        >>> c.update(np.array(["a", "b", "a", "zzz"], dtype=object))
        >>> c.counts.tolist(), c.unseen
        ([2, 1, 1], 1)
    """

    __slots__ = ("vocabulary", "other", "counts", "_index")

    def __init__(self, vocabulary: Sequence[str], other: str = "__other__") -> None:
        vocab = tuple(level_key(v) for v in vocabulary)
        other = level_key(other)
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary has duplicate levels")
        if other in vocab:
            raise ValueError(f"vocabulary must not contain the overflow name {other!r}")
        self.vocabulary: tuple[str, ...] = vocab
        self.other: str = other
        self.counts: np.ndarray = np.zeros(len(vocab) + 1, dtype=np.int64)
        self._index: dict[str, int] = {v: i for i, v in enumerate(vocab)}

    @property
    def labels(self) -> tuple[str, ...]:
        """Bucket names: the vocabulary followed by the overflow name."""
        return self.vocabulary + (self.other,)

    @property
    def total(self) -> int:
        """Total count."""
        return int(self.counts.sum())

    @property
    def unseen(self) -> int:
        """How many counted values were outside the vocabulary."""
        return int(self.counts[-1])

    def update(self, values: np.ndarray | Iterable[object]) -> None:
        """Count a batch of non-missing values.

        ``Counter`` tallies the batch in C, so the Python-level loop runs once per *distinct*
        value of the batch, not once per row. Values that are equal in Python (``1``,
        ``1.0`` and ``True``) hash alike and are counted together under the first one's key;
        a column mixing such types should be converted to strings first.

        Args:
            values: 1-D array (object or str dtype) or iterable of hashable values.
        """
        items = values.tolist() if isinstance(values, np.ndarray) else list(values)
        if items:
            try:
                tally = Counter(items)
            except Exception:  # noqa: BLE001 - an unhashable or hostile value: one by one
                tally = Counter()
                for item in items:
                    try:
                        tally[item] += 1
                    except Exception:  # noqa: BLE001 - counted as unseen, one value
                        tally[self.other] += 1
            self.update_counts(tally)

    def update_counts(self, tally: Mapping[Any, int]) -> None:
        """Add pre-tallied counts (``{value: count}``), e.g. a ``collections.Counter``.

        Callers that need to look at the distinct values first (to count missing ones)
        tally once and pass the tally here.
        """
        if not tally:
            return
        index = self._index
        unknown = len(self.vocabulary)
        idx = []
        cnt = []
        for key, n in tally.items():
            try:
                # Plain short ASCII strings are their own key (the common case, two O(1)
                # checks); anything else goes through level_key.
                k = (key if type(key) is str and key.isascii() and len(key) <= MAX_LABEL_CHARS
                     else level_key(key))
                idx.append(index.get(k, unknown))
            except Exception:  # noqa: BLE001 - a __str__/__hash__ that raises: unseen
                idx.append(unknown)
            cnt.append(n)
        np.add.at(self.counts, np.asarray(idx, dtype=np.intp), np.asarray(cnt, dtype=np.int64))

    def proportions(self) -> np.ndarray:
        """Return counts divided by the total (all zeros when empty)."""
        total = self.counts.sum()
        if total == 0:
            return np.zeros(self.counts.size)
        return self.counts / float(total)

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        """Add another summary's counts into this one, in place; returns ``self``.

        Raises:
            ValueError: If the vocabularies differ.
        """
        if other.vocabulary is not self.vocabulary and (
                other.vocabulary != self.vocabulary or other.other != self.other):
            raise ValueError("cannot merge CategoryCounts with different vocabularies")
        self.counts += other.counts
        return self

    def copy(self) -> CategoryCounts:
        """Return an independent copy (the vocabulary and index are shared, never mutated)."""
        out = CategoryCounts.__new__(CategoryCounts)
        out.vocabulary, out.other, out._index = self.vocabulary, self.other, self._index
        out.counts = self.counts.copy()
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "vocabulary": list(self.vocabulary),
            "other": self.other,
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoryCounts:
        """Rebuild from :meth:`to_dict` output."""
        out = cls(data["vocabulary"], other=data.get("other", "__other__"))
        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.shape != out.counts.shape:
            raise ValueError("counts must have len(vocabulary) + 1 entries")
        out.counts = counts
        return out

    def __repr__(self) -> str:
        return f"CategoryCounts(levels={len(self.vocabulary)}, total={self.total})"
