"""Tests of the Trio side of the sample application (pytest-trio, the async fixture)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from notify import SENDER, notify_welcome

from mailio_trio.client import SMTPError

if TYPE_CHECKING:
    from mailio_trio.testing import RunningServer


@pytest.mark.trio
async def test_welcome_is_sent_with_our_client(mailio_server: RunningServer) -> None:
    attempts = await notify_welcome(
        "new@example.com", host=mailio_server.host, port=mailio_server.port
    )
    [captured] = await mailio_server.outbox.wait_for(1)
    assert attempts == 1
    assert str(captured.envelope.sender) == SENDER
    assert captured.message["Subject"] == "Welcome!"


@pytest.mark.trio
async def test_recipient_refused_with_452_is_retried(mailio_server: RunningServer) -> None:
    mailio_server.fail_next("rcpt", 452, "4.2.2 Mailbox full", count=2)
    attempts = await notify_welcome(
        "new@example.com", host=mailio_server.host, port=mailio_server.port
    )
    assert attempts == 3
    assert len(await mailio_server.outbox.wait_for(1)) == 1


@pytest.mark.trio
async def test_permanent_refusal_after_data_is_not_retried(mailio_server: RunningServer) -> None:
    mailio_server.fail_next("message", 554, "5.7.1 Rejected by policy")
    with pytest.raises(SMTPError) as refused:
        await notify_welcome("new@example.com", host=mailio_server.host, port=mailio_server.port)
    assert refused.value.permanent
    assert mailio_server.faults.pending() == 0
    assert mailio_server.messages == []
