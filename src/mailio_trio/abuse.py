"""Rate-limited logging for the per-connection anti-abuse lines.

One line per hostile connection is what an operator wants until the
connections come by the thousand: a botnet of pregreeting clients, a listed
network retrying, one address hammering the per-address limit would each
write a line per connection and drown everything else in the log (and fill
the disk it is on). So every kind of such line (:class:`AbuseKind`) gets the
same treatment, in this one place: the first ``limits.abuse_log_burst`` lines
of a kind per ``limits.abuse_log_interval`` seconds are logged as they are,
the rest are only counted, and one summary line per interval says how many
were left out::

    ... and 532 more early talkers in the last 60 s

Precedent: the Linux kernel's ``printk_ratelimit`` (a burst per interval, then
"N callbacks suppressed"). Unlike it, the summary does not wait for the next
line of its kind: a Trio system task writes it when the interval ends, and
:meth:`RateLimitedLog.flush` (the server stopping) writes what is left, so a
count is never lost and never later than the interval.

Windows are fixed, one per kind: the first line of a kind opens one.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from mailio_trio.config import Limits

__all__ = ["AbuseKind", "RateLimitedLog"]


class AbuseKind(enum.Enum):
    """What a rate-limited line reports; the value names it in the summary line."""

    EARLY_TALKER = "early talkers"
    DNSBL_LISTED = "clients listed on a DNSBL"
    DNSBL_TROUBLE = "DNSBL lookup problems"
    PER_IP_REFUSED = "connections refused by the per-address limits"
    MESSAGE_LIMIT = "connections stopped at the message limit"
    UNRECOGNIZED = "connections closed for unrecognized commands"
    OVERLONG_COMMAND = "over-long command lines"
    AUTH_FAILED = "failed authentications"
    TLS_HANDSHAKE = "failed TLS handshakes"
    PROXY_HEADER = "refused, late or cut PROXY protocol headers"
    PROXY_UNTRUSTED = "connections from outside server.proxy_trusted"
    REDIS_DOWN = "Redis calls failed open"


@attrs.define(eq=False)
class _Window:
    start: float
    logger: logging.Logger
    level: int
    logged: int = 0
    suppressed: int = 0


@attrs.define(eq=False)
class RateLimitedLog:
    """One server's anti-abuse log budget (``ServerContext.abuse_log``).

    Must be used from inside a Trio run (it reads ``trio.current_time()``, so
    a ``MockClock`` drives it in tests).
    """

    burst: int
    """Lines of one kind logged one by one per interval; 0: only summaries."""
    interval: float
    """Seconds each window lasts."""
    _windows: dict[AbuseKind, _Window] = attrs.field(factory=dict, init=False)

    @classmethod
    def from_limits(cls, limits: Limits) -> RateLimitedLog:
        return cls(burst=limits.abuse_log_burst, interval=limits.abuse_log_interval)

    def log(
        self,
        kind: AbuseKind,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        level: int,
        msg: str,
        *args: object,
    ) -> None:
        """``log.log(level, msg, *args)`` unless ``kind`` used up this interval's burst."""
        now = trio.current_time()
        window = self._windows.get(kind)
        if window is not None and now >= window.start + self.interval:
            # The timer has not run yet (it is due now): summarise here, once.
            self._end(kind, window, self.interval)
            window = None
        if window is None:
            base = log.logger if isinstance(log, logging.LoggerAdapter) else log
            window = self._windows[kind] = _Window(start=now, logger=base, level=level)
        if window.logged < self.burst:
            window.logged += 1
            log.log(level, msg, *args)
            return
        window.suppressed += 1
        window.level = max(window.level, level)
        if window.suppressed == 1:
            # A system task: it needs no nursery from the caller (a handler's
            # would not outlive it) and is cancelled, summary written, when the
            # run ends.
            trio.lowlevel.spawn_system_task(self._end_at, kind, window)

    def flush(self) -> None:
        """Write every pending summary now (the server is stopping)."""
        now = trio.current_time()
        for kind, window in list(self._windows.items()):
            self._end(kind, window, min(now - window.start, self.interval))

    async def _end_at(self, kind: AbuseKind, window: _Window) -> None:
        try:
            await trio.sleep_until(window.start + self.interval)
        finally:  # on cancellation too: the run is ending and the count must not be lost
            if self._windows.get(kind) is window:
                now = trio.current_time()
                self._end(kind, window, min(now - window.start, self.interval))

    def _end(self, kind: AbuseKind, window: _Window, seconds: float) -> None:
        del self._windows[kind]
        if window.suppressed:
            window.logger.log(
                window.level,
                "... and %d more %s in the last %g s",
                window.suppressed,
                kind.value,
                round(seconds, 1),
            )
