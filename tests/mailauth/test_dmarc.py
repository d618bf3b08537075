"""DMARC (RFC 7489): the record, the author domain, alignment, and evaluation over real DNS.

Evaluation tests publish the ``_dmarc`` TXT records on the loopback DNS server
(``mailio_trio.testing.dns``), so every lookup is a real UDP packet.
"""

from __future__ import annotations

import contextlib
import doctest

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.config import ConfigError, DnsConfig
from mailio_trio.dns import DnsResolver
from mailio_trio.mailauth import _dmarc_record, _domains, _header_from, dmarc
from mailio_trio.mailauth.dmarc import (
    Action,
    Alignment,
    DkimOutcome,
    DmarcConfig,
    DmarcRecord,
    DmarcRecordError,
    DmarcResult,
    DmarcStatus,
    HeaderFrom,
    Policy,
    SpfOutcome,
    aligned,
    evaluate,
    evaluate_message,
    header_from,
    organizational_domain,
    parse_record,
)
from mailio_trio.mailauth.results import format_header
from mailio_trio.protocol import Reply
from mailio_trio.testing.dns import DnsServer, Zone


@pytest.mark.parametrize("module", [dmarc, _dmarc_record, _domains, _header_from])
def test_docstring_examples_run(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]  # a module


# --- the record ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "record"),
    [
        ("v=DMARC1; p=none", DmarcRecord(policy=Policy.NONE)),
        ("v=DMARC1;p=reject;", DmarcRecord(policy=Policy.REJECT)),
        (
            " v = DMARC1 ;\tP = Quarantine ; SP=reject; pct=25; adkim=s; aspf=S ; fo=1:d; ri=3600",
            DmarcRecord(
                policy=Policy.QUARANTINE,
                subdomain_policy=Policy.REJECT,
                pct=25,
                adkim=Alignment.STRICT,
                aspf=Alignment.STRICT,
                fo=("1", "d"),
                ri=3600,
            ),
        ),
        (
            "v=DMARC1; p=reject; rua=mailto:a@example.com!10m, mailto:b@example.net;"
            " ruf=mailto:f@x",
            DmarcRecord(
                policy=Policy.REJECT,
                rua=("mailto:a@example.com!10m", "mailto:b@example.net"),
                ruf=("mailto:f@x",),
            ),
        ),
        # Out-of-syntax optional values fall back to their defaults (RFC 7489 §6.3).
        (
            "v=DMARC1; p=reject; pct=101; adkim=x; aspf=; fo=2; ri=-1",
            DmarcRecord(policy=Policy.REJECT),
        ),
        ("v=DMARC1; p=reject; pct=0", DmarcRecord(policy=Policy.REJECT, pct=0)),
        # Unknown tags are ignored.
        ("v=DMARC1; p=reject; np=none; psd=y; t=n", DmarcRecord(policy=Policy.REJECT)),
        # §6.6.3 step 6: no valid p, but a valid rua: read as p=none, reports still flow.
        (
            "v=DMARC1; rua=mailto:d@example.com",
            DmarcRecord(policy=Policy.NONE, rua=("mailto:d@example.com",)),
        ),
        (
            "v=DMARC1; p=bogus; rua=mailto:d@example.com",
            DmarcRecord(policy=Policy.NONE, rua=("mailto:d@example.com",)),
        ),
    ],
)
def test_records_that_parse(text: str, record: DmarcRecord) -> None:
    assert parse_record(text) == record


@pytest.mark.parametrize(
    "text",
    [
        "",
        "p=reject; v=DMARC1",  # v must come first
        "v=dmarc1; p=reject",  # and match exactly (§6.3 "v")
        "v=DMARC2; p=reject",
        "v=DMARC1",  # p is required
        "v=DMARC1; p=bogus",
        "v=DMARC1; p=reject; sp=bogus",
        "v=DMARC1; p=bogus; rua=not a uri",  # no valid rua to fall back on
        "v=DMARC1; p=reject; p=none",  # a tag twice (RFC 6376 §3.2)
        "v=DMARC1; p=reject; garbage",
        "v=DMARC1; p=reject; 1x=y",
        "v=DMARC1 p=reject",
    ],
)
def test_records_that_do_not(text: str) -> None:
    with pytest.raises(DmarcRecordError):
        parse_record(text)


