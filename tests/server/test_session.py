"""Session behaviour that sockets cannot pin down: write boundaries and virtual time.

These run a real :class:`Session` over ``trio.testing`` memory streams, because
a socket test cannot see how many ``send_all`` calls produced the bytes, and
a drip-feeding client over a socket would need real seconds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from mailio_trio import Config, Limits, Server
from mailio_trio.server._connection import _session_ids
from mailio_trio.server._session import ClientInfo, Session

if TYPE_CHECKING:
    from mailio_trio.chain import Request, Response


class CountingStream(trio.abc.Stream):
    """Wraps one end of a memory stream pair and records each ``send_all``."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sends: list[bytes] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sends.append(bytes(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_session(config: Config) -> tuple[Session, trio.abc.Stream, CountingStream]:
    server = Server(config)
    client, server_end = trio.testing.memory_stream_pair()
    counting = CountingStream(server_end)
    session = Session.for_stream(server._context, counting, ClientInfo(address="127.0.0.1", port=1))
    return session, client, counting


async def read_until(stream: trio.abc.Stream, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


async def test_pipelined_replies_go_out_in_one_send() -> None:
    session, client, counting = make_session(Config(hostname="mx.test"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        await read_until(client, b"\r\n")
        await client.send_all(b"EHLO c.test\r\n")
        await read_until(client, b"250 ENHANCEDSTATUSCODES\r\n")
        counting.sends.clear()
        await client.send_all(
            b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
            b"RCPT TO:<c@example.com>\r\nNOOP\r\n"
        )
        replies = await read_until(client, b"250 2.0.0 OK\r\n")
        await client.send_all(b"QUIT\r\n")
        await read_until(client, b"221")
    assert replies.count(b"\r\n") == 4
    assert len(counting.sends[0].split(b"\r\n")) == 5  # four replies in the first write


async def test_drip_feeding_client_is_cut_off_by_idle_timer(autojump_clock: trio.abc.Clock) -> None:
    """One byte every second never completes a line within idle_timeout=5: 421 4.4.2."""
    session, client, _ = make_session(Config(hostname="mx.test", limits=Limits(idle_timeout=5)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        await read_until(client, b"\r\n")
        start = trio.current_time()
        received = b""

        async def drip() -> None:
            for byte in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP\r\n":
                try:
                    await client.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    return
                await trio.sleep(1)

        nursery.start_soon(drip)
        received = await read_until(client, b"\r\n")
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert received.startswith(b"421 4.4.2 ")
    assert 5 <= elapsed < 6


async def test_data_timeout_bounds_the_whole_body(autojump_clock: trio.abc.Clock) -> None:
    config = Config(hostname="mx.test", limits=Limits(idle_timeout=100, data_timeout=30))
    session, client, _ = make_session(config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        await read_until(client, b"\r\n")
        await client.send_all(
            b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        )
        await read_until(client, b"354 ")
        start = trio.current_time()

        async def drip() -> None:
            while True:
                try:
                    await client.send_all(b"more text\r\n")
                except trio.BrokenResourceError:
                    return
                await trio.sleep(1)

        nursery.start_soon(drip)
        received = await read_until(client, b"\r\n")
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert received.startswith(b"421 4.4.2 ")
    assert 30 <= elapsed < 31


async def test_data_timeout_ends_with_the_body(autojump_clock: trio.abc.Clock) -> None:
    """The DATA deadline rides on the session's idle scope; it must not outlive the body.

    A queue handler slower than data_timeout (within handler_timeout) and a
    client idle for longer than data_timeout after the message (within
    idle_timeout) are both fine.
    """
    config = Config(
        hostname="mx.test", limits=Limits(idle_timeout=100, data_timeout=5, handler_timeout=50)
    )
    session, client, _ = make_session(config)

    @session.handler("queue", "slow")
    async def slow(req: Request, res: Response) -> None:
        await trio.sleep(20)
        res.accept()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        await read_until(client, b"\r\n")
        await client.send_all(
            b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        )
        await read_until(client, b"354 ")
        await client.send_all(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        queued = await read_until(client, b"\r\n")
        await trio.sleep(30)  # idle after the message, past data_timeout
        await client.send_all(b"NOOP\r\n")
        noop = await read_until(client, b"\r\n")
        await client.send_all(b"QUIT\r\n")
        await read_until(client, b"221")
    assert queued.startswith(b"250 2.0.0 OK: queued")
    assert noop.startswith(b"250 ")


# Python 3.12+ warns about fork() with threads alive (earlier tests' thread cache);
# the child here only writes to a pipe and exits.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_session_ids_differ_across_forked_workers() -> None:
    # --workers forks children; ids counted from one start would repeat in each.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running pytest's teardown
        os.write(write_end, _session_ids.next().encode())
        os._exit(0)
    os.close(write_end)
    try:
        child_id = os.read(read_end, 64).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    parent_id = _session_ids.next()
    assert len(child_id) == len(parent_id) == 12
    assert child_id != parent_id


async def test_last_reply_to_a_client_that_never_reads_waits_farewell_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A client we refuse may not read its answer: we give it limits.farewell_timeout."""
    config = Config(hostname="mx.test", limits=Limits(idle_timeout=100, farewell_timeout=7))
    server = Server(config)

    @server.handler("connect", "refuse")
    async def refuse(req: Request, res: Response) -> None:
        res.end(554, "No SMTP service here", "5.7.1")

    # Lockstep: every send waits for the client to read, and this one never does.
    client, server_end = trio.testing.lockstep_stream_pair()
    session = Session.for_stream(
        server._context, server_end, ClientInfo(address="127.0.0.1", port=1)
    )
    start = trio.current_time()
    with trio.fail_after(60):
        await session.run()
    assert 7 <= trio.current_time() - start < 8
    await client.aclose()
