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
    greeting = config.greeting
    if config.lmtp and greeting == _DEFAULT_GREETING:
        greeting = "mailio_trio LMTP"  # RFC 2033 §4.1's example greets as LMTP
    res.accept(220, f"{config.hostname} {greeting}", enhanced="")


_DEFAULT_GREETING = "mailio_trio ESMTP"  # Config.greeting's default


def register(chain: Chain) -> None:
    chain.add(Handler(command="connect", name=CORE, func=greet))
