"""A fleet: a real HAProxy (``send-proxy-v2``, round robin) in front of two ``mailio-trio serve``.

Each node is its own process with its own spool and maildirs and its own
``hostname`` (so a greeting or a ``Received:`` line says which node answered);
the per-address limit is shared through a real ``redis-server`` or, without
one, counted by each node alone. Clients bind 127.0.0.2 and 127.0.0.3; the
balancer is 127.0.0.1, the only trusted network. HAProxy runs one thread, so
its round robin is one strict rotation over the two nodes.

Skips without haproxy or redis-server, unless ``MAILIO_REQUIRE_HAPROXY=1`` /
``MAILIO_REQUIRE_REDIS=1`` (``.ci/run``), where it fails instead.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import re
import select
import signal
import smtplib
import subprocess
import sys
from collections import Counter
from email.message import EmailMessage
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from haproxy_process import haproxy_binary, run_haproxy
from redis_server import RedisProcess, redis_binary

from mailio_trio.testing import RawConnection

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytest.importorskip("redis")

WAIT = 30  # seconds: an upper bound for anything here, never expected
LISTENING = re.compile(r"^mailio-trio: listening on 127\.0\.0\.1:(\d+); ")
HOSTNAMES = ("node1.test", "node2.test")


@attrs.frozen
class Node:
    """One ``mailio-trio serve`` process of the fleet, as the test sees it from outside."""

    hostname: str
    port: int
    directory: Path

    def log(self) -> str:
        return (self.directory / "serve.log").read_text()

    def messages(self) -> list[EmailMessage]:
        """Every message this node stored, in any maildir under its own root."""
        return [
            email.message_from_bytes(
                path.read_bytes(), _class=EmailMessage, policy=email.policy.SMTP
            )
            for path in sorted((self.directory / "mail").glob("*/*/new/*"))
        ]


@contextlib.contextmanager
def run_node(directory: Path, hostname: str, redis_url: str | None) -> Iterator[Node]:
    """``mailio-trio serve`` with a generated config; stopped (SIGTERM, then SIGKILL) on exit."""
    directory.mkdir()
    redis = f'\n[redis]\nurl = "{redis_url}"\n' if redis_url else ""
    config = directory / "mailio.toml"
    config.write_text(
        f"""\
[server]
hostname = "{hostname}"
domains = ["example.com"]
proxy_protocol = true
proxy_trusted = ["127.0.0.1/32"]

[limits]
connections_per_ip = 2
{redis}"""
    )
    command = [
        sys.executable, "-m", "mailio_trio", "serve",
        "--config", str(config),
        "--listen", "127.0.0.1:0",
        "--maildir", str(directory / "mail"),
        "--spool", str(directory / "spool"),
    ]  # fmt: skip
    with (directory / "serve.log").open("wb") as log:
        # Its own process group: nothing it starts outlives the test.
        proc = subprocess.Popen(
            command,
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        assert proc.stdout is not None
        # Bounded: the "listening on" line, or the process's exit (EOF), or WAIT.
        ready, _, _ = select.select([proc.stdout], [], [], WAIT)
        line = proc.stdout.readline().decode() if ready else ""
        match = LISTENING.match(line)
        assert match, (line, proc.poll(), (directory / "serve.log").read_text())
        yield Node(hostname, int(match.group(1)), directory)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def fleet(directory: Path, *, shared: bool) -> Iterator[tuple[int, list[Node]]]:
    """Redis (if ``shared``), two nodes, HAProxy before them; yields its port and the nodes."""
    haproxy_binary()  # skip (or fail) before anything starts
    with contextlib.ExitStack() as stack:
        url = None
        if shared:
            redis_binary()
            redis = RedisProcess(directory)
            stack.callback(redis.stop)
            redis.start()
            url = redis.url
        nodes = [stack.enter_context(run_node(directory / name, name, url)) for name in HOSTNAMES]
        port = stack.enter_context(run_haproxy(directory, [n.port for n in nodes]))
        yield port, nodes


@contextlib.asynccontextmanager
async def connect_from(source: str, port: int) -> AsyncIterator[RawConnection]:
    """A raw connection to the balancer whose client socket is bound to ``source``."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    with sock:
        await sock.bind((source, 0))
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
        try:
            yield RawConnection(stream)
        finally:
            await trio.aclose_forcefully(stream)


