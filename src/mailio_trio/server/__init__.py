"""The server: listeners and shutdown, sessions, connections, DATA spool, workers.

``Server`` opens the listeners and runs one session task per connection
(``_server.py``). A ``Session`` runs the command loop — chains, DATA, STARTTLS
(``_session.py``) — over a ``Connection``, the byte side: reply queue, line
input, idle timer, the direct-socket fast path (``_connection.py``). What a
session knows of its client and server is in ``_context.py``, the body on its
way to the ``queue`` handlers in ``_spool.py``, ``Server.send_mail`` in
``_submit.py``, per-address admission in ``_admission.py``; ``workers`` shares
one port between processes. See ``docs/architecture.md``.
"""

from __future__ import annotations

from mailio_trio._handler_session import ClientInfo, Counters, TLSInfo
from mailio_trio.protocol import ConnectionLost
from mailio_trio.server._context import ServerContext
from mailio_trio.server._server import Server, ServerStatistics
from mailio_trio.server._session import Session
from mailio_trio.server._submit import ApiUser, SubmissionRefused

__all__ = [
    "ApiUser",
    "ClientInfo",
    "ConnectionLost",
    "Counters",
    "Server",
    "ServerContext",
    "ServerStatistics",
    "Session",
    "SubmissionRefused",
    "TLSInfo",
]

# Documented and shown (repr, tracebacks, Sphinx) under the public path, as trio does.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("mailio_trio.server."):
        _obj.__module__ = __name__
