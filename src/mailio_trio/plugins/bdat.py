"""BDAT (RFC 3030 CHUNKING): may this chunk join a message? (``bdat/core``).

The session reads every chunk whatever the chain decides (``server/_bdat.py``):
a refused one is read and thrown away, and the message it belonged to fails.
Handlers after ``bdat/core`` may refuse chunks too. The ``LAST`` chunk's
reply is not this chain's but the ``queue`` chain's, exactly as after DATA.
A chunk after ``LAST``, or after a failed chunk, finds no transaction:
``503 5.5.1`` (RFC 3030 §2).
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.protocol import parse_bdat
from mailio_trio.protocol.catalogue import NOT_IMPLEMENTED


@never_waits
async def bdat(req: Request, res: Response) -> None:
    session = req.session
    if not session.config.chunking:
        res.reject(NOT_IMPLEMENTED.code, NOT_IMPLEMENTED.text, NOT_IMPLEMENTED.enhanced)
    elif session.helo_name is None:
        res.reject(503, "Send HELO/EHLO first", "5.5.1")
    elif not session.in_transaction:
        res.reject(503, "Need MAIL command", "5.5.1")
    elif not session.envelope.recipients:
        res.reject(503, "Need RCPT command", "5.5.1")
    else:
        # The session parsed it already: a BDAT that does not parse never gets here.
        res.accept(250, f"{parse_bdat(req.argument).size} octets received", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="bdat", name=CORE, func=bdat))
