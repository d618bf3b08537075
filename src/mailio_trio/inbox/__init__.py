"""A mail inbox for developers: the capture store, its HTTP API and web page.

``mailio-trio serve --capture --web 127.0.0.1:8025`` keeps every message in
``./capture.sqlite`` and shows it at ``http://127.0.0.1:8025/`` (docs/inbox.md).
In code::

    inbox = open_inbox(":memory:")
    server.add_handler(inbox_handler(inbox))
    urls = await nursery.start(serve_web, inbox, "127.0.0.1", 0)   # needs the [web] extra

Layer: like :mod:`mailio_trio.testing`, above the server (it registers a
``queue`` handler and never imports the server). The web part imports
Starlette and Hypercorn only when :func:`serve_web` or :func:`inbox_app` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailio_trio.inbox._inbox import Inbox, InboxEvent, inbox_handler, open_inbox
from mailio_trio.inbox._store import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES, NewMessage, Stored

if TYPE_CHECKING:
    from mailio_trio.inbox._web import inbox_app, serve_web

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MESSAGES",
    "Inbox",
    "InboxEvent",
    "NewMessage",
    "Stored",
    "inbox_app",
    "inbox_handler",
    "open_inbox",
    "serve_web",
]


# Documented and shown (repr, tracebacks, Sphinx) under the public path, as trio does.
for _obj in (Inbox, InboxEvent, NewMessage, Stored, inbox_handler, open_inbox):
    _obj.__module__ = __name__


def __getattr__(name: str) -> Any:
    # Starlette and Hypercorn are an optional extra: imported on first use only.
    if name in ("inbox_app", "serve_web"):
        from mailio_trio.inbox import _web

        return getattr(_web, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
