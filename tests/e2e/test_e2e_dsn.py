"""DSN (RFC 3461, reports per RFC 3464) end to end over real sockets.

Our server delivers ``example.com`` to maildirs and relays the rest; the
sender ``alice@example.com`` is local, so every report lands in her inbox.
Remote MX hosts are found through the loopback DNS server: an aiosmtpd peer
(no DSN) or a second mailio server (DSN, since it delivers to maildirs).
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
import trio
from smtp_peers import PeerHandler, free_port_on, run_aiosmtpd, status_blocks

from mailio_trio import Config
from mailio_trio.config import DnsConfig, MaildirConfig, RelayConfig
from mailio_trio.protocol.dsn import NotifyOn, Orcpt, Ret
from mailio_trio.relay.spool import Spool
from mailio_trio.testing import start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from email.message import Message
    from pathlib import Path

    from mailio_trio.testing import RunningServer

WAIT = 20  # seconds: an upper bound for anything to happen, never expected
BODY = (
    b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: dsn test\r\n"
    b"Message-ID: <dsn-1@example.com>\r\n\r\nthe body, which RET=HDRS keeps home\r\n"
)


async def start(
    nursery: trio.Nursery, tmp_path: Path, zone: Zone | None = None, port: int = 25
) -> RunningServer:
    dns_host, dns_port = await nursery.start(DnsServer(zone or Zone()).serve)
    config = Config(
        hostname="mx.example.com",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path / "mail"),
        relay=RelayConfig(
            enabled=True,
            spool_dir=tmp_path / "spool",
            port=port,
            allow_unauthenticated=True,
            retry_base_interval=0.05,
        ),
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )
    return await start_capturing_server(nursery, config)


async def transact(running: RunningServer, mail: str, rcpts: list[str], body: bytes = BODY) -> None:
    """One transaction over a raw socket, each command's reply checked."""
    with trio.fail_after(WAIT):
        await _transact(running, mail, rcpts, body)


async def _transact(running: RunningServer, mail: str, rcpts: list[str], body: bytes) -> None:
    async with running.open_raw() as conn:
        assert (await conn.read_reply()).code == 220
        ehlo = await conn.command("EHLO client.test")
        assert "DSN" in ehlo.text.split("\n")
        assert (await conn.command(mail)).code == 250
        for rcpt in rcpts:
            reply = await conn.command(rcpt)
            assert reply.code == 250, reply
        assert (await conn.command("DATA")).code == 354
        await conn.send(body)
        assert (await conn.command(".")).code == 250
        await conn.command("QUIT")


def inbox(tmp_path: Path, user: str = "alice") -> list[EmailMessage]:
    new = tmp_path / "mail" / "example.com" / user / "new"
    if not new.is_dir():
        return []
    parser = email.parser.BytesParser(policy=email.policy.default)
    return [parser.parsebytes(p.read_bytes()) for p in sorted(new.iterdir())]


async def wait_inbox(tmp_path: Path, count: int, user: str = "alice") -> list[EmailMessage]:
    with trio.fail_after(WAIT):
        while len(found := inbox(tmp_path, user)) < count:  # noqa: ASYNC110  # written by a thread
            await trio.sleep(0.02)
    return found


async def settle(running: RunningServer) -> None:
    """Wait until the relay has nothing left to do (its reports submitted too)."""
    assert running.server.relay is not None
    with trio.fail_after(WAIT):
        await running.server.relay.wait_idle()
        while running.server.relay.spool.entries_sync():  # noqa: ASYNC110  # the spool is files
            await trio.sleep(0.02)


def report_parts(report: EmailMessage) -> tuple[Message, list[Message], EmailMessage]:
    """The report's delivery-status blocks and its third part (RFC 6522)."""
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Auto-Submitted"] == "auto-replied"
    _, status_part, returned = report.iter_parts()
    assert status_part.get_content_type() == "message/delivery-status"
    per_message, *per_recipient = status_blocks(status_part)
    assert isinstance(returned, EmailMessage)
    return per_message, per_recipient, returned


async def test_notify_success_at_local_delivery_reports_delivered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    running = await start(nursery, tmp_path)
    await transact(
        running,
        "MAIL FROM:<alice@example.com> RET=FULL ENVID=QQ+2B314159",
        ["RCPT TO:<bob@example.com> NOTIFY=SUCCESS ORCPT=rfc822;Bob+2Bdsn@example.com"],
    )
    [delivered] = await wait_inbox(tmp_path, 1, "bob")
    assert delivered["Subject"] == "dsn test"
    [report] = await wait_inbox(tmp_path, 1)
    per_message, [block], returned = report_parts(report)
    assert per_message["Original-Envelope-Id"] == "QQ+314159"
    assert per_message["Reporting-MTA"] == "dns; mx.example.com"
    assert block["Original-Recipient"] == "rfc822;Bob+dsn@example.com"
    assert block["Final-Recipient"] == "rfc822; bob@example.com"
    assert block["Action"] == "delivered"
    assert block["Status"] == "2.0.0"
    # A success report returns headers only, RET=FULL or not (RFC 3461 §4.3).
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Message-ID: <dsn-1@example.com>" in returned.get_payload()
    assert "the body" not in returned.get_payload()


