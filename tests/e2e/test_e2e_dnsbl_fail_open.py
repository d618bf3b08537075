"""rcpt/dnsbl fails open when the resolver fails, with real DNS packets (#19, blind spot 4).

A blocklist that cannot be asked is no listing: a SERVFAIL from the resolver,
or a query that times out (``dns.timeout``, well inside the plugin's own
``timeout``), lets the client through with a warning. Failing closed would
refuse every client while a list or the resolver is down. The plugin's own
deadline (``failing open``) is tested in tests/test_e2e_dnsbl.py; these are
the resolver-error path (``lookup failed``), rate-limited like every
per-connection line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import trio
from hostile_clients import rcpt_from

from mailio_trio import Config, DnsConfig, Limits
from mailio_trio.dns import reverse_name
from mailio_trio.testing import start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from mailio_trio.testing import RunningServer

WAIT = 20  # seconds: an upper bound for anything to happen, never expected
SERVFAIL_CLIENT = "127.0.0.8"
SILENT_CLIENT = "127.0.0.9"


async def start(nursery: trio.Nursery, dns_timeout: float) -> RunningServer:
    zone = Zone()
    zone.a("bl.test", "192.0.2.53")  # the list exists
    zone.servfail(reverse_name(SERVFAIL_CLIENT, "bl.test"))
    zone.silent(reverse_name(SILENT_CLIENT, "bl.test"))
    dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        # No cache: each connection asks again (a SERVFAIL or timeout is never cached anyway).
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=dns_timeout, cache_size=0),
        # One line per kind per minute, then only counted: the second client's is not logged.
        limits=Limits(abuse_log_burst=1),
        plugins={
            # The plugin's own deadline is far away: only the resolver's error can end a lookup.
            "rcpt/dnsbl": {"lists": ["bl.test"], "skip_loopback": False, "timeout": 15.0},
            "connect/rdns": False,
        },
    )
    return await start_capturing_server(nursery, config)


@pytest.mark.parametrize(
    ("client", "dns_timeout"),
    [
        pytest.param(SERVFAIL_CLIENT, 5.0, id="servfail"),
        pytest.param(SILENT_CLIENT, 0.3, id="per-query-timeout"),
    ],
)
async def test_resolver_error_lets_the_client_through_with_a_rate_limited_warning(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, client: str, dns_timeout: float
) -> None:
    caplog.set_level(logging.WARNING, logger="mailio_trio")
    running = await start(nursery, dns_timeout)
    with trio.fail_after(WAIT):
        [first] = await rcpt_from(client, running)
        [second] = await rcpt_from(client, running)
        running.server.shutdown()
        await running.server.wait_stopped()  # writes the rate limiter's pending summary
    assert (first.code, second.code) == (250, 250)
    failed = [r for r in caplog.records if "lookup failed" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in failed]
    assert failed[0].levelno == logging.WARNING
    assert failed[0].getMessage().startswith("[")  # tagged with the session
    assert f"DNSBL bl.test lookup failed, letting {client} through" in failed[0].getMessage()
    assert "... and 1 more DNSBL lookup problems" in caplog.text
    assert "failing open" not in caplog.text  # the resolver ended it, not the plugin's deadline
