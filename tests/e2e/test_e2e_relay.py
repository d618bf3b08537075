"""Relaying end to end: our server spools, resolves MX on a loopback DNS server and
delivers to aiosmtpd peers on 127.0.0.x — real sockets, real DNS packets."""

from __future__ import annotations

import email
import email.policy
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio
from smtp_peers import BODY, Peer, PeerHandler, free_port_on, run_aiosmtpd, status_blocks

from mailio_trio import Config, Server
from mailio_trio.client import send
from mailio_trio.config import DnsConfig, RelayConfig
from mailio_trio.relay.spool import Spool
from mailio_trio.testing import RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator
    from pathlib import Path

    import trustme

    from mailio_trio.chain import Request, Response


@asynccontextmanager
async def relay_setup(
    nursery: trio.Nursery, tmp_path: Path, zone: Zone, port: int, **relay: object
) -> AsyncIterator[RunningServer]:
    dns_server = DnsServer(zone)
    dns_host, dns_port = await nursery.start(dns_server.serve)
    options: dict[str, object] = {
        "enabled": True,
        "spool_dir": tmp_path / "spool",
        "port": port,
        "retry_base_interval": 0.05,
        "allow_unauthenticated": True,
        "connect_timeout": 5.0,
    }
    options.update(relay)
    config = Config(
        hostname="mx.example.com",
        domains=["example.com"],
        relay=RelayConfig(**options),  # type: ignore[arg-type]  # test-chosen options
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )
    running = await start_capturing_server(nursery, config)
    yield running


async def wait_received(peer: Peer, count: int) -> None:
    await peer.handler.wait_for(count)


async def test_relays_to_mx_found_in_dns(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    zone = Zone()
    zone.mx("remote.test", (10, "mx1.remote.test"))
    zone.a("mx1.remote.test", "127.0.0.2")
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as peer,
        relay_setup(nursery, tmp_path, zone, port) as running,
    ):
        result = await send(
            running.host, running.port, "a@example.com", ["b@remote.test", "c@remote.test"], BODY
        )
        assert result.data_reply is not None
        assert "queued as" in result.data_reply.text
        await wait_received(peer, 1)
        assert running.server.relay is not None
        await running.server.relay.wait_idle()
    [received] = peer.handler.received
    assert received.sender == "a@example.com"
    assert received.recipients == ["b@remote.test", "c@remote.test"]
    assert received.content.endswith(b"\r\n" + BODY)  # our Received: line first
    assert received.content.startswith(b"Received: from ")
    assert Spool(tmp_path / "spool").entries_sync() == []  # delivered once, entry gone


