"""``req.reject_recipient``'s checks and bookkeeping (no session needed: no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from mailio_trio.chain import Request
from mailio_trio.message import Envelope, Message
from mailio_trio.protocol import Address, Command

if TYPE_CHECKING:
    from mailio_trio.server import Session

BOB = Address("Bob", "Example.COM")


def queue_request() -> Request:
    envelope = Envelope(recipients=[Address("alice", "example.com"), BOB])
    message = Message(id="m.0", path=Path("/nonexistent"), envelope=envelope, size=0)
    return Request(Command(None, "queue", ""), cast("Session", None), message=message)


def test_the_first_refusal_of_a_recipient_is_kept_by_its_key() -> None:
    req = queue_request()
    req.reject_recipient(BOB, 452, "Mailbox full", "4.2.2")
    req.reject_recipient(Address("Bob", "example.com"), 550, "Second thoughts")
    [(key, reply)] = req.refused_recipients.items()
    assert key == BOB.key()
    assert (reply.code, reply.enhanced, reply.text) == (452, "4.2.2", "Mailbox full")


@pytest.mark.parametrize("code", [250, 354, 600])
def test_only_4xx_and_5xx(code: int) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        queue_request().reject_recipient(BOB, code, "no")


def test_a_stranger_cannot_be_refused() -> None:
    with pytest.raises(ValueError, match="not a recipient"):
        queue_request().reject_recipient(Address("eve", "example.com"), 550, "no")


def test_outside_queue_there_is_no_message() -> None:
    req = Request(Command(None, "rcpt", ""), cast("Session", None))
    with pytest.raises(ValueError, match="queue handlers"):
        req.reject_recipient(BOB, 550, "no")