async def wait_for_balancer(port: int) -> None:
    """Until HAProxy listens and a node greets through it (one turn of its rotation)."""
    while True:
        try:
            async with connect_from("127.0.0.1", port) as probe:
                if (await probe.read_reply()).code == 220:
                    await probe.command("QUIT")
                    return
        except (OSError, EOFError):
            pass
        await trio.sleep(0.05)  # HAProxy still starting: nothing to wait on but the port


async def greeted_by(conn: RawConnection) -> str:
    """The hostname in a node's ``220`` greeting (the reply must be a 220)."""
    reply = await conn.read_reply()
    assert reply.code == 220, reply
    return str(reply.text).split()[0]


async def assert_refused(conn: RawConnection) -> None:
    reply = await conn.read_reply()
    assert (reply.code, reply.enhanced) == (421, "4.7.0")
    assert await conn.at_eof()


def _send(port: int, source: str, number: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=WAIT) as smtp:
        smtp.ehlo("a.test")
        smtp.sendmail(
            "a@example.org",
            ["b@example.com"],
            f"Subject: {source} #{number}\r\n\r\nthrough the balancer\r\n".encode(),
        )


async def test_each_node_stores_and_logs_the_real_client_address(tmp_path: Path) -> None:
    with fleet(tmp_path, shared=True) as (port, nodes), trio.fail_after(WAIT):
        await wait_for_balancer(port)
        # One after the other: the rotation gives each node one from each address.
        for number, source in enumerate(["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]):
            await trio.to_thread.run_sync(_send, port, source, number)
    # maildir delivery is fsync'd before its 250: everything is on disk now.
    for node in nodes:
        stored = node.messages()
        sources = sorted(str(m["Subject"]).split()[0] for m in stored)
        assert sources == ["127.0.0.2", "127.0.0.3"], (node.hostname, sources)
        log = node.log()
        for message in stored:
            source = str(message["Subject"]).split()[0]
            received = str(message["Received"])
            assert received.startswith(f"from a.test ([{source}])"), received
            assert f"by {node.hostname}" in received
            # The operators' mail log names the client, not the balancer.
            assert re.search(rf"event=message .* client=\S*\[{re.escape(source)}\]", log), log
        assert "status=accepted" in log


async def test_the_per_address_limit_holds_across_the_fleet_with_redis(tmp_path: Path) -> None:
    with fleet(tmp_path, shared=True) as (port, nodes), trio.fail_after(WAIT):
        await wait_for_balancer(port)
        async with connect_from("127.0.0.2", port) as one, connect_from("127.0.0.2", port) as two:
            # One on each node: neither node alone is at the limit of 2.
            assert {await greeted_by(one), await greeted_by(two)} == set(HOSTNAMES)
            for _ in nodes:  # the third from 127.0.0.2, at one node and then the other
                async with connect_from("127.0.0.2", port) as third:
                    await assert_refused(third)
            async with connect_from("127.0.0.3", port) as other:
                assert await greeted_by(other) in HOSTNAMES
                assert (await other.command("EHLO b.test")).code == 250
            assert (await one.command("EHLO a.test")).code == 250
            assert (await two.command("EHLO a.test")).code == 250
    for node in nodes:  # each node refused one, counting the other's connection too
        assert "refused 127.0.0.2" in node.log(), node.log()


async def test_without_redis_the_limit_is_per_node(tmp_path: Path) -> None:
    with fleet(tmp_path, shared=False) as (port, nodes), trio.fail_after(WAIT):
        await wait_for_balancer(port)
        async with contextlib.AsyncExitStack() as stack:
            served = Counter[str]()
            # Four at once from one address, two limit's worth at each node.
            for _ in range(4):
                conn = await stack.enter_async_context(connect_from("127.0.0.2", port))
                served[await greeted_by(conn)] += 1
                assert (await conn.command("EHLO a.test")).code == 250
            assert served == dict.fromkeys(HOSTNAMES, 2)
            # The fifth reaches a node that has two: refused there.
            async with connect_from("127.0.0.2", port) as fifth:
                await assert_refused(fifth)
    assert sum("refused 127.0.0.2" in node.log() for node in nodes) == 1
