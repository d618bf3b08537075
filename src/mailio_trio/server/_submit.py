"""In-process submission: :meth:`Server.send_mail`, mail-io's ``server.sendMail``.

The application hands a message to its own server, which treats it as
submitted by an authenticated user (:class:`ApiUser`) and runs the same
``queue`` chain a network message gets — local recipients delivered to their
maildirs, remote ones spooled for relaying, the user's own queue handlers
called — without opening a socket to itself. No MAIL/RCPT/DATA handler runs:
the application is trusted as an authenticated submitter is, and the
envelope is whatever it says.

A socket-less :class:`~mailio_trio.server._session.Session` carries the message:
its stream refuses all I/O (a queue handler that tries to talk to "the
client" fails, and the submission gets ``451 4.3.0``), its client is the
local host, and the ``Received:`` line is the session's own.
"""

from __future__ import annotations

import email.policy
import os
import tempfile
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.message import Envelope, Message
from mailio_trio.protocol import (
    ClientProtocolError,
    Reply,
    crlf_line_endings,
    parse_mail_from,
    parse_rcpt_to,
)
from mailio_trio.protocol.catalogue import INTERNAL_ERROR, MESSAGE_TOO_BIG
from mailio_trio.server._context import Close
from mailio_trio.server._session import ClientInfo, Session

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailio_trio.server._session import ServerContext

__all__ = ["ApiUser", "SubmissionRefused", "submit"]


@attrs.frozen
class ApiUser:
    """``session.user`` of an in-process submission: the application itself.

    It is authenticated by being the process that runs the server, as
    mail-io's API user was.
    """

    username: str = "api"


class SubmissionRefused(Exception):
    """The ``queue`` chain did not accept the message; ``reply`` says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class _NoConnection(trio.abc.Stream):
    """The stream of a socket-less session: there is no client to talk to."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        raise trio.ClosedResourceError("an in-process submission has no connection")

    async def wait_send_all_might_not_block(self) -> None:
        raise trio.ClosedResourceError("an in-process submission has no connection")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        raise trio.ClosedResourceError("an in-process submission has no connection")

    async def aclose(self) -> None:
        pass


def _headers_envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Sender and recipients from the headers, as ``smtplib.send_message`` takes them."""
    resent = bool(message.get_all("Resent-Date"))
    prefix = "Resent-" if resent else ""
    senders = getaddresses(
        [str(v) for v in message.get_all(f"{prefix}Sender", [])]
    ) or getaddresses([str(v) for v in message.get_all(f"{prefix}From", [])])
    sender = senders[0][1] if senders else ""
    fields = [
        str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(f"{prefix}{name}", [])
    ]
    recipients = [addr for _, addr in getaddresses(fields) if addr]
    return sender, recipients


def _envelope(sender: str, recipients: Sequence[str], data: bytes) -> Envelope:
    """Parsed as MAIL and RCPT would parse them; a bad address is a ``ValueError``."""
    utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
    try:
        mail = parse_mail_from(f"FROM:<{sender}>" + (" SMTPUTF8" if utf8 else ""))
        rcpts = [parse_rcpt_to(f"TO:<{r}>").recipient for r in recipients]
    except ClientProtocolError as exc:
        raise ValueError(f"send_mail: {exc.reply.text}") from None
    return Envelope(
        sender=mail.sender,
        has_sender=True,
        recipients=rcpts,
        body=None if data.isascii() else "8BITMIME",
        smtputf8=utf8,
    )


def _write(directory: Path | None, header: bytes, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(prefix="mailio-", suffix=".eml", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(header)
        f.write(data)
    return Path(name)


async def submit(
    context: ServerContext,
    message: EmailMessage | bytes,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> Reply:
    """Run ``message`` through the server's ``queue`` chain; see ``Server.send_mail``."""
    if isinstance(message, EmailMessage):
        found_sender, found_recipients = _headers_envelope(message)
        sender = found_sender if sender is None else sender
        recipients = found_recipients if recipients is None else recipients
        if message.get_all("Bcc") or message.get_all("Resent-Bcc"):
            # Blind copies stay blind: the header never leaves (as smtplib does).
            message = _without_bcc(message)
        data = message.as_bytes(policy=email.policy.SMTP)
    elif isinstance(message, bytes):
        if sender is None or recipients is None:
            raise TypeError("send_mail: bytes need sender= and recipients=")
        # What a client's DATA gives a queue handler: CRLF line endings.
        data = crlf_line_endings(message)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
    else:
        raise TypeError("send_mail takes an email.message.EmailMessage or bytes")
    if not recipients:
        raise ValueError("send_mail: no recipients")
    envelope = _envelope(sender, recipients, data)
    config = context.config
    if len(data) > config.limits.message_size:
        raise SubmissionRefused(MESSAGE_TOO_BIG)
    session = Session(
        context,
        _NoConnection(),
        ClientInfo(address="127.0.0.1", port=0, hostname="localhost", helo="localhost"),
        esmtp=True,
        user=ApiUser(),
    )
    for callback in context.on_session:
        callback(session)
    session.envelope = envelope
    header = session.received_header()
    path = await trio.to_thread.run_sync(_write, config.spool_dir, header, data)
    received = Message(
        id=f"{session.id}.{session.transaction}",
        path=path,
        envelope=envelope.copy(),
        size=len(header) + len(data),
    )
    try:
        reply = await session.deliver(received)  # removes the file, whatever the answer
    except Close as close:  # a queue handler ended the "connection"
        reply = close.reply or INTERNAL_ERROR
        path.unlink(missing_ok=True)
    if not reply.is_positive:
        raise SubmissionRefused(reply)
    return reply


def _without_bcc(message: EmailMessage) -> EmailMessage:
    import copy

    out = copy.deepcopy(message)  # a shallow copy shares the header list
    del out["Bcc"]
    del out["Resent-Bcc"]
    return out
