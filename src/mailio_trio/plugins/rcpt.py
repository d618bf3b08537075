"""RCPT TO (RFC 5321 §4.1.1.3): add a recipient (``rcpt/core``).

Sets ``req.to`` and ``req.rcpt``. Recipient policy (local domains, relay,
blocklists) belongs to later handlers; with none, every recipient is taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.plugins.ehlo import dsn_offered
from mailio_trio.protocol import Address, parse_rcpt_to
from mailio_trio.protocol.dsn import RCPT_KEYWORDS, DsnRcpt, parse_dsn_rcpt

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession


def add(session: HandlerSession, recipient: Address, dsn: DsnRcpt | None = None) -> None:
    recipients = session.envelope.recipients
    key = recipient.key()
    if all(r.key() != key for r in recipients):
        recipients.append(recipient)
        session.counters.recipients += 1
        if dsn is not None and dsn != DsnRcpt():
            session.envelope.dsn[key] = dsn


@never_waits
async def rcpt(req: Request, res: Response) -> None:
    session = req.session
    if not session.in_transaction:
        res.reject(503, "Need MAIL before RCPT", "5.5.1")
        return
    if session.chunked is not None:
        # The message is under way (its Received: line names the recipients): as Postfix.
        res.reject(503, "RCPT after BDAT", "5.5.1")
        return
    parsed = parse_rcpt_to(
        req.argument,
        smtputf8_allowed=session.envelope.smtputf8,
        extra_params=RCPT_KEYWORDS if session.esmtp and dsn_offered(session.config) else (),
    )
    dsn = parse_dsn_rcpt(parsed.params)  # RFC 3461 §4.1, §4.2: malformed is 501 5.5.4
    if len(session.envelope.recipients) >= session.config.limits.max_recipients:
        # RFC 5321 §4.5.3.1.10: 452 lets the client send the rest in another transaction.
        res.reject(452, "Too many recipients", "4.5.3")
        return
    req.to, req.rcpt = parsed.recipient, parsed
    req.on_accept(lambda: add(session, parsed.recipient, dsn))
    res.accept(250, "Recipient OK", "2.1.5")


def register(chain: Chain) -> None:
    chain.add(Handler(command="rcpt", name=CORE, func=rcpt))