@given(st.text())
def test_parsing_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(DmarcRecordError):
        parse_record(text)


@given(st.text(alphabet="v=DMARC1; prejctquaninos:@.,!ftdgk\t\r\n"))
def test_parsing_near_valid_records_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(DmarcRecordError):
        parse_record(text)


space = st.sampled_from(["", " ", "\t", "  "])


@given(
    policy=st.sampled_from(list(Policy)),
    sp=st.none() | st.sampled_from(list(Policy)),
    pct=st.none() | st.integers(0, 100),
    adkim=st.none() | st.sampled_from(list(Alignment)),
    unknown=st.lists(st.from_regex(r"x[a-z0-9_]{0,5}=[a-z0-9]{0,5}", fullmatch=True), max_size=3),
    data=st.data(),
)
def test_generated_records_parse_to_what_they_say(
    policy: Policy,
    sp: Policy | None,
    pct: int | None,
    adkim: Alignment | None,
    unknown: list[str],
    data: st.DataObject,
) -> None:
    tags = [f"p={policy}", *unknown]
    tags += [] if sp is None else [f"sp={sp}"]
    tags += [] if pct is None else [f"pct={pct}"]
    tags += [] if adkim is None else [f"adkim={adkim}"]
    tags = data.draw(st.permutations(tags))
    if len({t.partition("=")[0] for t in tags}) != len(tags):
        return  # a duplicate unknown tag: an error, tested above
    spaced = [f"{data.draw(space)}{t}{data.draw(space)}" for t in ["v=DMARC1", *tags]]
    text = ";".join(spaced) + data.draw(st.sampled_from(["", ";", "; "]))
    assert parse_record(text) == DmarcRecord(
        policy=policy,
        subdomain_policy=sp,
        pct=100 if pct is None else pct,
        adkim=adkim or Alignment.RELAXED,
    )


