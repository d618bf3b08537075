"""STARTTLS (RFC 3207): upgrade the connection to TLS (``starttls/core``).

Offered only when the server has a certificate and the connection is not
secure yet. ``220 2.0.0`` is sent, then ``Session.start_tls`` throws away
anything the client pipelined after the command — the plaintext-injection
attack of CVE-2011-0411 (Postfix) and CVE-2024-34083 (aiosmtpd) — handshakes
under ``limits.tls_handshake_timeout`` and forgets everything learnt before
TLS (RFC 3207 §4.2: HELO name, AUTH, envelope). A failed handshake is logged
at INFO and closes that connection only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import CORE, Chain, Handler, Request, Response

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession
    from mailio_trio.protocol import Reply


def extension(session: HandlerSession) -> str | None:
    if session.context.tls_context is None or session.secure or not session.handlers("starttls"):
        return None
    return "STARTTLS"


async def starttls(req: Request, res: Response) -> None:
    session = req.session
    context = session.context.tls_context
    if context is None:
        res.reject(502, "Command not implemented", "5.5.1")
    elif session.secure:
        res.reject(503, "TLS already active", "5.5.1")
    elif req.argument:
        res.reject(501, "Syntax: STARTTLS", "5.5.4")
    elif session.in_transaction:
        # Postfix refuses too: the envelope would be dropped by the reset anyway.
        res.reject(503, "STARTTLS not permitted during a mail transaction", "5.5.1")
    else:

        async def upgrade() -> Reply | None:
            await session.start_tls(context)
            return None

        req.after_reply(upgrade)
        res.accept(220, "Ready to start TLS", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="starttls", name=CORE, func=starttls))
    chain.add_extension(extension)
