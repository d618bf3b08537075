"""Run mailio_trio for the benchmark: ``serve_mailio.py PORT [WORKERS] [--spool | --maildir DIR]``.

By default the same thing as ``mailio-trio serve --discard --workers N`` with
the connection limits raised for W4's 1000 idle sessions from one address; it uses the library
directly so the benchmark does not depend on the CLI's flags. ``--spool``
streams each body to a spool file (the queue chain then drops it): the 100 MiB
message workload. ``--maildir DIR`` delivers durably into maildirs under DIR
(file and directory fsync'd before ``250``). ``--profile FILE`` writes a
pyinstrument profile (one worker only).

``--mailauth DNS_PORT`` (with ``--spool``: verification is skipped in discard
mode) verifies SPF, DKIM and DMARC on receipt against the loopback DNS server
``bench/serve_dns.py`` on that port, with ``mailauth.trusted_networks = []`` so
the loopback generator is checked, and reverse DNS off (not what is measured).
``--proxy-protocol`` expects a PROXY header (v1 or v2) from 127.0.0.1, as
behind HAProxy's ``send-proxy-v2``. ``--redis URL`` counts the per-address
limits in that Redis (``[redis] url``; ``run.py`` starts a ``redis-server`` for
the run): a concurrency and a rate limit per address, both far above what any
workload reaches, so every connection runs the admission script and gives its
slot back, and nothing is ever refused. ``--metrics PORT`` turns the
Prometheus endpoint on (``[metrics] listen = "127.0.0.1:PORT"``; worker ``i``
listens on ``PORT + i``), which the runner scrapes after the workload.

Imports work with an older checkout's ``src/`` too (``--base-src`` in
``run.py``): before the layout refactor ``workers`` was ``mailio_trio.workers``.
A feature that ``src/`` does not have yet exits with status 3 and a message,
and the runner skips that serving mode for that server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import attrs

from mailio_trio.config import Config, Limits, MaildirConfig

try:
    from mailio_trio.server import workers
except ImportError:  # a checkout from before server/ became a package
    from mailio_trio import workers  # type: ignore[no-redef,attr-defined]

UNSUPPORTED = 3
"""Exit status for a feature this ``src/`` lacks (``run.py`` skips the mode)."""


def _unsupported(what: str) -> None:
    print(f"serve_mailio: this mailio_trio has no {what}", file=sys.stderr)
    raise SystemExit(UNSUPPORTED)


def _mailauth(dns_port: int) -> dict[str, Any]:
    """The Config fields for verification on receipt against the loopback DNS server."""
    try:
        from mailio_trio.config import DnsConfig, MailauthConfig
    except ImportError:
        _unsupported("email authentication (mailio_trio.config.MailauthConfig)")
    return {
        "dns": DnsConfig(nameservers=["127.0.0.1"], port=dns_port, timeout=2.0),
        "mailauth": MailauthConfig(trusted_networks=()),
        "plugins": {"connect/rdns": False},
    }


def _proxy() -> dict[str, Any]:
    if "proxy_protocol" not in attrs.fields_dict(Config):
        _unsupported("PROXY protocol (Config.proxy_protocol)")
    return {"proxy_protocol": True, "proxy_trusted": ["127.0.0.1/32"]}


def _redis(url: str) -> dict[str, Any]:
    """The Config fields for Redis-backed per-address limits that never refuse a workload."""
    try:
        import redis  # noqa: F401  # the extra Config.redis needs

        from mailio_trio.config import RedisConfig
    except ImportError:
        _unsupported("Redis-backed limits (mailio_trio.config.RedisConfig and redis-py)")
    return {"redis": RedisConfig(url=url)}


def _metrics(port: int) -> dict[str, Any]:
    """The Config fields for the Prometheus endpoint on 127.0.0.1:``port``."""
    try:
        import prometheus_client  # noqa: F401  # the extra metrics.listen needs

        from mailio_trio.config import MetricsConfig
    except ImportError:
        _unsupported("metrics (mailio_trio.config.MetricsConfig and prometheus-client)")
    return {"metrics": MetricsConfig(listen=f"127.0.0.1:{port}")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("workers", type=int, nargs="?", default=1)
    parser.add_argument("--profile", metavar="FILE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--spool", action="store_true", help="spool bodies to disk, then drop")
    mode.add_argument("--maildir", metavar="DIR", help="durable maildir delivery under DIR")
    parser.add_argument("--mailauth", type=int, metavar="DNS_PORT", help="verify (needs --spool)")
    parser.add_argument("--proxy-protocol", action="store_true", help="PROXY header from 127.0.0.1")
    parser.add_argument("--redis", metavar="URL", help="per-address limits counted in this Redis")
    parser.add_argument("--metrics", type=int, metavar="PORT", help="[metrics] listen on PORT")
    args = parser.parse_args()
    if args.mailauth and not args.spool:
        parser.error("--mailauth needs --spool (discard mode skips verification)")
    logging.basicConfig(level=logging.WARNING)
    extra: dict[str, Any] = {}
    if args.mailauth:
        extra.update(_mailauth(args.mailauth))
    if args.proxy_protocol:
        extra.update(_proxy())
    if args.metrics:
        extra.update(_metrics(args.metrics))
    per_ip, rate = 0, 0
    if args.redis:
        extra.update(_redis(args.redis))
        # Both parts of the admission script run (the rate sorted set and the
        # slot), at limits no workload reaches.
        per_ip, rate = 5000, 1_000_000
    config = Config(
        hostname="bench.example.org",
        domains=["example.net"],
        # Room for the 100 MiB message plus our Received: line.
        # W4's 1000 idle sessions all come from 127.0.0.1: no per-address limit
        # (--redis: limits that are counted, but far above W4's 1000).
        limits=Limits(
            max_connections=5000,
            connections_per_ip=per_ip,
            connection_rate_per_ip=rate,
            max_recipients=100,
            message_size=200 * 1024 * 1024,
        ),
        maildir=MaildirConfig(enabled=args.maildir is not None, root=args.maildir or "mail"),
        **extra,
    )
    discard = not (args.spool or args.maildir)
    listen = [("127.0.0.1", args.port)]
    if args.profile:
        import pyinstrument

        profiler = pyinstrument.Profiler(interval=0.0005)
        profiler.start()
        try:
            workers.serve(config, listen, discard=discard)
        finally:
            profiler.stop()
            with open(args.profile, "w") as f:
                f.write(profiler.output_text(unicode=True, show_all=False))
        return
    workers.serve(config, listen, workers=args.workers, discard=discard)


if __name__ == "__main__":
    main()
