"""A byte-level connection to a server, for tests that need exact control of the wire."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.protocol import Reply

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

__all__ = ["RawConnection", "open_raw_connection"]


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
