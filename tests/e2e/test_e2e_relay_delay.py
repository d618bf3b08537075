"""Delay warnings (RFC 3464 ``Action: delayed``) end to end: a remote MX that keeps
deferring (aiosmtpd answering ``451``), the sender's MX receiving the warning,
MX lookups from the loopback DNS server — real sockets, real DNS packets.

Hours are not waited for: the relay worker's clock (``RelayWorker.clock``, the
wall clock it reads for persisted times) is set 5 hours ahead of the entries'
creation, so the first retry already finds the warning due.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import logging
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import attrs
import trio
from smtp_peers import BODY, PeerHandler, free_port_on, run_aiosmtpd, status_blocks

from mailio_trio import Config
from mailio_trio.client import send
from mailio_trio.config import DnsConfig, RelayConfig
from mailio_trio.relay.spool import Spool
from mailio_trio.testing import RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

AHEAD = 5 * 3600.0  # past relay.delay_warning_hours (4), far from retry_hours (48)


@attrs.define(eq=False)
class Deferring:
    """aiosmtpd's RCPT hook for a remote that is always busy; counts the attempts."""

    token: trio.lowlevel.TrioToken
    attempts: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def __call__(self, address: str) -> str:
        # In aiosmtpd's thread: hand the count to trio before answering.
        trio.from_thread.run_sync(self._bump, trio_token=self.token)
        return "451 4.2.1 Mailbox busy, try again later"

    def _bump(self) -> None:
        self.attempts += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, attempts: int) -> None:
        with trio.fail_after(30):  # a bound on the wait, never a pause
            while self.attempts < attempts:
                await self._changed.wait()


class _Done(logging.Handler):
    """Sets an event when the relay logs that an entry is finished (delivered, removed)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().endswith(": done"):
            self.event.set()  # the relay logs from its trio task, in this thread


@contextlib.contextmanager
def relay_done() -> Iterator[_Done]:
    relay_log = logging.getLogger("mailio_trio.relay")
    handler, level = _Done(), relay_log.level
    relay_log.addHandler(handler)
    relay_log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        relay_log.removeHandler(handler)
        relay_log.setLevel(level)


async def start_relay(nursery: trio.Nursery, config: Config) -> RunningServer:
    running = await start_capturing_server(nursery, config)
    assert running.server.relay is not None
    running.server.relay.clock = lambda: time.time() + AHEAD
    running.server.relay.wake()  # a restarted worker rescans with the clock it now has
    return running


async def relay_config(nursery: trio.Nursery, tmp_path: Path, port: int) -> Config:
    zone = Zone()
    zone.mx("sender.test", (10, "mx.sender.test"))
    zone.a("mx.sender.test", "127.0.0.2")
    zone.mx("remote.test", (10, "mx.remote.test"))
    zone.a("mx.remote.test", "127.0.0.3")
    dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
    return Config(
        hostname="mx.example.com",
        domains=["example.com"],
        relay=RelayConfig(
            enabled=True,
            spool_dir=tmp_path / "spool",
            port=port,
            retry_base_interval=0.05,
            delay_warning_hours=4,
            open_relay=True,  # the sender is at sender.test, like a forwarded message's
            connect_timeout=5.0,
        ),
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )


async def test_delay_warning_is_sent_once_across_a_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = free_port_on("127.0.0.2", "127.0.0.3")
    config = await relay_config(nursery, tmp_path, port)
    deferring = Deferring(trio.lowlevel.current_trio_token())
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as sender_mx,
        run_aiosmtpd("127.0.0.3", port=port, handler=PeerHandler(rcpt_reply=deferring)),
    ):
        first = await start_relay(nursery, config)
        with relay_done() as done:
            await send(first.host, first.port, "x@sender.test", ["b@remote.test"], BODY)
            [warning] = await sender_mx.handler.wait_for(1)
            with trio.fail_after(30):
                await done.event.wait()  # the warning's own entry: delivered and removed
        await first.server.aclose()
        [entry] = Spool(tmp_path / "spool").entries_sync()
        assert entry.delay_warned  # persisted before the restart
        attempts = deferring.attempts

        second = await start_relay(nursery, config)
        # Two more attempts: the first one's end (where a warning would be sent)
        # is over before the second begins.
        await deferring.wait_for(attempts + 2)
        await second.server.aclose()
    assert len(sender_mx.handler.received) == 1  # still only the one warning
    assert [e.id for e in Spool(tmp_path / "spool").entries_sync()] == [entry.id]

    assert warning.sender == "<>"  # a DSN never bounces (aiosmtpd spells <> so)
    assert warning.recipients == ["x@sender.test"]
    dsn = email.message_from_bytes(warning.content, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["Subject"] == "Delayed Mail (still being retried)"
    assert dsn["Auto-Submitted"] == "auto-replied"
    human, status_part, headers = dsn.iter_parts()
    assert status_part.get_content_type() == "message/delivery-status"
    text = " ".join(human.get_content().split())
    assert "THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE." in text
    assert "<b@remote.test>: 451 Mailbox busy, try again later" in text
    per_message, per_recipient = status_blocks(status_part)
    assert per_message["Reporting-MTA"] == "dns; mx.example.com"
    assert per_recipient["Final-Recipient"] == "rfc822; b@remote.test"
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Status"] == "4.2.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    until = parsedate_to_datetime(per_recipient["Will-Retry-Until"])
    assert until.timestamp() == int(entry.created) + 48 * 3600  # retry_hours from creation
    assert f"keep trying until {per_recipient['Will-Retry-Until']}" in text
    assert "Subject: relayed" in headers.get_content()


async def test_no_delay_warning_for_the_null_sender(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2", "127.0.0.3")
    config = await relay_config(nursery, tmp_path, port)
    deferring = Deferring(trio.lowlevel.current_trio_token())
    async with (
        run_aiosmtpd("127.0.0.2", port=port) as sender_mx,
        run_aiosmtpd("127.0.0.3", port=port, handler=PeerHandler(rcpt_reply=deferring)),
    ):
        running = await start_relay(nursery, config)
        await send(running.host, running.port, "", ["b@remote.test"], BODY)
        await deferring.wait_for(2)
        await running.server.aclose()
    assert sender_mx.handler.received == []
    [entry] = Spool(tmp_path / "spool").entries_sync()
    assert entry.delay_warned  # settled: never asked again
