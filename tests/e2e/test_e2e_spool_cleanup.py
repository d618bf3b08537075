"""The DATA spool file is removed whatever the queue chain answers, over SMTP (#19, spot 7).

``tests/test_send_mail.py`` checks ``spool_dir`` is empty after refused
submissions through ``Server.send_mail``; a message received over a socket
goes another way in (``plugins/data.py``), so the same is checked here on a
raw connection: refused (``554``), a handler that raises (``451``), accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.chain import Request, Response

WAIT = 20  # seconds: an upper bound for anything to happen, never expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [("spam", (554, "5.7.1")), ("boom", (451, "4.3.0")), ("fine", (250, "2.0.0"))],
)
async def test_spool_dir_is_empty_after_the_queue_chain_answered(
    nursery: trio.Nursery,
    tmp_path: Path,
    subject: str,
    expected: tuple[int, str],
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = Server(Config(hostname="mx.test", domains=["example.com"], spool_dir=data))

    @server.handler("queue")
    async def judge(req: Request, res: Response) -> None:
        assert req.message is not None
        body = await trio.to_thread.run_sync(req.message.read_bytes)
        if b"Subject: spam" in body:
            res.reject(554, "5.7.1 no spam here")
        elif b"Subject: boom" in body:
            raise RuntimeError("a queue handler's bug")
        else:
            res.accept()

    running = await start_capturing_server(nursery, server=server)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await conn.read_reply()
            await conn.command("EHLO client.test")
            await conn.command("MAIL FROM:<a@example.org>")
            await conn.command("RCPT TO:<b@example.com>")
            assert (await conn.command("DATA")).code == 354
            # The spool file exists while the body streams in.
            await conn.send(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
            reply = await conn.command(b".")
            after = sorted(p.name for p in data.iterdir())
            # The session goes on: the next transaction starts clean too.
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
    assert (reply.code, reply.enhanced) == expected
    assert after == []
    assert len(running.messages) == (subject == "fine")
