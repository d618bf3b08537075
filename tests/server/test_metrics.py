"""Prometheus metrics and health checks: what a scrape shows after real SMTP traffic."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest
import trio
from http_get import http_get, http_request

from mailio_trio import Server
from mailio_trio.config import Config, ConfigError
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.chain import Request, Response
    from mailio_trio.testing import RawConnection

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

HOST = "127.0.0.1"


def _server(**kwargs: object) -> Server:
    config = Config(
        hostname="mx.test",
        domains=["test"],
        metrics={"listen": f"{HOST}:0", "request_timeout": 1.0},
        **kwargs,  # type: ignore[arg-type]  # Config's sections, per test
    )
    server = Server(config)
    kept: list[bytes] = []

    @server.handler("queue", after=("core",))
    async def keep(req: Request, res: Response) -> None:
        assert req.message is not None
        await trio.lowlevel.checkpoint()  # it may wait: timed by the histogram
        kept.append(req.message.path.read_bytes())
        res.accept()

    @server.handler("rcpt", after=("core",))
    async def nobody(req: Request, res: Response) -> None:
        assert req.to is not None
        if req.to.local_part == "nobody":
            res.reject(550, "5.1.1 No such user")
        else:
            res.accept()

    return server


async def _send(conn: RawConnection, recipient: str, body: bytes) -> int:
    await conn.read_reply()
    assert (await conn.command("EHLO client.test")).code == 250
    assert (await conn.command("MAIL FROM:<a@client.test>")).code == 250
    if (reply := await conn.command(f"RCPT TO:<{recipient}>")).code != 250:
        await conn.command("QUIT")
        return reply.code
    assert (await conn.command("DATA")).code == 354
    await conn.send(body + b".\r\n")
    code = (await conn.read_reply()).code
    await conn.command("QUIT")
    return code


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_a_scrape_counts_connections_commands_messages_and_waiting_handlers() -> None:
    server = _server()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            [(_, mport)] = await nursery.start(server.serve_metrics)
            for recipient in ("u@test", "v@test", "nobody@test"):
                async with open_raw_connection(HOST, port) as conn:
                    await _send(conn, recipient, b"Subject: x\r\n\r\n" + b"y" * 100 + b"\r\n")
            status, text = await http_get(HOST, mport, "/metrics")
            await server.aclose()
            nursery.cancel_scope.cancel()
    assert status == 200
    got = _samples(text)
    assert got["mailio_connections_total", ()] == 3
    assert got["mailio_messages_total", (("outcome", "accepted"),)] == 2
    assert got["mailio_messages_total", (("outcome", "refused"),)] == 0
    assert got["mailio_message_bytes_total", ()] > 2 * 100
    assert got["mailio_commands_total", (("command", "rcpt"), ("reply", "2xx"))] == 2
    assert got["mailio_commands_total", (("command", "rcpt"), ("reply", "5xx"))] == 1
    assert got["mailio_commands_total", (("command", "ehlo"), ("reply", "2xx"))] == 3
    assert got["mailio_commands_total", (("command", "data"), ("reply", "3xx"))] == 2
    # Waiting handlers are timed, never_waits ones (rcpt/core, mail/core) are not.
    assert got["mailio_handler_seconds_count", (("handler", "queue/keep"),)] == 2
    assert got["mailio_handler_seconds_count", (("handler", "rcpt/nobody"),)] == 3
    assert ("mailio_handler_seconds_count", (("handler", "rcpt/core"),)) not in got
    assert got["mailio_ready", ()] == 1


async def test_per_address_refusals_are_counted_by_reason() -> None:
    server = _server(limits={"connections_per_ip": 1})
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            [(_, mport)] = await nursery.start(server.serve_metrics)
            async with open_raw_connection(HOST, port) as first:
                assert (await first.read_reply()).code == 220
                async with open_raw_connection(HOST, port) as second:
                    reply = await second.read_reply()
                    assert (reply.code, reply.enhanced) == (421, "4.7.0")
            _, text = await http_get(HOST, mport, "/metrics")
            await server.aclose()
            nursery.cancel_scope.cancel()
    got = _samples(text)
    assert got["mailio_connections_refused_total", (("reason", "too_many_concurrent"),)] == 1


async def test_readyz_answers_503_while_a_graceful_shutdown_drains() -> None:
    server = _server(limits={"shutdown_grace": 30})
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            [(_, mport)] = await nursery.start(server.serve_metrics)
            assert await http_get(HOST, mport, "/readyz") == (200, "ready\n")
            assert await http_get(HOST, mport, "/healthz") == (200, "ok\n")
            async with open_raw_connection(HOST, port) as conn:
                await conn.read_reply()
                await conn.command("EHLO client.test")
                await conn.command("MAIL FROM:<a@client.test>")
                await conn.command("RCPT TO:<u@test>")
                assert (await conn.command("DATA")).code == 354
                await conn.send(b"Subject: slow\r\n\r\n")
                server.shutdown()  # the message in DATA may finish: the server drains
                assert await http_get(HOST, mport, "/readyz") == (503, "draining\n")
                assert await http_get(HOST, mport, "/healthz") == (200, "ok\n")
                await conn.send(b"body\r\n.\r\n")
                assert (await conn.read_reply()).code == 250
            await server.wait_stopped()
            assert (await http_get(HOST, mport, "/readyz"))[0] == 503
            nursery.cancel_scope.cancel()


async def test_the_http_responder_refuses_what_it_does_not_serve() -> None:
    server = _server()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, mport)] = await nursery.start(server.serve_metrics)
            assert (await http_get(HOST, mport, "/nope"))[0] == 404
            post = b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
            assert (await http_request(HOST, mport, post))[0] == 405
            huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n"
            assert (await http_request(HOST, mport, huge))[0] == 431
            assert (await http_request(HOST, mport, b"nonsense\r\n\r\n"))[0] == 400
            # A scraper that never finishes its headers is answered 408 after request_timeout.
            assert (await http_request(HOST, mport, b"GET /metrics HTTP/1.1\r\n"))[0] == 408
            status, body = await http_request(HOST, mport, b"HEAD /healthz HTTP/1.0\r\n\r\n")
            assert (status, body) == (200, b"")
            nursery.cancel_scope.cancel()


def test_metrics_listen_must_be_host_port() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        Config(metrics={"listen": "9025"})


async def test_dns_lookups_are_counted_and_timed() -> None:
    from mailio_trio.config import DnsConfig
    from mailio_trio.testing.dns import DnsServer, Zone

    zone = Zone()
    zone.ptr("127.0.0.1", "client.test")
    zone.a("client.test", "127.0.0.1")
    dns_server = DnsServer(zone)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            dns_host, dns_port = await nursery.start(dns_server.serve)
            server = _server(dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=5.0))
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            [(_, mport)] = await nursery.start(server.serve_metrics)
            async with open_raw_connection(HOST, port) as conn:
                assert (await conn.read_reply()).code == 220  # after reverse DNS at connect
                await conn.command("QUIT")
            _, text = await http_get(HOST, mport, "/metrics")
            await server.aclose()
            nursery.cancel_scope.cancel()
    got = _samples(text)
    assert got["mailio_dns_lookups_total", (("outcome", "ok"), ("type", "PTR"))] == 1
    assert got["mailio_dns_lookup_seconds_count", (("type", "PTR"),)] == 1
    assert got["mailio_handler_seconds_count", (("handler", "connect/rdns"),)] == 1


async def test_the_relay_queue_and_delivery_attempts_are_shown(tmp_path: Path) -> None:
    from mailio_trio.config import DnsConfig, RelayConfig
    from mailio_trio.testing.dns import DnsServer, Zone

    with socket.socket() as probe:  # a port nobody listens on: every attempt is deferred
        probe.bind(("127.0.0.3", 0))
        dead_port = probe.getsockname()[1]
    zone = Zone()
    zone.mx("remote.test", (10, "mx.remote.test"))
    zone.a("mx.remote.test", "127.0.0.3")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
            server = _server(
                relay=RelayConfig(
                    enabled=True,
                    spool_dir=tmp_path / "spool",
                    port=dead_port,
                    retry_base_interval=3600,
                    connect_timeout=2.0,
                ),
                dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
                plugins={"connect/rdns": False},
            )
            await nursery.start(server.serve, HOST, 0)  # runs the relay worker
            [(_, mport)] = await nursery.start(server.serve_metrics)
            await server.send_mail(
                b"Subject: x\r\n\r\nhi\r\n", sender="a@test", recipients=["b@remote.test"]
            )
            assert server.relay is not None
            while not server.relay.outcomes["pending"]:  # noqa: ASYNC110  # the worker's attempt
                await trio.sleep(0.02)
            _, text = await http_get(HOST, mport, "/metrics")
            await server.aclose()
            nursery.cancel_scope.cancel()
    got = _samples(text)
    assert got["mailio_queue_size", ()] == 1
    assert got["mailio_queue_oldest_age_seconds", ()] >= 0
    assert got["mailio_delivery_attempts_total", (("outcome", "pending"),)] == 1
    assert got["mailio_delivery_attempts_total", (("outcome", "delivered"),)] == 0
    assert got["mailio_dns_lookups_total", (("outcome", "ok"), ("type", "MX"))] == 1


async def test_every_reply_is_counted_under_the_command_it_answers() -> None:
    # Once only the replies of a chain run through dispatch were counted: no BDAT,
    # no reply after a body, no QUIT, nothing a handler ended the session with.
    server = _server()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve, HOST, 0)
            [(_, mport)] = await nursery.start(server.serve_metrics)
            async with open_raw_connection(HOST, port) as conn:
                assert (await conn.read_reply()).code == 220
                assert (await conn.command("EHLO client.test")).code == 250
                assert (await conn.command("MAIL FROM:<a@client.test>")).code == 250
                assert (await conn.command("MAIL FROM:<a@client.test>")).code == 503  # nested
                assert (await conn.command("RCPT TO:<u@test>")).code == 250
                assert (await conn.command("DATA")).code == 354
                await conn.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
                assert (await conn.read_reply()).code == 250
                assert (await conn.command("DATA")).code == 503  # no transaction
                assert (await conn.command("MAIL FROM:<a@client.test>")).code == 250
                assert (await conn.command("RCPT TO:<u@test>")).code == 250
                await conn.send(b"BDAT 12\r\nSubject: y\r\n")
                assert (await conn.read_reply()).code == 250
                await conn.send(b"BDAT 5 LAST\r\n\r\nz\r\n")
                assert (await conn.read_reply()).code == 250
                assert (await conn.command("QUIT")).code == 221
            _, text = await http_get(HOST, mport, "/metrics")
            await server.aclose()
            nursery.cancel_scope.cancel()
    got = _samples(text)

    def replies(command: str, cls: str) -> float:
        return got.get(("mailio_commands_total", (("command", command), ("reply", cls))), 0)

    assert replies("connect", "2xx") == 1
    assert (replies("data", "3xx"), replies("data", "2xx"), replies("data", "5xx")) == (1, 1, 1)
    assert replies("bdat", "2xx") == 2
    assert replies("quit", "2xx") == 1
    assert replies("mail", "5xx") == 1
    assert got["mailio_messages_total", (("outcome", "accepted"),)] == 2
