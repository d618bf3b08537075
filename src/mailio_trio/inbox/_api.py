"""The JSON the HTTP API answers: Mailpit's shapes, built from the store's records (no I/O).

Where Mailpit has the call, the keys and their meaning are Mailpit's (v1 API),
so a test written against Mailpit reads ours unchanged; ours adds keys
(``Envelope``, ``Session``), never changes theirs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mailio_trio.inbox._parse import parse

if TYPE_CHECKING:
    from mailio_trio.inbox._parse import Parsed
    from mailio_trio.inbox._store import Stored

__all__ = ["html_with_parts", "list_json", "message_json", "summary_json"]


def summary_json(stored: Stored) -> dict[str, Any]:
    """One entry of ``messages`` in Mailpit's list (``GET /api/v1/messages``)."""
    summary = stored.summary
    return {
        "ID": stored.id,
        "MessageID": summary["MessageID"],
        "Read": stored.read,
        "From": summary["From"],
        "To": summary["To"],
        "Cc": summary["Cc"],
        "Bcc": summary["Bcc"],
        "ReplyTo": summary["ReplyTo"],
        "Subject": summary["Subject"],
        "Created": stored.created_rfc3339,
        "Username": stored.auth_user or "",
        "Tags": [],
        "Size": stored.size,
        "Attachments": summary["Attachments"],
        "Snippet": summary["Snippet"],
    }


def list_json(
    messages: list[Stored], *, total: int, unread: int, matching: int, start: int
) -> dict[str, Any]:
    """Mailpit's list and search answer: ``total`` in the inbox, ``count`` on this page."""
    return {
        "total": total,
        "unread": unread,
        "count": len(messages),
        "messages_count": matching,
        "messages_unread": sum(not m.read for m in messages),
        "start": start,
        "tags": [],
        "messages": [summary_json(m) for m in messages],
    }


def _session_json(stored: Stored) -> dict[str, Any]:
    return {
        "ClientAddress": stored.client_address,
        "Helo": stored.helo,
        "TLS": stored.tls,
        "AuthUser": stored.auth_user,
        "AuthenticationResults": stored.auth_results,
    }


def message_json(stored: Stored, parsed: Parsed | None = None) -> dict[str, Any]:
    """Mailpit's message summary (``GET /api/v1/message/{ID}``) plus envelope and session."""
    assert stored.raw is not None
    parsed = parsed or parse(stored.raw)
    return {
        "ID": stored.id,
        "MessageID": parsed.message_id,
        "From": parsed.from_,
        "To": parsed.to,
        "Cc": parsed.cc,
        "Bcc": parsed.bcc,
        "ReplyTo": parsed.reply_to,
        "ReturnPath": parsed.return_path or (stored.sender or ""),
        "Subject": parsed.subject,
        "ListUnsubscribe": {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""},
        "Date": parsed.date or stored.created_rfc3339,
        "Tags": [],
        "Username": stored.auth_user or "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Size": stored.size,
        "Inline": parsed.inline,
        "Attachments": parsed.attachments,
        # Ours, not Mailpit's: what the SMTP session said.
        "Created": stored.created_rfc3339,
        "Envelope": {"From": stored.sender, "To": list(stored.recipients)},
        "Session": _session_json(stored),
    }


_CID = re.compile(r"""(["'(])cid:([^"')\s>]+)""", re.IGNORECASE)


def html_with_parts(stored: Stored, parsed: Parsed) -> str:
    """The HTML part with ``cid:`` references pointing at our part download URLs."""
    parts = {p["ContentID"]: p["PartID"] for p in parsed.inline + parsed.attachments}

    def link(match: re.Match[str]) -> str:
        part_id = parts.get(match.group(2))
        if part_id is None:
            return match.group(0)
        return f"{match.group(1)}/api/v1/message/{stored.id}/part/{part_id}"

    return _CID.sub(link, parsed.html)
