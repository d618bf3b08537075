"""The ways the protocol can fail, after h11's Local/RemoteProtocolError.

``ClientProtocolError`` is the peer's mistake: it carries the reply the session
sends back. ``ServerProtocolError`` is the peer's mistake when we are the
client: what the server sent is not an SMTP reply. ``ProtocolUsageError`` is
ours: calling the core wrongly is a bug.
``ConnectionLost``: the peer is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailio_trio.protocol.replies import Reply


class ClientProtocolError(Exception):
    """The client sent something we must refuse; ``reply`` is the answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.enhanced or ''} {reply.text}".replace("  ", " "))
        self.reply = reply


class ServerProtocolError(Exception):
    """The server sent something that is not an SMTP reply (RFC 5321 §4.2).

    Raised by :class:`~mailio_trio.protocol.replies.ReplyReader`; the message
    reads after the server's name (``"sent reply code 700"``), which the
    client puts in front of it.
    """


class ProtocolUsageError(Exception):
    """The protocol core was driven wrongly by our own code."""


class ConnectionLost(Exception):
    """The peer went away (EOF or a broken stream) while we waited for it.

    Raised by the server's connection; caught by the ``queue`` transaction, which
    then rolls back (RFC 5321 §3.8). Here so both sides share it without a cycle.
    """
