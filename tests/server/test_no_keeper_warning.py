"""A server whose accepted mail goes nowhere says so at start, with the fix."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from mailio_trio import Config, Server

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from mailio_trio.chain import Request, Response


async def start_and_stop(server: Server) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, "127.0.0.1", 0)
            await server.aclose()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_no_keeping_handler_is_a_warning_naming_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_and_stop(Server(Config(hostname="mx.test")))
    [warning] = [w for w in warnings(caplog) if "not kept" in w]
    assert "maildir" in warning
    assert "queue handler" in warning


async def test_maildir_or_a_queue_handler_or_discard_is_no_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    await start_and_stop(
        Server(Config(hostname="mx.test", maildir={"enabled": True, "root": str(tmp_path)}))
    )
    await start_and_stop(Server(Config(hostname="mx.test"), discard=True))
    server = Server(Config(hostname="mx.test"))

    @server.handler("queue")
    async def archive(req: Request, res: Response) -> None:
        res.accept()

    await start_and_stop(server)
    assert not [w for w in warnings(caplog) if "not kept" in w]
