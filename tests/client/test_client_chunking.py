"""The client's CHUNKING (RFC 3030): BDAT to a server that offers it, DATA to one that does not.

Our server offers CHUNKING; a ``bdat`` handler after ``bdat/core`` records
every ``BDAT`` argument it sees (and can refuse one), so each test knows
which way the body went. aiosmtpd offers no CHUNKING, so it must get DATA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from smtp_peers import PeerHandler, run_aiosmtpd

from mailio_trio import Config, Server
from mailio_trio.chain import Handler, Request, Response
from mailio_trio.client import BDAT_CHUNK_SIZE, SMTPReplyError, open_smtp_client
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.testing import RunningServer

WAIT = 30
# Dots at line starts and a lone "." line: BDAT sends them as they are, unstuffed.
BODY = b"Subject: chunks\r\n\r\n.leading dot\r\n.\r\n\xff 8-bit\r\nlast line\r\n"


@attrs.define
class BdatLog:
    """What the server's ``bdat`` chain saw; ``refuse_at`` refuses that chunk (1-based)."""

    arguments: list[str] = attrs.field(factory=list)
    refuse_at: int | None = None

    async def handler(self, req: Request, res: Response) -> None:
        self.arguments.append(req.argument)
        if len(self.arguments) == self.refuse_at:
            res.reject(452, "chunk refused for the test", "4.3.1")
        else:
            res.accept()


async def chunking_server(
    nursery: trio.Nursery, log: BdatLog, *, refuse: str | None = None
) -> RunningServer:
    server = Server(Config(hostname="mx.test", domains=["example.com"]))
    server.add_handler(Handler(command="bdat", name="log", func=log.handler, after=("core",)))
    if refuse is not None:

        async def refuse_one(req: Request, res: Response) -> None:
            assert req.to is not None
            if req.to.local_part == refuse:
                res.reject(550, "No such user", "5.1.1")
            else:
                res.accept()

        server.add_handler(Handler(command="rcpt", name="users", func=refuse_one))
    return await start_capturing_server(nursery, server=server)


def stored_body(raw: bytes) -> bytes:
    """The message as the client sent it: our Received: line (its first lines) taken off."""
    end = raw.index(b";\r\n\t") + 3
    return raw[raw.index(b"\r\n", end) + 2 :]


async def test_bdat_small_body_exact_and_unstuffed(nursery: trio.Nursery) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log)
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            assert smtp.supports("CHUNKING")
            assert smtp.supports("PIPELINING")
            result = await smtp.send_message("a@example.org", ["b@example.com"], BODY)
        [captured] = await running.outbox.wait_for(1)
    assert log.arguments == [f"{len(BODY)} LAST"]
    assert result.accepted == ["b@example.com"]
    assert result.data_reply is not None
    assert result.data_reply.code == 250
    assert stored_body(captured.raw) == BODY


async def test_bdat_five_mib_file_in_bounded_chunks(nursery: trio.Nursery, tmp_path: Path) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log)
    lines = b"".join(b".%07d line of the big message, dots first\r\n" % i for i in range(120_000))
    body = b"Subject: big\r\n\r\n" + lines
    body = body[: 5 * 1024 * 1024 - 2] + b"\r\n"  # exactly 5 MiB, CRLF-ended
    path = tmp_path / "big.eml"
    path.write_bytes(body)
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            result = await smtp.send_message("a@example.org", ["b@example.com"], path)
        [captured] = await running.outbox.wait_for(1)
    assert result.accepted == ["b@example.com"]
    count = len(body) // BDAT_CHUNK_SIZE
    assert log.arguments == [str(BDAT_CHUNK_SIZE)] * (count - 1) + [f"{BDAT_CHUNK_SIZE} LAST"]
    assert stored_body(captured.raw) == body


async def test_empty_body_is_bdat_zero_last(nursery: trio.Nursery) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log)
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            await smtp.send_message("a@example.org", ["b@example.com"], b"")
    assert log.arguments == ["0 LAST"]


