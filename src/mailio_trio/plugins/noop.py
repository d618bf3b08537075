"""NOOP (RFC 5321 §4.1.1.9): ``250``, whatever the argument (``noop/core``)."""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def noop(req: Request, res: Response) -> None:
    res.accept(250, "OK", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="noop", name=CORE, func=noop))
