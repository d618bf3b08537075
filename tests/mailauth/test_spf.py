"""check_host() on what the RFC 7208 suite leaves open: limits, deadlines, DNS shapes.

Every test talks to the loopback test DNS server (real packets), like the suite.
"""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import pytest
import trio

from mailio_trio.dns import DnsConfig, DnsResolver
from mailio_trio.mailauth.spf import Result, SpfConfig, SpfResult, check_helo, check_host
from mailio_trio.testing.dns import DnsServer, Zone

CLIENT = "192.0.2.1"


async def start(
    nursery: trio.Nursery, zone: Zone, dns_timeout: float = 2.0
) -> tuple[DnsServer, DnsResolver]:
    server = DnsServer(zone)
    host, port = await nursery.start(server.serve)
    return server, DnsResolver(DnsConfig(nameservers=[host], port=port, timeout=dns_timeout))


async def check(
    resolver: DnsResolver,
    domain: str = "example.test",
    ip: str = CLIENT,
    config: SpfConfig | None = None,
) -> SpfResult:
    with trio.fail_after(10):
        return await check_host(
            ip,
            domain,
            f"alice@{domain}",
            helo="mail.example.test",
            resolver=resolver,
            config=config,
        )


def txt_record(*strings: bytes) -> dns.rdtypes.ANY.TXT.TXT:
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)


def queried(server: DnsServer) -> list[tuple[str, str]]:
    return [(q.name.rstrip("."), q.rdtype) for q in server.queries]


# -- the DNS lookup limit (RFC 7208 §4.6.4) --------------------------------------


def lookups_zone(record: str, included: str = "v=spf1 a a a a a") -> Zone:
    zone = Zone()
    zone.txt("example.test", record)
    zone.a("example.test", "198.51.100.1")  # never the client: every "a" is a lookup, not void
    zone.txt("inc.example.test", included)
    zone.a("inc.example.test", "198.51.100.2")
    for n in range(12):
        zone.a(f"h{n}.example.test", "198.51.100.3")
    return zone


@pytest.mark.parametrize(("count", "result"), [(10, Result.PASS), (11, Result.PERMERROR)])
async def test_ten_dns_terms_allowed_the_eleventh_is_permerror(
    nursery: trio.Nursery, count: int, result: Result
) -> None:
    record = "v=spf1 " + "".join(f"a:h{n}.example.test " for n in range(count)) + f"ip4:{CLIENT}"
    server, resolver = await start(nursery, lookups_zone(record))
    outcome = await check(resolver)
    assert outcome.result is result
    # The 11th term is refused before its query is sent.
    assert sum(server.count(f"h{n}.example.test") for n in range(12)) == min(count, 10)
    if result is Result.PERMERROR:
        assert "more than 10 DNS lookups" in outcome.reason


async def test_includes_share_the_lookup_budget(nursery: trio.Nursery) -> None:
    # 5 + include (1) + 5 inside = 11.
    record = f"v=spf1 a a a a a include:inc.example.test ip4:{CLIENT}"
    _, resolver = await start(nursery, lookups_zone(record))
    assert (await check(resolver)).result is Result.PERMERROR
    _, resolver = await start(nursery, lookups_zone(record, "v=spf1 a a a a"))
    assert (await check(resolver)).result is Result.PASS


async def test_redirect_counts_as_a_lookup(nursery: trio.Nursery) -> None:
    record = "v=spf1 " + "a " * 9 + "redirect=inc.example.test"
    _, resolver = await start(nursery, lookups_zone(record, f"v=spf1 ip4:{CLIENT}"))
    assert (await check(resolver)).result is Result.PASS  # 9 + redirect = 10
    _, resolver = await start(nursery, lookups_zone("v=spf1 a " + record[7:], "v=spf1 +all"))
    assert (await check(resolver)).result is Result.PERMERROR  # 11


