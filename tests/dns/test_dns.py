"""The DNS layer against real DNS packets from the loopback test server (UDP and TCP)."""

from __future__ import annotations

import functools
import re

import dns.message
import dns.query
import dns.rcode
import pytest
import trio

from mailio_trio.config import ConfigError, DnsConfig
from mailio_trio.dns import (
    DNSNotFound,
    DnsResolver,
    DNSTemporaryError,
    NullMX,
    reverse_name,
)
from mailio_trio.testing.dns import DnsServer, Transport, Zone


async def start(
    nursery: trio.Nursery, zone: Zone, **config: object
) -> tuple[DnsServer, DnsResolver]:
    server = DnsServer(zone)
    host, port = await nursery.start(server.serve)
    settings: dict[str, object] = {"timeout": 2.0, **config}
    resolver = DnsResolver(DnsConfig(nameservers=[host], port=port, **settings))  # type: ignore[arg-type]  # test-chosen settings
    return server, resolver


def example_zone() -> Zone:
    return Zone.from_dict(
        {
            "example.com": {
                "MX": [(20, "mx2.example.com"), (10, "mx1.example.com")],
                "A": ["192.0.2.1"],
                "TXT": ["v=spf1 -all"],
            },
            "mx1.example.com": {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]},
            "v6only.example.com": {"AAAA": ["2001:db8::6"]},
            "nomail.example": {"MX": "NULL"},
            "gone.example": "NXDOMAIN",
            "broken.example": "SERVFAIL",
            "slow.example": "SILENT",
            "192.0.2.10": {"PTR": ["mx1.example.com"]},
            "2001:db8::10": {"PTR": ["mx1.example.com"]},
        }
    )


async def test_mx_sorted_by_preference_without_trailing_dot(nursery: trio.Nursery) -> None:
    server, resolver = await start(nursery, example_zone())
    assert await resolver.mx("example.com") == [(10, "mx1.example.com"), (20, "mx2.example.com")]
    assert server.queries[0].transport is Transport.UDP


async def test_null_mx_is_its_own_error_not_not_found(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone())
    with pytest.raises(NullMX):
        await resolver.mx("nomail.example")
    assert not issubclass(NullMX, DNSNotFound)  # callers that fall back to A must not here


async def test_no_mx_is_not_found_nodata(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone())
    with pytest.raises(DNSNotFound) as info:
        await resolver.mx("mx1.example.com")
    assert info.value.nxdomain is False


async def test_nxdomain_is_not_found(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone())
    with pytest.raises(DNSNotFound) as info:
        await resolver.a("gone.example")
    assert info.value.nxdomain is True
    with pytest.raises(DNSNotFound) as info:
        await resolver.a("never-added.example")
    assert info.value.nxdomain is True


async def test_addresses_gives_a_then_aaaa(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone())
    assert await resolver.addresses("mx1.example.com") == ["192.0.2.10", "2001:db8::10"]
    assert await resolver.addresses("v6only.example.com") == ["2001:db8::6"]
    with pytest.raises(DNSNotFound):
        await resolver.addresses("gone.example")


async def test_ptr_for_ipv4_and_ipv6(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone())
    assert await resolver.ptr("192.0.2.10") == ["mx1.example.com"]
    assert await resolver.ptr("2001:db8::10") == ["mx1.example.com"]
    with pytest.raises(DNSNotFound):
        await resolver.ptr("192.0.2.99")
    with pytest.raises(DNSNotFound):
        await resolver.ptr("not an address")


async def test_txt_joins_character_strings(nursery: trio.Nursery) -> None:
    zone = example_zone()
    long_text = "x" * 300 + "y"  # more than one 255-octet character-string
    zone.txt("long.example", long_text)
    _, resolver = await start(nursery, zone)
    assert await resolver.txt("example.com") == ["v=spf1 -all"]
    assert await resolver.txt("long.example") == [long_text]


