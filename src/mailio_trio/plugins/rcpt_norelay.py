"""Refuse recipients outside the local domains (``rcpt/relay``, no relaying yet).

A placeholder with the relay policy's name, so handlers that order themselves
against ``relay`` keep working: the relay plugin (durable queue, MX delivery)
replaces this module in the registration, and with it comes mail-io's policy
(authenticated clients, local senders). Until then nothing may be accepted
that we could not deliver: a foreign recipient gets ``550 5.7.1`` at RCPT
time, the code RFC 5321 clients expect for "relay access denied" (mail-io
answered ``502``, which clients read as "command not implemented").
"""

from __future__ import annotations

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.plugins.maildir import local_mailbox

__all__ = ["check", "register"]


async def check(req: Request, res: Response) -> None:
    assert req.to is not None
    if local_mailbox(req.session.config, req.to) is None:
        res.reject(550, "Relay access denied: relaying is not available", "5.7.1")
        return
    res.accept()


def register(chain: Chain) -> None:
    chain.add(Handler(command="rcpt", name="relay", func=check))
