"""rcpt/greylist: 451 first, accepted after the delay; shared through Redis by two servers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from redis_server import RedisProcess

from mailio_trio import Server
from mailio_trio.config import Config, ConfigError
from mailio_trio.plugins.greylist import (
    ALLOWLISTED,
    GREYLISTED,
    PASSED,
    GreylistConfig,
    LocalGreylist,
    client_key,
)
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mailio_trio.protocol import Reply

HOST = "127.0.0.1"
DELAY = 0.3
# The test client is on loopback, which greylisting exempts by default.
GREYLIST: dict[str, Any] = {"delay": DELAY, "retry_window": 60, "exempt": []}


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    pytest.importorskip("redis")
    process = RedisProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _server(redis_url: str | None = None, **greylist: Any) -> Server:
    server = Server(
        Config(
            hostname="mx.test",
            domains=["test"],
            plugins={"rcpt/greylist": {**GREYLIST, **greylist}},
            redis={"url": redis_url} if redis_url else {},
        )
    )

    @server.handler("queue", after=("core",))
    async def keep(req: Any, res: Any) -> None:
        res.accept()

    return server


async def _attempt(port: int, sender: str = "a@client.test", data: bool = False) -> Reply:
    """One transaction up to RCPT's reply (and through DATA if asked and accepted)."""
    async with open_raw_connection(HOST, port) as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        await conn.command(f"MAIL FROM:<{sender}>")
        reply = await conn.command("RCPT TO:<u@test>")
        if data and reply.code == 250:
            assert (await conn.command("DATA")).code == 354
            await conn.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
            reply = await conn.read_reply()
        await conn.command("QUIT")
        return reply


async def _until_accepted(port: int) -> Reply:
    while (reply := await _attempt(port)).code != 250:  # the MTA's retry
        assert (reply.code, reply.enhanced) == (451, "4.7.1")
        await trio.sleep(DELAY / 3)
    return reply


async def test_a_first_attempt_is_greylisted_and_a_retry_after_the_delay_passes() -> None:
    server = _server()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            first = await _attempt(port)
            assert (first.code, first.enhanced) == (451, "4.7.1")
            await _until_accepted(port)
            assert (await _attempt(port, data=True)).code == 250  # passed: at once now
            # Another sender is another triplet: greylisted.
            assert (await _attempt(port, sender="b@client.test")).code == 451
            await server.aclose()


async def test_the_retry_is_accepted_by_the_other_server_through_redis(
    redis_process: RedisProcess,
) -> None:
    a, b = _server(redis_process.url), _server(redis_process.url)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port_a)] = await nursery.start(a.serve, HOST, 0)
            [(_, port_b)] = await nursery.start(b.serve, HOST, 0)
            assert (await _attempt(port_a)).code == 451
            assert (await _attempt(port_b)).code == 451  # B knows the triplet: still early
            await _until_accepted(port_b)
            assert (await _attempt(port_a, data=True)).code == 250
            await a.aclose()
            await b.aclose()


async def test_redis_stopped_mid_test_leaves_mail_flowing(redis_process: RedisProcess) -> None:
    server = _server(redis_process.url)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            assert (await _attempt(port)).code == 451
            redis_process.stop()
            assert (await _attempt(port, sender="new@client.test", data=True)).code == 250
            await server.aclose()


async def test_loopback_and_authenticated_clients_are_exempt_by_default() -> None:
    server = Server(
        Config(hostname="mx.test", domains=["test"], plugins={"rcpt/greylist": {"delay": 60}})
    )

    @server.handler("queue", after=("core",))
    async def keep(req: Any, res: Any) -> None:
        res.accept()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            assert (await _attempt(port)).code == 250
            await server.aclose()


def test_the_local_store_allowlists_a_network_after_n_passes() -> None:
    cfg = GreylistConfig(delay=10, retry_window=100, allowlist_after=2)
    store = LocalGreylist()
    client = client_key("192.0.2.77", exact=False)
    assert client == "192.0.2.0/24"
    assert store.check(client, "t1", cfg, now=0) == GREYLISTED
    assert store.check(client, "t1", cfg, now=5) == GREYLISTED
    assert store.check(client, "t1", cfg, now=10) == PASSED
    assert store.check(client, "t2", cfg, now=10) == GREYLISTED
    assert store.check(client, "t2", cfg, now=20) == PASSED  # the second pass
    assert store.check(client, "t3", cfg, now=21) == ALLOWLISTED
    # A retry after the window starts over.
    assert store.check("198.51.100.0/24", "t4", cfg, now=0) == GREYLISTED
    assert store.check("198.51.100.0/24", "t4", cfg, now=150) == GREYLISTED


def test_a_retry_window_shorter_than_the_delay_is_refused() -> None:
    with pytest.raises(ConfigError, match="retry_window"):
        Server(Config(plugins={"rcpt/greylist": {"delay": 600, "retry_window": 300}}))
