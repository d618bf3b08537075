"""Mail loops end: ``limits.max_hops`` counts ``Received:`` headers (RFC 5321 §6.3).

At the end of DATA a message that arrives with ``max_hops`` or more
``Received:`` lines in its header block is refused with ``554 5.4.6`` and
nothing of it is kept; the relay never sends a message that carries
``max_hops`` or more (ours included), but bounces it with ``5.4.6``. Two
servers relaying a domain to each other (each the other's MX, on loopback) stop
after ``max_hops`` hops with a DSN to the sender.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
from typing import TYPE_CHECKING

import trio
from smtp_peers import free_port_on, status_blocks

from mailio_trio import Config, DnsConfig, Request, Response, Server
from mailio_trio.config import Limits, MaildirConfig, RelayConfig
from mailio_trio.relay.spool import Spool
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from pathlib import Path


def with_hops(hops: int, body: bytes = b"hello\r\n") -> bytes:
    trace = b"".join(
        b"Received: from relay%d.test (relay%d.test [192.0.2.%d])\r\n\tby next.test; "
        b"Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i, i % 250)
        for i in range(hops)
    )
    return trace + b"From: alice@example.com\r\nSubject: hops\r\n\r\n" + body


def node_config(tmp_path: Path, name: str, dns: tuple[str, int], **relay: object) -> Config:
    root = tmp_path / name
    return Config(
        hostname=f"{name}.example.com",
        domains=["example.com"],
        spool_dir=root,
        maildir=MaildirConfig(enabled=True, root=root / "mail"),
        relay=RelayConfig(
            enabled=True,
            spool_dir=root / "spool",
            allow_unauthenticated=True,
            retry_base_interval=0.05,
            connect_timeout=5.0,
            **relay,  # type: ignore[arg-type]  # test-chosen options
        ),
        dns=DnsConfig(nameservers=[dns[0]], port=dns[1], timeout=2.0),
        plugins={"connect/rdns": False},
        limits=Limits(max_hops=50),
    )


def stored(tmp_path: Path, name: str, user: str) -> list[Path]:
    directory = tmp_path / name / "mail" / "example.com" / user / "new"
    return sorted(directory.iterdir()) if directory.is_dir() else []


async def start_node(
    nursery: trio.Nursery,
    config: Config,
    port: int = 0,
    bounced: trio.Event | None = None,
    *,
    host: str = "127.0.0.1",
) -> tuple[Server, int]:
    server = Server(config)

    @server.handler("queue", after="maildir")
    async def watch(req: Request, res: Response) -> None:
        assert req.message is not None
        if bounced is not None and req.message.envelope.sender is None:
            bounced.set()  # a DSN (sent from <>) is being stored
        res.accept()

    addresses: list[tuple[str, int]] = await nursery.start(server.serve, host, port)
    return server, addresses[0][1]


def sendmail(port: int, data: bytes, recipients: list[str]) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port) as client:
        try:
            client.sendmail("alice@example.com", recipients, data)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, bytes(exc.smtp_error)  # type: ignore[arg-type]  # bytes from the wire
        return 250, b""


async def test_150_received_headers_are_refused_and_nothing_is_kept(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    dns = await nursery.start(DnsServer(Zone()).serve)
    _, port = await start_node(nursery, node_config(tmp_path, "a", dns))
    with trio.fail_after(20):
        code, text = await trio.to_thread.run_sync(
            sendmail, port, with_hops(150), ["bob@example.com", "far@example.net"]
        )
    assert (code, text.split(b" ", 1)[0]) == (554, b"5.4.6")
    assert b"Too many hops" in text
    assert stored(tmp_path, "a", "bob") == []
    assert Spool(tmp_path / "a" / "spool").entries_sync() == []
    assert [p for p in (tmp_path / "a").iterdir() if p.suffix == ".eml"] == []


async def test_49_received_headers_are_accepted_and_only_the_header_block_counts(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    dns = await nursery.start(DnsServer(Zone()).serve)
    _, port = await start_node(nursery, node_config(tmp_path, "a", dns))
    # Continuation lines and body lines that look like trace lines are not hops.
    folded = with_hops(49).replace(b"\r\n\tby", b"\r\n\tReceived: by", 1)
    body = b"Received: in the body\r\n" * 200
    with trio.fail_after(20):
        assert await trio.to_thread.run_sync(sendmail, port, folded, ["bob@example.com"]) == (
            250,
            b"",
        )
        hops = with_hops(49, body=body)
        assert await trio.to_thread.run_sync(sendmail, port, hops, ["bob@example.com"]) == (
            250,
            b"",
        )
    assert len(stored(tmp_path, "a", "bob")) == 2


async def test_a_relay_loop_between_two_servers_stops_with_a_bounce(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A (127.0.0.1) and B (127.0.0.2) each find the other as example.net's MX
    (split DNS, as a half-migrated domain gets): the hop count ends the loop."""
    port = free_port_on("127.0.0.1", "127.0.0.2")  # the relay uses one port for every MX
    bounced = trio.Event()
    nodes: dict[str, Server] = {}
    for name, address, other in (("a", "127.0.0.1", "127.0.0.2"), ("b", "127.0.0.2", "127.0.0.1")):
        zone = Zone()
        zone.mx("example.net", (10, "mx.example.net"))
        zone.a("mx.example.net", other)
        dns = await nursery.start(DnsServer(zone).serve)
        config = node_config(tmp_path, name, dns, port=port)
        nodes[name], _ = await start_node(nursery, config, port, bounced, host=address)
    with trio.fail_after(60):
        code, _ = await trio.to_thread.run_sync(sendmail, port, with_hops(0), ["loop@example.net"])
        assert code == 250
        await bounced.wait()
        for server in nodes.values():
            assert server.relay is not None
            await server.relay.wait_idle()
    [dsn_path] = stored(tmp_path, "a", "alice") + stored(tmp_path, "b", "alice")
    dsn = email.message_from_bytes(dsn_path.read_bytes(), policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    _, status_part, headers = dsn.iter_parts()
    per_recipient = status_blocks(status_part)[1]
    assert per_recipient["Final-Recipient"] == "rfc822; loop@example.net"
    assert per_recipient["Status"] == "5.4.6"
    # The looping copy carried max_hops trace lines (each server added one per pass).
    assert headers.get_content().count("Received: from") == 50
    assert Spool(tmp_path / "a" / "spool").entries_sync() == []
    assert Spool(tmp_path / "b" / "spool").entries_sync() == []
