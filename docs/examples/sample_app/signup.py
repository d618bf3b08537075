"""A tiny application that sends mail: the sample of ``docs/testing.md``.

``send_welcome`` retries what SMTP says is worth retrying — a 4xx reply, a
connection lost before the reply — and gives up at once on a 5xx.
"""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

SENDER = "hello@app.example"


class TemporaryFailure(Exception):
    """The server said "try again later"."""


def welcome_message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = "Welcome!"
    message.set_content(f"Hello {to}, thanks for signing up.\n")
    return message


def _send_once(message: EmailMessage, host: str, port: int) -> None:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TemporaryFailure(str(exc)) from exc
            raise
        except smtplib.SMTPResponseException as exc:  # MAIL or DATA refused
            if 400 <= exc.smtp_code < 500:
                raise TemporaryFailure(str(exc)) from exc
            raise


def send_welcome(to: str, *, host: str, port: int, attempts: int = 3, backoff: float = 0.0) -> int:
    """Send the welcome mail to ``to``; returns how many attempts it took.

    Raises:
      TemporaryFailure: Every attempt got a 4xx or lost the connection.
      smtplib.SMTPException: A permanent (5xx) refusal; not retried.
    """
    message = welcome_message(to)
    for attempt in range(1, attempts + 1):
        try:
            _send_once(message, host, port)
        except (TemporaryFailure, smtplib.SMTPServerDisconnected) as exc:
            if attempt == attempts:
                raise TemporaryFailure(f"gave up after {attempts} attempts: {exc}") from exc
            time.sleep(backoff * attempt)
        else:
            return attempt
    raise AssertionError("unreachable: the loop returns or raises")
