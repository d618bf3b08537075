"""Spool relayed recipients (``queue/relay``): one durable entry per message.

Every recipient outside our domains that is still in the envelope at
``queue`` time was allowed by ``rcpt/relay``; they go into one spool entry
(message file + metadata, fsync'd, see ``mailio_trio.relay.spool``) before
this handler accepts, so the client's ``250`` promises a durable copy. A
failure to store is ``451 4.3.0``: the client keeps the message and retries.

Registered by the server when ``relay.enabled`` is true, with its worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import Chain, Handler, Request, Response

if TYPE_CHECKING:
    from mailio_trio.relay.worker import RelayWorker


def make_handler(worker: RelayWorker) -> Handler:
    async def relay(req: Request, res: Response) -> None:
        message = req.message
        assert message is not None
        config = req.session.config
        envelope = message.envelope
        remote = [
            str(r) for r in envelope.recipients if r.domain and not config.is_local_domain(r.domain)
        ]
        if not remote:
            res.accept()
            return
        sender = str(envelope.sender) if envelope.sender is not None else ""
        try:
            entry = await worker.spool.add(
                message.path,
                sender,
                remote,
                smtputf8=envelope.smtputf8,
                body_8bit=envelope.body == "8BITMIME" or None,
            )
        except OSError as exc:
            res.log.error("cannot spool message for relaying: %s", exc)
            res.reject(451, "Local error in processing, try again later", "4.3.0")
            return
        res.log.info("spooled %s for %d remote recipient(s)", entry.id, len(remote))
        worker.wake()
        res.accept(250, f"OK: queued as {entry.id}", "2.0.0")

    return Handler(command="queue", name="relay", func=relay)


def register(chain: Chain, worker: RelayWorker) -> None:
    chain.add(make_handler(worker))
