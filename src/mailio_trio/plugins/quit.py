"""QUIT (RFC 5321 §4.1.1.10): ``221`` and close (``quit/core``)."""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def quit(req: Request, res: Response) -> None:
    res.end(221, f"{req.session.config.hostname} closing connection", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="quit", name=CORE, func=quit))
