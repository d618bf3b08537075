"""BDAT (RFC 3030 CHUNKING) over real sockets: exact chunks, refused chunks swallowed, limits.

Every refused chunk whose size parses must still be read, or its octets would
be answered as commands (a client-side smuggling of its own, and a desync of
every pipelined reply after it); each test sends the next command right
behind the chunk and checks it is answered as that command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
from hostile_clients import MB, MEMORY_BOUND, WAIT, server_memory, start, wait_idle

from mailio_trio import Config, Server
from mailio_trio.config import MaildirConfig
from mailio_trio.testing import RawConnection, RunningServer, open_raw_connection

if TYPE_CHECKING:
    from pathlib import Path

BODY = b"Subject: chunks\r\n\r\n.leading dot\r\n.\r\n\xff\xfe 8-bit\r\nQUIT\r\nlast line\r\n"


async def envelope(conn: RawConnection, rcpt: str = "b@example.com") -> None:
    assert (await conn.read_reply()).code == 220
    assert (await conn.command("EHLO c.test")).code == 250
    assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await conn.command(f"RCPT TO:<{rcpt}>")).code == 250


async def bdat(conn: RawConnection, chunk: bytes, *, last: bool = False) -> tuple[int, str | None]:
    await conn.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
    reply = await conn.read_reply()
    return reply.code, reply.enhanced


def stored_body(raw: bytes) -> bytes:
    """The message as the client sent it: our Received: line (its first lines) taken off."""
    assert raw.startswith(b"Received: from ")
    end = raw.index(b";\r\n\t") + 3  # the date line follows the ";"
    return raw[raw.index(b"\r\n", end) + 2 :]


def spool_files(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.iterdir())


async def test_chunking_is_advertised_and_chunks_are_stored_exactly(
    mailio_server: RunningServer,
) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await conn.read_reply()
            ehlo = await conn.command("EHLO c.test")
            assert "CHUNKING" in ehlo.text.split("\n")
            assert "BDAT" in (await conn.command("HELP")).text.split("\n")[0].split()
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
            assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
            await conn.send(b"BDAT 7\r\n" + BODY[:7])
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced, reply.text) == (250, "2.0.0", "7 octets received")
            # A CRLF split between two chunks, and dots and "QUIT" lines as plain content.
            assert await bdat(conn, BODY[7:40]) == (250, "2.0.0")
            assert await bdat(conn, BODY[40:], last=True) == (250, "2.0.0")
            assert (await conn.command("NOOP")).code == 250
        [captured] = await mailio_server.outbox.wait_for(1)
    assert stored_body(captured.raw) == BODY
    assert [str(r) for r in captured.envelope.recipients] == ["b@example.com"]
    assert b"with ESMTP" in captured.raw.split(b"\r\n\r\n", 1)[0]


async def test_pipelined_transaction_in_one_write(mailio_server: RunningServer) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await conn.read_reply()
            assert (await conn.command("EHLO c.test")).code == 250
            await conn.send(
                b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
                + f"BDAT {len(BODY) - 10}\r\n".encode()
                + BODY[:-10]
                + b"BDAT 10 LAST\r\n"
                + BODY[-10:]
                + b"MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.com>\r\n"
                + b"BDAT 0 LAST\r\nNOOP\r\n"
            )
            codes = [(await conn.read_reply()).code for _ in range(8)]
        assert codes == [250] * 8
        first, second = await mailio_server.outbox.wait_for(2)
    assert stored_body(first.raw) == BODY
    assert stored_body(second.raw) == b""  # BDAT 0 LAST: an empty message


async def test_chunk_longer_than_a_command_line_sent_with_its_command(
    mailio_server: RunningServer,
) -> None:
    # No line end for far more than limits.command_line_length: the line splitter
    # must not drop what it holds of the chunk as an over-long line.
    head = b"Subject: long\r\n\r\n"
    body = head + (b"x" * 990 + b"\r\n") * 20
    cut = len(head) + 700  # the first chunk ends in 700 octets without a line end
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, body[:cut]) == (250, "2.0.0")
            assert await bdat(conn, body[cut:], last=True) == (250, "2.0.0")
            assert (await conn.command("NOOP")).code == 250
        [captured] = await mailio_server.outbox.wait_for(1)
    assert stored_body(captured.raw) == body


async def test_five_megabytes_in_chunks_arrive_byte_exact(mailio_server: RunningServer) -> None:
    line = bytes(range(32, 127)) + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (5 * MB // len(line))
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            pieces = [body[i : i + MB] for i in range(0, len(body), MB)]
            for piece in pieces[:-1]:
                assert await bdat(conn, piece) == (250, "2.0.0")
            assert await bdat(conn, pieces[-1], last=True) == (250, "2.0.0")
        [captured] = await mailio_server.outbox.wait_for(1)
    assert stored_body(captured.raw) == body


_SMUGGLED = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"


@pytest.mark.parametrize(
    ("before", "code"),
    [
        ([], 503),  # no EHLO
        (["EHLO c.test"], 503),  # no MAIL
        (["EHLO c.test", "MAIL FROM:<a@example.org>"], 503),  # no accepted RCPT
    ],
)
async def test_refused_chunk_is_swallowed(
    mailio_server: RunningServer, before: list[str], code: int
) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await conn.read_reply()
            for line in before:
                await conn.command(line)
            await conn.send(f"BDAT {len(_SMUGGLED)}\r\n".encode() + _SMUGGLED + b"NOOP\r\n")
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced) == (code, "5.5.1")
            # The next reply is NOOP's (MAIL's would say 2.1.0), then QUIT's: the
            # chunk's lines were never answered as commands.
            noop = await conn.read_reply()
            assert (noop.code, noop.enhanced) == (250, "2.0.0")
            assert (await conn.command("QUIT")).code == 221
    assert len(mailio_server.outbox) == 0


async def test_bdat_after_last_is_out_of_sequence(mailio_server: RunningServer) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, BODY, last=True) == (250, "2.0.0")
            assert await bdat(conn, _SMUGGLED) == (503, "5.5.1")
            assert await bdat(conn, b"", last=True) == (503, "5.5.1")
            assert (await conn.command("NOOP")).enhanced == "2.0.0"
    assert len(mailio_server.outbox) == 1


async def test_data_after_bdat_is_refused_and_rset_clears(mailio_server: RunningServer) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, b"Subject: half\r\n") == (250, "2.0.0")
            reply = await conn.command("DATA")
            assert (reply.code, reply.enhanced) == (503, "5.5.1")
            reply = await conn.command("RCPT TO:<c@example.com>")
            assert (reply.code, reply.enhanced) == (503, "5.5.1")
            reply = await conn.command("MAIL FROM:<other@example.org>")
            assert (reply.code, reply.enhanced) == (503, "5.5.1")
            assert (await conn.command("RSET")).code == 250
            # DATA and BDAT may share a session, only not a transaction (RFC 3030 §2).
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
            assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
            assert (await conn.command("DATA")).code == 354
            assert (await conn.command(b"Subject: data\r\n\r\nok\r\n.")).code == 250
        [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.message["Subject"] == "data"


async def test_size_past_the_limit_is_552_and_later_chunks_503(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    running = await start(nursery, spool, message_size=64 * 1024)
    chunk = (b"y" * 78 + b"\r\n") * 500  # 40 000 octets: the second one is too much
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, chunk) == (250, "2.0.0")
            assert len(spool_files(spool)) == 1
            # Pipelined: the failing chunk and two more behind it, then NOOP.
            await conn.send(
                f"BDAT {len(chunk)}\r\n".encode()
                + chunk
                + f"BDAT {len(chunk)}\r\n".encode()
                + chunk
                + b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"
            )
            too_big = await conn.read_reply()
            assert (too_big.code, too_big.enhanced) == (552, "5.3.4")
            assert spool_files(spool) == []
            # RFC 3030 §2: the rest of the pipeline is read and refused; the
            # transaction is gone, so each is out of sequence.
            for _ in range(2):
                reply = await conn.read_reply()
                assert (reply.code, reply.enhanced) == (503, "5.5.1")
            assert (await conn.read_reply()).enhanced == "2.0.0"  # NOOP, not "QUIT\r\n"
            # One chunk alone past the limit: refused before a byte is stored.
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
            assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
            big = b"z" * (64 * 1024 + 1)
            assert await bdat(conn, big, last=True) == (552, "5.3.4")
            assert (await conn.command("NOOP")).code == 250
    assert spool_files(spool) == []
    assert len(running.outbox) == 0


@pytest.mark.parametrize("argument", ["", "x", "-1", "+5", "0x10", "5LAST", "1" * 30])
async def test_unreadable_size_closes_the_connection(
    mailio_server: RunningServer, argument: str
) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            await conn.send(f"BDAT {argument}\r\nNOOP\r\n".encode())
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced) == (501, "5.5.4")
            assert await conn.at_eof()


async def test_bad_argument_after_a_readable_size_discards_the_chunk(
    mailio_server: RunningServer,
) -> None:
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            await conn.send(f"BDAT {len(_SMUGGLED)} LASTX\r\n".encode() + _SMUGGLED + b"NOOP\r\n")
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced) == (501, "5.5.4")
            assert (await conn.read_reply()).enhanced == "2.0.0"
            # The message failed with its chunk.
            assert await bdat(conn, BODY, last=True) == (503, "5.5.1")
    assert len(mailio_server.outbox) == 0


async def test_bare_line_endings_follow_the_policy(nursery: trio.Nursery, tmp_path: Path) -> None:
    normalising = await start(nursery, tmp_path / "a")
    rejecting = await start(nursery, tmp_path / "b", bare_line_endings="reject")
    body = b"Subject: bare\r\n\r\none\ntwo\rthree\r"
    with trio.fail_after(WAIT):
        async with normalising.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, body) == (250, "2.0.0")
            assert await bdat(conn, b"\nfour", last=True) == (250, "2.0.0")
        [captured] = await normalising.outbox.wait_for(1)
        async with rejecting.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, body) == (550, "5.5.2")
            assert await bdat(conn, b"\nfour", last=True) == (503, "5.5.1")
    assert stored_body(captured.raw) == b"Subject: bare\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n"
    assert len(rejecting.outbox) == 0
    assert spool_files(tmp_path / "b") == []


async def test_line_length_and_hops_count_as_for_data(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    running = await start(nursery, tmp_path / "s", max_hops=2)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, b"a" * 1001 + b"\r\n", last=True) == (550, "5.6.0")
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
            assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
            # With our own Received: line, the second one here is a third hop.
            hops = b"Received: from a\r\nReceived: from b\r\n\r\nloop\r\n"
            assert await bdat(conn, hops, last=True) == (554, "5.4.6")
    assert len(running.outbox) == 0


async def test_client_gone_mid_chunk_or_between_chunks_leaves_no_spool_file(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    spool = tmp_path / "s"
    running = await start(nursery, spool)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await envelope(conn)
            await conn.send(b"BDAT 1000\r\nonly part of it")
        async with running.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, b"Subject: x\r\n") == (250, "2.0.0")
    await wait_idle(running)
    assert spool_files(spool) == []
    assert len(running.outbox) == 0


async def test_data_timeout_bounds_the_chunks(nursery: trio.Nursery, tmp_path: Path) -> None:
    running = await start(nursery, tmp_path / "s", data_timeout=0.5)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await envelope(conn)
            await conn.send(b"BDAT 1000\r\nthe rest never comes")
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced) == (421, "4.4.2")
            assert await conn.at_eof()
    assert spool_files(tmp_path / "s") == []


async def test_chunking_off_is_not_offered_and_chunks_still_swallowed(
    nursery: trio.Nursery,
) -> None:
    from mailio_trio.testing import start_capturing_server

    running = await start_capturing_server(nursery, Config(hostname="mx.test", chunking=False))
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await conn.read_reply()
            assert "CHUNKING" not in (await conn.command("EHLO c.test")).text
            assert "BDAT" not in (await conn.command("HELP")).text
            await conn.command("MAIL FROM:<a@example.org>")
            await conn.command("RCPT TO:<b@example.com>")
            assert await bdat(conn, _SMUGGLED, last=True) == (502, "5.5.1")
            assert (await conn.command("NOOP")).enhanced == "2.0.0"
    assert len(running.outbox) == 0


async def test_a_handler_refusing_a_chunk_fails_the_message(mailio_server: RunningServer) -> None:
    from mailio_trio.chain import Handler, Request, Response

    async def refuse_second(req: Request, res: Response) -> None:
        if req.session.chunked is not None:
            res.reject(452, "Not now", "4.3.1")
        else:
            res.accept()

    mailio_server.server.chain.add(Handler(command="bdat", name="second", func=refuse_second))
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            assert await bdat(conn, b"Subject: x\r\n") == (250, "2.0.0")
            assert await bdat(conn, _SMUGGLED) == (452, "4.3.1")
            assert await bdat(conn, b"end\r\n", last=True) == (503, "5.5.1")
            assert (await conn.command("NOOP")).enhanced == "2.0.0"
    assert len(mailio_server.outbox) == 0


async def test_maildir_stores_the_same_message_as_with_data(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=root),
    )
    server = Server(config)
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    port = addresses[0][1]
    with trio.fail_after(WAIT):
        async with open_raw_connection("127.0.0.1", port) as conn:
            await envelope(conn)
            assert (await conn.command("DATA")).code == 354
            await conn.send(BODY.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            assert (await conn.read_reply()).code == 250
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
            assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
            assert await bdat(conn, BODY[:20]) == (250, "2.0.0")
            assert await bdat(conn, BODY[20:], last=True) == (250, "2.0.0")
    stored = sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name == "new")
    assert len(stored) == 2
    via_data, via_bdat = (stored_body(p.read_bytes()) for p in stored)
    assert via_data == via_bdat == BODY


async def test_big_chunks_are_read_in_bounded_memory(nursery: trio.Nursery, tmp_path: Path) -> None:
    spool = tmp_path / "s"
    running = await start(nursery, spool)
    line = b"m" * 78 + b"\r\n"
    payload = memoryview(b"Subject: big\r\n\r\n" + line * (20 * MB // len(line)))  # built first
    size = len(payload)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await envelope(conn)
            with server_memory() as peak:
                # Stored (the capture keeps the message whole only after LAST)...
                await conn.send(f"BDAT {size}\r\n".encode())
                await conn.send(payload)
                stored = await conn.read_reply()
                # ... then, with no transaction, one refused and skipped.
                reset = await conn.command("RSET")
                await conn.send(f"BDAT {size}\r\n".encode())
                await conn.send(payload)
                refused = await conn.read_reply()
                grown = peak()
            assert (stored.code, reset.code, refused.code) == (250, 250, 503)
            assert (await conn.command("NOOP")).enhanced == "2.0.0"
    assert grown < MEMORY_BOUND, grown
    assert len(running.outbox) == 0
    assert spool_files(spool) == []  # RSET threw the stored chunk away


@pytest.mark.parametrize("piece", [1, 3, 64])
async def test_any_chunk_size_over_the_wire_stores_the_same_message(
    mailio_server: RunningServer, piece: int
) -> None:
    body = b"Subject: split\r\n\r\n" + b"a\r\n.\r\nb\rc\n" * 20 + b"end\r\n"
    chunks = [body[i : i + piece] for i in range(0, len(body), piece)]
    with trio.fail_after(WAIT):
        async with mailio_server.open_raw() as conn:
            await envelope(conn)
            # All pipelined in one write: every chunk right behind its command.
            await conn.send(
                b"".join(f"BDAT {len(c)}\r\n".encode() + c for c in chunks) + b"BDAT 0 LAST\r\n"
            )
            replies = [await conn.read_reply() for _ in range(len(chunks) + 1)]
            assert {r.code for r in replies} == {250}
        [captured] = await mailio_server.outbox.wait_for(1)
    # One chunk or many: the bytes DATA would store (bare CR/LF made CRLF).
    assert stored_body(captured.raw) == body.replace(b"\rc\n", b"\r\nc\r\n")
