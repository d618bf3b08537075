"""Reverse DNS, early talkers and per-address limits, over real loopback sockets.

Clients bind to distinct 127.0.0.x addresses (all of 127/8 is loopback) to
act as different hosts; DNS answers come from the loopback test DNS server.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import pytest
import trio
import trio.testing
from hostile_clients import connect_from

from mailio_trio import Config, DnsConfig, Limits, Server
from mailio_trio.config import ConfigError
from mailio_trio.testing import RawConnection, RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone


async def start_dns(nursery: trio.Nursery, zone: Zone) -> DnsConfig:
    host, port = await nursery.start(DnsServer(zone).serve)
    return DnsConfig(nameservers=[host], port=port, timeout=2.0)


async def send_one(conn: RawConnection, rcpt: str = "b@example.com") -> int:
    assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await conn.command(f"RCPT TO:<{rcpt}>")).code == 250
    assert (await conn.command("DATA")).code == 354
    return (await conn.command(b"Subject: x\r\n\r\nbody\r\n.")).code


# -- reverse DNS ---------------------------------------------------------------


def rdns_zone() -> Zone:
    zone = Zone()
    zone.ptr("127.0.0.1", "client.example")
    zone.a("client.example", "127.0.0.1")
    zone.ptr("127.0.0.2", "liar.example", "also-liar.example")
    zone.a("liar.example", "192.0.2.1")
    zone.ptr("127.0.0.3", "slow.example")
    zone.silent("3.0.0.127.in-addr.arpa")
    return zone


async def received_for(source: str, running: RunningServer) -> str:
    async with connect_from(source, running) as conn:
        assert (await conn.read_reply()).code == 220
        assert (await conn.command("EHLO helo.test")).code == 250
        assert await send_one(conn) == 250
    [captured] = await running.outbox.wait_for(1)
    running.outbox.clear()
    return str(captured.message["Received"])


async def test_confirmed_reverse_name_is_in_received(nursery: trio.Nursery) -> None:
    dns = await start_dns(nursery, rdns_zone())
    running = await start_capturing_server(nursery, Config(hostname="mx.test", dns=dns))
    received = await received_for("127.0.0.1", running)
    assert received.startswith("from helo.test (client.example [127.0.0.1])")


async def test_unconfirmed_reverse_name_is_not_used(nursery: trio.Nursery) -> None:
    dns = await start_dns(nursery, rdns_zone())
    running = await start_capturing_server(nursery, Config(hostname="mx.test", dns=dns))
    received = await received_for("127.0.0.2", running)
    assert received.startswith("from helo.test ([127.0.0.2])")


async def test_silent_dns_delays_greeting_only_up_to_the_rdns_timeout(
    nursery: trio.Nursery,
) -> None:
    dns = await start_dns(nursery, rdns_zone())
    config = Config(
        hostname="mx.test",
        dns=DnsConfig(nameservers=dns.nameservers, port=dns.port, timeout=60.0),
        plugins={"connect/rdns": {"timeout": 0.3}},
    )
    running = await start_capturing_server(nursery, config)
    with trio.fail_after(20):  # the 60 s DNS timeout would trip this; the 0.3 s rdns one not
        received = await received_for("127.0.0.3", running)
    assert received.startswith("from helo.test ([127.0.0.3])")


async def test_no_dns_config_means_no_rdns_handler() -> None:
    assert [h.name for h in Server(Config(hostname="mx.test")).chain.handlers("connect")] == [
        "core"
    ]
    with_dns = Server(Config(hostname="mx.test", dns=DnsConfig(nameservers=["127.0.0.1"])))
    assert [h.name for h in with_dns.chain.handlers("connect")] == ["core", "rdns"]
    switched_off = Server(
        Config(
            hostname="mx.test",
            dns=DnsConfig(nameservers=["127.0.0.1"]),
            plugins={"connect/rdns": False},
        )
    )
    assert [h.name for h in switched_off.chain.handlers("connect")] == ["core"]


def test_bad_plugin_setting_is_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^plugins\.connect/rdns\.timeout = -1: must be"):
        Server(Config(hostname="mx.test", plugins={"connect/rdns": {"timeout": -1}}))
    with pytest.raises(ConfigError, match=r"^plugins\.connect/pregreet\.dealy: unknown setting"):
        Server(Config(hostname="mx.test", plugins={"connect/pregreet": {"dealy": 1}}))


# -- early talkers -------------------------------------------------------------


def pregreet_config(delay: float = 0.5) -> Config:
    return Config(hostname="mx.test", plugins={"connect/pregreet": {"delay": delay}})


async def test_client_talking_before_greeting_is_refused(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_capturing_server(nursery, pregreet_config())
    caplog.set_level(logging.WARNING, logger="mailio_trio")
    async with running.open_raw() as conn:
        await conn.send(b"EHLO rude.test\r\nMAIL FROM:<spam@example.org>\r\n")
        reply = await conn.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.5.1")
        assert await conn.at_eof(timeout=10)
    assert "sent data before the greeting" in caplog.text


async def test_polite_client_is_greeted_after_the_delay(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(nursery, pregreet_config())
    async with running.open_raw() as conn:
        assert (await conn.read_reply()).code == 220
        assert (await conn.command("EHLO polite.test")).code == 250
        assert await send_one(conn) == 250


async def test_allowlisted_client_skips_the_pregreet_test(nursery: trio.Nursery) -> None:
    config = Config(
        hostname="mx.test",
        plugins={"connect/pregreet": {"delay": 30, "allowlist": ["127.0.0.0/8"]}},
    )
    running = await start_capturing_server(nursery, config)
    async with running.open_raw() as conn:
        with trio.fail_after(10):  # no 30 s hold for an allowlisted client
            assert (await conn.read_reply()).code == 220


# -- per-address limits ----------------------------------------------------------


async def test_flood_from_one_address_gets_421_beyond_the_limit(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(
        nursery, Config(hostname="mx.test", limits=Limits(connections_per_ip=10))
    )
    codes: list[int] = []
    first: list[RawConnection] = []
    async with AsyncExitStack() as stack:
        for _ in range(50):
            conn = await stack.enter_async_context(connect_from("127.0.0.1", running))
            reply = await conn.read_reply()
            codes.append(reply.code)
            if reply.code == 220:
                first.append(conn)
            if reply.code == 421:
                assert reply.enhanced == "4.7.0"
                assert await conn.at_eof(timeout=10)
        assert codes == [220] * 10 + [421] * 40
        # Another address is served while the first is at its limit.
        async with connect_from("127.0.0.2", running) as other:
            assert (await other.read_reply()).code == 220
            assert (await other.command("EHLO other.test")).code == 250
            assert await send_one(other) == 250
        # Once one of its connections ends, the first address may connect again.
        assert (await first[0].command("QUIT")).code == 221
        assert await first[0].at_eof(timeout=10)
        await trio.testing.wait_all_tasks_blocked()  # the server's session task has finished
        async with connect_from("127.0.0.1", running) as again:
            assert (await again.read_reply()).code == 220
            async with connect_from("127.0.0.1", running) as over:
                assert (await over.read_reply()).code == 421


async def test_connection_rate_per_address(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(
        nursery,
        Config(hostname="mx.test", limits=Limits(connections_per_ip=0, connection_rate_per_ip=3)),
    )
    codes = []
    for _ in range(5):
        async with connect_from("127.0.0.4", running) as conn:
            codes.append((await conn.read_reply()).code)
    assert codes == [220, 220, 220, 421, 421]
    async with connect_from("127.0.0.5", running) as conn:
        assert (await conn.read_reply()).code == 220


async def test_exempt_networks_are_not_limited(nursery: trio.Nursery) -> None:
    limits = Limits(connections_per_ip=1, per_ip_exempt=["127.0.0.6/31"])
    running = await start_capturing_server(nursery, Config(hostname="mx.test", limits=limits))
    async with connect_from("127.0.0.6", running) as a, connect_from("127.0.0.6", running) as b:
        assert (await a.read_reply()).code == 220
        assert (await b.read_reply()).code == 220
    async with connect_from("127.0.0.8", running) as a, connect_from("127.0.0.8", running) as b:
        assert (await a.read_reply()).code == 220
        assert (await b.read_reply()).code == 421


async def test_messages_per_connection(nursery: trio.Nursery) -> None:
    limits = Limits(messages_per_connection=2)
    running = await start_capturing_server(nursery, Config(hostname="mx.test", limits=limits))
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        assert await send_one(conn) == 250
        assert await send_one(conn) == 250
        reply = await conn.command("MAIL FROM:<a@example.org>")
        assert (reply.code, reply.enhanced) == (421, "4.7.0")
        assert await conn.at_eof(timeout=10)
    assert len(running.outbox) == 2


async def test_recipients_per_connection(nursery: trio.Nursery) -> None:
    limits = Limits(recipients_per_connection=3)
    running = await start_capturing_server(nursery, Config(hostname="mx.test", limits=limits))
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        await conn.command("MAIL FROM:<a@example.org>")
        assert (await conn.command("RCPT TO:<r1@example.com>")).code == 250
        assert (await conn.command("RCPT TO:<r2@example.com>")).code == 250
        assert (await conn.command("DATA")).code == 354
        assert (await conn.command(b"Subject: x\r\n\r\nbody\r\n.")).code == 250
        await conn.command("MAIL FROM:<a@example.org>")
        assert (await conn.command("RCPT TO:<r3@example.com>")).code == 250
        reply = await conn.command("RCPT TO:<r4@example.com>")
        assert (reply.code, reply.enhanced) == (452, "4.5.3")


def test_bad_exempt_network_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^limits\.per_ip_exempt = 'nope': must be networks"):
        Limits(per_ip_exempt=["nope"])