# --- domains and alignment -----------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("example.com", "example.com"),
        ("Mail.Example.COM.", "example.com"),
        ("a.b.c.example.com", "example.com"),
        ("mail.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),  # a public suffix is its own organizational domain
        ("mail.example.test", "example.test"),  # unknown TLDs count as public suffixes
        ("foo.blogspot.com", "foo.blogspot.com"),  # the list's private section is used
    ],
)
def test_organizational_domain_from_the_public_suffix_list(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


@pytest.mark.parametrize(
    ("identifier", "author", "relaxed", "strict"),
    [
        ("example.com", "example.com", True, True),
        ("EXAMPLE.com.", "example.com", True, True),
        ("bounce.example.com", "example.com", True, False),
        ("example.com", "news.example.com", True, False),
        ("a.example.com", "b.example.com", True, False),
        ("example.net", "example.com", False, False),
        ("example.co.uk", "other.co.uk", False, False),
        ("a.blogspot.com", "b.blogspot.com", False, False),
        ("bücher.example", "xn--bcher-kva.example", True, True),
        ("not a domain", "example.com", False, False),
    ],
)
def test_alignment(identifier: str, author: str, relaxed: bool, strict: bool) -> None:
    assert aligned(identifier, author, Alignment.RELAXED) is relaxed
    assert aligned(identifier, author, Alignment.STRICT) is strict


# --- the author domain ---------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "found"),
    [
        (b"From: a@example.com\r\n\r\n", HeaderFrom(("example.com",), 1)),
        (b"Subject: x\r\nFROM : Alice <A@Example.COM.>\r\n", HeaderFrom(("example.com",), 1)),
        (b'From: "Bob, <b@evil.example>" <b@example.com>\n', HeaderFrom(("example.com",), 1)),
        (b"From: b@example.com (via b@evil.example)\n", HeaderFrom(("example.com",), 1)),
        (b"From: Alice\r\n <a@example.com>\r\nTo: x@y\r\n", HeaderFrom(("example.com",), 1)),
        (b'From: "a b"@example.com\n', HeaderFrom(("example.com",), 1)),
        (b"From: <@relay.example:a@example.com>\n", HeaderFrom(("example.com",), 1)),
        (
            b"From: =?utf-8?q?J=C3=B6rg?= <j@b\xc3\xbccher.example>\n",
            HeaderFrom(("xn--bcher-kva.example",), 1),
        ),
        (b"From: a@example.com, b@example.com\n", HeaderFrom(("example.com",), 1)),
        (b"From: a@example.com, b@example.net\n", HeaderFrom(("example.com", "example.net"), 1)),
        (
            b"From: a@example.com\nFrom: b@example.net\n",
            HeaderFrom(("example.com", "example.net"), 2),
        ),
        (
            b"From: team: a@example.com, b@example.net;\n",
            HeaderFrom(("example.com", "example.net"), 1),
        ),
        (b"To: a@example.com\n\r\nFrom: b@example.com\n", HeaderFrom((), 0)),
        (b"From: undisclosed:;\n", HeaderFrom((), 1)),
        (b"From: a@[192.0.2.1]\n", HeaderFrom((), 1, malformed=True)),
        (b"From: MAILER-DAEMON\n", HeaderFrom((), 1, malformed=True)),
        # What does not parse may still show a domain: every @domain then counts.
        (b"From: a@example.com (unclosed\n", HeaderFrom(("example.com",), 1, malformed=True)),
        (b"From: a@example.com, junk\n", HeaderFrom(("example.com",), 1, malformed=True)),
        (
            b"From: <a@example.com> <b@example.net>\n",
            HeaderFrom(("example.com", "example.net"), 1, malformed=True),
        ),
    ],
)
def test_header_from(block: bytes, found: HeaderFrom) -> None:
    assert header_from(block) == found


@given(st.binary(max_size=200))
def test_header_from_takes_any_bytes(value: bytes) -> None:
    found = header_from(b"From:" + value + b"\r\n")
    assert all(d == d.lower() and d.isascii() for d in found.domains)


# --- evaluation over DNS -------------------------------------------------------

ZONE = {
    "_dmarc.example.com": {
        "TXT": ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com", "v=spf1 -all"]
    },
    "_dmarc.own.example.com": {"TXT": ["v=DMARC1; p=none"]},
    "_dmarc.strict.example": {"TXT": ["v=DMARC1; p=reject; adkim=s; aspf=s"]},
    "_dmarc.quarantine.example": {"TXT": ["v=DMARC1; p=quarantine"]},
    "_dmarc.sampled.example": {"TXT": ["v=DMARC1; p=reject; pct=0"]},
    "_dmarc.half.example": {"TXT": ["v=DMARC1; p=reject; pct=50"]},
    "_dmarc.example.co.uk": {"TXT": ["v=DMARC1; p=reject; sp=none"]},
    "_dmarc.co.uk": {"TXT": ["v=DMARC1; p=reject"]},  # must never be asked
    "_dmarc.multi.example": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
    "_dmarc.bad.example": {"TXT": ["v=DMARC1; p=bogus"]},
    "_dmarc.silent.example": "SILENT",
    "_dmarc.broken.example": "SERVFAIL",
    "_dmarc.mail.silent-org.example": {"TXT": ["not dmarc"]},
    "_dmarc.silent-org.example": "SILENT",
}


@pytest.fixture
async def dns_server(nursery: trio.Nursery) -> DnsServer:
    server = DnsServer(Zone.from_dict(ZONE))
    await nursery.start(server.serve)
    return server


