"""A 5xx to MAIL FROM or after DATA bounces at once, never retried (#19, blind spot 5).

RCPT-time 5xx is tested in tests/test_e2e_relay.py; a permanent refusal of
the sender, or of the whole message after its body, goes through other code
paths of the client and the relay. The remote peer is aiosmtpd on loopback,
scripted to refuse every time, so a retry would show as a second transaction;
the sender is local, so its DSN lands in its own maildir.
"""

from __future__ import annotations

import email
import email.policy
import re
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from smtp_peers import PeerHandler, free_port_on, run_aiosmtpd, start_relaying_server, status_blocks

from mailio_trio.client import send
from mailio_trio.relay.spool import Spool

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.testing import RunningServer

WAIT = 20  # seconds: an upper bound for anything to happen, never expected
BODY = b"Subject: refused\r\nFrom: alice@example.com\r\n\r\nhello\r\n"


@attrs.define(eq=False)
class RefusingPeer(PeerHandler):
    """Counts transactions (MAIL commands); refuses MAIL or DATA every time, as scripted."""

    mail_refusal: str | None = None
    data_refusal: str | None = None
    transactions: int = 0

    async def handle_MAIL(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.transactions += 1
        if self.mail_refusal is not None:
            return self.mail_refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data_refusal is not None:
            return self.data_refusal
        return await super().handle_DATA(server, session, envelope)


async def start(nursery: trio.Nursery, tmp_path: Path, port: int) -> RunningServer:
    return await start_relaying_server(nursery, tmp_path, port, maildir=True)


def inbox(tmp_path: Path) -> list[bytes]:
    new = tmp_path / "mail" / "example.com" / "alice" / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []


@pytest.mark.parametrize(
    ("stage", "refusal", "status"),
    [
        pytest.param("mail", "550 5.1.8 sender refused", "5.1.8", id="mail"),
        pytest.param("data", "554 5.7.1 message refused", "5.7.1", id="data"),
    ],
)
async def test_permanent_refusal_is_one_transaction_and_one_dsn(
    nursery: trio.Nursery, tmp_path: Path, stage: str, refusal: str, status: str
) -> None:
    handler = (
        RefusingPeer(mail_refusal=refusal)
        if stage == "mail"
        else RefusingPeer(data_refusal=refusal)
    )
    port = free_port_on("127.0.0.2")
    spool = Spool(tmp_path / "spool")
    async with run_aiosmtpd("127.0.0.2", port=port, handler=handler):
        running = await start(nursery, tmp_path, port)
        assert running.server.relay is not None
        with trio.fail_after(WAIT):
            await send(running.host, running.port, "alice@example.com", ["b@remote.test"], BODY)
            # Done (bounced, entry gone) or, if it was wrongly retried, a second transaction.
            while handler.transactions < 2 and (spool.entries_sync() or not inbox(tmp_path)):  # noqa: ASYNC110  # the peer is another thread
                await trio.sleep(0.02)
            if handler.transactions < 2:
                await running.server.relay.wait_idle()
    assert handler.transactions == 1
    assert handler.received == []
    assert spool.entries_sync() == []
    assert list((tmp_path / "spool" / "queue").iterdir()) == []
    [dsn_bytes] = inbox(tmp_path)
    dsn = email.message_from_bytes(dsn_bytes, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    _, status_part, _ = dsn.iter_parts()
    per_recipient = status_blocks(status_part)[1]
    assert per_recipient["Final-Recipient"] == "rfc822; b@remote.test"
    assert per_recipient["Action"] == "failed"
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", per_recipient["Status"])
    assert per_recipient["Status"] == status
