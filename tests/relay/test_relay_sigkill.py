"""The relay spool's at-least-once point under ``kill -9``: a real ``mailio-trio serve``.

The server runs as a subprocess (``serve --relay --dns-server``) on a spool in
``tmp_path``; this test process runs the DNS server (real packets on
loopback) and the remote MX (a capturing server with fault injection). The
server is killed with SIGKILL where it matters, restarted on the same spool,
and the message must arrive: never lost, at most the in-flight delivery
twice (``relay/spool.py`` documents the point), and no temporary file left.

No test sleeps for the server: each waits for the "listening on" line it
prints once bound, or for a log line it writes when an entry is done.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio
from serve_process import LISTENING

from mailio_trio import Config
from mailio_trio.chain import Handler, Request, Response
from mailio_trio.client import send
from mailio_trio.config import Limits
from mailio_trio.relay.spool import RecipientStatus, Spool
from mailio_trio.testing import RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

BODY = b"Subject: survive\r\nFrom: a@example.com\r\n\r\nthe body\r\n.leading dot\r\n"
QUEUED = re.compile(r"queued as ([0-9a-z-]+)")
WAIT = 30.0  # a bound on each wait, never a pause


@attrs.define(eq=False)
class ServeProcess:
    """A running ``mailio-trio serve`` and the log lines it has written so far."""

    process: trio.Process
    port: int = 0
    log: list[str] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def wait_for_log(self, needle: str) -> str:
        with trio.fail_after(WAIT):
            while True:
                for line in self.log:
                    if needle in line:
                        return line
                await self._changed.wait()

    def _add(self, line: str) -> None:
        self.log.append(line)
        self._changed.set()
        self._changed = trio.Event()

    async def kill(self) -> None:
        """SIGKILL: nothing in the server gets to run after it."""
        self.process.kill()
        await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL

    async def terminate(self) -> None:
        """SIGTERM: a graceful stop."""
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(WAIT):
            await self.process.wait()
        assert self.process.returncode == 0, self.log


async def _lines(stream: trio.abc.ReceiveStream, sink: ServeProcess | None) -> None:
    buffer = b""
    while chunk := await stream.receive_some(65536):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if sink is not None:
                sink._add(line.decode("utf-8", "replace"))


@asynccontextmanager
async def serve(cwd: Path, *args: str) -> AsyncIterator[ServeProcess]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "mailio_trio", "serve", "--listen", "127.0.0.1:0", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    running = ServeProcess(process)
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_lines, process.stderr, running)
            first = b""
            with trio.fail_after(WAIT):
                while not first.endswith(b"\n"):
                    chunk = await process.stdout.receive_some(1)
                    assert chunk, running.log  # exited before listening
                    first += chunk
            match = LISTENING.match(first.decode())
            assert match, first
            running.port = int(match.group(1))
            nursery.start_soon(_lines, process.stdout, None)
            try:
                yield running
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            await process.stdout.aclose()
            await process.stderr.aclose()


@attrs.define(eq=False)
class Remote:
    """The remote side: DNS for ``remote.test`` and its MX, both in this process."""

    zone: Zone
    mx: RunningServer
    body_arrived: trio.Event = attrs.field(factory=trio.Event)


async def start_remote(nursery: trio.Nursery) -> tuple[Remote, int]:
    # The MX holds a reply up to 10 s when asked to; give its handlers room for that.
    mx = await start_capturing_server(
        nursery,
        Config(
            hostname="mx.remote.test", domains=["remote.test"], limits=Limits(handler_timeout=60)
        ),
    )
    remote = Remote(Zone(), mx)

    async def arrived(req: Request, res: Response) -> None:
        remote.body_arrived.set()  # the whole body is here; the reply is not sent yet
        res.accept()

    mx.server.add_handler(Handler(command="queue", name="arrived", func=arrived, before=("fault",)))
    remote.zone.mx("remote.test", (10, "mx.remote.test"))
    remote.zone.a("mx.remote.test", mx.host)
    dns_host, dns_port = await nursery.start(DnsServer(remote.zone).serve)
    assert dns_host == "127.0.0.1"
    return remote, dns_port


def write_config(tmp_path: Path, mx_port: int) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(
        '[server]\nhostname = "mx.example.com"\ndomains = ["example.com"]\n'
        # The remote MX listens on a test port; retries come quickly.
        f"[relay]\nallow_unauthenticated = true\nport = {mx_port}\n"
        "retry_base_interval = 0.1\nconnect_timeout = 5.0\n"
    )
    return path


async def submit(port: int) -> str:
    result = await send("127.0.0.1", port, "a@example.com", ["b@remote.test"], BODY)
    assert result.data_reply is not None
    match = QUEUED.search(result.data_reply.text)
    assert match, result.data_reply
    return match.group(1)


def assert_nothing_left(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    assert list((spool / "relay" / "queue").iterdir()) == []
    assert list((spool / "relay" / "tmp").iterdir()) == []
    assert [p.name for p in spool.glob("mailio-*")] == []  # DATA bodies being received


async def test_sigkill_after_250_before_delivery(nursery: trio.Nursery, tmp_path: Path) -> None:
    remote, dns_port = await start_remote(nursery)
    config = write_config(tmp_path, remote.mx.port)
    flags = ("--config", str(config), "--relay", "--dns-server", f"127.0.0.1:{dns_port}")
    # The MX lookup never answers: whatever the worker has started, nothing is delivered.
    remote.zone.silent("remote.test")
    async with serve(tmp_path, *flags) as server:
        entry_id = await submit(server.port)
        await server.kill()  # right after our client read the 250
    [entry] = Spool(tmp_path / "spool" / "relay").entries_sync()
    assert entry.id == entry_id
    assert [r.status for r in entry.recipients] == [RecipientStatus.PENDING]
    assert remote.mx.messages == []

    remote.zone.mx("remote.test", (10, "mx.remote.test"))  # DNS answers again
    async with serve(tmp_path, *flags) as server:
        await server.wait_for_log(f"{entry_id}: done")
        await server.terminate()
    [delivered] = remote.mx.messages  # exactly once: it never reached the MX before
    assert delivered.envelope.recipients[0].domain == "remote.test"
    assert str(delivered.envelope.sender) == "a@example.com"
    assert delivered.raw.endswith(b"\r\n" + BODY)
    assert_nothing_left(tmp_path)


async def test_sigkill_during_delivery_delivers_again(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    remote, dns_port = await start_remote(nursery)
    config = write_config(tmp_path, remote.mx.port)
    flags = ("--config", str(config), "--relay", "--dns-server", f"127.0.0.1:{dns_port}")
    # The MX takes the whole body, then holds its final reply: the kill lands
    # between the remote MX having the message and our server recording it.
    remote.mx.delay_next("message", 1.0)
    async with serve(tmp_path, *flags) as server:
        entry_id = await submit(server.port)
        with trio.fail_after(WAIT):
            await remote.body_arrived.wait()
        await server.kill()
    [entry] = Spool(tmp_path / "spool" / "relay").entries_sync()
    assert entry.id == entry_id
    assert [r.status for r in entry.recipients] == [RecipientStatus.PENDING]  # not lost

    async with serve(tmp_path, *flags) as server:
        await server.wait_for_log(f"{entry_id}: done")
        await server.terminate()
    # The held copy is taken once the delay ends (its 250 went to a dead socket);
    # the restarted server sent the message again: at least once, at most twice.
    copies = await remote.mx.wait_for(2, timeout=WAIT)
    assert len(copies) == 2
    assert copies[0].raw.split(b"\r\n\r\n", 1)[1] == copies[1].raw.split(b"\r\n\r\n", 1)[1]
    for copy in copies:
        assert str(copy.envelope.sender) == "a@example.com"
        assert [str(r) for r in copy.envelope.recipients] == ["b@remote.test"]
        assert copy.raw.endswith(b"\r\n" + BODY)
    assert_nothing_left(tmp_path)
