"""``mailio-trio queue flush`` / ``bounce`` are acted on by a running server at once (#13 item 16).

The server's scan interval and retry back-off are an hour here: only the
spool's ``flush`` file, which the CLI makes and the worker polls for, can
bring the retry or the bounce within the test's deadline.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio
from smtp_peers import BODY, PeerHandler, free_port_on, run_aiosmtpd, start_relaying_server

from mailio_trio.cli import main
from mailio_trio.client import send
from mailio_trio.relay.spool import Spool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from mailio_trio.testing import RunningServer

WAIT = 20  # seconds: an upper bound, never expected
HOUR = 3600.0


@asynccontextmanager
async def relay_setup(
    nursery: trio.Nursery, tmp_path: Path, port: int
) -> AsyncIterator[RunningServer]:
    yield await start_relaying_server(
        nursery, tmp_path, port, retry_base_interval=HOUR, scan_interval=HOUR, connect_timeout=5.0
    )


async def _wait_attempted(spool: Spool) -> str:
    """The one entry's id, once its first attempt is recorded."""
    while True:
        entries = await trio.to_thread.run_sync(spool.entries_sync)
        if entries and entries[0].attempts >= 1:
            return entries[0].id
        await trio.sleep(0.02)


async def test_flush_retries_at_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    handler = PeerHandler(data_replies=["451 4.3.0 try again later"])
    spool = Spool(tmp_path / "spool")
    with trio.fail_after(WAIT):
        async with (
            run_aiosmtpd("127.0.0.2", port=port, handler=handler) as peer,
            relay_setup(nursery, tmp_path, port) as running,
        ):
            await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
            await _wait_attempted(spool)
            argv = ["queue", "flush", "--spool-dir", str(spool.root)]  # options after the action
            assert await trio.to_thread.run_sync(main, argv) == 0
            await peer.handler.wait_for(1)
    assert handler.data_replies == []
    assert len(peer.handler.received) == 1


async def test_bounce_is_sent_at_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    handler = PeerHandler(data_replies=["451 4.3.0 try again later"] * 5)
    spool = Spool(tmp_path / "spool")
    with trio.fail_after(WAIT):
        async with (
            run_aiosmtpd("127.0.0.2", port=port, handler=handler),
            relay_setup(nursery, tmp_path, port) as running,
        ):
            await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
            entry_id = await _wait_attempted(spool)
            argv = ["queue", "--spool-dir", str(spool.root), "bounce", entry_id]
            assert await trio.to_thread.run_sync(main, argv) == 0
            [dsn] = [m for m in await running.wait_for(2) if m.sender in ("", None)]
    assert dsn.recipients == ["a@example.com"]
