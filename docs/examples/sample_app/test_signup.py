"""Tests of the sample application against a real SMTP server (mailio_trio's fixture)."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

import pytest
from signup import SENDER, TemporaryFailure, send_welcome

if TYPE_CHECKING:
    from mailio_trio.testing import ThreadedServer


def test_welcome_mail_is_sent(mailio_server_thread: ThreadedServer) -> None:
    server = mailio_server_thread
    send_welcome("new.user@example.com", host=server.host, port=server.port)

    [captured] = server.wait_for(1, timeout=5)
    assert str(captured.envelope.sender) == SENDER
    assert [str(r) for r in captured.envelope.recipients] == ["new.user@example.com"]
    assert captured.message["Subject"] == "Welcome!"
    assert "thanks for signing up" in captured.message.get_content()
    assert server.find(recipient="NEW.USER@example.com", subject="Welcome!") == [captured]


def test_welcome_is_retried_after_451s(mailio_server_thread: ThreadedServer) -> None:
    server = mailio_server_thread
    # The next two messages are refused after their body: "451, try again later".
    server.fail_next("message", 451, "4.3.0 Mailbox busy", count=2)

    attempts = send_welcome("retry@example.com", host=server.host, port=server.port)

    assert attempts == 3
    assert len(server.wait_for(1)) == 1  # the refused copies were not kept


def test_lost_connection_is_retried(mailio_server_thread: ThreadedServer) -> None:
    server = mailio_server_thread
    server.drop_next("data")  # the connection closes when DATA is sent

    attempts = send_welcome("drop@example.com", host=server.host, port=server.port)

    assert attempts == 2
    assert len(server.wait_for(1)) == 1


def test_gives_up_after_three_temporary_failures(mailio_server_thread: ThreadedServer) -> None:
    server = mailio_server_thread
    server.fail_next("rcpt", 452, count=3)

    with pytest.raises(TemporaryFailure, match="gave up after 3 attempts"):
        send_welcome("full@example.com", host=server.host, port=server.port)
    assert server.messages == []


@pytest.mark.mailio(domains=["example.com"])
def test_permanent_refusal_is_not_retried(mailio_server_thread: ThreadedServer) -> None:
    server = mailio_server_thread

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_welcome("someone@elsewhere.example", host=server.host, port=server.port)

    [(code, _)] = refused.value.recipients.values()
    assert code == 550
    assert server.faults.fired == []