async def test_anonymous_client_cannot_relay_by_default(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with (
        relay_setup(nursery, tmp_path, Zone(), 25, allow_unauthenticated=False) as running,
        running.open_raw() as conn,
    ):
        await conn.read_reply()
        await conn.command("EHLO client.test")
        await conn.command("MAIL FROM:<a@example.com>")
        reply = await conn.command("RCPT TO:<victim@elsewhere.test>")
    assert (reply.code, reply.enhanced, reply.text) == (550, "5.7.1", "Relay access denied")


async def test_foreign_sender_cannot_relay_even_allowed_unauthenticated(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with relay_setup(nursery, tmp_path, Zone(), 25) as running, running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        await conn.command("MAIL FROM:<spammer@elsewhere.test>")
        foreign = await conn.command("RCPT TO:<victim@elsewhere.test>")
        local = await conn.command("RCPT TO:<user@example.com>")
    assert (foreign.code, foreign.enhanced) == (550, "5.7.1")
    assert local.code == 250


async def test_temporary_failure_then_success(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    zone = Zone()
    zone.mx("remote.test", (10, "mx1.remote.test"))
    zone.a("mx1.remote.test", "127.0.0.2")
    handler = PeerHandler(data_replies=["451 4.3.0 try again later"])
    async with (
        run_aiosmtpd("127.0.0.2", port=port, handler=handler) as peer,
        relay_setup(nursery, tmp_path, zone, port) as running,
    ):
        await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
        await wait_received(peer, 1)
    assert handler.data_replies == []  # the 451 was given, then the retry went through
    assert len(peer.handler.received) == 1


async def test_one_of_two_mx_hosts_down(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2", "127.0.0.3")
    zone = Zone()
    zone.mx("remote.test", (10, "down.remote.test"), (20, "up.remote.test"))
    zone.a("down.remote.test", "127.0.0.3")  # nothing listens there
    zone.a("up.remote.test", "127.0.0.2")
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as peer,
        relay_setup(nursery, tmp_path, zone, port) as running,
    ):
        await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
        await wait_received(peer, 1)
    assert peer.handler.received[0].recipients == ["b@remote.test"]


async def test_implicit_mx_uses_a_record(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    zone = Zone()
    zone.a("remote.test", "127.0.0.2")  # no MX: the domain itself (RFC 5321 §5.1)
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as peer,
        relay_setup(nursery, tmp_path, zone, port) as running,
    ):
        await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
        await wait_received(peer, 1)
    [received] = peer.handler.received
    assert received.recipients == ["b@remote.test"]
    assert received.content.endswith(b"\r\n" + BODY)


@pytest.mark.parametrize(
    ("setup", "status", "remote"),
    [
        ("null_mx", "5.1.10", False),
        ("no_records", "5.1.2", False),
        ("refused", "5.1.1", True),
    ],
)
async def test_permanent_failure_bounces_rfc3464_dsn(
    nursery: trio.Nursery, tmp_path: Path, setup: str, status: str, remote: bool
) -> None:
    port = free_port_on("127.0.0.2")
    zone = Zone()
    zone.mx("sender.test", (10, "mx.sender.test"))
    zone.a("mx.sender.test", "127.0.0.2")
    zone.a("mx.remote.test", "127.0.0.2")
    if setup == "null_mx":
        zone.null_mx("remote.test")
    elif setup == "no_records":
        zone.txt("remote.test", "exists but has no MX, A or AAAA")
    else:
        zone.mx("remote.test", (10, "mx.remote.test"))
    handler = PeerHandler(
        rcpt_reply=lambda a: "550 5.1.1 no such user" if a == "b@remote.test" else None
    )
    async with (
        run_aiosmtpd("127.0.0.2", port=port, handler=handler) as peer,
        relay_setup(nursery, tmp_path, zone, port, open_relay=True) as running,
    ):
        await send(running.host, running.port, "x@sender.test", ["b@remote.test"], BODY)
        await wait_received(peer, 1)
    [bounce] = peer.handler.received
    assert (
        bounce.sender == "<>"
    )  # a DSN is sent from <> so it can never bounce (aiosmtpd spells it so)
    assert bounce.recipients == ["x@sender.test"]
    dsn = email.message_from_bytes(bounce.content, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.com"
    assert dsn["Auto-Submitted"] == "auto-replied"
    human, status_part, headers = dsn.iter_parts()
    assert "b@remote.test" in human.get_content()
    per_message, per_recipient = status_blocks(status_part)
    assert per_message["Reporting-MTA"] == "dns; mx.example.com"
    assert per_recipient["Final-Recipient"] == "rfc822; b@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == status
    assert ("Remote-MTA" in per_recipient) is remote
    assert "Subject: relayed" in headers.get_content()


async def test_retry_deadline_reached_bounces(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2", "127.0.0.3")
    zone = Zone()
    zone.mx("sender.test", (10, "mx.sender.test"))
    zone.a("mx.sender.test", "127.0.0.2")
    zone.mx("remote.test", (10, "down.remote.test"))
    zone.a("down.remote.test", "127.0.0.3")  # never answers: temporary failures only
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as peer,
        relay_setup(nursery, tmp_path, zone, port, open_relay=True, retry_hours=1e-5) as running,
    ):
        await send(running.host, running.port, "x@sender.test", ["b@remote.test"], BODY)
        await wait_received(peer, 1)
    dsn = email.message_from_bytes(peer.handler.received[0].content, policy=email.policy.default)
    _, status_part, _ = dsn.iter_parts()
    per_recipient = status_blocks(status_part)[1]
    assert per_recipient["Status"] == "5.4.1"  # 4.4.1 (no answer) given up as permanent
    assert "gave up after" in per_recipient["Diagnostic-Code"]


async def test_no_bounce_for_auto_submitted_or_null_sender(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = free_port_on("127.0.0.2")
    zone = Zone()
    zone.mx("sender.test", (10, "mx.sender.test"))
    zone.a("mx.sender.test", "127.0.0.2")
    zone.null_mx("remote.test")
    auto = b"Auto-Submitted: auto-replied\r\n" + BODY
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as peer,
        relay_setup(nursery, tmp_path, zone, port, open_relay=True) as running,
    ):
        await send(running.host, running.port, "x@sender.test", ["b@remote.test"], auto)
        await send(running.host, running.port, "", ["b@remote.test"], BODY)
        assert running.server.relay is not None
        # Its own bound: a bounce that is tried (and retried) would never let it be idle.
        with trio.fail_after(20):
            await running.server.relay.wait_idle()
    assert peer.handler.received == []
    assert Spool(tmp_path / "spool").entries_sync() == []


async def test_smart_host_relays_everything_over_tls_with_auth(
    nursery: trio.Nursery,
    tmp_path: Path,
    tls_ca: trustme.CA,
    server_tls_context: ssl.SSLContext,
) -> None:
    from mailio_trio.passwords import hash_password

    # The smart host is our own server: STARTTLS with a trustme certificate and
    # an [auth.users] table, refusing to take mail from anyone unauthenticated.
    smart = Server(
        Config(
            hostname="smarthost.test",
            domains=["smarthost.test"],
            auth={"users": {"relayuser": hash_password("relay-secret", log_n=10)}},
        ),
        tls_context=server_tls_context,
    )

    @smart.handler("mail")
    async def authenticated_only(req: Request, res: Response) -> None:
        if req.session.user is None:
            res.reject(530, "5.7.0 Authentication required")
        else:
            res.accept()

    smart_running = await start_capturing_server(nursery, server=smart)
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    zone = Zone()  # nothing resolvable: only the smart host can deliver
    async with relay_setup(
        nursery,
        tmp_path,
        zone,
        25,
        smart_host=f"127.0.0.1:{smart_running.port}",
        smart_host_user="relayuser",
        smart_host_password="relay-secret",
        tls_ca_file=ca_file,
    ) as running:
        await send(
            running.host, running.port, "a@example.com", ["b@far.test", "c@other.test"], BODY
        )
        captured = await smart_running.wait_for(2)  # one connection per domain
        assert running.server.relay is not None
        await running.server.relay.wait_idle()
    assert sorted(str(m.envelope.recipients[0]) for m in captured) == [
        "b@far.test",
        "c@other.test",
    ]
    for message in captured:
        assert message.secure  # STARTTLS, with the certificate verified against tls_ca
        assert message.user.username == "relayuser"
        assert str(message.envelope.sender) == "a@example.com"
        assert message.raw.endswith(b"\r\n" + BODY)
    assert Spool(tmp_path / "spool").entries_sync() == []


async def test_mx_with_an_unverifiable_certificate_still_gets_the_message_encrypted(
    nursery: trio.Nursery, tmp_path: Path, server_tls_context: ssl.SSLContext
) -> None:
    """RFC 7435 opportunistic TLS: by default (``relay.verify_tls`` false) an MX's
    certificate (here one for mx.test from a CA we do not trust) is not checked,
    but STARTTLS is still used."""
    mx = await start_capturing_server(
        nursery,
        server=Server(
            Config(hostname="mx1.remote.test", domains=["remote.test"]),
            tls_context=server_tls_context,
        ),
        host="127.0.0.2",
    )
    zone = Zone()
    zone.mx("remote.test", (10, "mx1.remote.test"))
    zone.a("mx1.remote.test", "127.0.0.2")
    async with relay_setup(nursery, tmp_path, zone, mx.port) as running:
        await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
        [captured] = await mx.wait_for(1)
    assert captured.secure
    assert [str(r) for r in captured.envelope.recipients] == ["b@remote.test"]
    assert captured.raw.endswith(b"\r\n" + BODY)
