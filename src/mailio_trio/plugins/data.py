"""DATA (RFC 5321 §4.1.1.4): receive the message and hand it to the ``queue`` chain.

Handlers after ``data/core`` may still refuse before the ``354``. The body is
streamed to a spool file (see ``Session.receive_message``), then the ``queue``
chain decides the final reply; the transaction ends either way. Under LMTP
(RFC 2033 §4.2) that is one reply per accepted recipient, in RCPT order.
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits
from mailio_trio.protocol import ClientProtocolError, Reply


@never_waits
async def data(req: Request, res: Response) -> None:
    session = req.session
    if session.helo_name is None:
        res.reject(503, "Send HELO/EHLO first", "5.5.1")
    elif not session.in_transaction:
        res.reject(503, "Need MAIL command", "5.5.1")
    elif not session.envelope.recipients:
        res.reject(503, "Need RCPT command", "5.5.1")
    elif session.chunked is not None:
        # RFC 3030 §2: never both in one transaction; the client must RSET.
        res.reject(503, "DATA after BDAT", "5.5.1")
    elif req.argument:
        res.reject(501, "Syntax: DATA", "5.5.4")
    else:
        req.after_reply(lambda: receive(req))
        res.accept(354, "End data with <CR><LF>.<CR><LF>")


async def receive(req: Request) -> Reply:
    session = req.session
    try:
        message = await session.receive_message()
    except ClientProtocolError as exc:
        session.note_refused("data", exc.reply)  # too big, bare LF, too many hops
        replies = session.per_recipient(exc.reply)
        session.reset_transaction()
        return session.queue_replies(replies)
    try:
        replies = await session.deliver_each(message)
    finally:
        session.transaction += 1
        session.reset_transaction()
    return session.queue_replies(replies)


def register(chain: Chain) -> None:
    chain.add(Handler(command="data", name=CORE, func=data))
