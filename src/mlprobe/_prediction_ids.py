"""Prediction ids: where a tracked call's id comes from, and how it is handed back.

A tracked call's id is, in order: the value of the function argument named by
``track(prediction_id="arg")``; the id the request carried (the middleware's
``prediction_id_header``); else a new one (``new_id``: a random per-process prefix and a
counter, unique across processes and restarts, ~0.2 µs). The id of the last tracked call is
handed back through a context variable (:func:`current_prediction_id`) and, under the
middleware, in the response header.

Context variables are copied into threads and tasks a request spawns (FastAPI runs a sync
endpoint in a worker thread with a copy of the request's context), so an id *set* in the
endpoint's thread would not be seen by the middleware. The middleware therefore places one
mutable :class:`RequestIds` holder in the context before calling the app; every copy of the
context refers to that same object, and the tracked call writes the id into it.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from hashlib import blake2b
from typing import Any

__all__ = ["MAX_ID_CHARS", "RequestIds", "current_prediction_id", "id_key", "new_id",
           "request_ids"]

MAX_ID_CHARS = 128
"""Longer ids are stored as a 32-hex-digit hash of their text (and looked up the same way)."""


class RequestIds:
    """The ids of one HTTP request: the one it carried and the one its tracked call used."""

    __slots__ = ("assigned", "incoming")

    def __init__(self, incoming: str | None) -> None:
        self.incoming = incoming
        self.assigned: str | None = None


_current: ContextVar[str | None] = ContextVar("mlprobe_prediction_id", default=None)
request_ids: ContextVar[RequestIds | None] = ContextVar("mlprobe_request_ids", default=None)
"""The middleware's holder for the request being served (None outside a request)."""


def current_prediction_id() -> str | None:
    """The prediction id of the last tracked call in this context (or this request).

    Call it after the tracked predict function returned, in the same thread or task (or
    anywhere in the same request under the middleware); pass the id to whoever will know the
    outcome, and give it back with ``probe.record_outcome(id, actual)``. None when no tracked
    call with quality monitoring ran here.
    """
    holder = request_ids.get()
    if holder is not None and holder.assigned is not None:
        return holder.assigned
    return _current.get()


set_id = _current.set
"""Set the context variable only (the caller has updated the request's holder)."""


def set_current(prediction_id: str) -> None:
    """Hand ``prediction_id`` back to the caller (context variable and request holder)."""
    _current.set(prediction_id)
    holder = request_ids.get()
    if holder is not None:
        holder.assigned = prediction_id


_prefix = os.urandom(5).hex()
_counter = itertools.count(1)


def _new_prefix_after_fork() -> None:
    global _prefix, _counter
    _prefix = os.urandom(5).hex()  # a forked worker must not repeat its parent's ids
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix_after_fork)


def new_id() -> str:
    """A new prediction id: 10 random hex digits per process, ``-`` and a hex counter."""
    return f"{_prefix}-{next(_counter):x}"


def id_key(value: Any) -> str:
    """The store key of an id given by a user: its text, or a hash of a long one."""
    text = value if type(value) is str else str(value)
    if len(text) <= MAX_ID_CHARS:
        return text
    return "#" + blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
