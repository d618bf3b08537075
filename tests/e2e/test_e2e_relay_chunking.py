"""The relay delivers with BDAT (RFC 3030) to a peer offering CHUNKING: our own server on 127.0.0.2.

The peer's ``bdat`` chain records each ``BDAT`` it sees; the message the
relay spooled arrives with its octets unchanged (dots unstuffed, never
re-encoded), behind our relay's Received: line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from smtp_peers import BODY

from mailio_trio import Config, Server
from mailio_trio.chain import Handler, Request, Response
from mailio_trio.client import send
from mailio_trio.config import DnsConfig, RelayConfig
from mailio_trio.relay.spool import Spool
from mailio_trio.testing import start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 30


async def test_relay_delivers_to_a_chunking_peer_with_bdat(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    seen: list[str] = []

    async def log_bdat(req: Request, res: Response) -> None:
        seen.append(req.argument)
        res.accept()

    peer_server = Server(Config(hostname="mx1.remote.test", domains=["remote.test"]))
    peer_server.add_handler(Handler(command="bdat", name="log", func=log_bdat, after=("core",)))
    peer = await start_capturing_server(nursery, server=peer_server, host="127.0.0.2")
    zone = Zone()
    zone.mx("remote.test", (10, "mx1.remote.test"))
    zone.a("mx1.remote.test", "127.0.0.2")
    dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
    config = Config(
        hostname="mx.example.com",
        domains=["example.com"],
        relay=RelayConfig(
            enabled=True,
            spool_dir=tmp_path / "spool",
            port=peer.port,
            retry_base_interval=0.05,
            allow_unauthenticated=True,
            connect_timeout=5.0,
        ),
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )
    running = await start_capturing_server(nursery, config)
    body = BODY + b".a dotted line\r\n.\r\n"
    with trio.fail_after(WAIT):
        # Our client sends DATA here (chunking off): the relay's leg alone uses BDAT.
        await send(
            running.host,
            running.port,
            "a@example.com",
            ["b@remote.test", "c@remote.test"],
            body,
            chunking=False,
        )
        [received] = await peer.outbox.wait_for(1)
        assert running.server.relay is not None
        await running.server.relay.wait_idle()
    assert len(seen) == 1
    assert seen[0].endswith(" LAST")
    assert [str(r) for r in received.envelope.recipients] == ["b@remote.test", "c@remote.test"]
    # The peer's Received: line, the relay's, then the message exactly as our client sent it.
    assert received.raw.count(b"Received: from ") == 2
    assert received.raw.endswith(b"\r\n" + body)
    assert Spool(tmp_path / "spool").entries_sync() == []