def resolver_for(server: DnsServer, timeout: float = 2.0) -> DnsResolver:
    assert server.address is not None
    host, port = server.address
    return DnsResolver(DnsConfig(nameservers=[host], port=port, timeout=timeout, cache_size=0))


def never() -> float:
    raise AssertionError("pct=100 must not draw a sample")


async def check(
    server: DnsServer,
    from_domain: str,
    spf: SpfOutcome | None = None,
    dkim: tuple[DkimOutcome, ...] = (),
    **options: object,
) -> DmarcResult:
    with trio.fail_after(10):
        return await evaluate(
            from_domain,
            spf,
            dkim,
            resolver=resolver_for(server),
            config=options.pop("config", None),  # type: ignore[arg-type]  # a test's DmarcConfig
            sample=options.pop("sample", never),  # type: ignore[arg-type]  # a test's sampler
        )


def dkim(result: str, domain: str) -> DkimOutcome:
    return DkimOutcome(result=result, domain=domain, selector="s1", signature="abcdefghij")


async def test_pass_by_spf_alignment_only(dns_server: DnsServer) -> None:
    result = await check(
        dns_server,
        "example.com",
        SpfOutcome("pass", "bounce.example.com"),
        (dkim("fail", "example.com"), dkim("pass", "example.net")),
    )
    assert (result.result, result.disposition, result.action) == (
        DmarcStatus.PASS,
        Policy.NONE,
        Action.RECORD,
    )
    assert (result.spf_aligned, result.dkim_aligned) == (True, False)
    assert (result.from_domain, result.policy_domain) == ("example.com", "example.com")
    assert result.reject_reply() is None


async def test_pass_by_dkim_alignment_only(dns_server: DnsServer) -> None:
    result = await check(
        dns_server, "example.com", SpfOutcome("pass", "example.net"), (dkim("pass", "example.com"),)
    )
    assert result.result is DmarcStatus.PASS
    assert (result.spf_aligned, result.dkim_aligned) == (False, True)


async def test_spf_that_did_not_pass_never_aligns(dns_server: DnsServer) -> None:
    result = await check(dns_server, "example.com", SpfOutcome("softfail", "example.com"))
    assert result.result is DmarcStatus.FAIL


async def test_strict_alignment_needs_the_exact_domain(dns_server: DnsServer) -> None:
    relaxed_only = await check(
        dns_server,
        "strict.example",
        SpfOutcome("pass", "bounce.strict.example"),
        (dkim("pass", "mail.strict.example"),),
    )
    assert relaxed_only.result is DmarcStatus.FAIL
    assert relaxed_only.disposition is Policy.REJECT
    exact_spf = await check(dns_server, "strict.example", SpfOutcome("pass", "STRICT.example."))
    assert exact_spf.result is DmarcStatus.PASS
    exact_dkim = await check(dns_server, "strict.example", None, (dkim("pass", "strict.example"),))
    assert exact_dkim.result is DmarcStatus.PASS


async def test_fail_with_p_reject_is_refused_with_550_5_7_1(dns_server: DnsServer) -> None:
    result = await check(dns_server, "example.com", SpfOutcome("fail", "example.com"))
    assert (result.result, result.requested, result.disposition, result.action) == (
        DmarcStatus.FAIL,
        Policy.REJECT,
        Policy.REJECT,
        Action.REJECT,
    )
    assert result.reject_reply() == Reply(
        550, "Message refused by the DMARC policy of example.com", "5.7.1"
    )


async def test_honour_reject_false_only_records(dns_server: DnsServer) -> None:
    config = DmarcConfig(honour_reject=False)
    result = await check(dns_server, "example.com", config=config)
    assert (result.disposition, result.action) == (Policy.REJECT, Action.RECORD)
    assert result.reject_reply() is None


async def test_fail_with_p_quarantine_is_junk(dns_server: DnsServer) -> None:
    result = await check(dns_server, "quarantine.example", SpfOutcome("pass", "elsewhere.example"))
    assert (result.result, result.disposition, result.action) == (
        DmarcStatus.FAIL,
        Policy.QUARANTINE,
        Action.JUNK,
    )


