"""Independent SMTP peers for tests: aiosmtpd (asyncio, in its own thread) on loopback.

aiosmtpd is a different implementation from ours, so a message it accepts
proves our client speaks SMTP, not merely our server's dialect. Its
``Controller`` only binds a fixed port; we bind port 0 ourselves and hand it
the socket, so parallel tests never collide.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager
from email.message import Message
from typing import TYPE_CHECKING, Any

import attrs
import trio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from mailio_trio.testing import RunningServer


@attrs.define
class Received:
    sender: str
    recipients: list[str]
    content: bytes
    mail_options: list[str]


@attrs.define(eq=False)
class PeerHandler:
    """Keeps what it receives; ``rcpt_reply``/``data_replies`` script refusals."""

    received: list[Received] = attrs.field(factory=list)
    rcpt_reply: Callable[[str], str | None] = lambda _address: None
    data_replies: list[str] = attrs.field(factory=list)
    """Replies to give after DATA, one per transaction, before answering 250."""
    trio_token: trio.lowlevel.TrioToken | None = None
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int, seconds: float = 20.0) -> list[Received]:
        """Wait (in trio) until ``count`` messages arrived in aiosmtpd's thread."""
        with trio.fail_after(seconds):
            while len(self.received) < count:
                await self._changed.wait()
        return list(self.received)

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.rcpt_reply(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content
        assert isinstance(content, bytes)
        assert envelope.mail_from is not None
        self.received.append(
            Received(
                envelope.mail_from, list(envelope.rcpt_tos), content, list(envelope.mail_options)
            )
        )
        if self.trio_token is not None:
            # Blocks this asyncio thread only until trio ran the (instant) notification.
            trio.from_thread.run_sync(self._notify, trio_token=self.trio_token)
        return "250 OK"


class _BoundController(Controller):
    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


@attrs.define
class Peer:
    host: str
    port: int
    handler: PeerHandler


@asynccontextmanager
async def run_aiosmtpd(
    host: str = "127.0.0.1",
    *,
    port: int = 0,
    handler: PeerHandler | None = None,
    tls_context: ssl.SSLContext | None = None,
    users: dict[str, str] | None = None,
    **smtp_options: Any,
) -> AsyncIterator[Peer]:
    """Run aiosmtpd on ``host``:``port`` (0: any); STARTTLS with ``tls_context``; AUTH ``users``."""
    handler = handler or PeerHandler()
    handler.trio_token = trio.lowlevel.current_trio_token()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, port))
    sock.listen()
    options: dict[str, Any] = dict(smtp_options)
    if tls_context is not None:
        options["tls_context"] = tls_context
    if users is not None:

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and users.get(data.login.decode()) == (
                data.password.decode()
            )
            return AuthResult(success=ok, handled=False)

        options["authenticator"] = authenticate
        options["auth_require_tls"] = True
    controller = _BoundController(handler, sock, loop=asyncio.new_event_loop(), **options)
    await trio.to_thread.run_sync(controller.start)
    try:
        yield Peer(sock.getsockname()[0], sock.getsockname()[1], handler)
    finally:
        await trio.to_thread.run_sync(controller.stop)
        sock.close()


# What the relay tests send, and how they read the reports (tests/e2e/test_e2e_relay*.py).
BODY = b"Subject: relayed\r\nFrom: a@example.com\r\n\r\n.dot line\r\nbody\r\n"


def free_port_on(*hosts: str) -> int:
    """A port free on every host given (the relay uses one remote port for all MX hosts)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = int(probe.getsockname()[1])
        probe.close()
        ok = True
        for host in hosts:
            s = socket.socket()
            try:
                s.bind((host, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no common free port")


def status_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part (RFC 3464 §2.1)."""
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return [b for b in blocks if isinstance(b, Message)]


async def start_relaying_server(
    nursery: trio.Nursery, tmp_path: Path, port: int, *, maildir: bool = False, **relay: Any
) -> RunningServer:
    """A capturing server for ``example.com`` that relays ``remote.test`` to 127.0.0.2:``port``.

    The MX comes from a loopback DNS server; ``relay`` overrides the ``RelayConfig``
    fields (fast retries by default); ``maildir`` keeps local mail under ``tmp_path / "mail"``.
    """
    from mailio_trio import Config, DnsConfig
    from mailio_trio.config import MaildirConfig, RelayConfig
    from mailio_trio.testing import start_capturing_server
    from mailio_trio.testing.dns import DnsServer, Zone

    zone = Zone()
    zone.mx("remote.test", (10, "mx.remote.test"))
    zone.a("mx.remote.test", "127.0.0.2")
    dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
    settings: dict[str, Any] = {
        "enabled": True,
        "spool_dir": tmp_path / "spool",
        "port": port,
        "allow_unauthenticated": True,
        "retry_base_interval": 0.05,
        **relay,
    }
    config = Config(
        hostname="mx.example.com",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=maildir, root=tmp_path / "mail"),
        relay=RelayConfig(**settings),
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )
    return await start_capturing_server(nursery, config)
