"""Hostile and polite SMTP clients for the hostile-client tests (tests/e2e/test_e2e_hostile*.py).

Clients bind to chosen 127.0.0.x addresses (all of 127/8 is loopback) to act as
different hosts. Memory is measured with :mod:`tracemalloc`: the server runs in
the test's process, and an attacker's payload is built before tracing starts and
sent through memoryviews, so the traced peak is what the server held (plus what
the test itself keeps, which the tests keep small).
"""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import struct
import tracemalloc
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import trio

from mailio_trio import Config, Limits, Server
from mailio_trio.plugins.auth import AuthConfig
from mailio_trio.testing import RawConnection, RunningServer, start_capturing_server

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    import pytest

    from mailio_trio import Reply

MB = 1024 * 1024
# What the server may hold at once while megabytes arrive: 64 KiB reads, one
# command line, a DATA chunk, the replies to one read; far below the attack.
MEMORY_BOUND = 1 * MB
WAIT = 30  # seconds: a generous upper bound for anything to happen, never expected


async def start(
    nursery: trio.Nursery,
    spool: Path,
    *,
    tls_context: ssl.SSLContext | None = None,
    plugins: dict[str, Any] | None = None,
    auth: AuthConfig | None = None,
    **limits: Any,
) -> RunningServer:
    spool.mkdir(exist_ok=True)  # noqa: ASYNC240  # an empty tmp_path: no real wait
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        spool_dir=spool,
        limits=Limits(**limits),
        plugins=plugins or {},
        auth=auth if auth is not None else AuthConfig(),
    )
    return await start_capturing_server(nursery, server=Server(config, tls_context=tls_context))


@asynccontextmanager
async def connect_from(
    source: str, running: RunningServer, *, port: int | None = None, receive_buffer: int = 0
) -> AsyncIterator[RawConnection]:
    """A raw connection whose client socket is bound to ``source`` (127.0.0.x, or ``::1``)."""
    family = trio.socket.AF_INET6 if ":" in source else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    stream: trio.SocketStream | None = None
    try:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        await sock.bind((source, 0))
        await sock.connect((running.host, running.port if port is None else port))
        stream = trio.SocketStream(sock)
        yield RawConnection(stream)
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        else:
            sock.close()


def reset_on_close(conn: RawConnection) -> None:
    """Make closing this connection send RST instead of FIN (SO_LINGER 0), as a crashed client."""
    assert isinstance(conn.stream, trio.SocketStream)
    conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def half_close(conn: RawConnection) -> None:
    """Shut down the client's write side only (``shutdown(SHUT_WR)``)."""
    assert isinstance(conn.stream, trio.SocketStream)
    await conn.stream.send_eof()


@asynccontextmanager
async def bystander(running: RunningServer, source: str = "127.0.0.1") -> AsyncIterator[Any]:
    """A polite client, connected and past EHLO before the attack starts.

    Yields ``send(subject)``, which sends one message over that connection and
    asserts it was accepted and captured.
    """
    async with connect_from(source, running) as conn:
        assert (await conn.read_reply()).code == 220
        assert (await conn.command("EHLO good.test")).code == 250

        async def send(subject: str) -> None:
            assert await send_message(conn, subject) == 250
            assert len(running.find(subject=subject)) == 1

        yield send
        assert (await conn.command("QUIT")).code == 221


async def into_data(conn: RawConnection) -> None:
    """An attacker's way into a message: greeting, EHLO, MAIL, RCPT, then DATA's ``354``."""
    await conn.read_reply()
    await conn.command("EHLO bad.test")
    await conn.command("MAIL FROM:<a@example.org>")
    await conn.command("RCPT TO:<b@example.com>")
    assert (await conn.command("DATA")).code == 354


async def send_message(conn: RawConnection, subject: str, rcpt: str = "good@example.com") -> int:
    assert (await conn.command("MAIL FROM:<sender@example.org>")).code == 250
    assert (await conn.command(f"RCPT TO:<{rcpt}>")).code == 250
    assert (await conn.command("DATA")).code == 354
    return (await conn.command(f"Subject: {subject}\r\n\r\nHello.\r\n.".encode())).code


async def smtplib_sends(running: RunningServer, subject: str, source: str = "127.0.0.1") -> None:
    """A real client (smtplib, in a thread) sends one message; asserts it was captured."""

    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(running.host, running.port, source_address=(source, 0)) as client:
            message = f"Subject: {subject}\r\n\r\nHello.\r\n".encode()
            return client.sendmail("sender@example.org", ["good@example.com"], message)

    assert await trio.to_thread.run_sync(send) == {}
    assert len(running.find(subject=subject)) == 1


async def read_until_closed(conn: RawConnection) -> list[tuple[int, str | None]]:
    """Every reply (code, enhanced code) until the server closes the connection."""
    replies: list[tuple[int, str | None]] = []
    while True:
        try:
            reply = await conn.read_reply()
        except (EOFError, trio.BrokenResourceError):
            return replies
        replies.append((reply.code, reply.enhanced))


async def send_until_cut_off(conn: RawConnection, payload: bytes, times: int) -> int:
    """Send ``payload`` up to ``times`` times; returns how many went out before we were cut off."""
    for sent in range(times):
        try:
            await conn.send(payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return sent
    return times


async def wait_idle(running: RunningServer, sessions: int = 0) -> None:
    """Wait until the server has ``sessions`` sessions left: the attacker's are gone."""
    with trio.fail_after(WAIT):
        # The server has no event for "a session ended": poll its statistics.
        while running.server.statistics().active_sessions > sessions:  # noqa: ASYNC110
            await trio.sleep(0.01)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@contextmanager
def server_memory() -> Iterator[Callable[[], int]]:
    """Trace allocations; yields a function giving the peak growth in octets so far."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        yield lambda: tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def b64_plain(user: str, password: str) -> str:
    """An ``AUTH PLAIN`` initial response (RFC 4616)."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


async def rcpt_from(source: str, running: RunningServer, count: int = 1) -> list[Reply]:
    """From ``source``: greet, EHLO, MAIL, then ``count`` RCPTs; their replies."""
    async with connect_from(source, running) as conn:
        assert (await conn.read_reply()).code == 220
        assert (await conn.command("EHLO client.test")).code == 250
        assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
        return [await conn.command(f"RCPT TO:<r{i}@example.com>") for i in range(count)]