async def test_subdomain_gets_sp_from_the_organizational_record(dns_server: DnsServer) -> None:
    result = await check(dns_server, "news.example.com", dkim=(dkim("pass", "example.net"),))
    assert (result.result, result.requested, result.disposition) == (
        DmarcStatus.FAIL,
        Policy.QUARANTINE,
        Policy.QUARANTINE,
    )
    assert result.policy_domain == "example.com"
    assert dns_server.count("_dmarc.news.example.com", "TXT") == 1
    assert dns_server.count("_dmarc.example.com", "TXT") == 1


async def test_a_subdomain_with_its_own_record_uses_its_own_p(dns_server: DnsServer) -> None:
    result = await check(dns_server, "own.example.com")
    assert (result.result, result.disposition, result.policy_domain) == (
        DmarcStatus.FAIL,
        Policy.NONE,
        "own.example.com",
    )
    assert dns_server.count("_dmarc.example.com") == 0


async def test_pct_0_applies_the_next_milder_policy(dns_server: DnsServer) -> None:
    result = await check(dns_server, "sampled.example", sample=lambda: 0.0)
    assert (result.result, result.requested, result.disposition, result.action) == (
        DmarcStatus.FAIL,
        Policy.REJECT,
        Policy.QUARANTINE,
        Action.JUNK,
    )
    assert "pct=0" in result.reason


@pytest.mark.parametrize(("draw", "disposition"), [(0.49, Policy.REJECT), (0.5, Policy.QUARANTINE)])
async def test_pct_samples_with_the_injected_source(
    dns_server: DnsServer, draw: float, disposition: Policy
) -> None:
    result = await check(dns_server, "half.example", sample=lambda: draw)
    assert result.disposition is disposition


async def test_no_record_is_none(dns_server: DnsServer) -> None:
    result = await check(dns_server, "norecord.example", SpfOutcome("fail", "norecord.example"))
    assert (result.result, result.disposition, result.action) == (
        DmarcStatus.NONE,
        Policy.NONE,
        Action.RECORD,
    )
    assert result.record is None


async def test_dns_that_never_answers_is_temperror(dns_server: DnsServer) -> None:
    with trio.fail_after(10):  # a hang, not a duration, is what this guards against
        result = await evaluate(
            "silent.example", None, (), resolver=resolver_for(dns_server, timeout=0.5)
        )
    assert (result.result, result.disposition, result.action) == (
        DmarcStatus.TEMPERROR,
        Policy.NONE,
        Action.RECORD,
    )


async def test_a_silent_organizational_domain_is_temperror_too(dns_server: DnsServer) -> None:
    with trio.fail_after(10):
        result = await evaluate(
            "mail.silent-org.example", None, (), resolver=resolver_for(dns_server, timeout=0.5)
        )
    assert result.result is DmarcStatus.TEMPERROR


async def test_servfail_is_temperror(dns_server: DnsServer) -> None:
    result = await check(dns_server, "broken.example")
    assert result.result is DmarcStatus.TEMPERROR


async def test_falls_back_to_the_organizational_domain_by_the_public_suffix_list(
    dns_server: DnsServer,
) -> None:
    result = await check(dns_server, "mail.example.co.uk", SpfOutcome("pass", "example.net"))
    assert (result.result, result.policy_domain, result.requested) == (
        DmarcStatus.FAIL,
        "example.co.uk",
        Policy.NONE,  # sp=none at example.co.uk
    )
    assert [q.name for q in dns_server.queries] == [
        "_dmarc.mail.example.co.uk.",
        "_dmarc.example.co.uk.",
    ]
    aligned_ = await check(
        dns_server, "mail.example.co.uk", SpfOutcome("pass", "bounce.example.co.uk")
    )
    assert aligned_.result is DmarcStatus.PASS
    assert dns_server.count("_dmarc.co.uk") == 0


