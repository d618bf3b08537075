"""Local mail through the relay spool to a real Dovecot over LMTP (RFC 2033).

``example.com`` has a transport (``[relay.transports]``): its recipients are
spooled (the client's ``250`` promises a durable copy) and the worker hands
them to Dovecot's ``lmtp``, over TCP or its Unix socket; nothing goes to our
maildir for it. The sender's own domain, ``sender.test``, is a plain maildir
domain, so a DSN to it lands in ``<tmp>/mail/sender.test/alice``.

Dovecot comes from Debian (``dovecot-core``, ``dovecot-lmtpd``), started per
test by ``tests/helpers/dovecot.py``; without it the tests skip, unless
``MAILIO_REQUIRE_DOVECOT=1`` (``.ci/run``).
"""

from __future__ import annotations

import email
import email.policy
from typing import TYPE_CHECKING

import pytest
import trio
from dovecot import Dovecot, run_dovecot
from smtp_peers import status_blocks

from mailio_trio import Config
from mailio_trio.client import open_smtp_client, send
from mailio_trio.config import MaildirConfig, RelayConfig
from mailio_trio.relay.spool import RecipientStatus, Spool
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.testing import RunningServer

WAIT = 30
BODY = b"Subject: to dovecot\r\nFrom: alice@sender.test\r\n\r\n.a dotted line\r\nhello\r\n"


async def start(
    nursery: trio.Nursery, tmp_path: Path, transport: str, *, retry: float = 0.05
) -> RunningServer:
    config = Config(
        hostname="mx.example.com",
        domains=["example.com", "sender.test"],
        # The maildir's own users: example.com's are Dovecot's to know, never checked here.
        maildir=MaildirConfig(
            enabled=True, root=tmp_path / "mail", mailboxes=("alice@sender.test",)
        ),
        relay=RelayConfig(
            enabled=True,
            spool_dir=tmp_path / "spool",
            allow_unauthenticated=True,
            retry_base_interval=retry,
            connect_timeout=5.0,
            transports={"example.com": transport},
        ),
    )
    return await start_capturing_server(nursery, config)


def sender_inbox(tmp_path: Path) -> list[bytes]:
    new = tmp_path / "mail" / "sender.test" / "alice" / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []


def delivered(message: bytes) -> bool:
    """Dovecot stores maildir files with LF endings: our body, unstuffed, after the headers."""
    return message.replace(b"\r\n", b"\n").endswith(b"\n" + BODY.replace(b"\r\n", b"\n"))


def transport_of(dovecot: Dovecot, kind: str) -> str:
    if kind == "unix":
        return f"lmtp:unix:{dovecot.socket_path}"
    return f"lmtp:inet:127.0.0.1:{dovecot.port}"


@pytest.mark.parametrize("kind", ["inet", "unix"])
async def test_two_delivered_one_bounced_with_a_dsn(
    nursery: trio.Nursery, tmp_path: Path, kind: str
) -> None:
    async with run_dovecot(["amy@example.com", "cy@example.com"]) as dovecot:
        running = await start(nursery, tmp_path, transport_of(dovecot, kind))
        assert running.server.relay is not None
        with trio.fail_after(WAIT):
            async with open_smtp_client(running.host, running.port) as client:
                result = await client.send_message(
                    "alice@sender.test",
                    ["amy@example.com", "bob@example.com", "cy@example.com"],
                    BODY,
                    # Dovecot has no DSN: amy's success report is ours ("relayed").
                    rcpt_params={"amy@example.com": ["NOTIFY=SUCCESS"]},
                )
            assert result.accepted == ["amy@example.com", "bob@example.com", "cy@example.com"]
            assert result.data_reply is not None
            assert "queued as" in result.data_reply.text
            await running.server.relay.wait_idle()
        amy = dovecot.mailbox("example.com", "amy")
        cy = dovecot.mailbox("example.com", "cy")
    for box in (amy, cy):
        [message] = box
        assert delivered(message)
    assert not (tmp_path / "mail" / "example.com").exists()  # never our maildir
    assert Spool(tmp_path / "spool").entries_sync() == []
    [dsn_bytes] = sender_inbox(tmp_path)
    dsn = email.message_from_bytes(dsn_bytes, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    _, status_part, _ = dsn.iter_parts()
    blocks = status_blocks(status_part)
    assert len(blocks) == 3  # the per-message block, bob's and amy's; cy asked for nothing
    assert blocks[1]["Final-Recipient"] == "rfc822; bob@example.com"
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "5.1.1"
    assert blocks[1]["Remote-MTA"].startswith("dns; lmtp:")
    assert blocks[2]["Final-Recipient"] == "rfc822; amy@example.com"
    assert blocks[2]["Action"] == "relayed"


async def test_stopped_dovecot_keeps_the_message_queued_until_it_is_back(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with run_dovecot(["amy@example.com"]) as dovecot:
        # A long retry interval: after the failed attempt nothing is due until we flush.
        running = await start(nursery, tmp_path, transport_of(dovecot, "inet"), retry=3600)
        relay = running.server.relay
        assert relay is not None
        spool = Spool(tmp_path / "spool")
        await dovecot.stop()
        with trio.fail_after(WAIT):
            result = await send(
                running.host, running.port, "alice@sender.test", ["amy@example.com"], BODY
            )
            assert result.accepted == ["amy@example.com"]
            # wait_idle() waits for an empty spool; here the entry must stay.
            while not any(e.attempts for e in spool.entries_sync()):  # noqa: ASYNC110  # a file
                await trio.sleep(0.02)
        [entry] = spool.entries_sync()
        assert entry.attempts >= 1
        [state] = entry.recipients
        assert state.status is RecipientStatus.PENDING
        assert state.error is not None
        assert state.error.code == 451  # could not connect: temporary
        assert dovecot.mailbox("example.com", "amy") == []
        await dovecot.start()
        # `mailio-trio queue flush`: due now; the worker notices at its next scan.
        entry.next_attempt = 0.0
        spool.save_sync(entry)
        relay.wake()
        with trio.fail_after(WAIT):
            await relay.wait_idle()
        [message] = dovecot.mailbox("example.com", "amy")
    assert delivered(message)
    assert spool.entries_sync() == []
    assert sender_inbox(tmp_path) == []  # no bounce, and no delay warning yet
