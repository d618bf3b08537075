"""Flow control over real sockets: what the socket I/O fast path must get right.

Each test runs over both I/O paths (see ``conftest.py``).
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
from typing import TYPE_CHECKING

import trio

from mailio_trio import chain as chain_module
from mailio_trio import plugins

if TYPE_CHECKING:
    import pytest

    from mailio_trio.chain import Request, Response
    from mailio_trio.testing import RunningServer


async def test_pipelined_flood_with_a_slow_reader_gets_every_reply_in_order(
    mailio_server: RunningServer,
) -> None:
    # Far more replies than the socket buffers hold while the client is not
    # reading: the server must wait for writability, then carry on in order.
    count = 40_000
    received = bytearray()
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")

        async def flood() -> None:
            await conn.send(b"NOOP\r\n" * count + b"RSET\r\n")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await trio.lowlevel.checkpoint()  # the flood starts before we read
            while not received.endswith(b"250 2.0.0 Reset OK\r\n"):
                chunk = await conn.stream.receive_some(65536)
                assert chunk
                received += chunk
    assert received.count(b"250 2.0.0 OK\r\n") == count
    assert received.count(b"\r\n") == count + 1


async def test_replies_to_drained_pipelined_input_go_out_in_one_write(
    mailio_server: RunningServer,
    socket_io_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[bytes] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        writes.clear()
        await conn.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nNOOP\r\nRSET\r\n")
        for _ in range(4):
            assert (await conn.read_reply()).code == 250
    if socket_io_path == "fast-io":
        assert len(writes) == 1
        assert writes[0].count(b"\r\n") == 4
    else:
        assert writes == []  # the Trio stream path never touches the fd directly


def test_core_handlers_marked_never_waits_contain_no_await() -> None:
    # A handler in NEVER_WAITS runs without its handler_timeout scope; one that
    # awaited could then block a session forever.
    marked = [
        f
        for f in chain_module.NEVER_WAITS
        if getattr(f, "__module__", "").startswith(plugins.__name__)
    ]
    # Every core plugin but the two that talk to the client mid-command is marked.
    unmarked = {p.__name__.rpartition(".")[2] for p in plugins.CORE_PLUGINS} - {
        f.__module__.rpartition(".")[2] for f in marked
    }
    assert unmarked == {"starttls", "auth"}
    for func in marked:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))  # type: ignore[arg-type]
        awaits = [
            n for n in ast.walk(tree) if isinstance(n, ast.Await | ast.AsyncFor | ast.AsyncWith)
        ]
        assert awaits == [], func


async def test_idle_timer_never_cuts_a_command_or_data_short(nursery: trio.Nursery) -> None:
    # Between two command waits the idle scope keeps the last wait's deadline
    # (Connection.disarm_idle); a handler that waits and a DATA body that takes
    # its time must still never be cut off by it. The client idles for 0.2 s of
    # the 1 s idle_timeout, then the work runs past the second the idle timer
    # counted from the start of that wait.
    from mailio_trio import Config, Limits
    from mailio_trio.testing import start_capturing_server

    running = await start_capturing_server(
        nursery, Config(hostname="mx.test", limits=Limits(idle_timeout=1.0))
    )

    @running.server.handler("noop", "slow")
    async def slow(req: Request, res: Response) -> None:
        await trio.sleep(1.2)
        res.accept()

    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await trio.sleep(0.2)
        assert (await conn.command("NOOP")).code == 250
        await conn.command("MAIL FROM:<a@example.org>")
        await conn.command("RCPT TO:<b@example.com>")
        await trio.sleep(0.2)
        assert (await conn.command("DATA")).code == 354
        await conn.send(b"Subject: slow\r\n\r\nfirst half\r\n")
        await trio.sleep(1.2)
        assert (await conn.command(b"second half\r\n.")).code == 250
        assert (await conn.command("QUIT")).code == 221
    [captured] = await running.outbox.wait_for(1)
    assert captured.raw.endswith(b"first half\r\nsecond half\r\n")
