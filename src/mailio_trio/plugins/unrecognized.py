"""The ``unrecognized`` event: a verb we do not know (``unrecognized/core``).

``500 5.5.1``; a client that keeps guessing past
``limits.unrecognized_commands`` is disconnected with ``421 4.7.0`` (it is
probably not speaking SMTP — an HTTP request, a port scan).
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def unrecognized(req: Request, res: Response) -> None:
    refuse_unknown(req, res)


def refuse_unknown(req: Request, res: Response) -> None:
    """Answer a verb this server does not speak, counting it (also LHLO under SMTP)."""
    session = req.session
    session.counters.unrecognized += 1
    if session.counters.unrecognized > session.config.limits.unrecognized_commands:
        res.end(421, "Too many unrecognized commands, closing connection", "4.7.0")
    else:
        res.reject(500, "Command unrecognized", "5.5.1")


def register(chain: Chain) -> None:
    chain.add(Handler(command="unrecognized", name=CORE, func=unrecognized))
