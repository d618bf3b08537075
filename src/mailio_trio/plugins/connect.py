"""Greet a new client: ``220 <hostname> <greeting>`` (``connect/core``).

A later ``connect`` handler may refuse the client (``res.end(554, ...)``); a
refused client gets that answer and the connection is closed.
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def greet(req: Request, res: Response) -> None:
    config = req.session.config
    # RFC 5321 §4.3.1: the greeting starts with our name; RFC 2034 §3: no enhanced code.
    res.accept(220, f"{config.hostname} {config.greeting}", enhanced="")


def register(chain: Chain) -> None:
    chain.add(Handler(command="connect", name=CORE, func=greet))
