"""The replies the server gives from more than one place, and that tests compare.

One value per meaning, as aiosmtpd's ``statuscodes.py``: the server, its
plugins and the tests import it from here rather than spelling the code, text
and enhanced status again, so a reworded reply changes in one place. Tests
compare against these (``reply == INTERNAL_ERROR``, or ``code`` and
``enhanced`` where the text may differ). A reply used in exactly one place, or
whose text is built per call, stays where it is used.

Enhanced status codes are RFC 3463's; the RFC that gives each case is beside it.
"""

from __future__ import annotations

from mailio_trio.protocol.replies import Reply

__all__ = [
    "DATA_TIMEOUT",
    "INTERNAL_ERROR",
    "LINE_TOO_LONG",
    "MESSAGE_TOO_BIG",
    "NOT_IMPLEMENTED",
    "SHUTTING_DOWN",
    "TOO_MANY_CONNECTIONS",
    "TOO_MANY_FROM_YOU",
    "TOO_MANY_UNRECOGNIZED",
]

INTERNAL_ERROR = Reply(451, "Local error in processing, try again later", "4.3.0")
"""Our own failure (a handler raised, a commit step failed, the spool is full):
the client keeps the message and retries (RFC 5321 §4.2.5, RFC 3463 4.3.0)."""

MESSAGE_TOO_BIG = Reply(552, "Message size exceeds fixed maximum message size", "5.3.4")
"""Over ``limits.message_size``: on ``MAIL ... SIZE=``, after DATA/BDAT, or from
``send_mail`` (RFC 1870 §6, RFC 3463 5.3.4)."""

LINE_TOO_LONG = Reply(500, "Line too long", "5.5.6")
"""A command line over ``limits.command_line_length`` (RFC 5321 §4.5.3.1.4)."""

NOT_IMPLEMENTED = Reply(502, "Command not implemented", "5.5.1")
"""A command no enabled plugin handles (RFC 5321 §4.2.4)."""

SHUTTING_DOWN = Reply(421, "Service shutting down, closing connection", "4.3.2")
"""Graceful shutdown: to new connections' commands (RFC 5321 §3.8, RFC 3463 4.3.2)."""

DATA_TIMEOUT = Reply(421, "DATA timeout, closing connection", "4.4.2")
"""The body did not arrive within ``limits.data_timeout`` (RFC 5321 §4.5.3.2.6)."""

TOO_MANY_UNRECOGNIZED = Reply(421, "Too many unrecognized commands, closing connection", "4.7.0")
"""The farewell for lines that never parse as commands (an HTTP client, a scanner)."""

TOO_MANY_CONNECTIONS = Reply(421, "Too many connections, try again later", "4.7.0")
"""``limits.max_connections`` reached: said instead of the greeting (RFC 5321 §3.1)."""

TOO_MANY_FROM_YOU = Reply(421, "Too many connections from your address, try again later", "4.7.0")
"""``limits.connections_per_ip`` (or the connection rate) reached for this address."""
