"""Delivery status notifications (RFC 3464) for mail we could not deliver, or not yet.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC
6522): a human-readable part, a ``message/delivery-status`` part with one
per-message block and one block per failed recipient (``Final-Recipient``,
``Action: failed``, ``Status``, ``Diagnostic-Code``, ``Remote-MTA``), and the
original message's headers (``text/rfc822-headers``; not the body, so a bounce
never carries a large attachment back).

It is sent with the null reverse-path ``<>`` (RFC 5321 §4.5.5), so a bounce
can never bounce. None is made for a null sender or for a message that was
itself ``Auto-Submitted`` (RFC 3834 §2: no automatic replies to automatic
mail) — the loops mail-io guarded against.

The client's DSN parameters (RFC 3461) shape it: a recipient is reported
only for the events its ``NOTIFY`` asked for (without ``NOTIFY``: failures
and delays, never success; ``NEVER``: nothing); ``RET=FULL`` returns the
whole message (``message/rfc822``) in a failure report instead of its
headers; ``ENVID`` comes back as ``Original-Envelope-Id`` and each
``ORCPT`` as that recipient's ``Original-Recipient`` (RFC 3464 §2.2.1,
§2.3.1). Success reports (``Action: relayed`` when the next hop does not
offer DSN, ``Action: delivered`` at local delivery, see
``mailio_trio.plugins.dsn``) carry the headers only, whatever ``RET`` says
(RFC 3461 §4.3: it is for failures).

A *delay* DSN (``Action: delayed``, ``Status: 4.x.y``, ``Will-Retry-Until``)
has the same shape and says plainly that it is a warning: nothing to do, we
keep trying until the date given. RFC 3461 §4.1: a recipient whose client gave
``NOTIFY`` gets one only if it asked for ``DELAY``; without ``NOTIFY`` it is
the server's choice (``relay.delay_warning_hours``), as Postfix's
``delay_warning_time``.
"""

from __future__ import annotations

import email.parser
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

import attrs

from mailio_trio.protocol.dsn import NotifyOn, Ret
from mailio_trio.relay.spool import RecipientStatus

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.relay.spool import Entry, RecipientState

__all__ = [
    "build_delay_dsn",
    "build_delivered_dsn",
    "build_dsn",
    "delay_recipients",
    "failure_recipients",
    "relayed_recipients",
    "should_bounce",
]

# Headers are what the DSN quotes; read no further into a message than this.
HEADER_LIMIT = 256 * 1024
# RET=FULL returns the message itself up to this size, its headers beyond
# (RFC 3461 §4.3 lets the reporting MTA truncate; a bounce must not fail for size).
FULL_LIMIT = 10 * 1024 * 1024


def _headers(message: Path) -> bytes:
    with message.open("rb") as f:
        head = f.read(HEADER_LIMIT)
    end = head.find(b"\r\n\r\n")
    return head if end < 0 else head[: end + 2]


def should_bounce(entry: Entry, message: Path) -> bool:
    """False for the null sender and for auto-submitted mail (blocking: reads headers)."""
    if not entry.sender:
        return False
    parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
        _headers(message)
    )
    auto = str(parsed.get("Auto-Submitted", "no")).strip().lower()
    return auto.split(";")[0].strip() in ("", "no")


def _status(state: RecipientState) -> tuple[str, str]:
    error = state.error
    if error is None:
        return "5.0.0", "smtp; 550 delivery failed"
    status = error.enhanced or f"{str(error.code)[0]}.0.0"
    if status.startswith("4"):
        # Given up after retries: report it as failed with the 5.x.y form (RFC 3463 §3.1).
        status = "5" + status[1:]
    enhanced = f"{error.enhanced} " if error.enhanced else ""
    return status, f"smtp; {error.code} {enhanced}{' '.join(error.text.split())}"


@attrs.frozen
class _Reported:
    """One recipient's block in a DSN's ``message/delivery-status`` part."""

    state: RecipientState
    action: str
    status: str
    diagnostic: str
    extra: tuple[tuple[str, str], ...] = ()


def delay_recipients(entry: Entry) -> list[RecipientState]:
    """The still-pending recipients a delay DSN reports (RFC 3461 §4.1 ``NOTIFY``)."""
    return [r for r in entry.pending() if r.wants(NotifyOn.DELAY)]


def failure_recipients(entry: Entry) -> list[RecipientState]:
    """The failed recipients a failure DSN reports: all but ``NOTIFY`` without ``FAILURE``."""
    return [r for r in entry.failed() if r.wants(NotifyOn.FAILURE)]


