"""State shared by several servers through Redis (``[redis]``), failing open.

Used by the per-address limits (``server/_fleet.py``) and greylisting
(``plugins/greylist.py``). Every call is one round trip bounded by
``redis.timeout``; when Redis is down or slow the call returns ``None`` and
the caller decides locally (fail open: a Redis outage never refuses mail),
with one rate-limited WARNING on ``mailio_trio.abuse``. After a failure
Redis is left alone for :data:`RETRY_AFTER` seconds, so an outage costs no
thread and no timeout per connection.

The client is redis-py's synchronous one, run in Trio worker threads
(``trio.to_thread.run_sync`` behind a small ``CapacityLimiter``): redis-py's
own asyncio client runs on asyncio only, and the anyio-based coredis needs
an ``async with`` lifetime whose background tasks would share the server's
nurseries and failure modes. A thread per call costs tens of microseconds,
once per connection (and per RCPT for greylisting).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from mailio_trio.abuse import AbuseKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailio_trio.abuse import RateLimitedLog
    from mailio_trio.config import RedisConfig

__all__ = ["RETRY_AFTER", "RedisState"]

logger = logging.getLogger("mailio_trio.abuse")

T = TypeVar("T")

RETRY_AFTER = 2.0
"""Seconds after a failed call during which Redis is not asked (fail open at once)."""
_THREADS = 8
"""Redis calls in flight at once; more wait for a thread (each is one round trip)."""


class RedisState:
    """One server's connection pool to the shared Redis, and how it fails open."""

    def __init__(self, config: RedisConfig, abuse_log: RateLimitedLog) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            from mailio_trio.config import ConfigError

            raise ConfigError(
                "redis.url: needs the redis extra: pip install 'mailio-trio[redis]'"
            ) from exc
        assert config.url is not None
        self.config = config
        self.prefix = config.prefix
        self._abuse_log = abuse_log
        # No retries inside redis-py: one attempt within the timeout, then fail open.
        self.client: Any = redis.Redis.from_url(
            config.url,
            socket_timeout=config.timeout,
            socket_connect_timeout=config.timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            health_check_interval=0,
        )
        self._limiter = trio.CapacityLimiter(_THREADS)
        self._down_until = -float("inf")
        self._scripts: dict[str, Any] = {}

    @property
    def available(self) -> bool:
        """False while a recent failure keeps us from asking (``RETRY_AFTER``)."""
        return trio.current_time() >= self._down_until

    def script(self, name: str, source: str) -> Any:
        """A Lua script registered once (sent by hash, reloaded by redis-py when flushed)."""
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(source)
        return self._scripts[name]

    async def call(self, what: str, fn: Callable[[Any], T]) -> T | None:
        """``fn(client)`` in a worker thread; ``None`` if Redis failed (logged, fail open)."""
        if not self.available:
            return None
        outcome: T | None = None
        failure = "timed out"
        with trio.move_on_after(self.config.timeout * 2):
            try:
                outcome = await trio.to_thread.run_sync(
                    fn, self.client, limiter=self._limiter, abandon_on_cancel=True
                )
            except Exception as exc:  # redis.RedisError, OSError: either way, fail open
                failure = f"{type(exc).__name__}: {exc}"
            else:
                return outcome
        self._down_until = trio.current_time() + RETRY_AFTER
        self._abuse_log.log(
            AbuseKind.REDIS_DOWN,
            logger,
            logging.WARNING,
            "Redis %s failed (%s); deciding locally for %ss (fail open)",
            what,
            failure,
            RETRY_AFTER,
        )
        return None

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def close(self) -> None:
        self.client.close()
