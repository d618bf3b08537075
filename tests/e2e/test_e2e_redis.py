"""Per-address limits and AUTH lockout shared by two servers through a real Redis."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import pytest
import trio
from redis_server import RedisProcess

from mailio_trio import Server
from mailio_trio.config import Config
from mailio_trio.server._admission import Admission
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytest.importorskip("redis")

HOST = "127.0.0.1"


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _server(url: str, **redis: object) -> Server:
    return Server(
        Config(
            hostname="mx.test",
            domains=["test"],
            limits={"connections_per_ip": 2},
            redis={"url": url, **redis},
        )
    )


async def test_the_per_address_limit_holds_across_two_servers(
    redis_process: RedisProcess,
) -> None:
    a, b = _server(redis_process.url), _server(redis_process.url)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port_a)] = await nursery.start(a.serve, HOST, 0)
            [(_, port_b)] = await nursery.start(b.serve, HOST, 0)
            async with open_raw_connection(HOST, port_a) as first:
                assert (await first.read_reply()).code == 220
                async with open_raw_connection(HOST, port_b) as second:
                    assert (await second.read_reply()).code == 220
                    for port in (port_a, port_b):  # the third, at either server
                        async with open_raw_connection(HOST, port) as third:
                            reply = await third.read_reply()
                            assert (reply.code, reply.enhanced) == (421, "4.7.0")
                    await second.command("QUIT")
                    assert await second.at_eof()
                # The slot the second gave back is free again, at the other server.
                with trio.fail_after(5):
                    while True:
                        async with open_raw_connection(HOST, port_a) as again:
                            if (await again.read_reply()).code == 220:
                                break
                        await trio.sleep(0.01)  # the release is in flight
            await a.aclose()
            await b.aclose()


async def test_a_crashed_servers_slots_expire(redis_process: RedisProcess) -> None:
    crashed = _server(redis_process.url, slot_ttl=0.3)
    assert crashed._fleet is not None
    with trio.fail_after(20):
        # Two connections admitted and never released: their node died.
        for _ in range(2):
            admission, slot = await crashed._fleet.admit("192.0.2.7")
            assert admission is Admission.ADMITTED
            assert slot is not None
        survivor = _server(redis_process.url, slot_ttl=0.3)
        assert survivor._fleet is not None
        admission, _ = await survivor._fleet.admit("192.0.2.7")
        assert admission is Admission.TOO_MANY_CONCURRENT
        while (await survivor._fleet.admit("192.0.2.7"))[0] is not Admission.ADMITTED:  # noqa: ASYNC110  # Redis keeps the clock
            await trio.sleep(0.05)  # Redis's clock passes the slots' expiry


async def test_auth_failures_lock_an_address_out_everywhere(redis_process: RedisProcess) -> None:
    a = _server(redis_process.url, auth_lockout_failures=3)
    b = _server(redis_process.url, auth_lockout_failures=3)
    assert a._fleet is not None
    assert b._fleet is not None
    with trio.fail_after(20):
        await a._fleet.release("192.0.2.8", None, auth_failures=2)
        assert (await b._fleet.admit("192.0.2.8"))[0] is Admission.ADMITTED
        await b._fleet.release("192.0.2.8", None, auth_failures=1)
        assert (await a._fleet.admit("192.0.2.8"))[0] is Admission.AUTH_LOCKOUT
        assert (await a._fleet.admit("192.0.2.9"))[0] is Admission.ADMITTED


async def test_redis_down_fails_open_with_a_warning(
    redis_process: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    server = _server(redis_process.url)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            redis_process.stop()
            with caplog.at_level(logging.WARNING, logger="mailio_trio.abuse"):
                for _ in range(3):  # one after the other: the local limit of 2 holds them
                    async with open_raw_connection(HOST, port) as conn:
                        assert (await conn.read_reply()).code == 220
                        assert (await conn.command("QUIT")).code == 221
            await server.aclose()
    warnings = [r for r in caplog.records if r.name == "mailio_trio.abuse"]
    assert warnings
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "fail open" in warnings[0].getMessage()


async def test_failed_auth_at_one_server_locks_the_address_out_at_the_other(
    redis_process: RedisProcess,
) -> None:
    from mailio_trio.passwords import hash_password

    def server() -> Server:
        return Server(
            Config(
                hostname="mx.test",
                domains=["test"],
                auth={"allow_insecure": True, "users": {"alice": hash_password("pw", log_n=4)}},
                redis={"url": redis_process.url, "auth_lockout_failures": 2},
            )
        )

    a, b = server(), server()
    wrong = base64.b64encode(b"\0alice\0wrong").decode()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port_a)] = await nursery.start(a.serve, HOST, 0)
            [(_, port_b)] = await nursery.start(b.serve, HOST, 0)
            async with open_raw_connection(HOST, port_a) as conn:
                await conn.read_reply()
                await conn.command("EHLO client.test")
                for _ in range(2):
                    assert (await conn.command(f"AUTH PLAIN {wrong}")).code == 535
                await conn.command("QUIT")
                assert await conn.at_eof()
            with trio.fail_after(5):
                while True:  # the failures are added as the session ends
                    async with open_raw_connection(HOST, port_b) as conn:
                        reply = await conn.read_reply()
                    if reply.code == 421:
                        break
                    await trio.sleep(0.01)
            assert reply.enhanced == "4.7.0"
            assert "failed authentications" in reply.text
            await a.aclose()
            await b.aclose()