def relayed_recipients(entry: Entry) -> list[RecipientState]:
    """Recipients handed to a next hop without DSN whose client asked for ``SUCCESS``."""
    return [
        r
        for r in entry.recipients
        if r.status is RecipientStatus.DELIVERED and r.relayed and r.wants(NotifyOn.SUCCESS)
    ]


def _reasons(states: list[RecipientState]) -> list[str]:
    lines = []
    for state in states:
        error = state.error
        where = f" (from {error.remote})" if error and error.remote else ""
        reason = f"{error.code} {error.text}" if error else "delivery failed"
        lines.append(f"<{state.address}>: {reason}{where}")
    return lines


def _delay_status(state: RecipientState) -> tuple[str, str]:
    error = state.error
    if error is None:
        return "4.0.0", "smtp; 451 not delivered yet"
    status = error.enhanced if error.enhanced and error.enhanced[0] == "4" else "4.0.0"
    enhanced = f"{error.enhanced} " if error.enhanced else ""
    return status, f"smtp; {error.code} {enhanced}{' '.join(error.text.split())}"


def build_dsn(
    entry: Entry, message: Path, *, reporting_mta: str, now: datetime | None = None
) -> bytes:
    """The DSN for ``entry``'s finished recipients, as wire bytes (blocking: reads the message).

    It reports the :func:`failure_recipients` (``Action: failed``) and the
    :func:`relayed_recipients` (``Action: relayed``) in one message (RFC
    3464 §2.3.3 lets one DSN mix actions); the caller sends it only when
    either list has someone.
    """
    failed = failure_recipients(entry)
    relayed = relayed_recipients(entry)
    lines = [f"This is the mail system at {reporting_mta}.", ""]
    if failed:
        lines += ["Your message could not be delivered to one or more recipients.", ""]
        lines += _reasons(failed)
    if relayed:
        if failed:
            lines.append("")
        lines += [
            "Your message was passed on to the recipients' mail systems below, which do",
            "not report delivery status: this is the last notice you will get for them.",
            "",
            *(f"<{state.address}>: relayed" for state in relayed),
        ]
    blocks = [_Reported(state, "failed", *_status(state)) for state in failed]
    blocks += [_Reported(state, "relayed", *_success_status(state)) for state in relayed]
    return _report(
        entry,
        message,
        reporting_mta=reporting_mta,
        subject="Undelivered Mail Returned to Sender" if failed else "Relayed Mail Report",
        text=lines,
        recipients=blocks,
        now=now,
        full=bool(failed) and entry.ret is Ret.FULL,
    )


def build_delivered_dsn(
    entry: Entry, message: Path, *, reporting_mta: str, now: datetime | None = None
) -> bytes:
    """The ``Action: delivered`` report for every recipient of ``entry`` (blocking).

    ``entry`` describes a message delivered to local mailboxes just now; it
    is never spooled (see ``mailio_trio.plugins.dsn``).
    """
    lines = [
        f"This is the mail system at {reporting_mta}.",
        "",
        "Your message was delivered to the recipients below.",
        "",
        *(f"<{state.address}>: delivered to the mailbox" for state in entry.recipients),
    ]
    blocks = [_Reported(state, "delivered", *_success_status(state)) for state in entry.recipients]
    return _report(
        entry,
        message,
        reporting_mta=reporting_mta,
        subject="Successful Mail Delivery Report",  # Postfix's wording
        text=lines,
        recipients=blocks,
        now=now,
    )


def _success_status(state: RecipientState) -> tuple[str, str]:
    error = state.error  # for a delivered recipient, the next hop's 250
    if error is None or not str(error.code).startswith("2"):
        return "2.0.0", "smtp; 250 2.0.0 delivered"
    status = error.enhanced if error.enhanced and error.enhanced[0] == "2" else "2.0.0"
    enhanced = f"{error.enhanced} " if error.enhanced else ""
    return status, f"smtp; {error.code} {enhanced}{' '.join(error.text.split())}"


def build_delay_dsn(
    entry: Entry,
    message: Path,
    *,
    reporting_mta: str,
    give_up_at: float,
    now: datetime | None = None,
) -> bytes:
    """The warning DSN for ``entry``'s delayed recipients (``Action: delayed``; blocking)."""
    delayed = delay_recipients(entry)
    until = datetime.fromtimestamp(give_up_at, UTC)
    hours = ((now or datetime.now(UTC)).timestamp() - entry.created) / 3600
    lines = [
        f"This is the mail system at {reporting_mta}.",
        "",
        "####### THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #######",
        "",
        f"Your message has not been delivered yet to the recipients below after "
        f"{hours:.1f} hours. The mail system will keep trying until "
        f"{format_datetime(until)}; only if it still fails by then will you get "
        "another message saying so.",
        "",
        *_reasons(delayed),
    ]
    # RFC 3464 §2.3.8: Will-Retry-Until belongs to "delayed" reports only.
    retry_until = (("Will-Retry-Until", format_datetime(until)),)
    blocks = [_Reported(state, "delayed", *_delay_status(state), retry_until) for state in delayed]
    return _report(
        entry,
        message,
        reporting_mta=reporting_mta,
        subject="Delayed Mail (still being retried)",  # Postfix's wording
        text=lines,
        recipients=blocks,
        now=now,
    )


