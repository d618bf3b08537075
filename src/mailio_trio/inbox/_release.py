"""Release: send a captured message on to a real SMTP server (Mailpit's ``/release``).

The stored bytes go unchanged, from the stored envelope sender, through our own
client (:func:`mailio_trio.client.send`) to the one server ``serve --release-to``
names; the API never lets a caller pick the server, so the inbox is no open relay.
"""

from __future__ import annotations

from typing import Any

import attrs

from mailio_trio.client import SMTPError, TLSMode, send

__all__ = ["ReleaseTarget", "recipients_from_body", "release"]


@attrs.frozen
class ReleaseTarget:
    """Where released mail goes: ``host:port``, plain unless ``starttls`` (then verified)."""

    host: str
    port: int
    starttls: bool = False


def recipients_from_body(table: Any) -> list[str] | str:
    """``{"To": [...]}``'s addresses, or the reason the body is bad (for a ``400``)."""
    to = table.get("To") if isinstance(table, dict) else None
    if not (isinstance(to, list) and to and all(isinstance(a, str) for a in to)):
        return "To: a list of one or more addresses"
    for address in to:
        # One address each, no brackets: a CR, LF or space would end the RCPT command early.
        if not address or "@" not in address or any(c in address for c in " <>\r\n\t"):
            return f"To: {address!r} is not an address"
    return list(to)


async def release(target: ReleaseTarget, sender: str | None, to: list[str], raw: bytes) -> None:
    """Send ``raw`` to ``to`` via ``target``; every recipient must be accepted.

    Raises:
      SMTPError: The server refused (a recipient, or the message) or could not be reached.
    """
    result = await send(
        target.host,
        target.port,
        sender or "",
        to,
        raw,
        tls=TLSMode.REQUIRE if target.starttls else TLSMode.NEVER,
        connect_timeout=10.0,
        command_timeout=30.0,
        data_timeout=60.0,
    )
    if result.refused:
        address, reply = next(iter(result.refused.items()))
        raise SMTPError(reply.code, f"{address}: {reply.text}", reply.enhanced)