async def test_pipelined_per_recipient_replies_with_bdat(nursery: trio.Nursery) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log, refuse="bob")
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            result = await smtp.send_message(
                "a@example.org", ["amy@example.com", "bob@example.com", "cy@example.com"], BODY
            )
            # The connection is still in step: a second transaction on it works.
            again = await smtp.send_message("a@example.org", ["cy@example.com"], BODY)
        await running.outbox.wait_for(2)
    assert result.accepted == ["amy@example.com", "cy@example.com"]
    refusal = result.refused["bob@example.com"]
    assert (refusal.code, refusal.enhanced) == (550, "5.1.1")
    assert again.accepted == ["cy@example.com"]
    assert log.arguments == [f"{len(BODY)} LAST"] * 2


async def test_all_refused_pipelined_chunk_is_swallowed(nursery: trio.Nursery) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log, refuse="bob")
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            result = await smtp.send_message("a@example.org", ["bob@example.com"], BODY * 3)
            assert result.data_reply is None
            assert result.accepted == []
            again = await smtp.send_message("a@example.org", ["amy@example.com"], BODY)
        [captured] = await running.outbox.wait_for(1)
    assert again.accepted == ["amy@example.com"]
    assert stored_body(captured.raw) == BODY


@pytest.mark.parametrize("refuse_at", [1, 3, 5])
async def test_refused_chunk_fails_the_message_and_keeps_step(
    nursery: trio.Nursery, refuse_at: int
) -> None:
    log = BdatLog(refuse_at=refuse_at)
    running = await chunking_server(nursery, log)
    body = b"Subject: x\r\n\r\n" + (b"y" * 62 + b"\r\n") * (BDAT_CHUNK_SIZE // 16)  # 5 chunks
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            with pytest.raises(SMTPReplyError) as caught:
                await smtp.send_message("a@example.org", ["b@example.com"], body)
            assert (caught.value.command, caught.value.code) == ("BDAT", 452)
            assert not caught.value.permanent
            # Every pipelined reply was read: the next transaction's replies are its own.
            log.refuse_at = None
            result = await smtp.send_message("a@example.org", ["b@example.com"], BODY)
        [captured] = await running.outbox.wait_for(1)
    assert result.accepted == ["b@example.com"]
    assert stored_body(captured.raw) == BODY


async def test_bare_lf_body_goes_by_bdat_and_the_server_normalises(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log)
    path = tmp_path / "lf.eml"
    path.write_bytes(b"Subject: lf\n\n.dot\nline\n")
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port) as smtp:
            await smtp.send_message("a@example.org", ["b@example.com"], path)
        [captured] = await running.outbox.wait_for(1)
    assert log.arguments == ["23 LAST"]
    assert stored_body(captured.raw) == b"Subject: lf\r\n\r\n.dot\r\nline\r\n"


async def test_chunking_off_uses_data(nursery: trio.Nursery) -> None:
    log = BdatLog()
    running = await chunking_server(nursery, log)
    with trio.fail_after(WAIT):
        async with open_smtp_client(running.host, running.port, chunking=False) as smtp:
            await smtp.send_message("a@example.org", ["b@example.com"], b"Subject: x\n\n.d\n")
        [captured] = await running.outbox.wait_for(1)
    assert log.arguments == []
    assert stored_body(captured.raw) == b"Subject: x\r\n\r\n.d\r\n"


async def test_peer_without_chunking_gets_data(tmp_path: Path) -> None:
    handler = PeerHandler()
    path = tmp_path / "m.eml"
    path.write_bytes(b"Subject: lf\n\n.dot\nline\r\n")
    async with run_aiosmtpd(handler=handler) as peer:
        handler.trio_token = trio.lowlevel.current_trio_token()
        with trio.fail_after(WAIT):
            async with open_smtp_client(peer.host, peer.port) as smtp:
                assert not smtp.supports("CHUNKING")
                result = await smtp.send_message("a@example.org", ["b@example.net"], path)
            [received] = await handler.wait_for(1)
    assert result.accepted == ["b@example.net"]
    assert received.content == b"Subject: lf\r\n\r\n.dot\r\nline\r\n"
