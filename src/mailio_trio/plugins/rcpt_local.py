"""Recipient policy for local domains (``rcpt/local``), so refusals come at RCPT time.

A recipient in a local domain is refused with ``550 5.1.3`` when no mailbox
path can stand for it (an empty local part, an unsafe domain: see
``Mailbox.unsafe_reason``; other local parts are escaped by
:func:`mailio_trio.plugins.maildir.mailbox_name`), and with ``550 5.1.1``
when ``maildir.mailboxes`` is set and it is not there,
or when the ``maildir.extend`` hook returns ``None`` for it. Refusing here
rather than after DATA means we never accept mail we would have to bounce
(backscatter). Foreign recipients pass untouched: they are ``rcpt/relay``'s;
so do those of a domain with a transport (``[relay.transports]``), whose
LMTP server decides (an unknown user there bounces).

The hook's expansion is kept (``res.set``) for ``queue/maildir``, so an alias
is expanded once per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.plugins.maildir import expand, known_mailboxes, local_mailbox

__all__ = ["check", "register"]


async def check(req: Request, res: Response) -> None:
    config = req.session.config
    recipient = req.to
    assert recipient is not None
    box = local_mailbox(config, recipient)
    if box is None or (recipient.domain and config.relay.transport_for(recipient.domain)):
        # A domain with a transport (LMTP) is no maildir's: its server knows its users.
        res.accept()
        return
    if box.unsafe_reason() is not None:
        # RFC 3463 X.1.3: bad destination mailbox address syntax (for this system).
        res.log.info("refused unsafe mailbox name %r: %s", str(recipient), box.unsafe_reason())
        res.reject(550, "Mailbox name not allowed here", "5.1.3")
        return
    targets = await expand(config, recipient)
    known = known_mailboxes(config)
    if targets is not None:
        safe = []
        for target in targets:
            target_box = local_mailbox(config, target)
            if target_box is not None and target_box.unsafe_reason() is not None:
                res.log.error("extend hook gave unsafe mailbox %r; skipped", str(target))
                continue
            safe.append(target)
        targets = safe
    if targets is None or (
        known is not None
        and targets
        and not any((b := local_mailbox(config, t)) is None or b in known for t in targets)
    ):
        res.reject(550, "No such user here", "5.1.1")
        return
    previous = res.get("rcpt/local")
    expansions = dict(previous) if isinstance(previous, Mapping) else {}
    expansions[recipient.key()] = targets
    res.set(expansions)
    res.accept()


def register(chain: Chain) -> None:
    # Relay policy first, whenever it is registered: a foreign domain is not a local user.
    chain.add(Handler(command="rcpt", name="local", func=check, after=("relay",), if_present=True))