async def test_without_notify_success_local_delivery_reports_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    running = await start(nursery, tmp_path)
    await transact(
        running,
        "MAIL FROM:<alice@example.com>",
        ["RCPT TO:<bob@example.com> NOTIFY=FAILURE,DELAY", "RCPT TO:<carol@example.com>"],
    )
    await wait_inbox(tmp_path, 1, "carol")
    # Then a report that is wanted, to know the unwanted one had its chance first.
    await transact(
        running, "MAIL FROM:<alice@example.com>", ["RCPT TO:<bob@example.com> NOTIFY=SUCCESS"]
    )
    [report] = await wait_inbox(tmp_path, 1)
    _, [block], _ = report_parts(report)
    assert block["Final-Recipient"] == "rfc822; bob@example.com"


async def test_no_report_to_the_null_sender(nursery: trio.Nursery, tmp_path: Path) -> None:
    running = await start(nursery, tmp_path)
    await transact(running, "MAIL FROM:<>", ["RCPT TO:<bob@example.com> NOTIFY=SUCCESS"])
    await wait_inbox(tmp_path, 1, "bob")
    await trio.sleep(0.2)  # what would be a report's time to arrive: there is nowhere for it
    mail_root = tmp_path / "mail" / "example.com"
    assert sorted(p.name for p in mail_root.iterdir()) == ["bob"]


def refusing_peer() -> PeerHandler:
    return PeerHandler(rcpt_reply=lambda address: "550 5.1.1 no such user")


def remote_zone() -> Zone:
    zone = Zone()
    zone.mx("remote.test", (10, "mx.remote.test"))
    zone.a("mx.remote.test", "127.0.0.2")
    return zone


