"""LHLO (RFC 2033 §4.1): LMTP's EHLO, with EHLO's extensions (``lhlo/core``).

Only under ``lmtp``: an SMTP server does not know the verb (``500 5.5.1``,
as for any other), and an LMTP server answers HELO and EHLO ``500 5.5.1``
(``plugins/helo.py``, ``plugins/ehlo.py``), so a client that mistakes one
protocol for the other is told at its first command, before a message whose
end it would read wrongly (one reply against one per recipient).
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.plugins.ehlo import keywords
from mailio_trio.plugins.helo import greeted
from mailio_trio.plugins.unrecognized import refuse_unknown
from mailio_trio.protocol import parse_helo_name


@never_waits
async def lhlo(req: Request, res: Response) -> None:
    session = req.session
    if not session.config.lmtp:
        refuse_unknown(req, res)  # counted toward limits.unrecognized_commands too
        return
    name = parse_helo_name(req.argument, strict=session.config.strict_helo)
    req.on_accept(lambda: greeted(session, name, esmtp=True))
    lines = [f"{session.config.hostname} Hello {name}", *keywords(session)]
    res.accept(250, "\n".join(lines), enhanced="")


def register(chain: Chain) -> None:
    chain.add(Handler(command="lhlo", name=CORE, func=lhlo))
