"""The session as handlers see it (``req.session``): a protocol, and the plain values it holds.

Beside the chain, below the server: a handler, a plugin or the chain itself
names :class:`HandlerSession`, never the server's ``Session``, so nothing
below ``server/`` imports upward even for its annotations
(``tests/test_layering.py``). The server's session satisfies the protocol
structurally, and mypy checks that it does (``server/_context.py``).

Annotations only: nothing here is looked up per command, and ``ClientInfo``,
``TLSInfo`` and ``Counters`` are the same classes the server fills in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    import logging
    import ssl

    import trio

    from mailio_trio._handler_log import SessionLog
    from mailio_trio._shared import RedisState
    from mailio_trio.abuse import RateLimitedLog
    from mailio_trio.chain import Chain, Handler, Request
    from mailio_trio.config import Config
    from mailio_trio.dns import Resolver
    from mailio_trio.message import Envelope, Message
    from mailio_trio.protocol import Reply
    from mailio_trio.protocol.proxy import ProxyHeader

__all__ = ["ClientInfo", "Counters", "HandlerContext", "HandlerSession", "TLSInfo"]


@attrs.define(eq=False, slots=True)
class ClientInfo:
    """Who is on the other end."""

    address: str
    port: int
    hostname: str | None = None
    """The reverse DNS name once confirmed, else ``None``."""
    helo: str | None = None
    proxy: ProxyHeader | None = None
    """The PROXY protocol header this connection came with (``server.proxy_protocol``)."""
    proxied_by: tuple[str, int] | None = None
    """The load balancer's own address and port when a PROXY header was read."""


@attrs.frozen
class TLSInfo:
    """The TLS connection's facts, once STARTTLS or implicit TLS is up."""

    version: str | None
    cipher: str | None
    peer_certificate: dict[str, Any] | None


@attrs.define(eq=False, slots=True)
class Counters:
    """What this session has done so far (limits are checked against these)."""

    commands: int = 0
    unrecognized: int = 0
    auth_failures: int = 0
    messages: int = 0
    refused: int = 0
    """Commands answered 4xx/5xx (the mail log's ``refused=``)."""
    recipients: int = 0


class HandlerContext(Protocol):
    """What a handler may use of the server its session belongs to (``session.context``)."""

    @property
    def chain(self) -> Chain:
        """The server's handlers (``chain.extensions(session)``: the EHLO keywords)."""
        ...

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """The STARTTLS context; ``None``: no TLS configured."""
        ...

    @property
    def resolver(self) -> Resolver | None:
        """The server's DNS resolver (``Config.dns``); ``None``: no lookups."""
        ...

    @property
    def discard(self) -> bool:
        """Whether this is a benchmark sink, whose bodies are read and dropped, never checked."""
        ...

    @property
    def abuse_log(self) -> RateLimitedLog:
        """The rate limit for per-connection anti-abuse log lines."""
        ...

    @property
    def redis(self) -> RedisState | None:
        """The shared Redis (``[redis] url``); ``None``: state is local."""
        ...


class HandlerSession(Protocol):
    """The ``session`` of the handler API: ``req.session``, one client connection.

    As mail-io's documented ``session``: who the client is (``client``,
    ``user``, ``secure``/``tls``), the transaction under way (``envelope``,
    ``transaction``), what was answered (``accepted``/``rejected``), the
    counters the limits check, a dict that is the user's own (``data``), and
    the calls the core handlers make on it (STARTTLS, DATA, AUTH's exchange).
    Handlers assign ``envelope``, ``esmtp``, ``user`` and ``transaction``;
    everything else they read (or change inside, as ``client.helo``).

    The server's ``Session`` is the one implementation; handlers and plugins
    annotate with this protocol so they never depend on the server.
    """

    envelope: Envelope
    """The transaction under way (``sender``, ``recipients``), a new one per MAIL."""
    esmtp: bool
    """Whether the client greeted with EHLO (or LHLO)."""
    user: Any
    """Who authenticated (AUTH's ``req.user``), else ``None``."""
    transaction: int
    """Messages accepted so far in this session; message ids are ``id.transaction``."""

    @property
    def id(self) -> str:
        """The session id (12 hex digits), in every log line."""
        ...

    @property
    def context(self) -> HandlerContext:
        """What the session's server shares with its sessions (chain, TLS, DNS, Redis)."""
        ...

    @property
    def config(self) -> Config:
        """The server's configuration."""
        ...

    @property
    def client(self) -> ClientInfo:
        """Who is on the other end (``address``, ``port``, ``hostname``, ``helo``)."""
        ...

    @property
    def secure(self) -> bool:
        """Whether the connection is TLS (STARTTLS done, or implicit TLS)."""
        ...

    @property
    def tls(self) -> TLSInfo | None:
        """The TLS connection's version, cipher and client certificate; ``None``: plain."""
        ...

    @property
    def counters(self) -> Counters:
        """What this session has done so far (limits are checked against these)."""
        ...

    @property
    def accepted(self) -> dict[str, int]:
        """Command -> the code of its last accepting reply."""
        ...

    @property
    def rejected(self) -> dict[str, int]:
        """Command -> the code of its last refusing reply."""
        ...

    @property
    def data(self) -> dict[str, Any]:
        """The user's own, for the whole session."""
        ...

    @property
    def values(self) -> dict[str, Any]:
        """What handlers stored with ``res.set``, by ``"command/name"``."""
        ...

    @property
    def chunked(self) -> object | None:
        """A message arriving in BDAT chunks, until its ``LAST``; else ``None``."""
        ...

    @property
    def stream(self) -> trio.abc.Stream:
        """The client's stream, a ``trio.SSLStream`` once TLS is on."""
        ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The session's logger; its lines carry ``[session.transaction]``."""
        ...

    @property
    def helo_name(self) -> str | None:
        """The name the client greeted with, else ``None``."""
        ...

    @property
    def in_transaction(self) -> bool:
        """Whether MAIL started a transaction that has not ended."""
        ...

    def handler_log(self, handler: Handler) -> SessionLog:
        """A logger whose lines carry this session and ``handler`` (``res.log``)."""
        ...

    def handlers(self, command: str) -> tuple[Handler, ...]:
        """The handlers that run for ``command`` in this session, in order."""
        ...

    def reset_transaction(self) -> None:
        """Forget the envelope and what handlers stored for it (RSET, EHLO, after DATA)."""
        ...

    async def send_now(self, reply: Reply | str) -> None:
        """Send an intermediate reply immediately (``res.write``)."""
        ...

    async def read_auxiliary_line(self) -> str:
        """The next line inside a command's exchange (``res.read``); not a command."""
        ...

    async def wait_for_early_input(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the client to talk before our greeting."""
        ...

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the stream in TLS after the ``220`` was sent; reset the session state."""
        ...

    async def receive_message(self) -> Message:
        """Stream the DATA body to a spool file, our ``Received:`` line first."""
        ...

    async def deliver_each(self, message: Message) -> list[Reply]:
        """Run the ``queue`` chain for ``message``: its reply, under LMTP one per recipient."""
        ...

    def per_recipient(self, reply: Reply) -> list[Reply]:
        """The end of a message's ``reply`` as sent: once, or under LMTP once per recipient."""
        ...

    def queue_replies(self, replies: list[Reply]) -> Reply:
        """Queue all of ``replies`` but the last, which is returned for the caller to send."""
        ...

    def note_refused(self, command: str, reply: Reply, req: Request | None = None) -> None:
        """Count a 4xx/5xx answer to ``command`` and give it its mail log line."""
        ...
