"""``Server.send_mail`` answers for every recipient; none is dropped in silence.

Over SMTP a recipient that nothing would deliver is refused at RCPT (relaying
off: ``550 5.7.1``; an unknown local mailbox: ``550 5.1.1``). ``send_mail``
runs the same recipient policy and reports each recipient's outcome: by
default any refusal raises ``SubmissionRefused`` and nothing is delivered;
with ``partial=True`` the accepted ones are delivered and the result lists
the refused ones with their replies.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Server, SubmissionRefused, SubmissionResult
from mailio_trio.config import MaildirConfig

if TYPE_CHECKING:
    from pathlib import Path


def config(tmp_path: Path, **maildir: object) -> Config:
    return Config(
        hostname="mx.example.com",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path / "mail", **maildir),  # type: ignore[arg-type]  # test-chosen options
        spool_dir=tmp_path,
    )


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "bob@example.com, carol@example.net"
    msg["Subject"] = "Report"
    msg.set_content("...\n")
    return msg


def inbox(tmp_path: Path, user: str) -> list[Path]:
    directory = tmp_path / "mail" / "example.com" / user / "new"
    return sorted(directory.iterdir()) if directory.is_dir() else []


async def test_relaying_off_a_foreign_recipient_is_refused_as_over_smtp(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(config(tmp_path))
    caplog.set_level(logging.INFO, logger="mailio_trio")
    with pytest.raises(SubmissionRefused) as refused:
        await server.send_mail(message())
    outcomes = {str(o.recipient): o for o in refused.value.recipients}
    assert outcomes["bob@example.com"].accepted
    carol = outcomes["carol@example.net"]
    assert not carol.accepted
    assert (carol.reply.code, carol.reply.enhanced) == (550, "5.7.1")
    assert (refused.value.reply.code, refused.value.reply.enhanced) == (550, "5.7.1")
    assert inbox(tmp_path, "bob") == []  # all or nothing unless partial=True
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("carol@example.net" in m and "550 5.7.1" in m for m in logged)

    # The same recipient over SMTP, for comparison.
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    host, port = addresses[0]

    def rcpt() -> tuple[int, bytes]:
        with smtplib.SMTP(host, port) as client:
            client.ehlo("client.test")
            client.mail("app@example.com")
            return client.rcpt("carol@example.net")

    with trio.fail_after(10):
        code, text = await trio.to_thread.run_sync(rcpt)
    assert (code, text.split()[0].decode()) == (carol.reply.code, carol.reply.enhanced)


async def test_partial_delivers_the_accepted_and_reports_the_refused(tmp_path: Path) -> None:
    server = Server(config(tmp_path))
    result = await server.send_mail(message(), partial=True)
    assert isinstance(result, SubmissionResult)
    assert [str(o.recipient) for o in result.accepted] == ["bob@example.com"]
    [carol] = result.refused
    assert (str(carol.recipient), carol.reply.code, carol.reply.enhanced) == (
        "carol@example.net",
        550,
        "5.7.1",
    )
    assert result.reply.code == 250
    assert len(inbox(tmp_path, "bob")) == 1


async def test_an_unknown_local_mailbox_is_refused_not_dropped(tmp_path: Path) -> None:
    server = Server(config(tmp_path, mailboxes=["bob@example.com"]))
    with pytest.raises(SubmissionRefused) as refused:
        await server.send_mail(
            b"Subject: x\r\n\r\nx\r\n", sender="app@example.com", recipients=["nobody@example.com"]
        )
    [nobody] = refused.value.recipients
    assert (nobody.reply.code, nobody.reply.enhanced) == (550, "5.1.1")


async def test_all_refused_raises_even_with_partial(tmp_path: Path) -> None:
    server = Server(config(tmp_path))
    with pytest.raises(SubmissionRefused) as refused:
        await server.send_mail(
            b"x\r\n", sender="app@example.com", recipients=["carol@example.net"], partial=True
        )
    assert [o.reply.code for o in refused.value.recipients] == [550]


async def test_everyone_accepted_returns_each_outcome(tmp_path: Path) -> None:
    server = Server(config(tmp_path))
    result = await server.send_mail(
        b"x\r\n", sender="app@example.com", recipients=["bob@example.com", "alice@example.com"]
    )
    assert result.refused == ()
    assert [(str(o.recipient), o.reply.code) for o in result.recipients] == [
        ("bob@example.com", 250),
        ("alice@example.com", 250),
    ]
    assert result.reply.text.startswith("OK: queued as")
