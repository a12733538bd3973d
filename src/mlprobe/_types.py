"""Type aliases shared across layers; imports nothing of mlprobe.

The ASGI aliases follow the ASGI specification's shapes as plain typing (no framework is
imported): the middleware, its endpoints and its route resolver all use these, so a scope or a
``send`` means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
"""An ASGI connection scope (``type``, ``method``, ``path``, ``headers``, ...)."""

Message = MutableMapping[str, Any]
"""An ASGI event: what ``receive`` returns and ``send`` takes."""

Receive = Callable[[], Awaitable[Message]]
"""An ASGI ``receive`` callable."""

Send = Callable[[Message], Awaitable[None]]
"""An ASGI ``send`` callable."""

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""