def _report(
    entry: Entry,
    message: Path,
    *,
    reporting_mta: str,
    subject: str,
    text: list[str],
    recipients: list[_Reported],
    now: datetime | None,
    full: bool = False,
) -> bytes:
    """The multipart/report (RFC 6522) every kind of DSN shares.

    ``full`` returns the whole message (``message/rfc822``) instead of its
    headers, up to :data:`FULL_LIMIT`.
    """
    now = now or datetime.now(UTC)
    dsn = EmailMessage(policy=email.policy.SMTP)
    dsn["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    dsn["To"] = entry.sender
    dsn["Subject"] = subject
    dsn["Date"] = format_datetime(now)
    dsn["Message-ID"] = make_msgid(domain=reporting_mta)
    dsn["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    dsn.set_content("\n".join(text) + "\n")
    dsn.make_mixed()
    dsn.replace_header("Content-Type", "multipart/report")
    dsn.set_param("report-type", "delivery-status")
    # RFC 3464 §2.2: Original-Envelope-Id comes first, extension fields last.
    per_message = [
        *([("Original-Envelope-Id", entry.envid)] if entry.envid is not None else []),
        ("Reporting-MTA", f"dns; {reporting_mta}"),
        ("Arrival-Date", format_datetime(datetime.fromtimestamp(entry.created, UTC))),
        ("X-Mailio-Queue-ID", entry.id),
    ]
    blocks = [per_message]
    for reported in recipients:
        state, diagnostic = reported.state, reported.diagnostic
        block = [
            # RFC 3464 §2.3.1: the ORCPT, decoded, before Final-Recipient.
            *([("Original-Recipient", str(state.orcpt))] if state.orcpt is not None else []),
            ("Final-Recipient", f"rfc822; {state.address}"),
            ("Action", reported.action),
            ("Status", reported.status),
        ]
        if reported.action == "delivered":
            block.append(("Diagnostic-Code", diagnostic))
        elif state.error is not None and state.error.remote:
            block.append(("Remote-MTA", f"dns; {state.error.remote.split(' ')[0]}"))
            block.append(("Diagnostic-Code", diagnostic))
        else:  # our own decision (DNS, retry deadline): no remote said anything
            block.append(("X-Mailio-Reason", diagnostic.removeprefix("smtp; ")))
        blocks.append([*block, *reported.extra])
    # RFC 3464 §2.1: the body of message/delivery-status is a series of header blocks;
    # the email package models each block as a Message.
    status_part = EmailMessage(policy=email.policy.SMTP)
    status_part["Content-Type"] = "message/delivery-status"
    status_part["Content-Transfer-Encoding"] = "7bit"
    for fields in blocks:
        part = Message(policy=email.policy.compat32)
        for name, value in fields:
            part[name] = value
        status_part.attach(part)  # type: ignore[arg-type]  # a header block is a plain Message (RFC 3464 §2.1)
    dsn.attach(status_part)
    if full and message.stat().st_size <= FULL_LIMIT:
        dsn.attach(_returned_message(message))
        return dsn.as_bytes(policy=email.policy.SMTP)
    headers_part = EmailMessage(policy=email.policy.SMTP)
    headers_part["Content-Type"] = "text/rfc822-headers"
    # surrogateescape, not a lossy decode: BytesGenerator writes escaped bytes back
    # verbatim, so SMTPUTF8 headers (RFC 6532) come back as sent; a str of real
    # non-ASCII characters would make as_bytes() raise and the bounce never go.
    headers = _headers(message).decode("ascii", "surrogateescape")
    headers_part.set_payload(headers)
    headers_part["Content-Transfer-Encoding"] = "8bit" if not headers.isascii() else "7bit"
    dsn.attach(headers_part)
    return dsn.as_bytes(policy=email.policy.SMTP)


def _returned_message(message: Path) -> EmailMessage:
    """The whole message as a ``message/rfc822`` part (``RET=FULL``)."""
    original = email.parser.BytesParser(policy=email.policy.SMTP).parsebytes(message.read_bytes())
    part = EmailMessage(policy=email.policy.SMTP)
    part.set_content(original)
    return part
