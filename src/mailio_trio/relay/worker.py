"""The relay worker: runs due spool entries, records outcomes, bounces failures.

Runs as one task in the server's nursery (``Server.serve``) while relaying is
enabled. It scans the spool when woken (a new entry), when the earliest retry
is due, every ``relay.scan_interval`` seconds, and within ``flush_poll``
seconds of ``mailio-trio queue flush`` or ``bounce`` in another process
making the spool's ``flush`` file (``Spool.request_scan_sync``).

Per entry and attempt, recipients are grouped by domain and each group is
delivered over one connection, at most ``relay.concurrency`` groups at once
(one ``trio.CapacityLimiter`` for the whole server). Each group's outcome is
written to the spool as soon as it is known; see ``spool.py`` for the
at-least-once point. An entry deleted meanwhile (``queue delete``) is not
brought back.
"""

from __future__ import annotations

import collections
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio import _maillog
from mailio_trio.protocol.dsn import DsnRcpt
from mailio_trio.protocol.hops import count_hops
from mailio_trio.relay import schedule
from mailio_trio.relay.bounce import (
    build_delay_dsn,
    build_dsn,
    delay_recipients,
    failure_recipients,
    relayed_recipients,
    should_bounce,
)
from mailio_trio.relay.deliver import MxResolver, Outcome, deliver_group
from mailio_trio.relay.spool import Entry, ErrorInfo, RecipientStatus, Spool

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from mailio_trio.config import Config

__all__ = ["RelayWorker"]

logger = logging.getLogger("mailio_trio.relay")

# Postfix's status= words for a recipient's outcome.
_STATUS = {
    RecipientStatus.DELIVERED: "sent",
    RecipientStatus.PENDING: "deferred",
    RecipientStatus.FAILED: "bounced",
}


