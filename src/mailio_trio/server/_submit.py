"""In-process submission: :meth:`Server.send_mail`, mail-io's ``server.sendMail``.

The application hands a message to its own server, which treats it as
submitted by an authenticated user (:class:`ApiUser`) and runs the same
``queue`` chain a network message gets — local recipients delivered to their
maildirs, remote ones spooled for relaying, the user's own queue handlers
called — without opening a socket to itself.

Recipients meet the server's recipient policy all the same: each runs the
``rcpt`` chain (``rcpt/relay``, ``rcpt/local``, your own handlers) as RCPT
would, so a recipient nothing would deliver — a foreign domain with relaying
off, an unknown mailbox — is refused with the reply SMTP would give, never
dropped in silence. The one difference from a network client is trust in the
envelope: the application may relay with any sender (its DSNs come from
``<>``), see :attr:`ApiUser.relays_any_sender`.

A socket-less :class:`~mailio_trio.server.Session` carries the message:
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

from mailio_trio.chain import Request
from mailio_trio.message import Envelope, Message
from mailio_trio.protocol import (
    Address,
    ClientProtocolError,
    Command,
    Reply,
    Verb,
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

__all__ = ["ApiUser", "RecipientOutcome", "SubmissionRefused", "SubmissionResult", "submit"]


@attrs.frozen
class ApiUser:
    """``session.user`` of an in-process submission: the application itself.

    It is authenticated by being the process that runs the server, as
    mail-io's API user was.
    """

    username: str = "api"
    relays_any_sender: bool = attrs.field(default=True, init=False)
    """``rcpt/relay`` lets this user relay whatever the sender (a DSN's ``<>`` too)."""


@attrs.frozen
class RecipientOutcome:
    """What one recipient of a submission got: the reply RCPT would have given it."""

    recipient: Address
    reply: Reply

    @property
    def accepted(self) -> bool:
        return self.reply.is_positive


@attrs.frozen
class SubmissionResult:
    """What :meth:`Server.send_mail` did, recipient by recipient.

    ``reply`` is the ``queue`` chain's (``250 2.0.0 OK: queued as ...``): it
    speaks for ``accepted`` only. ``refused`` is empty unless the
    caller passed ``partial=True``.
    """

    reply: Reply
    recipients: tuple[RecipientOutcome, ...]

    @property
    def accepted(self) -> tuple[RecipientOutcome, ...]:
        return tuple(o for o in self.recipients if o.accepted)

    @property
    def refused(self) -> tuple[RecipientOutcome, ...]:
        return tuple(o for o in self.recipients if not o.accepted)


class SubmissionRefused(Exception):
    """Nothing was delivered; ``reply`` says why, ``recipients`` says it per recipient.

    ``reply`` is the first refused recipient's reply when the recipient
    policy refused someone, else the ``queue`` chain's refusal. ``recipients``
    holds every recipient's outcome (empty when the message itself was refused
    before any recipient was looked at, e.g. for its size).
    """

    def __init__(self, reply: Reply, recipients: Sequence[RecipientOutcome] = ()) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.recipients = tuple(recipients)

    @property
    def refused(self) -> tuple[RecipientOutcome, ...]:
        return tuple(o for o in self.recipients if not o.accepted)


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
    partial: bool = False,
) -> SubmissionResult:
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
    session = Session.for_stream(
        context,
        _NoConnection(),
        ClientInfo(address="127.0.0.1", port=0, hostname="localhost", helo="localhost"),
    )
    session.esmtp, session.user = True, ApiUser()
    for callback in context.on_session:
        callback(session)
    outcomes = await _check_recipients(session, envelope)
    refused = [o for o in outcomes if not o.accepted]
    if refused and (not partial or len(refused) == len(outcomes)):
        raise SubmissionRefused(refused[0].reply, outcomes)
    envelope = session.envelope  # the recipients rcpt/core added: the accepted ones
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
        raise SubmissionRefused(reply, outcomes)
    return SubmissionResult(reply=reply, recipients=tuple(outcomes))


async def _check_recipients(session: Session, envelope: Envelope) -> list[RecipientOutcome]:
    """Run the ``rcpt`` chain for each recipient, as RCPT would; the accepted join the envelope.

    Raises:
      SubmissionRefused: A handler ended the "connection" (``res.end``).
    """
    recipients, envelope.recipients = envelope.recipients, []
    session.envelope = envelope
    outcomes: list[RecipientOutcome] = []
    for recipient in recipients:
        command = Command(Verb.RCPT, "rcpt", f"TO:<{recipient}>")
        try:
            reply = await session.decide("rcpt", Request(command, session))
        except Close as close:
            reply = close.reply or INTERNAL_ERROR
            outcomes.append(RecipientOutcome(recipient, reply))
            session.log.info("send_mail: recipient %r refused: %s", str(recipient), reply)
            raise SubmissionRefused(reply, outcomes) from None
        outcomes.append(RecipientOutcome(recipient, reply))
        if not reply.is_positive:
            # Where a network client would see its 550 at RCPT time.
            session.log.info("send_mail: recipient %r refused: %s", str(recipient), reply)
    return outcomes


def _without_bcc(message: EmailMessage) -> EmailMessage:
    import copy

    out = copy.deepcopy(message)  # a shallow copy shares the header list
    del out["Bcc"]
    del out["Resent-Bcc"]
    return out
