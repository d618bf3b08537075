"""MAIL FROM (RFC 5321 §4.1.1.2): start a transaction (``mail/core``).

Sets ``req.sender`` (an :class:`~mailio_trio.protocol.Address`, ``None`` for
the null sender ``<>``) and ``req.mail`` (every parameter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.message import Envelope
from mailio_trio.plugins.ehlo import dsn_offered
from mailio_trio.protocol import MailFrom, parse_mail_from
from mailio_trio.protocol.catalogue import MESSAGE_TOO_BIG
from mailio_trio.protocol.dsn import MAIL_KEYWORDS, parse_dsn_mail

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession


def start(session: HandlerSession, mail: MailFrom) -> None:
    dsn = parse_dsn_mail(mail.params)  # checked in mail() already
    session.envelope = Envelope(
        sender=mail.sender,
        has_sender=True,
        body=mail.body,
        smtputf8=mail.smtputf8,
        ret=dsn.ret,
        envid=dsn.envid,
    )


@never_waits
async def mail(req: Request, res: Response) -> None:
    session = req.session
    config = session.config
    if session.helo_name is None:
        res.reject(503, "Send HELO/EHLO first", "5.5.1")
        return
    if session.in_transaction:
        res.reject(503, "Nested MAIL command", "5.5.1")
        return
    # ESMTP parameters exist only after EHLO (RFC 5321 §4.1.1.2).
    esmtp = session.esmtp
    parsed = parse_mail_from(
        req.argument,
        smtputf8=esmtp and config.smtputf8,
        eight_bit_mime=esmtp and config.eight_bit_mime,
        extra_params=MAIL_KEYWORDS if esmtp and dsn_offered(config) else (),
    )
    parse_dsn_mail(parsed.params)  # RFC 3461 §4.3, §4.4: a bad RET or ENVID is 501 5.5.4
    if parsed.size is not None and parsed.size > config.limits.message_size:
        res.reject(MESSAGE_TOO_BIG.code, MESSAGE_TOO_BIG.text, MESSAGE_TOO_BIG.enhanced)
        return
    req.sender, req.mail = parsed.sender, parsed
    req.on_accept(lambda: start(session, parsed))
    res.accept(250, "Sender OK", "2.1.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="mail", name=CORE, func=mail))
