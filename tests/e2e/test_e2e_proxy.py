"""PROXY protocol v1/v2 over real loopback sockets, and behind a real HAProxy.

The "balancer" is a test client on 127.0.0.1 (the trusted network); clients
outside it bind other 127.0.0.x addresses. The HAProxy tests start Debian's
``haproxy`` on loopback with a generated configuration; where it is not
installed they skip, unless ``MAILIO_REQUIRE_HAPROXY=1`` (set by ``.ci/run``),
where they fail instead.
"""

from __future__ import annotations

import logging
import smtplib
import subprocess
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import proxy_encode as enc
import pytest
import trio
from haproxy_process import free_port, haproxy_binary
from hostile_clients import connect_from

from mailio_trio import Config, DnsConfig, Limits, Server, Session
from mailio_trio.protocol.proxy import V2_SIGNATURE, ProxyCommand, TLVType
from mailio_trio.testing import RawConnection, RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator
    from pathlib import Path

WAIT = 20  # seconds: an upper bound for anything here, never expected
BALANCER = "127.0.0.1"
MESSAGE = b"Subject: proxied\r\n\r\nhello\r\n."


def proxy_config(**server: Any) -> Config:
    server.setdefault("proxy_trusted", [BALANCER])
    return Config(hostname="mx.test", domains=["example.com"], proxy_protocol=True, **server)


async def start(nursery: trio.Nursery, config: Config) -> tuple[RunningServer, list[Session]]:
    server = Server(config)
    sessions: list[Session] = []
    server.on_session(sessions.append)
    return await start_capturing_server(nursery, server=server), sessions


async def send_message(conn: RawConnection, *, greeted: bool = False) -> None:
    if not greeted:
        assert (await conn.read_reply()).code == 220
        assert (await conn.command("EHLO a.test")).code == 250
    assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
    assert (await conn.command("DATA")).code == 354
    assert (await conn.command(MESSAGE)).code == 250


async def assert_closed_unanswered(conn: RawConnection) -> None:
    with pytest.raises((EOFError, trio.BrokenResourceError)):
        await conn.read_reply()


def received(running: RunningServer) -> str:
    [captured] = running.outbox.snapshot()
    return str(captured.message["Received"])


# -- from a trusted balancer ---------------------------------------------------------


async def test_v1_header_names_the_client_and_its_pipelined_bytes_are_kept(
    nursery: trio.Nursery,
) -> None:
    running, sessions = await start(nursery, proxy_config())
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as conn:
            # The header and the client's first command in one segment: the
            # server must keep what it read past the header for the session.
            await conn.send(enc.v1("203.0.113.9", "198.51.100.1", 4444, 25) + b"EHLO a.test\r\n")
            assert (await conn.read_reply()).code == 220
            assert (await conn.read_reply()).code == 250
            await send_message(conn, greeted=True)
        await running.outbox.wait_for(1)
    [captured] = running.outbox.snapshot()
    assert captured.client_address == "203.0.113.9"
    assert received(running).startswith("from a.test ([203.0.113.9])")
    [session] = sessions
    assert (session.client.address, session.client.port) == ("203.0.113.9", 4444)
    assert session.client.proxied_by is not None
    assert session.client.proxied_by[0] == BALANCER
    assert session.client.proxy is not None
    assert session.client.proxy.version == 1


async def test_v2_header_with_ipv6_client_and_tlvs(nursery: trio.Nursery) -> None:
    running, sessions = await start(nursery, proxy_config())
    tlvs = enc.tlv(TLVType.AUTHORITY, b"mx.example.com") + enc.ssl_tlv(
        1, 0, {TLVType.SSL_VERSION: "TLSv1.3"}
    )
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as conn:
            await conn.send(enc.v2("2001:db8::7", "2001:db8::1", 5555, 25, tlvs=tlvs, crc=True))
            await send_message(conn)
        await running.outbox.wait_for(1)
    assert received(running).startswith("from a.test ([IPv6:2001:db8::7])")
    header = sessions[0].client.proxy
    assert header is not None
    assert header.authority == "mx.example.com"
    assert header.ssl is not None
    assert header.ssl.version == "TLSv1.3"


async def test_reverse_dns_looks_up_the_carried_address(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.ptr("192.0.2.50", "client.example")
    zone.a("client.example", "192.0.2.50")
    dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
    dns = DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0)
    running, _ = await start(nursery, proxy_config(dns=dns))
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as conn:
            await conn.send(enc.v2("192.0.2.50", "198.51.100.1", 4444, 25))
            await send_message(conn)
        await running.outbox.wait_for(1)
    assert received(running).startswith("from a.test (client.example [192.0.2.50])")


