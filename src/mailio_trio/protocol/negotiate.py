"""What a client puts on MAIL FROM, given the server's EHLO keywords.

The client's side of three extensions: SIZE (RFC 1870), 8BITMIME (RFC 6152)
and SMTPUTF8 (RFC 6531). Some messages must not be offered at all; then the
answer is the refusal the caller raises, decided before anything is sent.
This module must never do I/O, read a clock or import trio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.protocol.replies import Reply

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["mail_parameters"]


def mail_parameters(
    extensions: Mapping[str, str],
    size: int,
    *,
    eight_bit: bool,
    smtputf8: bool,
    server: str = "the server",
) -> list[str] | Reply:
    """The ESMTP parameters for ``MAIL FROM:<...>``, or why the message cannot go.

    Args:
      extensions: EHLO keywords in upper case → their parameters (``"SIZE"`` → ``"1000"``).
      size: The message's size in octets (as stored, before dot-stuffing).
      eight_bit: The body has octets over 127.
      smtputf8: An address (or a header) needs SMTPUTF8.
      server: The server's name, for the refusal's text.

    Returns:
      The parameters in order (``["SIZE=123", "BODY=8BITMIME", "SMTPUTF8"]``),
      or a permanent refusal: ``553 5.6.7`` when SMTPUTF8 is needed and not
      offered (RFC 6531 §3.7.2: no downgrade), ``552 5.3.4`` when the message
      is over the server's SIZE (RFC 1870 §6: do not send what it told us it
      will refuse). An 8-bit body without 8BITMIME goes anyway, unlabelled, as
      Postfix sends it, rather than mangled.

    Example:
      >>> mail_parameters({"SIZE": "1000", "8BITMIME": ""}, 10, eight_bit=True, smtputf8=False)
      ['SIZE=10', 'BODY=8BITMIME']
    """
    if smtputf8 and "SMTPUTF8" not in extensions:
        return Reply(
            553,
            f"message needs SMTPUTF8 (non-ASCII addresses), which {server} does not offer",
            "5.6.7",
        )
    limit = extensions.get("SIZE", "")
    # "SIZE" alone or "SIZE 0" means no limit is announced (RFC 1870 §4).
    if limit.isdigit() and int(limit) > 0 and size > int(limit):
        return Reply(552, f"message of {size} octets exceeds {server}'s limit of {limit}", "5.3.4")
    params = []
    if "SIZE" in extensions:
        params.append(f"SIZE={size}")
    if eight_bit and "8BITMIME" in extensions:
        params.append("BODY=8BITMIME")
    if smtputf8:
        params.append("SMTPUTF8")
    return params
