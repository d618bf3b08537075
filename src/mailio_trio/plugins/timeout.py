"""The ``timeout`` event: the client was idle past ``limits.idle_timeout`` (``timeout/core``).

The connection is closed whatever the chain decides; handlers may log or
change the farewell.
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def timeout(req: Request, res: Response) -> None:
    config = req.session.config
    res.end(421, f"{config.hostname} Idle timeout, closing connection", "4.4.2")


def register(chain: Chain) -> None:
    chain.add(Handler(command="timeout", name=CORE, func=timeout))
