"""``req.session``'s type: the chain's ``HandlerSession``, kept by the server's ``Session``.

mypy checks the structure (``server/_context.py``); these check what it cannot
see: every member is there on a live session, and the moved values kept their
public paths.
"""

from __future__ import annotations

import trio.testing

import mailio_trio
from mailio_trio import Config, Server, server
from mailio_trio.chain import HandlerContext, HandlerSession
from mailio_trio.server import _context
from mailio_trio.server._session import Session


def _members(protocol: type) -> set[str]:
    return {n for n in (*vars(protocol), *protocol.__annotations__) if not n.startswith("_")}


def test_a_live_session_has_every_member_handlers_are_promised() -> None:
    context = Server(Config(hostname="mx.test"))._context
    _, stream = trio.testing.memory_stream_pair()
    session = Session.for_stream(
        context, stream, mailio_trio.ClientInfo(address="127.0.0.1", port=1)
    )
    assert {"envelope", "client", "context", "start_tls", "note_refused"} <= _members(
        HandlerSession
    )
    assert [n for n in sorted(_members(HandlerSession)) if not hasattr(session, n)] == []
    assert [n for n in sorted(_members(HandlerContext)) if not hasattr(context, n)] == []


def test_the_values_keep_their_public_paths() -> None:
    for name in ("ClientInfo", "TLSInfo", "Counters"):
        assert getattr(server, name) is getattr(_context, name)
    assert mailio_trio.ClientInfo is server.ClientInfo
    assert mailio_trio.HandlerSession is HandlerSession
