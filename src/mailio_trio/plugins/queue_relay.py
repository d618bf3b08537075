"""Spool relayed recipients (``queue/relay``): one durable entry per message.

Every recipient outside our domains that is still in the envelope at
``queue`` time was allowed by ``rcpt/relay``; they, and those of our domains
that have a transport (``[relay.transports]``, LMTP), go into one spool entry
(message file + metadata, fsync'd, see ``mailio_trio.relay.spool``) before
the client's ``250``, so it promises a durable copy. A failure to store is
``451 4.3.0``: the client keeps the message and retries.

Two phases (the ``queue`` chain answers as one transaction, see
``mailio_trio._transaction``): the handler prepares the entry in the
spool's ``tmp/``, invisible to the worker; the commit step renames it into
``queue/`` (the metadata last: the commit point) once every queue handler
accepted, and the worker is woken after that. If a later handler refuses,
or the client goes away, the rollback step removes the entry — the worker
never saw it.

Registered by the server when ``relay.enabled`` is true, with its worker.
With ``[dkim.keys]``, the entry's message starts with our DKIM signature(s),
or an ARC set for others' mail a local domain forwards (``_dkim_signing.py``);
they are written with it, so every attempt sends the same signed bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.protocol.catalogue import INTERNAL_ERROR

if TYPE_CHECKING:
    from mailio_trio.plugins._dkim_signing import RelaySigner
    from mailio_trio.relay.worker import RelayWorker


def make_handler(worker: RelayWorker, signer: RelaySigner | None = None) -> Handler:
    async def relay(req: Request, res: Response) -> None:
        message = req.message
        assert message is not None
        config = req.session.config
        envelope = message.envelope
        # A domain with a transport (local or not) is delivered only through it.
        foreign = [
            r
            for r in envelope.recipients
            if r.domain
            and (
                not config.is_local_domain(r.domain)
                or config.relay.transport_for(r.domain) is not None
            )
        ]
        remote = [str(r) for r in foreign]
        # RFC 3461 §5.2.1: NOTIFY and ORCPT go on with each recipient, RET and ENVID
        # with the message.
        dsn = {str(r): d for r in foreign if (d := envelope.recipient_dsn(r)) is not None}
        if not remote:
            res.accept()
            return
        sender = str(envelope.sender) if envelope.sender is not None else ""
        prepared: list[str] = []
        log = res.log

        async def roll_back() -> None:
            for entry_id in prepared:
                await worker.spool.discard(entry_id)
                log.info("spool entry %s removed: the message was not accepted", entry_id)

        req.on_rollback(roll_back)  # before the thread starts: see maildir.deliver
        try:
            headers = b"" if signer is None else await signer.headers_for(req, res, message)
            entry = await worker.spool.prepare(
                message.path,
                sender,
                remote,
                smtputf8=envelope.smtputf8,
                body_8bit=envelope.body == "8BITMIME" or None,
                dsn=dsn,
                ret=envelope.ret,
                envid=envelope.envid,
                headers=headers,
            )
        except OSError as exc:
            res.log.error("cannot spool message for relaying: %s", exc)
            res.reject(INTERNAL_ERROR.code, INTERNAL_ERROR.text, INTERNAL_ERROR.enhanced)
            return
        prepared.append(entry.id)

        async def commit() -> None:
            await worker.spool.commit(entry.id)
            log.info("spooled %s for %d remote recipient(s)", entry.id, len(remote))

        req.on_commit(commit)
        # Woken only once every commit step succeeded (on_accept effects run after them).
        req.on_accept(worker.wake)
        res.accept(250, f"OK: queued as {entry.id}", "2.0.0")

    # After queue/mailauth when it runs: an ARC set copies its results.
    return Handler(command="queue", name="relay", func=relay, after=("mailauth",), if_present=True)


def register(chain: Chain, worker: RelayWorker, signer: RelaySigner | None = None) -> None:
    chain.add(make_handler(worker, signer))
