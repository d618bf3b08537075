"""Per-address limits and AUTH lockout counted across servers in Redis (``[redis]``).

The local :class:`~mailio_trio.server._admission.PerIpLimiter` still counts
every connection (it is what applies while Redis is down); with Redis up, the
fleet-wide count decides as well. One Lua script per connection, run
atomically on Redis's own clock (``TIME``, so the nodes' clocks need not
agree):

- concurrency: a sorted set per address whose members are this connection's
  slot, scored with an expiry ``redis.slot_ttl`` ahead. A slot is removed when
  its connection ends; a crashed node's slots simply expire, so no address
  stays locked out by a dead server. A session longer than ``slot_ttl`` stops
  counting (keep it above the longest session you allow).
- rate: a sorted set of attempts per address over the last 60 seconds, every
  attempt counted, refused ones included (as locally and in Postfix's anvil).
- AUTH lockout: a counter per address of failed AUTH attempts, added when each
  session ends and kept ``redis.auth_lockout_seconds`` after the last one;
  at ``redis.auth_lockout_failures`` new connections from it are refused.
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import TYPE_CHECKING, Any

import trio

from mailio_trio.server._admission import RATE_WINDOW, Admission

if TYPE_CHECKING:
    from mailio_trio._shared import RedisState
    from mailio_trio.config import Limits

__all__ = ["FleetLimiter"]

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lockout = tonumber(ARGV[6])
if lockout > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= lockout then
  return 3
end
local rate = tonumber(ARGV[3])
if rate > 0 then
  local window = tonumber(ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
  if redis.call('ZCARD', KEYS[2]) > rate then
    return 2
  end
end
local limit = tonumber(ARGV[2])
if limit > 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= limit then
    return 1
  end
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
end
return 0
"""

_OUTCOMES = {
    0: Admission.ADMITTED,
    1: Admission.TOO_MANY_CONCURRENT,
    2: Admission.TOO_FAST,
    3: Admission.AUTH_LOCKOUT,
}


class FleetLimiter:
    """Admits connections against counts every server sharing ``redis`` keeps."""

    def __init__(self, redis: RedisState, limits: Limits) -> None:
        self.redis = redis
        self.limits = limits
        # Unique across nodes and restarts: a slot of a crashed process never
        # collides with a new one's.
        self._node = f"{os.getpid()}.{secrets.token_hex(4)}"
        self._serial = itertools.count()

    async def admit(self, ip: str) -> tuple[Admission, str | None]:
        """The fleet's decision for a new connection from ``ip`` and its slot.

        ``ADMITTED`` with no slot means Redis was not asked or failed (decide
        locally). A slot is given back with :meth:`release`.
        """
        slot = f"{self._node}.{next(self._serial)}"
        config = self.redis.config
        keys = [self.redis.key("conn", ip), self.redis.key("rate", ip), self.redis.key("auth", ip)]
        args = [
            slot,
            self.limits.connections_per_ip,
            self.limits.connection_rate_per_ip,
            RATE_WINDOW,
            config.slot_ttl,
            config.auth_lockout_failures,
        ]
        script = self.redis.script("admit", _ADMIT)
        code = await self.redis.call("admit", lambda _client: script(keys=keys, args=args))
        if code is None:
            return Admission.ADMITTED, None
        outcome = _OUTCOMES.get(int(code), Admission.ADMITTED)
        return outcome, slot if outcome is Admission.ADMITTED else None

    async def release(self, ip: str, slot: str | None, auth_failures: int) -> None:
        """Give back ``slot`` and add the session's AUTH failures; bounded, never raises."""
        if slot is None and not auth_failures:
            return
        conn, auth = self.redis.key("conn", ip), self.redis.key("auth", ip)
        lockout_ms = int(self.redis.config.auth_lockout_seconds * 1000)

        def give_back(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            if slot is not None:
                pipe.zrem(conn, slot)
            if auth_failures:
                pipe.incrby(auth, auth_failures)
                pipe.pexpire(auth, lockout_ms)
            pipe.execute()

        # Shielded: it runs as the connection ends, also while the server is cancelled.
        with trio.CancelScope(shield=True):
            await self.redis.call("release", give_back)
