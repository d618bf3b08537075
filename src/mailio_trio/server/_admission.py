"""Per-client-address connection accounting: concurrency and rate (Postfix's anvil).

Pure bookkeeping, no I/O: the server asks :meth:`PerIpLimiter.admit` at
accept time, with the current time, and calls :meth:`PerIpLimiter.release`
when the connection ends. One client address may hold at most
``limits.connections_per_ip`` connections at once and open at most
``limits.connection_rate_per_ip`` in any 60 seconds; addresses in
``limits.per_ip_exempt`` (CIDRs) are never counted.

Every connection *attempt* counts toward the rate, refused ones included, as
in Postfix's ``smtpd_client_connection_rate_limit``: a client hammering us
stays refused until it slows down.
"""

from __future__ import annotations

import collections
import enum
from typing import TYPE_CHECKING

import attrs

from mailio_trio.networks import Network, in_networks, parse_networks

if TYPE_CHECKING:
    from mailio_trio.config import Limits

__all__ = ["Admission", "PerIpLimiter"]

RATE_WINDOW = 60.0
"""Seconds over which ``connection_rate_per_ip`` counts (a rate "per minute")."""


class Admission(enum.Enum):
    ADMITTED = "admitted"
    TOO_MANY_CONCURRENT = "too many concurrent connections from this address"
    TOO_FAST = "too many connections from this address in the last minute"
    AUTH_LOCKOUT = "locked out after too many failed authentications"


@attrs.define(eq=False)
class PerIpLimiter:
    """Counts connections per client address against ``limits``."""

    limits: Limits
    _exempt: tuple[Network, ...] = attrs.field(init=False)
    _active: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    _recent: dict[str, collections.deque[float]] = attrs.field(factory=dict, init=False)
    _since_sweep: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._exempt = parse_networks(self.limits.per_ip_exempt)

    def exempt(self, ip: str) -> bool:
        return in_networks(ip, self._exempt)

    @property
    def enabled(self) -> bool:
        return bool(self.limits.connections_per_ip or self.limits.connection_rate_per_ip)

    def admit(self, ip: str, now: float) -> Admission:
        """Count a new connection from ``ip``; if admitted, :meth:`release` it when it ends."""
        if not self.enabled or self.exempt(ip):
            return Admission.ADMITTED
        self._maybe_sweep(now)
        rate = self.limits.connection_rate_per_ip
        if rate:
            recent = self._recent.setdefault(ip, collections.deque())
            while recent and recent[0] <= now - RATE_WINDOW:
                recent.popleft()
            recent.append(now)
            if len(recent) > rate:
                return Admission.TOO_FAST
        concurrent = self.limits.connections_per_ip
        if concurrent and self._active[ip] >= concurrent:
            return Admission.TOO_MANY_CONCURRENT
        self._active[ip] += 1
        return Admission.ADMITTED

    def release(self, ip: str) -> None:
        if ip not in self._active:
            return  # exempt or not counted
        self._active[ip] -= 1
        if self._active[ip] <= 0:
            del self._active[ip]

    def active(self, ip: str) -> int:
        return self._active.get(ip, 0)

    def _maybe_sweep(self, now: float) -> None:
        # Forget addresses that have been quiet for a window, so memory stays bounded
        # by the addresses seen in the last minute, not since start.
        self._since_sweep += 1
        if self._since_sweep < 1000:
            return
        self._since_sweep = 0
        for ip in [ip for ip, d in self._recent.items() if not d or d[-1] <= now - RATE_WINDOW]:
            del self._recent[ip]
