"""``res.log`` has mail-io's levels: ``verbose`` (15, between DEBUG and INFO) and ``warn``."""

from __future__ import annotations

import logging
import smtplib
import warnings
from typing import TYPE_CHECKING

import trio

from mailio_trio import Config, Request, Response, Server
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    import pytest


def test_verbose_is_a_registered_level_between_debug_and_info() -> None:
    from mailio_trio.chain import VERBOSE

    assert VERBOSE == 15
    assert logging.getLevelName(15) == "VERBOSE"
    assert logging.DEBUG < VERBOSE < logging.INFO


async def test_res_log_verbose_and_warn_reach_the_log_tagged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(Config(hostname="mx.test", domains=["example.com"]))

    @server.handler("rcpt", "chatty")
    async def chatty(req: Request, res: Response) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warn is an alias here, not a deprecation
            res.log.verbose("recipient %s", req.to)
            res.log.warn("looks odd: %s", req.to)
        res.accept()

    running = await start_capturing_server(nursery, server=server)
    caplog.set_level(15, logger="mailio_trio")

    def send() -> None:
        with smtplib.SMTP(running.host, running.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")

    with trio.fail_after(10):
        await trio.to_thread.run_sync(send)
    mine = [r for r in caplog.records if "rcpt/chatty" in r.getMessage()]
    assert [(r.levelname, r.getMessage().split("] ", 1)[1]) for r in mine] == [
        ("VERBOSE", "recipient b@example.com"),
        ("WARNING", "looks odd: b@example.com"),
    ]