@attrs.define(eq=False)
class RelayWorker:
    """Delivers what the spool holds.

    Args:
      config: The server's configuration (``relay`` section, ``hostname``, ``domains``).
      resolver: MX and address lookups.
      submit: ``await submit(message, sender, recipients)`` — how a DSN is
        sent. The server passes its ``send_mail`` (its own queue chain: a
        local sender gets the DSN in its maildir, a remote one through this
        spool). An exception keeps the entry and retries the bounce later.
    """

    config: Config
    resolver: MxResolver
    submit: Callable[[bytes, str, list[str]], Awaitable[None]]
    spool: Spool = attrs.field()
    clock: Callable[[], float] = time.time
    flush_poll: float = 0.5  # seconds between looks for the spool's "flush" file (one stat)
    _wake: trio.Event = attrs.field(factory=trio.Event, init=False)
    _in_flight: set[str] = attrs.field(factory=set, init=False)
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _idle: trio.Event = attrs.field(factory=trio.Event, init=False)
    outcomes: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    """Delivery attempts per recipient by outcome (``delivered``, ``pending``: to be
    retried, ``failed``), for the server's metrics."""

    @spool.default
    def _spool(self) -> Spool:
        assert self.config.relay.spool_dir is not None
        return Spool(self.config.relay.spool_dir)

    def __attrs_post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(self.config.relay.concurrency)

    @property
    def ehlo_name(self) -> str:
        return self.config.relay.hostname or self.config.hostname

    def wake(self) -> None:
        """Scan the spool now (a new entry, a flush)."""
        self._wake.set()

    async def wait_idle(self) -> None:
        """Wait until a scan found nothing due and nothing in flight (tests)."""
        self._idle = trio.Event()
        self.wake()
        await self._idle.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled; started once the spool is open and cleaned."""
        await trio.to_thread.run_sync(self.spool.open)
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_scan_requests)
            while True:
                self._wake = trio.Event()
                entries = await self.spool.entries()
                now = self.clock()
                waiting = [e for e in entries if e.id not in self._in_flight]
                for entry in waiting:
                    # An entry with no pending recipient left (``queue bounce`` sets
                    # next_attempt to now) only needs finishing: its bounce is due.
                    if entry.next_attempt <= now:
                        self._in_flight.add(entry.id)
                        nursery.start_soon(self._attempt, entry.id)
                later = [e.next_attempt - now for e in waiting if e.next_attempt > now]
                if not self._in_flight and not later:
                    self._idle.set()
                delay = min([self.config.relay.scan_interval, *later])
                with trio.move_on_after(max(delay, 0.0)):
                    await self._wake.wait()

    async def _watch_scan_requests(self) -> None:
        """Wake the scan loop when ``mailio-trio queue`` asks for it (the ``flush`` file)."""
        while True:
            await trio.sleep(self.flush_poll)
            try:
                requested = await trio.to_thread.run_sync(self.spool.take_scan_request_sync)
            except OSError as exc:
                logger.warning("cannot check %s: %s", self.spool.flush_path, exc)
                await trio.sleep(self.config.relay.scan_interval)
                continue
            if requested:
                logger.info("scan requested (%s)", self.spool.flush_path)
                self.wake()

    async def _attempt(self, entry_id: str) -> None:
        try:
            await self._attempt_unguarded(entry_id)
        except Exception:
            logger.exception("relay attempt for %s failed", entry_id)
        finally:
            self._in_flight.discard(entry_id)
            self.wake()

    async def _attempt_unguarded(self, entry_id: str) -> None:
        entry = await self.spool.load(entry_id)
        if entry is None:
            return
        if entry.pending() and await self._looping(entry):
            return
        groups: dict[str, list[str]] = defaultdict(list)
        for state in entry.pending():
            groups[state.address.rpartition("@")[2].lower()].append(state.address)
        lock = trio.Lock()
        message = self.spool.message_path(entry.id)
        dsn = {s.address: DsnRcpt(s.notify, s.orcpt) for s in entry.pending()}

        async def one_group(domain: str, recipients: list[str]) -> None:
            async with self._limiter:
                outcomes = await deliver_group(
                    domain=domain,
                    sender=entry.sender,
                    recipients=recipients,
                    message=message,
                    smtputf8=entry.smtputf8,
                    body_8bit=entry.body_8bit,
                    config=self.config.relay,
                    ehlo_name=self.ehlo_name,
                    resolver=self.resolver,
                    dsn=dsn,
                    ret=entry.ret,
                    envid=entry.envid,
                )
            if _maillog.MAIL_LOG.isEnabledFor(logging.INFO):
                self._log_outcomes(entry, outcomes)
            async with lock:
                current = await self.spool.load(entry.id)
                if current is None:
                    return  # deleted meanwhile: do not resurrect it
                for state in current.recipients:
                    if state.address in outcomes and state.status is RecipientStatus.PENDING:
                        outcome = outcomes[state.address]
                        self.outcomes[outcome.status.value] += 1
                        state.status, state.error = outcome.status, outcome.error
                        state.relayed = outcome.relayed
                await self.spool.save(current)

        async with trio.open_nursery() as nursery:
            for domain, recipients in groups.items():
                nursery.start_soon(one_group, domain, recipients)
        await self._finish(entry.id)

    def _log_outcomes(self, entry: Entry, outcomes: dict[str, Outcome]) -> None:
        """One mail log line per recipient: where it went, how long it took, the answer."""
        delay = max(0.0, self.clock() - entry.created)
        for recipient, outcome in outcomes.items():
            error = outcome.error
            remote = error.remote if error is not None else None
            _maillog.emit(
                {
                    "event": "relay",
                    "queue_id": entry.id,
                    "from": f"<{entry.sender}>",
                    "to": f"<{recipient}>",
                    "relay": remote.replace(" [", "[") if remote else "none",
                    "delay": f"{delay:.1f}s",
                    "attempt": entry.attempts + 1,
                    "status": _STATUS[outcome.status],
                    "code": error.code if error is not None else None,
                    "dsn": error.enhanced if error is not None else None,
                    "reply": " ".join(error.text.split()) if error is not None else None,
                }
            )

    async def _looping(self, entry: Entry) -> bool:
        """Fail and bounce ``entry`` if its message is at ``limits.max_hops`` (a mail loop).

        Counted from the stored file's header block (our own ``Received:`` line
        included), read only as far as that block goes: a message we send with
        this many hops would be refused as a loop by the next server anyway.
        """
        limit = self.config.limits.max_hops
        hops = await trio.to_thread.run_sync(_hops_in, self.spool.message_path(entry.id))
        if hops < limit:
            return False
        logger.warning(
            "%s: %d Received: headers (limit %d): mail loop, not relayed", entry.id, hops, limit
        )
        error = ErrorInfo(554, "5.4.6", f"Too many hops ({hops}, limit {limit}): mail loop")
        for state in entry.pending():
            state.status, state.error = RecipientStatus.FAILED, error
        await self.spool.save(entry)
        await self._finish(entry.id)
        return True

    async def _finish(self, entry_id: str) -> None:
        entry = await self.spool.load(entry_id)
        if entry is None:
            return
        relay = self.config.relay
        now = self.clock()
        entry.attempts += 1
        if entry.pending() and schedule.expired(now, entry.created, relay.retry_hours):
            for state in entry.pending():
                last = state.error
                state.status = RecipientStatus.FAILED
                state.error = ErrorInfo(
                    last.code if last else 451,
                    last.enhanced if last else "4.4.7",
                    f"gave up after {relay.retry_hours:g} hours"
                    + (f": {last.text}" if last else ""),
                    last.remote if last else None,
                )
        if entry.pending():
            entry.next_attempt = schedule.next_attempt(
                now, entry.attempts, relay.retry_base_interval
            )
            warn_at = schedule.delay_warning_at(entry.created, relay.delay_warning_hours)
            if warn_at is not None and not entry.delay_warned:
                if warn_at <= now:
                    await self._warn_delay(entry, now)
                else:
                    # Try once more when the warning is due, so it is not late by
                    # a whole back-off interval (30 min and more by then).
                    entry.next_attempt = min(entry.next_attempt, warn_at)
            await self.spool.save(entry)
            if _maillog.MAIL_LOG.isEnabledFor(logging.INFO):
                _maillog.emit(
                    {
                        "event": "deferred",
                        "queue_id": entry.id,
                        "nrcpt": len(entry.pending()),
                        "attempts": entry.attempts,
                        "retry_at": _maillog.human_time(entry.next_attempt),
                    }
                )
            return
        if entry.failed() and not failure_recipients(entry):
            logger.info("%s: no failure report (NOTIFY without FAILURE)", entry.id)
        if not entry.bounced and (failure_recipients(entry) or relayed_recipients(entry)):
            try:
                await self._bounce(entry)
            except Exception:
                # The DSN could not be submitted (a maildir write failed, a queue
                # handler refused): keep the entry, try the bounce again later —
                # never drop it, never spin on it.
                logger.exception("%s: bounce not submitted; retrying later", entry.id)
                entry.next_attempt = schedule.next_attempt(
                    now, entry.attempts, relay.retry_base_interval
                )
                await self.spool.save(entry)
                return
        await self.spool.remove(entry.id)
        logger.info("%s: done", entry.id)

    async def _bounce(self, entry: Entry) -> None:
        message = self.spool.message_path(entry.id)
        if not await trio.to_thread.run_sync(should_bounce, entry, message):
            logger.info("%s: no bounce (null sender or auto-submitted)", entry.id)
            return
        dsn = await trio.to_thread.run_sync(
            lambda: build_dsn(entry, message, reporting_mta=self.ehlo_name)
        )
        await self.submit(dsn, "", [entry.sender])
        # Recorded before removal, so a crash here repeats at most this one bounce.
        entry.bounced = True
        await self.spool.save(entry)

    async def _warn_delay(self, entry: Entry, now: float) -> None:
        """Send the one delay DSN, or settle that none is wanted; sets ``delay_warned``.

        The caller saves the entry (fsync'd) right after: a crash between the
        submission and that save repeats this one warning at most, as for bounces.
        A submission that fails is logged and tried again at the next attempt.
        """
        message = self.spool.message_path(entry.id)
        if not delay_recipients(entry):
            logger.info("%s: no delay warning (NOTIFY without DELAY)", entry.id)
        elif not await trio.to_thread.run_sync(should_bounce, entry, message):
            logger.info("%s: no delay warning (null sender or auto-submitted)", entry.id)
        else:
            give_up_at = schedule.deadline(entry.created, self.config.relay.retry_hours)
            dsn = await trio.to_thread.run_sync(
                lambda: build_delay_dsn(
                    entry,
                    message,
                    reporting_mta=self.ehlo_name,
                    give_up_at=give_up_at,
                    now=datetime.fromtimestamp(now, UTC),
                )
            )
            try:
                await self.submit(dsn, "", [entry.sender])
            except Exception:
                logger.exception("%s: delay warning not submitted; retrying later", entry.id)
                return
            logger.info("%s: delay warning sent to %s", entry.id, entry.sender)
        entry.delay_warned = True


def _hops_in(path: Path) -> int:
    with path.open("rb") as f:
        return count_hops(iter(lambda: f.read(64 * 1024), b""))