async def test_notify_never_suppresses_the_bounce(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    async with run_aiosmtpd("127.0.0.2", port=port, handler=refusing_peer()):
        running = await start(nursery, tmp_path, remote_zone(), port)
        await transact(
            running,
            "MAIL FROM:<alice@example.com>",
            ["RCPT TO:<never@remote.test> NOTIFY=NEVER", "RCPT TO:<plain@remote.test>"],
        )
        [report] = await wait_inbox(tmp_path, 1)
        await settle(running)
    # One bounce, for the recipient that did not say NEVER.
    assert len(inbox(tmp_path)) == 1
    _, blocks, _ = report_parts(report)
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; plain@remote.test"]
    assert blocks[0]["Action"] == "failed"


async def test_notify_never_alone_sends_nothing(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    async with run_aiosmtpd("127.0.0.2", port=port, handler=refusing_peer()):
        running = await start(nursery, tmp_path, remote_zone(), port)
        await transact(
            running, "MAIL FROM:<alice@example.com>", ["RCPT TO:<never@remote.test> NOTIFY=NEVER"]
        )
        await settle(running)
        await trio.sleep(0.2)  # a bounce submitted now would be in the maildir by then
    assert inbox(tmp_path) == []
    assert Spool(tmp_path / "spool").entries_sync() == []


@pytest.mark.parametrize("ret", ["HDRS", "FULL", None])
async def test_ret_decides_what_a_bounce_returns(
    nursery: trio.Nursery, tmp_path: Path, ret: str | None
) -> None:
    port = free_port_on("127.0.0.2")
    mail = "MAIL FROM:<alice@example.com>" + (f" RET={ret}" if ret else "")
    async with run_aiosmtpd("127.0.0.2", port=port, handler=refusing_peer()):
        running = await start(nursery, tmp_path, remote_zone(), port)
        await transact(running, mail, ["RCPT TO:<gone@remote.test> ORCPT=rfc822;gone@remote.test"])
        [report] = await wait_inbox(tmp_path, 1)
    _, [block], returned = report_parts(report)
    assert block["Original-Recipient"] == "rfc822;gone@remote.test"
    if ret == "FULL":
        assert returned.get_content_type() == "message/rfc822"
        [original] = returned.iter_parts()
        assert original["Message-ID"] == "<dsn-1@example.com>"
        assert "the body, which RET=HDRS keeps home" in original.get_content()
    else:  # HDRS, and our choice without RET: the headers only
        assert returned.get_content_type() == "text/rfc822-headers"
        assert "Message-ID: <dsn-1@example.com>" in returned.get_payload()
        assert "the body" not in returned.get_payload()


async def test_non_dsn_next_hop_gets_nothing_and_the_sender_a_relayed_report(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = free_port_on("127.0.0.2")
    async with run_aiosmtpd("127.0.0.2", port=port) as peer:
        running = await start(nursery, tmp_path, remote_zone(), port)
        await transact(
            running,
            "MAIL FROM:<alice@example.com> ENVID=env-7",
            [
                "RCPT TO:<ok@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ok@remote.test",
                "RCPT TO:<quiet@remote.test>",
            ],
        )
        [received] = await peer.handler.wait_for(1)
        [report] = await wait_inbox(tmp_path, 1)
        await settle(running)
    assert received.recipients == ["ok@remote.test", "quiet@remote.test"]
    assert not any("RET" in o or "ENVID" in o for o in received.mail_options)
    assert len(inbox(tmp_path)) == 1
    per_message, [block], returned = report_parts(report)
    assert per_message["Original-Envelope-Id"] == "env-7"
    assert block["Action"] == "relayed"
    assert block["Final-Recipient"] == "rfc822; ok@remote.test"
    assert block["Original-Recipient"] == "rfc822;ok@remote.test"
    assert block["Status"].startswith("2.")
    assert block["Remote-MTA"] == "dns; mx.remote.test"
    assert returned.get_content_type() == "text/rfc822-headers"


async def test_dsn_capable_next_hop_gets_the_parameters(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # The remote MX is a second mailio server: it delivers to maildirs, so it offers DSN.
    remote = await start_capturing_server(
        nursery,
        Config(
            hostname="mx.remote.test",
            domains=["remote.test"],
            maildir=MaildirConfig(enabled=True, root=tmp_path / "remote-mail"),
        ),
    )
    zone = Zone()
    zone.mx("remote.test", (10, "mx.remote.test"))
    zone.a("mx.remote.test", "127.0.0.1")
    running = await start(nursery, tmp_path, zone, remote.port)
    await transact(
        running,
        "MAIL FROM:<alice@example.com> RET=HDRS ENVID=QQ+2B314159",
        [
            "RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@remote.test",
            "RCPT TO:<carol@remote.test> NOTIFY=NEVER",
            "RCPT TO:<dave@remote.test>",
        ],
    )
    [captured] = await remote.wait_for(1, timeout=WAIT)
    await settle(running)
    envelope = captured.envelope
    assert captured.recipients == ["bob@remote.test", "carol@remote.test", "dave@remote.test"]
    assert envelope.ret is Ret.HDRS
    assert envelope.envid == "QQ+314159"
    bob, carol, dave = envelope.recipients
    bob_dsn = envelope.recipient_dsn(bob)
    assert bob_dsn is not None
    assert bob_dsn.notify == frozenset({NotifyOn.SUCCESS, NotifyOn.DELAY})
    assert bob_dsn.orcpt == Orcpt("rfc822", "Bob+x@remote.test")
    carol_dsn = envelope.recipient_dsn(carol)
    assert carol_dsn is not None
    assert carol_dsn.notify == frozenset({NotifyOn.NEVER})
    assert envelope.recipient_dsn(dave) is None
    # The next hop reports now (it tried: alice@example.com is not its to deliver); we do not.
    await trio.sleep(0.2)
    assert inbox(tmp_path) == []


@pytest.mark.parametrize(
    "command",
    [
        "MAIL FROM:<alice@example.com> RET=BODY",
        "MAIL FROM:<alice@example.com> RET",
        "MAIL FROM:<alice@example.com> ENVID=bad+zz",
        "MAIL FROM:<alice@example.com> ENVID=" + "e" * 101,
        "RCPT TO:<bob@example.com> NOTIFY=NEVER,SUCCESS",
        "RCPT TO:<bob@example.com> NOTIFY=SOMETIMES",
        "RCPT TO:<bob@example.com> ORCPT=bob@example.com",
        "RCPT TO:<bob@example.com> ORCPT=rfc822;bob+0D+0A@example.com",
    ],
)
async def test_malformed_parameters_are_501_5_5_4(
    nursery: trio.Nursery, tmp_path: Path, command: str
) -> None:
    running = await start(nursery, tmp_path)
    with trio.fail_after(WAIT):
        await malformed(running, command)


async def malformed(running: RunningServer, command: str) -> None:
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        if command.startswith("RCPT"):
            assert (await conn.command("MAIL FROM:<alice@example.com>")).code == 250
        reply = await conn.command(command)
        assert (reply.code, reply.enhanced) == (501, "5.5.4")
        # The session goes on: the same command without the bad parameter works.
        good = await conn.command(command.split(" ")[0] + " " + command.split(" ")[1])
        assert good.code == 250


async def test_dsn_keywords_need_ehlo(nursery: trio.Nursery, tmp_path: Path) -> None:
    running = await start(nursery, tmp_path)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await conn.read_reply()
            await conn.command("HELO client.test")
            reply = await conn.command("MAIL FROM:<alice@example.com> RET=HDRS")
    assert (reply.code, reply.enhanced) == (555, "5.5.4")


async def test_a_rcpt_line_lengthened_by_orcpt_fits(nursery: trio.Nursery, tmp_path: Path) -> None:
    # RFC 3461 §4: up to 500 more octets on RCPT; beyond 512 without DSN.
    orcpt = "rfc822;" + "o" * (500 - len("rfc822;"))
    line = f"RCPT TO:<bob@example.com> NOTIFY=SUCCESS ORCPT={orcpt}"
    assert len(line) + 2 > 512
    running = await start(nursery, tmp_path)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await conn.read_reply()
            await conn.command("EHLO client.test")
            await conn.command("MAIL FROM:<alice@example.com>")
            reply = await conn.command(line)
    assert reply.code == 250
