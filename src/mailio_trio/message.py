"""A received message as the ``queue`` handlers see it: spool file, envelope, lazy parse."""

from __future__ import annotations

import email.parser
import email.policy
from typing import IO, TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from email.message import EmailMessage
    from pathlib import Path

    from mailio_trio.protocol import Address
    from mailio_trio.protocol.dsn import DsnRcpt, Ret

__all__ = ["Envelope", "Message"]


@attrs.define(eq=False, slots=True)
class Envelope:
    """The SMTP envelope of the transaction in progress (RFC 5321 §2.3.1)."""

    sender: Address | None = None
    """``None`` before MAIL and for the null reverse-path ``<>``; see ``has_sender``."""
    has_sender: bool = False
    recipients: list[Address] = attrs.field(factory=list)
    body: str | None = None
    smtputf8: bool = False
    ret: Ret | None = None
    """MAIL's ``RET`` (RFC 3461 §4.3), if given."""
    envid: str | None = None
    """MAIL's ``ENVID`` (RFC 3461 §4.4), xtext-decoded, if given."""
    dsn: dict[tuple[str, str], DsnRcpt] = attrs.field(factory=dict)
    """Per recipient (by ``Address.key()``), RCPT's ``NOTIFY`` and ``ORCPT``
    when it gave either; absent recipients gave neither."""

    def recipient_dsn(self, recipient: Address) -> DsnRcpt | None:
        """The DSN parameters RCPT gave ``recipient``, or ``None``."""
        return self.dsn.get(recipient.key())

    def copy(self) -> Envelope:
        return Envelope(
            sender=self.sender,
            has_sender=self.has_sender,
            recipients=list(self.recipients),
            body=self.body,
            smtputf8=self.smtputf8,
            ret=self.ret,
            envid=self.envid,
            dsn=dict(self.dsn),
        )


@attrs.define(eq=False, slots=True)
class Message:
    """One accepted DATA body on disk, with its envelope.

    The file holds the message as stored: our ``Received:`` line, then the
    client's bytes with CRLF line endings. It is parsed only when ``email`` is
    first read, so a 100 MB message costs nothing until someone asks.
    """

    id: str
    path: Path
    envelope: Envelope
    size: int
    _parsed: EmailMessage | None = attrs.field(default=None, init=False)

    def open(self) -> IO[bytes]:
        """Open the stored bytes for reading (blocking; use a thread for big files)."""
        return self.path.open("rb")

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def rewritten(self, size: int) -> None:
        """The stored file was replaced (a handler added headers): its new size.

        The parsed copy, if any, no longer matches the file and is dropped.
        """
        self.size = size
        self._parsed = None

    @property
    def email(self) -> EmailMessage:
        """The message parsed with ``email.policy.default`` (headers only parsed lazily too)."""
        if self._parsed is None:
            with self.open() as f:
                parser = email.parser.BytesParser(policy=email.policy.default)
                self._parsed = parser.parse(f)
        return self._parsed
