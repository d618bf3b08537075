"""HELO (RFC 5321 §4.1.1.1): name the client, start over without ESMTP (``helo/core``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.protocol import parse_helo_name

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession

USE_LHLO = (500, "This is an LMTP server: use LHLO", "5.5.1")
"""HELO or EHLO under ``lmtp``: RFC 2033 §4.1 has an LMTP server refuse them."""


def greeted(session: HandlerSession, name: str, *, esmtp: bool) -> None:
    """Record the client's name; HELO/EHLO also abort any transaction (RFC 5321 §4.1.4)."""
    session.reset_transaction()
    session.client.helo = name
    session.esmtp = esmtp


@never_waits
async def helo(req: Request, res: Response) -> None:
    session = req.session
    if session.config.lmtp:
        res.reject(*USE_LHLO)
        return
    name = parse_helo_name(req.argument, strict=session.config.strict_helo)
    req.on_accept(lambda: greeted(session, name, esmtp=False))
    res.accept(250, session.config.hostname, enhanced="")


def register(chain: Chain) -> None:
    chain.add(Handler(command="helo", name=CORE, func=helo))
