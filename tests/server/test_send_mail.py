"""``Server.send_mail``: the application submits through its own server's queue chain.

Local recipients land in real maildirs, remote ones are relayed to an aiosmtpd
peer found through a DNS server on loopback; a bounce for a local sender goes
the same way, into that sender's maildir.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from smtp_peers import PeerHandler, free_port_on, run_aiosmtpd, start_relaying_server, status_blocks

from mailio_trio import ApiUser, Config, Server, SubmissionRefused
from mailio_trio.chain import Handler
from mailio_trio.client import send
from mailio_trio.relay.spool import Spool
from mailio_trio.testing import RunningServer, start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

    import trio

    from mailio_trio.chain import Request, Response


async def start(nursery: trio.Nursery, tmp_path: Path, port: int) -> RunningServer:
    return await start_relaying_server(nursery, tmp_path, port, maildir=True)


def inbox(tmp_path: Path, user: str, folder: str = "new") -> list[bytes]:
    directory = tmp_path / "mail" / "example.com" / user / folder
    return [p.read_bytes() for p in sorted(directory.iterdir())] if directory.is_dir() else []


async def test_send_mail_delivers_locally_and_relays(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    async with run_aiosmtpd("127.0.0.2", port=port) as peer:
        running = await start(nursery, tmp_path, port)
        message = EmailMessage()
        message["From"] = "App <app@example.com>"
        message["To"] = "bob@example.com, carol@remote.test"
        message["Bcc"] = "dave@remote.test"
        message["Subject"] = "from the application"
        message.set_content("Hello from inside the process.\n")
        result = await running.server.send_mail(message)
        assert (result.reply.code, result.reply.enhanced) == (250, "2.0.0")
        assert result.refused == ()
        await peer.handler.wait_for(1)
    [captured] = running.messages  # the user's queue handlers see it too
    assert captured.user == ApiUser()
    assert [str(r) for r in captured.envelope.recipients] == [
        "bob@example.com",
        "carol@remote.test",
        "dave@remote.test",
    ]
    [bob] = inbox(tmp_path, "bob")
    assert b"Hello from inside the process." in bob
    assert b"Bcc" not in bob  # a blind copy stays blind
    assert bob.startswith(b"Received: from localhost (localhost [127.0.0.1])")
    assert len(inbox(tmp_path, "app", ".Sent/cur")) == 1  # a local sender's Sent copy
    [relayed] = peer.handler.received
    assert relayed.sender == "app@example.com"
    assert relayed.recipients == ["carol@remote.test", "dave@remote.test"]
    assert b"Bcc" not in relayed.content


async def test_send_mail_bytes_need_an_envelope_and_refusals_raise(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = Server(Config(hostname="mx.example.com", domains=["example.com"], spool_dir=data))

    @server.handler("queue")
    async def refuse_spam(req: Request, res: Response) -> None:
        assert req.message is not None
        if b"spam" in req.message.read_bytes():
            res.reject(554, "5.7.1 no spam here")
        else:
            res.accept()

    running = await start_capturing_server(nursery, server=server)
    with pytest.raises(TypeError, match="sender= and recipients="):
        await server.send_mail(b"Subject: x\r\n\r\nx\r\n")
    with pytest.raises(ValueError, match="send_mail"):
        await server.send_mail(b"x\n", sender="a@example.com", recipients=["not an address"])
    with pytest.raises(SubmissionRefused) as refused:
        await server.send_mail(b"spam\n", sender="a@example.com", recipients=["b@example.com"])
    assert (refused.value.reply.code, refused.value.reply.enhanced) == (554, "5.7.1")
    await server.send_mail(b"Subject: ok\nbare LF\n", sender="", recipients=["b@example.com"])
    [captured] = running.messages
    assert captured.envelope.sender is None  # the null sender
    assert captured.raw.endswith(b"\r\nSubject: ok\r\nbare LF\r\n")  # CRLF, as DATA gives
    assert list(data.iterdir()) == []  # every submission's file is gone, refused or not


async def test_bounce_for_a_local_sender_lands_in_its_maildir(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = free_port_on("127.0.0.2")
    handler = PeerHandler(rcpt_reply=lambda _address: "550 5.1.1 no such user")
    async with run_aiosmtpd("127.0.0.2", port=port, handler=handler) as peer:
        running = await start(nursery, tmp_path, port)
        body = b"Subject: doomed\r\nFrom: alice@example.com\r\n\r\nhello\r\n"
        await send(running.host, running.port, "alice@example.com", ["nobody@remote.test"], body)
        await running.wait_for(2)  # the message, then its DSN through the same chain
        assert running.server.relay is not None
        await running.server.relay.wait_idle()
    assert peer.handler.received == []  # nothing relayed: not even the bounce to ourselves
    [dsn_bytes] = inbox(tmp_path, "alice")
    dsn = email.message_from_bytes(dsn_bytes, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn["To"] == "alice@example.com"
    _, status_part, headers = dsn.iter_parts()
    per_recipient = status_blocks(status_part)[1]
    assert per_recipient["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert per_recipient["Status"] == "5.1.1"
    assert "Subject: doomed" in headers.get_content()
    assert running.messages[1].envelope.sender is None  # a DSN is sent from <>
    assert Spool(tmp_path / "spool").entries_sync() == []


async def test_a_refused_bounce_is_kept_and_retried(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = free_port_on("127.0.0.2")
    handler = PeerHandler(rcpt_reply=lambda _address: "550 5.1.1 no such user")
    refusals: list[str] = []

    async def refuse_first_bounce(req: Request, res: Response) -> None:
        assert req.message is not None
        if req.message.envelope.sender is None and not refusals:
            refusals.append(req.message.id)
            res.reject(451, "4.3.0 mailbox busy")  # e.g. a maildir that cannot be written now
        else:
            res.accept()

    async with run_aiosmtpd("127.0.0.2", port=port, handler=handler):
        running = await start(nursery, tmp_path, port)
        running.server.add_handler(
            Handler(command="queue", name="busy", func=refuse_first_bounce, before=("maildir",))
        )
        body = b"Subject: doomed\r\n\r\nhello\r\n"
        await send(running.host, running.port, "alice@example.com", ["nobody@remote.test"], body)
        await running.wait_for(2)
        assert running.server.relay is not None
        await running.server.relay.wait_idle()
    assert len(refusals) == 1
    assert len(inbox(tmp_path, "alice")) == 1  # the retried bounce, once
    assert Spool(tmp_path / "spool").entries_sync() == []
