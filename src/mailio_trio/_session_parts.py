"""The pieces of a session that hold no protocol logic: who the client is,
what the server shares with its sessions, tagged logging, and the DATA spool.

Kept apart from ``session.py`` so that module reads as the protocol loop it is.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from mailio_trio._ratelog import RateLimitedLog
from mailio_trio.protocol import BareLineEndings, DataReader, Reply

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, MutableMapping

    import trio

    from mailio_trio.chain import Chain
    from mailio_trio.config import Config
    from mailio_trio.dns import Resolver
    from mailio_trio.session import Session

__all__ = [
    "VERBOSE",
    "ClientInfo",
    "Close",
    "ConnectionLost",
    "Counters",
    "NullSpool",
    "ServerContext",
    "SessionLog",
    "Spool",
    "TLSInfo",
    "data_problem",
    "tls_info",
]


class ConnectionLost(Exception):
    """The client went away (EOF or a broken stream) while we waited for it."""


class Close(Exception):
    """End this session after sending ``reply`` (if any)."""

    def __init__(self, reply: Reply | None) -> None:
        super().__init__(reply)
        self.reply = reply


@attrs.define(eq=False, slots=True)
class ClientInfo:
    """Who is on the other end."""

    address: str
    port: int
    hostname: str | None = None
    """The reverse DNS name once confirmed, else ``None``."""
    helo: str | None = None


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
    recipients: int = 0


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


VERBOSE = 15
"""mail-io's ``verbose`` level, between DEBUG (10) and INFO (20): ``res.log.verbose``."""
logging.addLevelName(VERBOSE, "VERBOSE")


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with ``[session.transaction command/handler]``.

    Has mail-io's level names too: ``verbose`` (:data:`VERBOSE`) and ``warn``,
    an alias of ``warning`` (``LoggerAdapter.warn`` is deprecated, then gone).
    """

    def __init__(self, log: logging.Logger, session: Session, tag: str = "") -> None:
        super().__init__(log, {})
        self.session = session
        self.tag = tag

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        s = self.session
        extra = {"session": s.id, "transaction": s.transaction, "handler": self.tag}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        tag = f" {self.tag}" if self.tag else ""
        return f"[{s.id}.{s.transaction}{tag}] {msg}", kwargs

    def verbose(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log at :data:`VERBOSE` (mail-io's level between debug and info)."""
        kwargs.setdefault("stacklevel", 2)  # the caller's line, not this one
        self.log(VERBOSE, msg, *args, **kwargs)

    def warn(self, msg: object, *args: object, **kwargs: Any) -> None:
        """``warning`` under mail-io's name, without a deprecation warning."""
        kwargs.setdefault("stacklevel", 2)
        self.log(logging.WARNING, msg, *args, **kwargs)


def tls_info(stream: trio.SSLStream[Any]) -> TLSInfo:
    cipher = stream.cipher()
    return TLSInfo(
        version=stream.version(),
        cipher=cipher[0] if cipher else None,
        peer_certificate=stream.getpeercert() or None,
    )


class Spool:
    """A DATA body being written to disk; blocking writes of large blocks to the page cache.

    Durability is not this file's job: queue handlers that keep the message
    (maildir, relay spool) write and fsync their own copies before ``250``.
    """

    def __init__(self, directory: Path | None) -> None:
        fd, name = tempfile.mkstemp(prefix="mailio-", suffix=".eml", dir=directory)
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=256 * 1024)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class NullSpool:
    """The discard mode's spool: the body is read and dropped (like aiosmtpd's Sink)."""

    # Queue handlers see an empty file; it is never unlinked (see Session.deliver).
    path = Path(os.devnull)

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass


TOO_MANY_HOPS = Reply(554, "Too many hops: mail loop detected (RFC 5321 section 6.3)", "5.4.6")


def data_problem(reader: DataReader, policy: BareLineEndings, line_limit: int) -> Reply | None:
    if reader.size_exceeded:
        return Reply(552, "Message size exceeds fixed maximum message size", "5.3.4")
    if reader.bare_line_ending_seen and policy is BareLineEndings.REJECT:
        return Reply(550, "Bare CR or LF in message; lines must end with CRLF", "5.5.2")
    if reader.line_too_long:
        return Reply(550, f"Message has a line longer than {line_limit} octets", "5.6.0")
    if reader.too_many_hops:
        # RFC 5321 §6.3 (mail loops); RFC 3463 X.4.6 "Routing loop detected".
        # Postfix says "554 5.4.0 Error: too many hops".
        return TOO_MANY_HOPS
    return None
