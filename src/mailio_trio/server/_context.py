"""A session's context: who the client is, what the server shares with its
sessions, what the session has done, and its tagged logging.

Values with no protocol logic, kept apart from ``_session.py`` so that module
reads as the command loop it is. ``ClientInfo``, ``TLSInfo`` and ``Counters``
are handlers' too, so they live below the server (``_handler_session.py``)
and are re-exported here.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio._handler_session import ClientInfo, Counters, TLSInfo
from mailio_trio.abuse import RateLimitedLog

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    import trio

    from mailio_trio._handler_session import HandlerContext, HandlerSession
    from mailio_trio._shared import RedisState
    from mailio_trio.chain import Chain
    from mailio_trio.config import Config
    from mailio_trio.dns import Resolver
    from mailio_trio.protocol import Reply
    from mailio_trio.server._session import Session

__all__ = [
    "ClientInfo",
    "Close",
    "Counters",
    "ServerContext",
    "TLSInfo",
    "Tally",
    "tls_info",
]


class Close(Exception):
    """End this session after sending ``reply`` (if any)."""

    def __init__(self, reply: Reply | None) -> None:
        super().__init__(reply)
        self.reply = reply


@attrs.define(eq=False, slots=True)
class Tally:
    """What the whole server has done, counted in plain integers on the hot path.

    Always counted (a dict increment per command); ``server/_metrics.py``
    reads them when scraped, so no Prometheus object is touched per command.
    """

    replies: collections.Counter[tuple[str, int]] = attrs.field(factory=collections.Counter)
    """``(command, reply code // 100)`` -> count."""
    messages: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """``"accepted"`` / ``"refused"`` -> count of messages the queue chain answered."""
    message_bytes: int = 0
    """Octets of accepted messages (as stored, our ``Received:`` included)."""
    refused: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """Connections refused before a session, by reason."""


@attrs.define(eq=False)
class ServerContext:
    """What every session of one server shares with it."""

    config: Config
    chain: Chain
    tls_context: ssl.SSLContext | None = None
    resolver: Resolver | None = None
    """The server's DNS resolver (``Config.dns``), for plugins; ``None``: no lookups."""
    on_session: list[Callable[[Session], None]] = attrs.field(factory=list)
    shutting_down: bool = False
    sessions: set[Session] = attrs.field(factory=set)
    discard: bool = False
    """A benchmark sink; DATA bodies are read in full and dropped, never spooled."""
    abuse_log: RateLimitedLog = attrs.field(
        init=False,
        default=attrs.Factory(
            lambda self: RateLimitedLog.from_limits(self.config.limits), takes_self=True
        ),
    )
    """Rate limit for per-connection anti-abuse log lines (``limits.abuse_log_*``)."""
    tally: Tally = attrs.field(factory=Tally, init=False)
    handler_timer: Callable[[str, float], None] | None = attrs.field(default=None, init=False)
    """With metrics on: told ``(handler key, seconds)`` after each handler that may wait."""
    redis: RedisState | None = attrs.field(default=None, init=False)
    """The shared Redis (``[redis] url``), for the fleet limits and plugins; ``None``: local."""
    auth_failed: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    """With Redis: failed AUTH attempts of ended sessions by address, until reported."""


def tls_info(stream: trio.SSLStream[Any]) -> TLSInfo:
    cipher = stream.cipher()
    return TLSInfo(
        version=stream.version(),
        cipher=cipher[0] if cipher else None,
        peer_certificate=stream.getpeercert() or None,
    )


if TYPE_CHECKING:

    def _handlers_see(
        session: Session, context: ServerContext
    ) -> tuple[HandlerSession, HandlerContext]:
        """mypy's check that the server keeps what handlers are promised (never runs)."""
        return session, context
