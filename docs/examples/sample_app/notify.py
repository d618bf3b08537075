"""The welcome mail from a Trio application, sent with mailio_trio's own client.

``notify_welcome`` retries what SMTP says is worth retrying (``SMTPError``
with ``permanent`` false: a 4xx, a lost connection, a timeout) and gives up at
once on a permanent refusal.
"""

from __future__ import annotations

import trio

from mailio_trio.client import SMTPError, send

SENDER = "hello@app.example"


def welcome_bytes(to: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Welcome!\r\n\r\n"
        f"Hello {to}, thanks for signing up.\r\n"
    ).encode()


async def notify_welcome(
    to: str, *, host: str, port: int, attempts: int = 3, backoff: float = 0.0
) -> int:
    """Send the welcome mail to ``to``; returns how many attempts it took.

    Raises:
      SMTPError: A permanent refusal, or the last temporary one.
    """
    for attempt in range(1, attempts + 1):
        try:
            result = await send(host, port, SENDER, [to], welcome_bytes(to))
        except SMTPError as exc:
            if exc.permanent or attempt == attempts:
                raise
            await trio.sleep(backoff * attempt)
            continue
        [(_, reply)] = result.recipients.items()
        if reply.is_positive:
            return attempt
        if reply.is_permanent or attempt == attempts:
            raise SMTPError(reply.code, reply.text, reply.enhanced)
        await trio.sleep(backoff * attempt)
    raise AssertionError("unreachable: the loop returns or raises")
