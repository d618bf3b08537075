"""rcpt/dnsbl against real DNS packets from the loopback test DNS server.

Clients bind to distinct 127.0.0.x addresses (and ::1) to be different hosts;
the loopback skip is turned off so loopback clients are checked at all.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from hostile_clients import rcpt_from

from mailio_trio import Config, DnsConfig, Server
from mailio_trio.config import ConfigError
from mailio_trio.dns import reverse_name
from mailio_trio.testing import RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone


def blocklist_zone() -> Zone:
    zone = Zone()
    for zone_name in ("bl.test", "second.test"):
        zone.a(zone_name, "192.0.2.53")  # the zones exist; unlisted names are NXDOMAIN
    zone.a(reverse_name("127.0.0.2", "bl.test"), "127.0.0.2")
    zone.txt(reverse_name("127.0.0.2", "bl.test"), "Listed\r\nfor spam, see https://bl.test/q")
    zone.a(reverse_name("127.0.0.4", "bl.test"), "127.255.255.254")  # the list refuses us
    zone.silent(reverse_name("127.0.0.5", "bl.test"))
    zone.a(reverse_name("127.0.0.6", "second.test"), "127.0.0.10")
    zone.a(reverse_name("127.0.0.7", "bl.test"), "10.0.0.1")  # outside the range: not a listing
    zone.a(reverse_name("::1", "bl.test"), "127.0.0.3")
    zone.txt(reverse_name("::1", "bl.test"), "IPv6 listing")
    return zone


async def start(
    nursery: trio.Nursery, host: str = "127.0.0.1", dns_cache_size: int = 10_000, **dnsbl: Any
) -> tuple[RunningServer, DnsServer]:
    dns_server = DnsServer(blocklist_zone())
    dns_host, dns_port = await nursery.start(dns_server.serve)
    settings: dict[str, Any] = {
        "lists": ["bl.test", "second.test"],
        "skip_loopback": False,
        "timeout": 1.0,
        **dnsbl,
    }
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        dns=DnsConfig(
            nameservers=[dns_host], port=dns_port, timeout=10.0, cache_size=dns_cache_size
        ),
        plugins={"rcpt/dnsbl": settings, "connect/rdns": False},
    )
    running = await start_capturing_server(nursery, config, host=host)
    return running, dns_server


async def test_listed_client_gets_550_with_the_txt_reason(nursery: trio.Nursery) -> None:
    running, _ = await start(nursery)
    [reply] = await rcpt_from("127.0.0.2", running)
    assert (reply.code, reply.enhanced) == (550, "5.7.1")
    assert reply.text == (
        "Service unavailable; client [127.0.0.2] blocked using bl.test: "
        "Listed for spam, see https://bl.test/q"
    )


async def test_unlisted_client_is_accepted(nursery: trio.Nursery) -> None:
    running, dns_server = await start(nursery)
    [reply] = await rcpt_from("127.0.0.3", running)
    assert reply.code == 250
    assert dns_server.count(reverse_name("127.0.0.3", "bl.test"), "A") == 1
    assert dns_server.count(reverse_name("127.0.0.3", "second.test"), "A") == 1


async def test_second_list_with_its_own_range(nursery: trio.Nursery) -> None:
    running, _ = await start(
        nursery,
        lists=["bl.test", {"zone": "second.test", "listed": ["127.0.0.10/32"]}],
    )
    [reply] = await rcpt_from("127.0.0.6", running)
    assert (reply.code, reply.enhanced) == (550, "5.7.1")
    assert reply.text == "Service unavailable; client [127.0.0.6] blocked using second.test"


async def test_answer_outside_the_listing_range_is_not_a_listing(nursery: trio.Nursery) -> None:
    running, _ = await start(nursery, lists=["bl.test"])
    [reply] = await rcpt_from("127.0.0.7", running)
    assert reply.code == 250


async def test_list_refusing_us_is_logged_not_blocking(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mailio_trio")
    running, _ = await start(nursery)
    [reply] = await rcpt_from("127.0.0.4", running)
    assert reply.code == 250
    assert "bl.test refuses our queries" in caplog.text


async def test_timeout_fails_open_with_a_warning(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mailio_trio")
    running, _ = await start(nursery, timeout=0.3)
    with trio.fail_after(8):  # the 10 s DNS timeout would trip this; the 0.3 s DNSBL one not
        [reply] = await rcpt_from("127.0.0.5", running)
    assert reply.code == 250
    assert "failing open" in caplog.text


async def test_ipv6_client_is_looked_up_by_nibbles(nursery: trio.Nursery) -> None:
    running, _ = await start(nursery, host="::1")
    [reply] = await rcpt_from("::1", running)
    assert (reply.code, reply.enhanced) == (550, "5.7.1")
    assert reply.text.endswith("blocked using bl.test: IPv6 listing")


async def test_verdict_is_cached_per_session(nursery: trio.Nursery) -> None:
    # Without the resolver's TTL cache, which would hide repeated lookups.
    running, dns_server = await start(nursery, dns_cache_size=0)
    replies = await rcpt_from("127.0.0.2", running, count=3)
    assert [r.code for r in replies] == [550, 550, 550]
    assert dns_server.count(reverse_name("127.0.0.2", "bl.test"), "A") == 1
    assert dns_server.count(reverse_name("127.0.0.2", "bl.test"), "TXT") == 1


async def test_allowlisted_client_is_not_checked(nursery: trio.Nursery) -> None:
    running, dns_server = await start(nursery, allowlist=["127.0.0.2/32"])
    [reply] = await rcpt_from("127.0.0.2", running)
    assert reply.code == 250
    assert dns_server.queries == []


async def test_loopback_is_skipped_by_default(nursery: trio.Nursery) -> None:
    running, dns_server = await start(nursery, skip_loopback=True)
    [reply] = await rcpt_from("127.0.0.2", running)
    assert reply.code == 250
    assert dns_server.queries == []


async def test_authenticated_client_is_not_checked(nursery: trio.Nursery) -> None:
    running, dns_server = await start(nursery)

    # AUTH is another plugin's; what dnsbl looks at is the session's user.
    @running.server.on_session
    def authenticated(session: Any) -> None:
        session.user = "alice"

    [reply] = await rcpt_from("127.0.0.2", running)
    assert reply.code == 250
    assert dns_server.queries == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lists": ["bad zone"]}, "plugins.rcpt/dnsbl.lists: 'bad zone' is not a DNS zone"),
        ({"allowlist": ["x"]}, "plugins.rcpt/dnsbl.allowlist = 'x': must be networks"),
        ({"lists": [{"zone": "a.test", "listed": ["y"]}]}, "plugins.rcpt/dnsbl.lists.listed"),
        ({"timeout": 0}, "plugins.rcpt/dnsbl.timeout = 0: must be a number greater than 0"),
    ],
)
def test_bad_settings_are_one_line(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Server(Config(hostname="mx.test", plugins={"rcpt/dnsbl": settings}))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
