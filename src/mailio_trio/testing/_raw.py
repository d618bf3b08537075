"""A byte-level connection to a server, for tests that need exact control of the wire."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.protocol import Need, Reply, ReplyReader

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

__all__ = ["RawConnection", "open_raw_connection"]


@attrs.define(eq=False)
class RawConnection:
    """Bytes to a server and replies back, for tests that need exact control."""

    stream: trio.abc.Stream
    # The client's own reader, so the harness and the client cannot disagree
    # about a reply; they differ only in what they raise (see read_reply).
    _reader: ReplyReader = attrs.field(factory=ReplyReader)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        chunk = await self.stream.receive_some(65536)
        self._reader.feed(bytes(chunk))
        return bool(chunk)

    async def read_reply(self) -> Reply:
        """Read one (possibly multi-line) reply.

        Raises:
          EOFError: The server closed before a whole reply arrived.
          mailio_trio.protocol.ServerProtocolError: What came is not an SMTP
            reply (tests of a misbehaving server can assert on it).
        """
        while (reply := self._reader.next_reply()) is Need.DATA:
            if not await self._fill():
                raise EOFError(f"connection closed; partial reply {self._reader.take_buffered()!r}")
        assert isinstance(reply, Reply)
        return reply

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
        assert not self._reader.has_buffered, (
            f"plaintext after STARTTLS's reply: {self._reader.take_buffered()!r}"
        )
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
