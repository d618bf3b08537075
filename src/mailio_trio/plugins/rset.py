"""RSET (RFC 5321 §4.1.1.5): abort the transaction (``rset/core``)."""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def rset(req: Request, res: Response) -> None:
    if req.argument:
        res.reject(501, "Syntax: RSET", "5.5.4")
        return
    req.on_accept(req.session.reset_transaction)
    res.accept(250, "Reset OK", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="rset", name=CORE, func=rset))
