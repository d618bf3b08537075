"""EHLO (RFC 5321 §4.1.1.1): name the client and list the extensions really on (``ehlo/core``).

Each keyword follows from configuration or from a plugin that registered it
with ``chain.add_extension`` (STARTTLS only before TLS, AUTH only where it may
be used), so the list never promises what the server will refuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.plugins.helo import USE_LHLO, greeted
from mailio_trio.protocol import parse_helo_name

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession
    from mailio_trio.config import Config


def dsn_offered(config: Config) -> bool:
    """Whether DSN (RFC 3461) is offered: only where mail is delivered or relayed,
    the two places its reports come from."""
    return config.maildir.enabled or config.relay.enabled


def keywords(session: HandlerSession) -> list[str]:
    """The EHLO keywords for ``session`` now."""
    config = session.config
    words = []
    if config.pipelining:
        words.append("PIPELINING")  # RFC 2920
    words.append(f"SIZE {config.limits.message_size}")  # RFC 1870
    if config.eight_bit_mime:
        words.append("8BITMIME")  # RFC 6152
    if config.smtputf8:
        words.append("SMTPUTF8")  # RFC 6531
    if dsn_offered(config):
        words.append("DSN")  # RFC 3461
    if config.chunking:
        words.append("CHUNKING")  # RFC 3030, without BINARYMIME
    if config.enhanced_status_codes:
        words.append("ENHANCEDSTATUSCODES")  # RFC 2034
    words.extend(session.context.chain.extensions(session))
    return words


@never_waits
async def ehlo(req: Request, res: Response) -> None:
    session = req.session
    if session.config.lmtp:
        res.reject(*USE_LHLO)
        return
    name = parse_helo_name(req.argument, strict=session.config.strict_helo)
    req.on_accept(lambda: greeted(session, name, esmtp=True))
    lines = [f"{session.config.hostname} Hello {name}", *keywords(session)]
    res.accept(250, "\n".join(lines), enhanced="")


def register(chain: Chain) -> None:
    chain.add(Handler(command="ehlo", name=CORE, func=ehlo))
