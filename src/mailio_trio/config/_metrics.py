"""The ``[metrics]`` and ``[redis]`` sections: what a fleet of servers shares and shows.

``[metrics]`` is the Prometheus scrape listener (``server/_metrics.py``);
``[redis]`` the optional shared state several servers count in together
(``server/_fleet.py``). Both are off by default.
"""

from __future__ import annotations

from typing import Any

import attrs

from mailio_trio.config._validators import ConfigError, parse_listen, positive, show

__all__ = ["MetricsConfig", "RedisConfig"]


def _listen(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigError(f"metrics.listen = {show(value)}: must be HOST:PORT, e.g. 127.0.0.1:9025")
    try:
        parse_listen(value)
    except ValueError as exc:
        raise ConfigError(f"metrics.listen = {show(value)}: {exc}") from None


@attrs.frozen(kw_only=True)
class MetricsConfig:
    """Prometheus metrics and health checks over HTTP (see ``docs/deploy.md``).

    Serves ``/metrics`` (the text exposition), ``/healthz`` (the process
    answers) and ``/readyz`` (listening and not shutting down; ``503`` while
    draining). Needs the ``metrics`` extra (``prometheus-client``).
    """

    _section = "metrics"

    listen: str | None = attrs.field(default=None, validator=_listen)
    """``HOST:PORT`` of the HTTP listener; ``None`` collects and serves nothing. With
    ``--workers N`` worker ``i`` listens on ``PORT + i`` (one scrape target each)."""
    request_timeout: float = attrs.field(default=5.0, validator=positive)
    """Seconds a scraper has to send its request line and headers."""


def _url(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"redis.url = {show(value)}: must be a redis://, rediss:// or unix:// URL, "
            "e.g. redis://127.0.0.1:6379/0"
        )


@attrs.frozen(kw_only=True)
class RedisConfig:
    """Shared state for several servers: per-address limits, AUTH lockout, greylisting.

    With a ``url``, ``limits.connections_per_ip`` and ``connection_rate_per_ip``
    count across every server sharing the Redis database, and AUTH failures
    lock an address out everywhere. Redis down fails open (local counting and a
    rate-limited warning), never refuses mail. Needs the ``redis`` extra.
    """

    _section = "redis"

    url: str | None = attrs.field(default=None, validator=_url)
    """``redis://HOST:PORT/DB``; ``None``: every count stays in this process."""
    prefix: str = "mailio:"
    """Key prefix, so several deployments can share one database."""
    timeout: float = attrs.field(default=0.5, validator=positive)
    """Seconds one Redis round trip may take before it counts as down (fail open)."""
    slot_ttl: float = attrs.field(default=600.0, validator=positive)
    """Seconds a connection's slot lives without a refresh: a crashed server's
    slots are gone after this, so no address stays locked out by a dead node."""
    auth_lockout_failures: int = attrs.field(default=10, validator=positive)
    """AUTH failures from one address, across servers, before it is locked out."""
    auth_lockout_seconds: float = attrs.field(default=900.0, validator=positive)
    """How long the failures are remembered and a locked-out address refused."""
