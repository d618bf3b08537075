"""``res.get("command")`` is mail-io's: the map of handler name → value for that command."""

from __future__ import annotations

import smtplib
from typing import Any

import trio

from mailio_trio import Config, Request, Response, Server
from mailio_trio.testing import start_capturing_server


async def test_res_get_of_a_command_is_the_map_of_its_handlers_values(
    nursery: trio.Nursery,
) -> None:
    server = Server(Config(hostname="mx.test", domains=["example.com"]))
    seen: list[Any] = []

    @server.handler("queue", "spamd")
    async def fake_spamd(req: Request, res: Response) -> None:
        res.set({"score": 1.5})
        res.accept()

    @server.handler("queue", "virus", after="spamd")
    async def virus(req: Request, res: Response) -> None:
        res.set("clean")
        res.accept()

    @server.handler("queue", "reader", after="virus")
    async def reader(req: Request, res: Response) -> None:
        seen.append(res.get("queue"))
        seen.append(res.get("queue/spamd"))
        seen.append(res.get("rcpt"))
        res.accept()

    running = await start_capturing_server(nursery, server=server)

    def send() -> None:
        with smtplib.SMTP(running.host, running.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")

    with trio.fail_after(10):
        await trio.to_thread.run_sync(send)
    queue_map, spamd, rcpt_map = seen
    assert queue_map == {"spamd": {"score": 1.5}, "virus": "clean"}
    assert queue_map["spamd"] == spamd  # the mail-io README's res.get('queue')['spamd']
    assert rcpt_map == {}  # nothing stored for rcpt: an empty map, not None