async def test_lookup_limit_is_configurable(nursery: trio.Nursery) -> None:
    _, resolver = await start(nursery, lookups_zone(f"v=spf1 a a a ip4:{CLIENT}"))
    assert (await check(resolver, config=SpfConfig(lookup_limit=3))).result is Result.PASS
    assert (await check(resolver, config=SpfConfig(lookup_limit=2))).result is Result.PERMERROR


# -- void lookups ------------------------------------------------------------------


async def test_void_lookups_counted_per_term(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt(
        "example.test",
        "v=spf1 a:gone1.example.test exists:gone2.example.test mx:nomx.example.test -all",
    )
    zone.txt("nomx.example.test", "not an SPF record")  # exists, but no MX: NODATA is void too
    _, resolver = await start(nursery, zone)
    outcome = await check(resolver)
    assert outcome.result is Result.PERMERROR
    assert "more than 2 void lookups" in outcome.reason
    assert (await check(resolver, config=SpfConfig(void_lookup_limit=3))).result is Result.FAIL


async def test_mx_hosts_without_addresses_are_not_void_lookups(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 mx -all")
    zone.mx("example.test", (10, "gone1.example.test"), (20, "gone2.example.test"))
    zone.mx("nullmx.example.test")
    zone.null_mx("nullmx.example.test")
    zone.txt("nullmx.example.test", "v=spf1 mx -all")
    _, resolver = await start(nursery, zone)
    config = SpfConfig(void_lookup_limit=0)
    assert (await check(resolver, config=config)).result is Result.FAIL
    # A null MX (RFC 7505) is an answer: no host to match, and not void either.
    assert (await check(resolver, "nullmx.example.test", config=config)).result is Result.FAIL


# -- MX and PTR name limits ----------------------------------------------------------


@pytest.mark.parametrize(
    ("mx_limit", "matching_host", "result"),
    [(3, 3, Result.PASS), (2, 3, Result.PERMERROR), (2, 1, Result.PASS)],
)
async def test_mx_host_limit(
    nursery: trio.Nursery, mx_limit: int, matching_host: int, result: Result
) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 mx -all")
    zone.mx("example.test", *[(n, f"mx{n}.example.test") for n in (1, 2, 3)])
    for n in (1, 2, 3):
        zone.a(f"mx{n}.example.test", CLIENT if n == matching_host else f"198.51.100.{n}")
    server, resolver = await start(nursery, zone)
    assert (await check(resolver, config=SpfConfig(mx_limit=mx_limit))).result is result
    # Hosts are looked up in preference order, and only until one matches.
    asked = [name for name, rdtype in queried(server) if rdtype == "A"]
    assert asked == [f"mx{n}.example.test" for n in range(1, min(matching_host, mx_limit) + 1)]


async def test_ptr_lookup_error_is_no_match_not_temperror(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 ptr ?all")
    zone.servfail("1.2.0.192.in-addr.arpa")
    _, resolver = await start(nursery, zone)
    assert (await check(resolver)).result is Result.NEUTRAL


async def test_ptr_names_past_the_limit_are_ignored(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 ptr -all")
    zone.ptr(CLIENT, "host.example.test", "other.example.net")
    zone.a("host.example.test", CLIENT)
    _, resolver = await start(nursery, zone)
    assert (await check(resolver)).result is Result.PASS
    # With room for one name, the match may be the ignored one: DNS order is random.
    outcome = await check(resolver, config=SpfConfig(ptr_limit=1))
    assert outcome.result in (Result.PASS, Result.FAIL)


# -- errors and the deadline ------------------------------------------------------


async def test_dns_error_in_a_mechanism_is_temperror(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 a:broken.example.test -all")
    zone.servfail("broken.example.test")
    _, resolver = await start(nursery, zone)
    outcome = await check(resolver)
    assert outcome.result is SpfResult.TEMPERROR
    assert "broken.example.test" in outcome.reason


async def test_overall_timeout_is_temperror(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 a:slow.example.test -all")
    zone.silent("slow.example.test")
    # The resolver would wait 5 s; the check's own deadline ends it first.
    _, resolver = await start(nursery, zone, dns_timeout=5.0)
    outcome = await check(resolver, config=SpfConfig(timeout=0.3))
    assert outcome.result is Result.TEMPERROR
    assert outcome.reason == "SPF check took over 0.3s"


def test_config_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="lookup_limit"):
        SpfConfig(lookup_limit=0)
    with pytest.raises(ValueError, match="timeout"):
        SpfConfig(timeout=0)


# -- addresses -------------------------------------------------------------------


async def test_ipv4_mapped_client_is_ipv4(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 ip6:::ffff:0:0/96 -ip4:192.0.2.0/24")
    _, resolver = await start(nursery, zone)
    outcome = await check(resolver, ip="::ffff:192.0.2.1")
    assert (outcome.result, outcome.mechanism) == (Result.FAIL, "-ip4:192.0.2.0/24")
    assert outcome.reason == (
        "domain of alice@example.test does not designate 192.0.2.1 as permitted sender"
    )


async def test_a_asks_one_family_exists_always_a(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 a exists:%{ir}.bl.example.test -all")
    zone.a("example.test", "198.51.100.1")
    zone.aaaa("example.test", "2001:db8::99")
    server, resolver = await start(nursery, zone)
    assert (await check(resolver, ip="2001:db8::1")).result is Result.FAIL
    assert queried(server)[1] == ("example.test", "AAAA")
    assert queried(server)[2][1] == "A"
    assert queried(server)[2][0].endswith(".8.b.d.0.1.0.0.2.bl.example.test")


@pytest.mark.parametrize(
    ("mechanism", "client", "result"),
    [
        ("ip4:192.0.2.0/31", "192.0.2.1", Result.PASS),
        ("ip4:192.0.2.2/31", "192.0.2.1", Result.FAIL),
        ("ip4:0.0.0.0/0", "203.0.113.9", Result.PASS),
        ("ip4:0.0.0.0/0", "2001:db8::1", Result.FAIL),
        ("ip6:::/0", "192.0.2.1", Result.FAIL),
        ("ip6:2001:db8::/127", "2001:db8::1", Result.PASS),
        ("a/24", "198.51.100.200", Result.PASS),
        ("a/25", "198.51.100.200", Result.FAIL),
        ("a//112", "2001:db8::abcd", Result.PASS),
        ("a/0//128", "2001:db8::abcd", Result.FAIL),
        ("mx/0", "203.0.113.9", Result.PASS),
    ],
)
async def test_cidr_matching(
    nursery: trio.Nursery, mechanism: str, client: str, result: Result
) -> None:
    zone = Zone()
    zone.txt("example.test", f"v=spf1 {mechanism} -all")
    zone.a("example.test", "198.51.100.1")
    zone.aaaa("example.test", "2001:db8::1")
    zone.mx("example.test", (10, "example.test"))
    _, resolver = await start(nursery, zone)
    assert (await check(resolver, ip=client)).result is result


# -- TXT records -------------------------------------------------------------------


async def test_record_is_the_strings_of_one_txt_record_joined(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.add_rdata(
        "example.test",
        [txt_record(b"v=spf1 ip4:", b"192.0.2.1 -all"), txt_record(b"other", b" text")],
    )
    _, resolver = await start(nursery, zone)
    # dns.py joins each record's character-strings with no separator (RFC 7208 §3.3).
    assert sorted(await resolver.txt("example.test")) == ["other text", "v=spf1 ip4:192.0.2.1 -all"]
    assert (await check(resolver)).result is Result.PASS


async def test_undecodable_octets(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.add_rdata("bad.test", [txt_record(b"v=spf1 \xff-all")])
    # A non-SPF record with bad octets beside a good one is none of our business.
    zone.add_rdata("ok.test", [txt_record(b"\xfe\xff"), txt_record(b"v=spf1 -all")])
    _, resolver = await start(nursery, zone)
    assert (await check(resolver, "bad.test")).result is Result.PERMERROR
    assert (await check(resolver, "ok.test")).result is Result.FAIL


# -- the result --------------------------------------------------------------------


async def test_fail_with_explanation(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 -ip4:192.0.2.0/24 exp=why.%{d}")
    zone.txt("why.example.test", "%{c} may not send for %{o} (says %{r})")
    _, resolver = await start(nursery, zone)
    outcome = await check(resolver, config=SpfConfig(receiver="mx.example.net"))
    assert outcome == SpfResult(
        result=SpfResult.FAIL,
        domain="example.test",
        sender="alice@example.test",
        mechanism="-ip4:192.0.2.0/24",
        explanation="192.0.2.1 may not send for example.test (says mx.example.net)",
        reason="domain of alice@example.test does not designate 192.0.2.1 as permitted sender",
    )


async def test_softfail_has_no_explanation(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 ~all exp=why.example.test")
    zone.txt("why.example.test", "never shown")
    server, resolver = await start(nursery, zone)
    outcome = await check(resolver)
    assert (outcome.result, outcome.explanation) == (Result.SOFTFAIL, None)
    assert server.count("why.example.test") == 0


async def test_p_macro_in_explanation(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 -all exp=why.example.test")
    zone.txt("why.example.test", "%{p} is not allowed")
    zone.ptr(CLIENT, "elsewhere.example.net", "host.example.test")
    zone.a("host.example.test", CLIENT)
    zone.a("elsewhere.example.net", CLIENT)
    _, resolver = await start(nursery, zone)
    # A validated name under the checked domain is preferred (RFC 7208 §7.3).
    assert (await check(resolver)).explanation == "host.example.test is not allowed"


@pytest.mark.parametrize(
    "helo", ["[192.0.2.1]", "localhost", "a..example.test", "x" * 64 + ".test"]
)
async def test_helo_that_is_no_domain_is_none_without_a_query(
    nursery: trio.Nursery, helo: str
) -> None:
    server, resolver = await start(nursery, Zone())
    outcome = await check_helo(CLIENT, helo, resolver=resolver)
    assert (outcome.result, outcome.sender) == (Result.NONE, f"postmaster@{helo}")
    assert server.queries == []


async def test_helo_identity(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("mail.example.test", "v=spf1 a -all")
    zone.a("mail.example.test", CLIENT)
    _, resolver = await start(nursery, zone)
    outcome = await check_helo(CLIENT, "mail.example.test", resolver=resolver)
    assert (outcome.result, outcome.domain, outcome.mechanism) == (
        Result.PASS,
        "mail.example.test",
        "a",
    )
    assert outcome.reason == (
        "domain of postmaster@mail.example.test designates 192.0.2.1 as permitted sender"
    )


async def test_sender_without_local_part_is_postmaster(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("example.test", "v=spf1 exists:%{l}.users.example.test -all")
    zone.a("postmaster.users.example.test", "127.0.0.2")
    _, resolver = await start(nursery, zone)
    with trio.fail_after(10):
        outcome = await check_host(
            CLIENT, "example.test", "@example.test", helo="h.example", resolver=resolver
        )
    assert (outcome.result, outcome.sender) == (Result.PASS, "postmaster@example.test")


async def test_no_record_and_two_records(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("none.test", "google-site-verification=abc")
    zone.txt("two.test", "v=spf1 -all", "v=spf1 +all")
    _, resolver = await start(nursery, zone)
    assert (await check(resolver, "none.test")).result is Result.NONE
    assert (await check(resolver, "gone.test")).result is Result.NONE  # NXDOMAIN
    two = await check(resolver, "two.test")
    assert (two.result, two.reason) == (Result.PERMERROR, "two.test: 2 SPF records")
