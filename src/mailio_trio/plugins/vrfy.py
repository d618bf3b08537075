"""VRFY (RFC 5321 §3.5.3): ``252`` — never confirm mailboxes to address harvesters."""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def vrfy(req: Request, res: Response) -> None:
    if not req.argument:
        res.reject(501, "Syntax: VRFY <address>", "5.5.4")
        return
    res.accept(252, "Cannot VRFY user, but will accept message and attempt delivery", "2.5.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="vrfy", name=CORE, func=vrfy))
