"""What a test asserts about a captured message's content: text, HTML, attachments, links.

Pure functions over an :class:`email.message.EmailMessage` (``email.policy.default``);
:class:`~mailio_trio.testing.CapturedMessage` exposes them as properties.
"""

from __future__ import annotations

import html.parser
import re
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from email.message import EmailMessage

__all__ = ["Attachment", "attachments", "body_html", "body_text", "links", "list_unsubscribe"]

# A URL in plain text ends at whitespace, a quote or an angle bracket; a
# sentence's closing punctuation is not part of it.
_TEXT_URL = re.compile(r"""\b(?:https?|mailto):[^\s<>"']+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"
_ANGLE = re.compile(r"<([^>]*)>")


@attrs.frozen
class Attachment:
    """One attachment: its file name, MIME type and decoded bytes."""

    filename: str
    content_type: str
    content: bytes


def _part_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def body_text(message: EmailMessage) -> str:
    """The ``text/plain`` body (the one a mail reader would show), or ``""``."""
    return _part_text(message, "plain")


def body_html(message: EmailMessage) -> str:
    """The ``text/html`` body, or ``""``."""
    return _part_text(message, "html")


def attachments(message: EmailMessage) -> list[Attachment]:
    """Every part that is not the body, in order (inline images with a name included)."""
    found = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else part.as_bytes()
        found.append(
            Attachment(
                filename=part.get_filename() or "",
                content_type=part.get_content_type(),
                content=content,
            )
        )
    return found


class _Hrefs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            self.hrefs += [value.strip() for name, value in attributes if name == "href" and value]


def links(message: EmailMessage) -> list[str]:
    """The links in the body: ``<a href>`` of the HTML, then URLs in the text; no repeats."""
    parser = _Hrefs()
    parser.feed(body_html(message))
    parser.close()
    found = parser.hrefs + [
        m.group(0).rstrip(_TRAILING) for m in _TEXT_URL.finditer(body_text(message))
    ]
    return list(dict.fromkeys(found))


def list_unsubscribe(message: EmailMessage) -> list[str]:
    """The URIs of ``List-Unsubscribe`` (RFC 2369: ``<mailto:...>, <https://...>``)."""
    value = message.get("List-Unsubscribe")
    if value is None:
        return []
    return [uri.strip() for uri in _ANGLE.findall(str(value)) if uri.strip()]
