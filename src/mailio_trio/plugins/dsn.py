"""Success reports at local delivery (``queue/dsn``): RFC 3461 ``NOTIFY=SUCCESS``.

A recipient in our own domains whose RCPT asked for ``NOTIFY=SUCCESS`` has
reached its final destination once ``queue/maildir`` stored the message, so
RFC 3461 §5.2.3 has us send its sender an ``Action: delivered`` report
(RFC 3464; built by :func:`mailio_trio.relay.bounce.build_delivered_dsn`,
with ``Original-Envelope-Id`` and ``Original-Recipient`` when given).
Remote recipients are the relay's: their reports come from the next hop, or
from us as ``relayed`` (``mailio_trio.relay.worker``).

The report is built while the handler runs (the spooled message is removed
once the ``queue`` chain is done) and handed to a :class:`DsnOutbox` only
once the whole transaction committed (``req.on_accept``), so a message the
client was refused never produces a "delivered". The outbox submits it
through the server's own ``send_mail`` from ``<>`` after the client's
``250``: a local sender finds it in its maildir, a remote one has it
relayed. It is best effort — a crash or shutdown before the submission loses
the report, never the message. None goes to the null sender, nor for an
``Auto-Submitted`` message (the same rule as bounces).

Registered by the server when ``maildir.enabled`` is true.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.plugins.maildir import local_mailbox
from mailio_trio.protocol.dsn import NotifyOn
from mailio_trio.relay.bounce import build_delivered_dsn, should_bounce
from mailio_trio.relay.spool import Entry, RecipientState, RecipientStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailio_trio.message import Message

__all__ = ["DsnOutbox", "make_handler", "register"]

logger = logging.getLogger("mailio_trio.dsn")

# Reports waiting for submission; beyond this, new ones are dropped with a
# warning rather than holding memory without bound while submission is stuck.
OUTBOX_SIZE = 1000


@attrs.define(eq=False)
class DsnOutbox:
    """Reports waiting to be submitted, and the task that submits them.

    Args:
      submit: ``await submit(report, sender, recipients)``, the server's
        DSN submission (``send_mail`` from ``<>``).
    """

    submit: Callable[[bytes, str, list[str]], Awaitable[None]]
    _send: trio.MemorySendChannel[tuple[bytes, str]] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[tuple[bytes, str]] = attrs.field(init=False)
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel(OUTBOX_SIZE)

    @property
    def running(self) -> bool:
        return self._scope is not None

    def put(self, report: bytes, recipient: str) -> None:
        """Queue ``report`` for ``recipient`` (never blocks; drops it when full)."""
        try:
            self._send.send_nowait((report, recipient))
        except trio.WouldBlock:
            logger.warning("delivery report to %s dropped: the outbox is full", recipient)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Submit queued reports until :meth:`stop` or cancellation."""
        try:
            with trio.CancelScope() as self._scope:
                task_status.started()
                while True:
                    report, recipient = await self._receive.receive()
                    try:
                        await self.submit(report, "", [recipient])
                    except Exception:
                        logger.exception("delivery report to %s not submitted", recipient)
                    else:
                        logger.info("delivery report sent to %s", recipient)
        finally:
            self._scope = None  # a later serve_listeners starts it again

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()


def _delivered(message: Message, req: Request) -> Entry | None:
    """The recipients to report as delivered, as a never-spooled entry; ``None``: nobody."""
    envelope = message.envelope
    config = req.session.config
    if envelope.sender is None:
        return None  # RFC 3461 §5.2.3 / RFC 5321 §4.5.5: no report to <>, ever
    states = []
    for recipient in envelope.recipients:
        given = envelope.recipient_dsn(recipient)
        if given is None or given.notify is None or NotifyOn.SUCCESS not in given.notify:
            continue
        if local_mailbox(config, recipient) is None or (
            recipient.domain and config.relay.transport_for(recipient.domain) is not None
        ):
            continue  # the relay reports it (a transport's domain: once LMTP took it)
        if recipient.key() in req.refused_recipients:
            continue  # LMTP: refused for this one (queue/maildir's full mailbox)
        states.append(
            RecipientState(
                str(recipient), RecipientStatus.DELIVERED, notify=given.notify, orcpt=given.orcpt
            )
        )
    if not states:
        return None
    now = time.time()
    return Entry(
        id=message.id,
        sender=str(envelope.sender),
        recipients=states,
        created=now,
        next_attempt=math.inf,
        envid=envelope.envid,
    )


def make_handler(outbox: DsnOutbox) -> Handler:
    async def dsn(req: Request, res: Response) -> None:
        message = req.message
        assert message is not None
        entry = _delivered(message, req)
        if entry is None or not await trio.to_thread.run_sync(should_bounce, entry, message.path):
            res.accept()
            return
        reporting_mta = req.session.config.hostname
        report = await trio.to_thread.run_sync(
            lambda: build_delivered_dsn(entry, message.path, reporting_mta=reporting_mta)
        )
        sender = entry.sender
        addresses = {r.address for r in entry.recipients}
        reported = {r.key() for r in message.envelope.recipients if str(r) in addresses}

        def hand_over() -> None:
            # A handler after this one refused a reported recipient (LMTP): no
            # "delivered" for a copy that was rolled back; the report is built whole.
            late = ["@".join(k) for k in req.refused_recipients if k in reported]
            if late:
                res.log.warning("delivered report for %s dropped: refused later", late)
                return
            outbox.put(report, sender)

        req.on_accept(hand_over)
        res.accept()

    # After maildir: a report is due only where a mailbox took the message.
    return Handler(command="queue", name="dsn", func=dsn, after=("maildir",), if_present=True)


def register(chain: Chain, outbox: DsnOutbox) -> None:
    chain.add(make_handler(outbox))
