"""What the inbox shows of a message: Mailpit-shaped summaries from raw bytes (no I/O).

The JSON shapes follow Mailpit's API (``From: {"Name", "Address"}``,
``Attachments: [{"PartID", "FileName", "ContentType", "Size"}]``), so a test
written against Mailpit reads ours unchanged. Part IDs are IMAP-style section
numbers (RFC 3501 §6.4.5): ``"1"`` for a single-part body, ``"2.1"`` for the
first child of the second part.

Hostile input: every message here came from an SMTP client. Parsing never
raises on a malformed header or part; what cannot be decoded is shown with
replacement characters.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import html
import re
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage, Message

__all__ = ["Parsed", "addresses", "parse", "part_by_id"]

SNIPPET_LENGTH = 250  # Mailpit's snippet is 250 characters of text


def _message(raw: bytes) -> EmailMessage:
    parser = email.parser.BytesParser(policy=email.policy.default)
    return parser.parsebytes(raw)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse is shown as nothing
        return ""
    return "" if value is None else str(value)


def addresses(msg: Message, name: str) -> list[dict[str, str]]:
    """``[{"Name", "Address"}]`` for every address in the ``name`` headers."""
    try:
        values = msg.get_all(name) or []
    except Exception:
        return []
    found = email.utils.getaddresses([str(v) for v in values])
    return [{"Name": n, "Address": a} for n, a in found if a or n]


def _walk(part: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    """``(part id, part)`` for every leaf part, depth first."""
    if part.is_multipart():
        for index, child in enumerate(part.get_payload(), start=1):
            yield from _walk(child, f"{prefix}.{index}" if prefix else str(index))
    else:
        yield prefix or "1", part


def part_by_id(raw: bytes, part_id: str) -> tuple[bytes, str, str] | None:
    """``(content, content type, file name)`` of one leaf part, or ``None``."""
    for pid, part in _walk(_message(raw)):
        if pid == part_id:
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
            return content, part.get_content_type(), part.get_filename() or f"part-{pid}"
    return None


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name from the client
        return payload.decode("utf-8", errors="replace")


_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def _snippet(text: str, html_text: str) -> str:
    source = text or html.unescape(_TAGS.sub(" ", html_text))
    flat = _SPACE.sub(" ", source).strip()
    return flat if len(flat) <= SNIPPET_LENGTH else flat[:SNIPPET_LENGTH] + "..."


@attrs.frozen(kw_only=True)
class Parsed:
    """The parts of a message the list, the search and the message view need."""

    message_id: str
    subject: str
    date: str
    """The ``Date:`` header as RFC 3339, or ``""`` when absent or unreadable."""
    from_: dict[str, str]
    to: list[dict[str, str]]
    cc: list[dict[str, str]]
    bcc: list[dict[str, str]]
    reply_to: list[dict[str, str]]
    return_path: str
    text: str
    html: str
    attachments: list[dict[str, Any]]
    inline: list[dict[str, Any]]
    snippet: str
    headers: dict[str, list[str]]

    def search_text(self) -> str:
        """Everything free-text search looks in, lower-cased."""
        people = " ".join(f"{a['Name']} {a['Address']}" for a in self.to + self.cc + self.bcc)
        who = f"{self.from_['Name']} {self.from_['Address']}"
        return f"{self.subject}\n{who}\n{people}\n{self.text}\n{self.html}".lower()


def _date(msg: Message) -> str:
    value = _header(msg, "Date")
    try:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        parsed = None
    return "" if parsed is None else parsed.isoformat()


def _headers(msg: Message) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        found.setdefault(name, []).append(str(value))
    return found


def parse(raw: bytes) -> Parsed:
    """Read ``raw`` (the stored bytes) into what the inbox shows; never raises on bad mail."""
    msg = _message(raw)
    text = html_part = ""
    attachments: list[dict[str, Any]] = []
    inline: list[dict[str, Any]] = []
    for pid, part in _walk(msg):
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition != "attachment" and filename is None and ctype == "text/plain" and not text:
            text = _text(part)
        elif disposition != "attachment" and filename is None and ctype == "text/html":
            if not html_part:
                html_part = _text(part)
        else:
            payload = part.get_payload(decode=True)
            entry = {
                "PartID": pid,
                "FileName": filename or "",
                "ContentType": ctype,
                "ContentID": _header(part, "Content-ID").strip("<>"),
                "Size": len(payload) if isinstance(payload, bytes) else 0,
            }
            (inline if disposition == "inline" else attachments).append(entry)
    senders = addresses(msg, "From")
    return Parsed(
        message_id=_header(msg, "Message-ID").strip().strip("<>"),
        subject=_header(msg, "Subject"),
        date=_date(msg),
        from_=senders[0] if senders else {"Name": "", "Address": ""},
        to=addresses(msg, "To"),
        cc=addresses(msg, "Cc"),
        bcc=addresses(msg, "Bcc"),
        reply_to=addresses(msg, "Reply-To"),
        return_path=_header(msg, "Return-Path").strip().strip("<>"),
        text=text,
        html=html_part,
        attachments=attachments,
        inline=inline,
        snippet=_snippet(text, html_part),
        headers=_headers(msg),
    )
