"""Capture mode for development (``mailio-trio serve --capture``): take everything, print it.

What ``python -m aiosmtpd -n`` and the old ``smtpd.DebuggingServer`` did: an
application under development points at this server, and every message it
sends is accepted and printed — one summary line each, or the whole message
with ``--print`` — and goes nowhere else.

Handler: ``queue/print`` (runs after every other ``queue`` handler, so a
message is printed only once it was accepted). Storing to a maildir as well
joins when the maildir plugin does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

import trio

from mailio_trio.chain import Handler, Request, Response

if TYPE_CHECKING:
    from mailio_trio.message import Message

__all__ = ["print_handler", "summary"]

SEPARATOR = "-" * 72


def summary(message: Message, subject: str | None) -> str:
    """One line: id, envelope, subject, size; client text escaped (``%r``) so it stays one line."""
    envelope = message.envelope
    sender = f"<{envelope.sender}>" if envelope.sender is not None else "<>"
    recipients = ", ".join(f"<{r}>" for r in envelope.recipients)
    return (
        f"mailio-trio: captured {message.id} from {sender} to {recipients}"
        f" subject {subject!r} ({message.size} octets)"
    )


def _subject(message: Message) -> str | None:
    subject = message.email["Subject"]
    return None if subject is None else str(subject)


def print_handler(out: TextIO | None = None, *, whole: bool = False) -> Handler:
    """A ``queue/print`` handler writing to ``out`` (default: standard output at call time)."""

    async def print_message(req: Request, res: Response) -> None:
        message = req.message
        assert message is not None
        stream = out if out is not None else sys.stdout
        # Parsing and reading touch the spool file: blocking work goes to a thread.
        subject = await trio.to_thread.run_sync(_subject, message)
        print(summary(message, subject), file=stream, flush=True)
        if whole:
            raw = await trio.to_thread.run_sync(message.read_bytes)
            text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
            print(f"{SEPARATOR}\n{text.rstrip()}\n{SEPARATOR}", file=stream, flush=True)
        res.accept()

    # after=(): registered last among queue handlers; it only observes.
    return Handler(command="queue", name="print", func=print_message)
