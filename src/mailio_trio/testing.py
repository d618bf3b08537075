"""A real SMTP server for tests: in-process, on loopback, keeping what it accepts.

Like ``trio.testing``, this module is public: applications use it (and the
pytest fixtures over it) to test the mail they send.

Example::

    async def test_signup_mail(nursery):
        running = await start_capturing_server(nursery)
        await send_signup_mail(host=running.host, port=running.port)
        [captured] = await running.outbox.wait_for(1)
        assert captured.message["Subject"] == "Welcome"
"""

from __future__ import annotations

import email.parser
import email.policy
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.chain import Handler, Request, Response
from mailio_trio.config import Config
from mailio_trio.protocol import Reply
from mailio_trio.server import Server

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator
    from email.message import EmailMessage

    from mailio_trio.message import Envelope

__all__ = [
    "CapturedMessage",
    "Outbox",
    "RawConnection",
    "RunningServer",
    "open_raw_connection",
    "start_capturing_server",
]


@attrs.frozen(kw_only=True)
class CapturedMessage:
    """One accepted message: envelope, bytes as stored, parsed message, session facts."""

    envelope: Envelope
    raw: bytes
    client_address: str
    helo: str | None
    secure: bool
    user: Any

    @property
    def message(self) -> EmailMessage:
        parser = email.parser.BytesParser(policy=email.policy.default)
        return parser.parsebytes(self.raw)


@attrs.define(eq=False)
class Outbox:
    """Messages a capturing server accepted, in order."""

    messages: list[CapturedMessage] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def add(self, captured: CapturedMessage) -> None:
        self.messages.append(captured)
        self._changed.set()
        self._changed = trio.Event()

    def clear(self) -> None:
        self.messages.clear()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:  # noqa: ASYNC109  # the fixture API promises wait_for(n, timeout=...)
        """Wait until at least ``count`` messages are in; raises ``trio.TooSlowError``."""
        with trio.fail_after(timeout):
            while len(self.messages) < count:
                await self._changed.wait()
        return list(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


@attrs.define(eq=False)
class RunningServer:
    """A server listening on loopback, with the messages it captured."""

    server: Server
    host: str
    port: int
    outbox: Outbox

    @property
    def messages(self) -> list[CapturedMessage]:
        return self.outbox.messages

    def open_raw(self) -> Any:
        """``async with running.open_raw() as conn`` — a byte-level connection."""
        return open_raw_connection(self.host, self.port)


def capture_handler(outbox: Outbox) -> Handler:
    """A ``queue/capture`` handler that keeps each message in ``outbox``."""

    async def capture(req: Request, res: Response) -> None:
        assert req.message is not None
        session = req.session
        raw = await trio.to_thread.run_sync(req.message.read_bytes)
        outbox.add(
            CapturedMessage(
                envelope=req.message.envelope,
                raw=raw,
                client_address=session.client.address,
                helo=session.helo_name,
                secure=session.secure,
                user=session.user,
            )
        )
        res.accept()

    return Handler(command="queue", name="capture", func=capture)


async def start_capturing_server(
    nursery: trio.Nursery,
    config: Config | None = None,
    *,
    host: str = "127.0.0.1",
    server: Server | None = None,
) -> RunningServer:
    """Start a server on ``host`` and a free port in ``nursery``; returns once it listens."""
    if server is None:
        server = Server(config or Config(hostname="mx.test", domains=["example.com"]))
    outbox = Outbox()
    server.add_handler(capture_handler(outbox))
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, host, 0)
    bound_host, port = addresses[0]
    return RunningServer(server=server, host=bound_host, port=port, outbox=outbox)


@attrs.define(eq=False)
class RawConnection:
    """Bytes to a server and replies back, for tests that need exact control."""

    stream: trio.abc.Stream
    _buffer: bytearray = attrs.field(factory=bytearray)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        chunk = await self.stream.receive_some(65536)
        self._buffer += chunk
        return bool(chunk)

    async def read_reply(self) -> Reply:
        """Read one (possibly multi-line) reply; raises ``EOFError`` if the server closed."""
        lines: list[str] = []
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                if not await self._fill():
                    raise EOFError(f"connection closed; partial reply {bytes(self._buffer)!r}")
            line = bytes(self._buffer[:end]).decode("utf-8")
            del self._buffer[: end + 2]
            lines.append(line[4:])
            if line[3:4] != "-":
                break
        code = int(line[:3])
        enhanced = None
        first = lines[0].split(" ", 1)
        if code // 100 in (2, 4, 5) and len(first[0].split(".")) == 3 and first[0][:1].isdigit():
            enhanced = first[0]
            lines = [ln.split(" ", 1)[1] if " " in ln else "" for ln in lines]
        return Reply(code, "\n".join(lines), enhanced)

    async def command(self, line: str | bytes) -> Reply:
        """Send one command line (CRLF added) and read its reply."""
        data = line.encode("utf-8") if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        return await self.read_reply()

    async def at_eof(self, timeout: float = math.inf) -> bool:  # noqa: ASYNC109  # reads like the question it answers
        """True once the server has closed the connection (after any unread replies)."""
        with trio.move_on_after(timeout):
            try:
                while await self._fill():
                    pass
            except trio.BrokenResourceError:
                pass
            return True
        return False

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Handshake on this connection (after the server's ``220`` to STARTTLS).

        Raises:
          AssertionError: The server sent bytes after its ``220`` before TLS.
        """
        assert not self._buffer, f"plaintext after STARTTLS's reply: {bytes(self._buffer)!r}"
        tls = trio.SSLStream(self.stream, context, server_hostname=server_hostname)
        await tls.do_handshake()
        self.stream = tls

    async def aclose(self) -> None:
        await self.stream.aclose()


@asynccontextmanager
async def open_raw_connection(host: str, port: int) -> AsyncIterator[RawConnection]:
    stream = await trio.open_tcp_stream(host, port)
    conn = RawConnection(stream)
    try:
        yield conn
    finally:
        await trio.aclose_forcefully(stream)
