"""HELP (RFC 5321 §4.1.1.8): ``214`` with the commands this server answers (``help/core``)."""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.protocol import Verb


@never_waits
async def help(req: Request, res: Response) -> None:
    session = req.session
    verbs = " ".join(
        v.name
        for v in Verb
        if session.handlers(v.value) and (v is not Verb.BDAT or session.config.chunking)
    )
    res.accept(214, f"Commands: {verbs}\nSee RFC 5321", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="help", name=CORE, func=help))
