"""Prometheus metrics and health checks for one :class:`~mailio_trio.server.Server`.

Nothing here runs per command. The server counts in plain integers
(``_context.Tally``, ``RelayWorker.outcomes``, its statistics) and a custom
collector turns them into metric families when scraped; only the latency
histograms are Prometheus objects observed as things happen, and only for
handlers that may wait (``never_waits`` handlers cost nothing extra) and for
DNS lookups. Each server has its own ``CollectorRegistry``, so two servers
in one process (tests, an application embedding several) never collide.

``--workers N``: every worker process is its own scrape target on
``metrics.listen``'s port plus its index, rather than prometheus_client's
multiprocess mode (which needs a shared directory, cannot run custom
collectors and gives no per-worker readiness).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from mailio_trio.config import ConfigError
from mailio_trio.dns import DNSNotFound, DNSTemporaryError

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ConfigError(
        "metrics.listen: needs the metrics extra: pip install 'mailio-trio[metrics]'"
    ) from exc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from prometheus_client.metrics_core import Metric

    from mailio_trio.dns import Resolver
    from mailio_trio.server._server import Server

__all__ = ["MeteredResolver", "Metrics"]

# Handler latency: a DNSBL or SpamAssassin call takes milliseconds to seconds.
_HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DNS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_QUEUE_REFRESH = 5.0
"""Seconds a scrape reuses the relay spool's size and age (reading it lists a directory)."""


class Metrics:
    """The server's registry, its latency histograms, and the scrape-time collector."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self._handler = prometheus_client.Histogram(
            "mailio_handler_seconds",
            "Time in handlers that may wait, by command/name",
            ["handler"],
            buckets=_HANDLER_BUCKETS,
            registry=self.registry,
        )
        self._handler_children: dict[str, Any] = {}
        self.dns_seconds = prometheus_client.Histogram(
            "mailio_dns_lookup_seconds",
            "DNS lookup time by record type",
            ["type"],
            buckets=_DNS_BUCKETS,
            registry=self.registry,
        )
        self.dns_lookups = prometheus_client.Counter(
            "mailio_dns_lookups",
            "DNS lookups by record type and outcome (ok, notfound, temporary, error)",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.queue_size = 0
        self.queue_oldest = 0.0
        self._queue_read_at: float | None = None
        self.registry.register(_ServerCollector(self))

    def observe_handler(self, key: str, seconds: float) -> None:
        child = self._handler_children.get(key)
        if child is None:
            child = self._handler_children[key] = self._handler.labels(key)
        child.observe(seconds)

    async def refresh(self) -> None:
        """Read what a scrape needs from disk (the relay spool), at most every few seconds."""
        relay = self.server.relay
        now = trio.current_time()
        if relay is None or (
            self._queue_read_at is not None and now - self._queue_read_at < _QUEUE_REFRESH
        ):
            return
        self._queue_read_at = now
        entries = await relay.spool.entries()
        self.queue_size = len(entries)
        self.queue_oldest = min((e.created for e in entries), default=0.0)

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)

    async def respond(self, path: str) -> tuple[int, str, bytes]:
        """The HTTP answer for ``path``: ``/metrics``, ``/healthz`` or ``/readyz``."""
        text = "text/plain; charset=utf-8"
        if path == "/metrics":
            await self.refresh()
            return 200, prometheus_client.CONTENT_TYPE_LATEST, self.exposition()
        if path == "/healthz":
            return 200, text, b"ok\n"
        if path == "/readyz":
            if self.server.ready:
                return 200, text, b"ready\n"
            why = "draining" if self.server.shutting_down else "not listening"
            return 503, text, f"{why}\n".encode()
        return 404, text, b"Not Found\n"


class _ServerCollector(Collector):
    """Turns the server's plain counters into metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        server = self.metrics.server
        stats = server.statistics()
        tally = server._context.tally  # the package's own counts
        yield CounterMetricFamily(
            "mailio_connections", "TCP connections accepted", value=stats.sessions_total
        )
        refused = CounterMetricFamily(
            "mailio_connections_refused",
            "Connections refused before a session, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(tally.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        yield GaugeMetricFamily(
            "mailio_connections_active", "Sessions in progress", value=stats.active_sessions
        )
        yield GaugeMetricFamily(
            "mailio_tls_handshakes_active",
            "Implicit-TLS connections still in their handshake",
            value=stats.tls_handshakes,
        )
        commands = CounterMetricFamily(
            "mailio_commands",
            "Replies sent, by the command they answer and their class (2xx, 3xx, 4xx, 5xx)",
            labels=["command", "reply"],
        )
        for (command, cls), count in sorted(tally.replies.items()):
            commands.add_metric([command, f"{cls}xx"], count)
        yield commands
        messages = CounterMetricFamily(
            "mailio_messages", "Messages answered after DATA/BDAT", labels=["outcome"]
        )
        for outcome in ("accepted", "refused"):
            messages.add_metric([outcome], tally.messages[outcome])
        yield messages
        yield CounterMetricFamily(
            "mailio_message_bytes", "Octets of accepted messages", value=tally.message_bytes
        )
        yield GaugeMetricFamily(
            "mailio_ready", "1 while listening and not shutting down", value=int(server.ready)
        )
        relay = server.relay
        if relay is None:
            return
        attempts = CounterMetricFamily(
            "mailio_delivery_attempts",
            "Relay delivery attempts per recipient, by outcome (delivered, pending, failed)",
            labels=["outcome"],
        )
        for outcome in ("delivered", "pending", "failed"):
            attempts.add_metric([outcome], relay.outcomes[outcome])
        yield attempts
        yield GaugeMetricFamily(
            "mailio_queue_size", "Entries in the relay spool", value=self.metrics.queue_size
        )
        oldest = self.metrics.queue_oldest
        yield GaugeMetricFamily(
            "mailio_queue_oldest_age_seconds",
            "Age of the oldest relay spool entry (0: empty)",
            value=max(time.time() - oldest, 0.0) if oldest else 0.0,
        )


class MeteredResolver:
    """A :class:`~mailio_trio.dns.Resolver` that counts and times each lookup."""

    def __init__(self, inner: Resolver, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    async def _timed(self, kind: str, lookup: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await lookup()
            outcome = "ok"
            return result
        except DNSNotFound:
            outcome = "notfound"
            raise
        except DNSTemporaryError:
            outcome = "temporary"
            raise
        finally:
            self._metrics.dns_seconds.labels(kind).observe(time.perf_counter() - started)
            self._metrics.dns_lookups.labels(kind, outcome).inc()

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        result: list[tuple[int, str]] = await self._timed("MX", lambda: self.inner.mx(domain))
        return result

    async def addresses(self, host: str) -> list[str]:
        result: list[str] = await self._timed("A+AAAA", lambda: self.inner.addresses(host))
        return result

    async def a(self, name: str) -> list[str]:
        result: list[str] = await self._timed("A", lambda: self.inner.a(name))
        return result

    async def aaaa(self, name: str) -> list[str]:
        result: list[str] = await self._timed("AAAA", lambda: self.inner.aaaa(name))
        return result

    async def ptr(self, ip: str) -> list[str]:
        result: list[str] = await self._timed("PTR", lambda: self.inner.ptr(ip))
        return result

    async def txt(self, name: str) -> list[str]:
        result: list[str] = await self._timed("TXT", lambda: self.inner.txt(name))
        return result