async def test_v2_local_is_served_as_the_balancer(nursery: trio.Nursery) -> None:
    running, sessions = await start(nursery, proxy_config())
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as conn:
            await conn.send(enc.v2(local=True))
            assert (await conn.read_reply()).code == 220
            assert (await conn.command("QUIT")).code == 221
    [session] = sessions
    assert session.client.address == BALANCER
    assert session.client.proxy is not None
    assert session.client.proxy.command is ProxyCommand.LOCAL


async def test_implicit_tls_after_a_v1_header_sent_with_the_client_hello(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    server = Server(proxy_config(), tls_context=server_tls_context)
    sessions: list[Session] = []
    server.on_session(sessions.append)
    [(host, port)] = await nursery.start(server.serve_tls, "127.0.0.1", 0)
    with trio.fail_after(WAIT):
        tcp = await trio.open_tcp_stream(host, port)
        # One write: the v1 header and the ClientHello behind it, as a balancer
        # forwarding at once would send; the server's header read takes part
        # of the handshake with it.
        tls = trio.SSLStream(
            _FirstWritePrefixed(tcp, enc.v1("192.0.2.44", "198.51.100.1", 1234, 465)),
            client_tls_context,
            server_hostname="mx.test",
        )
        conn = RawConnection(tls)
        assert (await conn.read_reply()).code == 220
        assert (await conn.command("QUIT")).code == 221
        await trio.aclose_forcefully(tls)
    [session] = sessions
    assert session.client.address == "192.0.2.44"
    assert session.secure


class _FirstWritePrefixed(trio.abc.Stream):
    """A client stream whose first write carries ``prefix`` before its data."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self.stream, self.prefix = stream, prefix

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        prefix, self.prefix = self.prefix, b""
        await self.stream.send_all(prefix + bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return bytes(await self.stream.receive_some(max_bytes))

    async def aclose(self) -> None:
        await self.stream.aclose()


# -- refusals -------------------------------------------------------------------------


async def test_untrusted_peer_is_refused(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running, sessions = await start(nursery, proxy_config())
    with trio.fail_after(WAIT):
        async with connect_from("127.0.0.5", running) as conn:
            await conn.send(enc.v1("203.0.113.9", "198.51.100.1", 4444, 25))
            await assert_closed_unanswered(conn)
    assert sessions == []
    assert any(
        "127.0.0.5" in r.getMessage() and "proxy_trusted" in r.getMessage() for r in caplog.records
    )


async def test_untrusted_peer_under_smtp_policy_is_served_and_its_header_refused(
    nursery: trio.Nursery,
) -> None:
    running, sessions = await start(nursery, proxy_config(proxy_untrusted="smtp"))
    with trio.fail_after(WAIT):
        async with connect_from("127.0.0.5", running) as conn:
            assert (await conn.read_reply()).code == 220
            reply = await conn.command(enc.v1("203.0.113.9", "198.51.100.1", 4444, 25)[:-2])
            assert (reply.code, reply.enhanced) == (500, "5.5.1")
            assert (await conn.command("EHLO a.test")).code == 250
            await send_message(conn, greeted=True)
        await running.outbox.wait_for(1)
    assert received(running).startswith("from a.test ([127.0.0.5])")
    assert sessions[0].client.proxy is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"PROXY UNKNOWN " + b"x" * 94, "longer than 107"),  # 108 octets, no CRLF
        (enc.v2()[:14] + b"\xff\xff", "declares 65535 octets"),  # then nothing more is read
        (b"EHLO a.test\r\n", "not a PROXY protocol header"),
    ],
    ids=["v1-108-octets", "v2-65535", "no-header"],
)
async def test_bad_header_is_cut_off_and_others_are_served(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, header: bytes, reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running, _ = await start(nursery, proxy_config())
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as good:
            await good.send(enc.v1("203.0.113.1", "198.51.100.1", 1, 25))
            assert (await good.read_reply()).code == 220
            async with connect_from(BALANCER, running) as bad:
                await bad.send(header)
                await assert_closed_unanswered(bad)
            assert (await good.command("EHLO a.test")).code == 250
            await send_message(good, greeted=True)
        await running.outbox.wait_for(1)
    lines = [r.getMessage() for r in caplog.records if "PROXY header from" in r.getMessage()]
    assert len(lines) == 1
    assert reason in lines[0]


async def test_bare_connect_from_the_balancer_is_no_abuse_line(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running, sessions = await start(nursery, proxy_config())
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running):
            pass  # a TCP health check: connect, close
        async with connect_from(BALANCER, running) as conn:  # served after it
            await conn.send(enc.v2(local=True))
            assert (await conn.read_reply()).code == 220
    assert not [r for r in caplog.records if "PROXY" in r.getMessage()]
    assert len(sessions) == 1


async def test_header_never_finished_is_cut_off_at_proxy_timeout(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running, _ = await start(nursery, proxy_config(proxy_timeout=0.3))
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as slow:
            await slow.send(b"PROXY TCP4 203.0.113.9 ")
            async with connect_from(BALANCER, running) as good:
                await good.send(enc.v2("203.0.113.1", "198.51.100.1", 1, 25))
                await send_message(good)
            await assert_closed_unanswered(slow)
    assert any("not complete after 0.3 s" in r.getMessage() for r in caplog.records)


async def test_connections_still_in_their_header_count_toward_max_connections(
    nursery: trio.Nursery,
) -> None:
    running, _ = await start(nursery, proxy_config(limits=Limits(max_connections=2)))
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as one, connect_from(BALANCER, running) as two:
            await one.send(b"PROXY ")
            await two.send(V2_SIGNATURE[:5])
            while running.server.statistics().proxy_headers < 2:  # noqa: ASYNC110  # no event to wait on
                await trio.sleep(0.01)
            async with connect_from(BALANCER, running) as third:
                reply = await third.read_reply()
                assert (reply.code, reply.enhanced) == (421, "4.7.0")


async def test_per_ip_limit_counts_the_carried_address(nursery: trio.Nursery) -> None:
    running, _ = await start(nursery, proxy_config(limits=Limits(connections_per_ip=1)))
    with trio.fail_after(WAIT):
        async with connect_from(BALANCER, running) as first:
            await first.send(enc.v1("203.0.113.9", "198.51.100.1", 1, 25))
            assert (await first.read_reply()).code == 220
            async with connect_from(BALANCER, running) as same:
                await same.send(enc.v1("203.0.113.9", "198.51.100.1", 2, 25))
                reply = await same.read_reply()
                assert (reply.code, reply.enhanced) == (421, "4.7.0")
            async with connect_from(BALANCER, running) as other:
                await other.send(enc.v2("203.0.113.10", "198.51.100.1", 3, 25))
                assert (await other.read_reply()).code == 220


# -- a real HAProxy -------------------------------------------------------------------


@contextmanager
def run_haproxy(
    directory: Path, backend_port: int, server_options: str, backend_lines: str = ""
) -> Iterator[int]:
    """HAProxy in the foreground on a free loopback port, in front of ``backend_port``.

    Yields the frontend's port; HAProxy is stopped (killed if need be) on exit.
    """
    binary = haproxy_binary()
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(
        f"""\
global
    maxconn 100

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend smtp_in
    bind 127.0.0.1:{port}
    unique-id-format %{{+X}}o%ci:%cp_%fi:%fp_%Ts_%rt
    default_backend mailio

backend mailio
{backend_lines}    server s1 127.0.0.1:{backend_port} {server_options}
"""
    )
    log = (directory / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def _wait_listening(port: int, directory: Path) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.05)
            continue
        await trio.aclose_forcefully(stream)
        return


def _send_via(port: int, source: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=WAIT) as smtp:
        smtp.ehlo("a.test")
        smtp.sendmail("a@example.org", ["b@example.com"], b"Subject: via haproxy\r\n\r\nhi\r\n")


@pytest.mark.parametrize(
    "server_options",
    ["send-proxy-v2 proxy-v2-options crc32c,unique-id", "send-proxy"],
    ids=["v2", "v1"],
)
async def test_real_haproxy_carries_the_client_address(
    nursery: trio.Nursery, tmp_path: Path, server_options: str
) -> None:
    running, sessions = await start(nursery, proxy_config())
    with run_haproxy(tmp_path, running.port, server_options) as port:
        with trio.fail_after(WAIT):
            await _wait_listening(port, tmp_path)
            await trio.to_thread.run_sync(_send_via, port, "127.0.0.2")
            [captured] = await running.outbox.wait_for(1)
    assert captured.client_address == "127.0.0.2"
    assert str(captured.message["Received"]).startswith("from a.test ([127.0.0.2])")
    [session] = [s for s in sessions if s.client.address == "127.0.0.2"]
    assert session.client.proxied_by is not None
    assert session.client.proxied_by[0] == BALANCER
    header = session.client.proxy
    assert header is not None
    if "v2" in server_options:
        assert header.version == 2
        assert TLVType.CRC32C in [kind for kind, _ in header.tlvs]
        assert header.unique_id is not None
        assert b"7F000002" in header.unique_id
    else:
        assert header.version == 1


async def test_real_haproxy_health_checks_are_local(nursery: trio.Nursery, tmp_path: Path) -> None:
    running, sessions = await start(nursery, proxy_config())
    checked = trio.Event()
    running.server.on_session(lambda s: checked.set() if s.client.proxy is not None else None)
    # The check waits for our greeting: a check that closes at once may reset
    # the connection before its header is read.
    options = "send-proxy-v2 check check-send-proxy inter 100ms"
    check = "    option tcp-check\n    tcp-check expect string 220\n"
    with run_haproxy(tmp_path, running.port, options, check), trio.fail_after(WAIT):
        await checked.wait()
    checks = [s.client.proxy for s in sessions if s.client.proxy is not None]
    assert checks[0].command is ProxyCommand.LOCAL
    assert sessions[0].client.address == BALANCER