async def test_servfail_is_temporary(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone())
    with pytest.raises(DNSTemporaryError):
        await resolver.a("broken.example")


async def test_silent_server_is_temporary_error_within_the_timeout(nursery: trio.Nursery) -> None:
    server, resolver = await start(nursery, example_zone(), timeout=0.5)
    with trio.fail_after(5):  # a hang, not a duration, is what this guards against
        with pytest.raises(DNSTemporaryError, match="timed out"):
            await resolver.a("slow.example")
    assert server.count("slow.example", "A") >= 1


async def test_a_cancel_scope_cuts_a_lookup_short(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, example_zone(), timeout=30.0)
    with trio.move_on_after(0.3) as scope:
        await resolver.a("slow.example")
    assert scope.cancelled_caught


async def test_big_answer_is_truncated_over_udp_and_retried_over_tcp(
    nursery: trio.Nursery,
) -> None:
    zone = Zone()
    addresses = [f"192.0.2.{i}" for i in range(1, 60)]  # ~60 A records > 512 octets
    zone.a("many.example", *addresses)
    server, resolver = await start(nursery, zone)
    assert sorted(await resolver.a("many.example")) == sorted(addresses)
    transports = [q.transport for q in server.queries]
    assert transports == [Transport.UDP, Transport.TCP]


async def test_forced_truncation_uses_tcp(nursery: trio.Nursery) -> None:
    zone = example_zone()
    zone.truncate("example.com")
    server, resolver = await start(nursery, zone)
    assert await resolver.txt("example.com") == ["v=spf1 -all"]
    assert [q.transport for q in server.queries] == [Transport.UDP, Transport.TCP]


async def test_cache_respects_ttl(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.a("cached.example", "192.0.2.1", ttl=300)
    zone.a("uncached.example", "192.0.2.2", ttl=0)
    server, resolver = await start(nursery, zone)
    for _ in range(3):
        assert await resolver.a("cached.example") == ["192.0.2.1"]
        assert await resolver.a("uncached.example") == ["192.0.2.2"]
    assert server.count("cached.example") == 1
    assert server.count("uncached.example") == 3


async def test_cache_size_zero_turns_the_cache_off(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.a("cached.example", "192.0.2.1", ttl=300)
    server, resolver = await start(nursery, zone, cache_size=0)
    await resolver.a("cached.example")
    await resolver.a("cached.example")
    assert server.count("cached.example") == 2


async def test_test_server_answers_plain_dnspython_over_tcp(nursery: trio.Nursery) -> None:
    server = DnsServer(example_zone())
    host, port = await nursery.start(server.serve)
    query = dns.message.make_query("example.com", "MX")
    tcp = functools.partial(dns.query.tcp, query, host, port=port, timeout=5)
    response = await trio.to_thread.run_sync(tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer[0]) == 2


async def test_cname_is_followed(nursery: trio.Nursery) -> None:
    zone = example_zone()
    zone.cname("alias.example.com", "mx1.example.com")
    _, resolver = await start(nursery, zone)
    assert await resolver.a("alias.example.com") == ["192.0.2.10"]


def test_reverse_name_ipv4_and_ipv6_nibbles() -> None:
    assert reverse_name("192.0.2.1", "bl.example") == "1.2.0.192.bl.example"
    assert reverse_name("2001:db8::1", "bl.example.") == (
        "1.0.0.0." + "0.0.0.0." * 5 + "8.b.d.0.1.0.0.2.bl.example"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nameservers", ["dns.example"], "dns.nameservers = 'dns.example': must be IPv4 or IPv6"),
        ("port", 0, "dns.port = 0: must be a whole number >= 1"),
        ("port", 70000, "dns.port = 70000: must be a port number"),
        ("timeout", -1, "dns.timeout = -1: must be a number greater than 0"),
    ],
)
def test_bad_dns_config_is_one_line(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        DnsConfig(**{field: value})  # type: ignore[arg-type]  # deliberately wrong