async def test_several_dmarc_records_mean_no_dmarc(dns_server: DnsServer) -> None:
    result = await check(dns_server, "multi.example")
    assert (result.result, result.disposition) == (DmarcStatus.NONE, Policy.NONE)


async def test_a_broken_record_is_permerror(dns_server: DnsServer) -> None:
    result = await check(dns_server, "bad.example")
    assert (result.result, result.disposition, result.policy_domain) == (
        DmarcStatus.PERMERROR,
        Policy.NONE,
        "bad.example",
    )


async def test_a_from_domain_that_is_no_dns_name_is_permerror(dns_server: DnsServer) -> None:
    result = await check(dns_server, "exa mple.com")
    assert result.result is DmarcStatus.PERMERROR
    assert dns_server.queries == []


async def test_message_with_one_author_domain_is_evaluated(dns_server: DnsServer) -> None:
    with trio.fail_after(10):
        result = await evaluate_message(
            b"From: Alice <alice@example.com>\r\nSubject: hi\r\n\r\n",
            SpfOutcome("pass", "example.com"),
            [],
            resolver=resolver_for(dns_server),
        )
    assert (result.result, result.from_domain) == (DmarcStatus.PASS, "example.com")


@pytest.mark.parametrize(
    ("block", "disposition"),
    [
        (b"Subject: no author\r\n\r\n", Policy.NONE),
        (b"From: undisclosed:;\r\n\r\n", Policy.NONE),
        (b"From: a@example.com, b@example.net\r\n\r\n", Policy.REJECT),
        (b"From: a@example.com\r\nFrom: a@example.net\r\n\r\n", Policy.REJECT),
    ],
)
async def test_no_author_or_several_author_domains_is_permerror(
    dns_server: DnsServer, block: bytes, disposition: Policy
) -> None:
    with trio.fail_after(10):
        result = await evaluate_message(block, None, [], resolver=resolver_for(dns_server))
    assert (result.result, result.disposition) == (DmarcStatus.PERMERROR, disposition)
    assert dns_server.queries == []


async def test_outcomes_render_into_our_authentication_results(dns_server: DnsServer) -> None:
    spf = SpfOutcome("fail", "Example.COM")
    signature = dkim("fail", "example.com")
    result = await check(dns_server, "example.com", spf, (signature,))
    header = format_header(
        "mx.test", [spf.method_result(), signature.method_result(), result.method_result()]
    )
    assert header == (
        "Authentication-Results: mx.test;\r\n"
        "\tspf=fail smtp.mailfrom=example.com;\r\n"
        "\tdkim=fail header.d=example.com header.s=s1 header.b=abcdefgh;\r\n"
        "\tdmarc=fail (p=reject sp=quarantine dis=reject) header.from=example.com\r\n"
    )
    helo = SpfOutcome("none", "mx.example.com", scope="helo").method_result()
    assert helo.properties == (("smtp.helo", "mx.example.com"),)


# --- configuration and inputs --------------------------------------------------


def test_config_defaults_and_actions_by_name() -> None:
    config = DmarcConfig(on_quarantine="record")  # a string, as TOML gives it
    assert config.action_for(Policy.REJECT) is Action.REJECT
    assert config.action_for(Policy.QUARANTINE) is Action.RECORD
    assert config.action_for(Policy.NONE) is Action.RECORD
    with pytest.raises(ConfigError, match="must be one of reject, junk, record"):
        DmarcConfig(on_reject="bounce")


def test_outcomes_check_their_results() -> None:
    assert SpfOutcome("PASS", "Example.com.") == SpfOutcome("pass", "example.com")
    with pytest.raises(ValueError, match="result"):
        SpfOutcome("policy", "example.com")
    with pytest.raises(ValueError, match="result"):
        DkimOutcome(result="softfail", domain="example.com")
    with pytest.raises(ValueError, match="scope"):
        SpfOutcome("pass", "example.com", scope="rcpt")
