"""DATA over real sockets: smuggling attempts, bare line endings, dot-stuffing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailio_trio import Config, Limits
from mailio_trio.testing import RawConnection, RunningServer, start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

    import trio


async def open_data(conn: RawConnection) -> None:
    await conn.read_reply()
    await conn.command("EHLO c.test")
    await conn.command("MAIL FROM:<a@example.org>")
    await conn.command("RCPT TO:<b@example.com>")
    assert (await conn.command("DATA")).code == 354


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r"])
async def test_smuggled_end_of_data_does_not_end_data(
    mailio_server: RunningServer, fake_end: bytes
) -> None:
    smuggled = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    async with mailio_server.open_raw() as conn:
        await open_data(conn)
        await conn.send(b"Subject: one\r\n\r\nhello" + fake_end + smuggled + b"forged\r\n.\r\n")
        reply = await conn.read_reply()
        assert reply.code == 250
        # Nothing of the smuggled transaction was answered as commands.
        assert (await conn.command("NOOP")).code == 250
    [captured] = await mailio_server.outbox.wait_for(1)
    assert len(mailio_server.messages) == 1
    body = captured.raw.split(b"\r\n\r\n", 1)[1]
    assert b"MAIL FROM:<evil@example.org>" in body
    assert b"forged" in body
    # Every stored line ends in CRLF: no bare CR or LF reaches the store.
    assert body.count(b"\n") == body.count(b"\r\n") == body.count(b"\r")


async def test_bare_line_endings_rejected_when_configured(nursery: trio.Nursery) -> None:
    config = Config(hostname="mx.test", limits=Limits(bare_line_endings="reject"))
    running = await start_capturing_server(nursery, config)
    async with running.open_raw() as conn:
        await open_data(conn)
        reply = await conn.command(b"Subject: x\r\n\r\nline one\nline two\r\n.")
        assert (reply.code, reply.enhanced) == (550, "5.5.2")
        assert (await conn.command("NOOP")).code == 250
    assert len(running.outbox) == 0


async def test_dot_stuffed_lines_are_unstuffed(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await open_data(conn)
        reply = await conn.command(b"Subject: dots\r\n\r\n..leading\r\n...\r\n..\r\n\r\n.")
        assert reply.code == 250
    [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.raw.endswith(b"\r\n\r\n.leading\r\n..\r\n.\r\n\r\n")


async def test_overlong_text_line_is_refused(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(nursery, Config(hostname="mx.test"))
    async with running.open_raw() as conn:
        await open_data(conn)
        reply = await conn.command(b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n.")
        assert (reply.code, reply.enhanced) == (550, "5.6.0")
    assert len(running.outbox) == 0


async def test_message_split_across_many_writes(mailio_server: RunningServer) -> None:
    body = b"".join(b"line %d\r\n" % n for n in range(5000))
    async with mailio_server.open_raw() as conn:
        await open_data(conn)
        data = b"Subject: big\r\n\r\n" + body + b".\r\n"
        for start in range(0, len(data), 997):
            await conn.send(data[start : start + 997])
        assert (await conn.read_reply()).code == 250
    [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.raw.endswith(body)


async def test_small_data_reads_keep_framing_across_chunks(nursery: trio.Nursery) -> None:
    # 4 KiB reads put chunk boundaries inside dot-stuffed lines, CRLFs and
    # smuggling attempts; the message, the unstuffing and the pipelined
    # command after the terminator must come out as with one big read.
    config = Config(hostname="mx.test", limits=Limits(data_read_size=4096))
    running = await start_capturing_server(nursery, config)
    lines = [b"..dot %d\r\nplain %d\n.\n\r\n" % (n, n) for n in range(3000)]
    async with running.open_raw() as conn:
        await open_data(conn)
        await conn.send(b"Subject: chunks\r\n\r\n" + b"".join(lines) + b".\r\nNOOP\r\n")
        assert (await conn.read_reply()).code == 250
        assert (await conn.read_reply()).code == 250  # the pipelined NOOP
    [captured] = await running.outbox.wait_for(1)
    body = captured.raw.split(b"\r\n\r\n", 1)[1]
    expected = b"".join(b".dot %d\r\nplain %d\r\n.\r\n\r\n" % (n, n) for n in range(3000))
    assert body == expected


def spooled_octets(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


async def test_doomed_body_is_not_spooled(nursery: trio.Nursery, tmp_path: Path) -> None:
    """After an over-long line the message will be refused: the rest is read, not stored.

    Before, the body went on filling the spool file up to message_size (64 MiB
    here) only to be thrown away at the terminator.
    """
    config = Config(hostname="mx.test", spool_dir=tmp_path, limits=Limits(message_size=64 << 20))
    running = await start_capturing_server(nursery, config)
    async with running.open_raw() as conn:
        await open_data(conn)
        await conn.send(b"Subject: x\r\n\r\n" + b"y" * 2000 + b"\r\n")
        block = (b"z" * 70 + b"\r\n") * 14_000  # ~1 MiB
        for _ in range(24):
            await conn.send(block)
        # The server has read all but what the two socket buffers hold (a few MiB).
        assert spooled_octets(tmp_path) < 4 << 20
        reply = await conn.command(b".")
        assert (reply.code, reply.enhanced) == (550, "5.6.0")
        assert (await conn.command("NOOP")).code == 250
    assert spooled_octets(tmp_path) == 0
    assert len(running.outbox) == 0
