"""SPF record parsing and macro expansion: the sans-I/O half, no event loop."""

from __future__ import annotations

import ast
import contextlib
import ipaddress
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.mailauth import _spf_record
from mailio_trio.mailauth._spf_record import (
    Kind,
    MacroContext,
    PermError,
    Qualifier,
    domain_problem,
    expand,
    expand_domain,
    is_spf_record,
    parse_domain_spec,
    parse_explanation,
    parse_macro_string,
    parse_record,
)

# RFC 7208 §7.4's worked example.
CTX = MacroContext(
    sender="strong-bad@email.example.com",
    local_part="strong-bad",
    sender_domain="email.example.com",
    domain="email.example.com",
    ip=ipaddress.IPv4Address("192.0.2.3"),
    helo="mx.example.org",
    receiver="mx.example.net",
    timestamp=1700000000,
)
CTX6 = attrs.evolve(CTX, ip=ipaddress.IPv6Address("2001:db8::cb01"))


def test_sans_io_no_trio_or_socket_import() -> None:
    tree = ast.parse(Path(_spf_record.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not imported & {"trio", "socket", "dns", "mailio_trio"}


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        # RFC 7208 §7.4, verbatim.
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        # The rest of §7: escapes, h, p's default, several delimiters, more digits than parts.
        ("%%%_%-", "% %20"),
        ("%{h}", "mx.example.org"),
        ("%{p}", "unknown"),
        ("%{l+-}", "strong.bad"),
        ("%{d99}", "email.example.com"),
        ("%{o2r}", "example.email"),
        ("%{D}", "email.example.com"),
        ("%{S}", "strong-bad%40email.example.com"),
    ],
)
def test_macro_expansion(macro: str, expanded: str) -> None:
    assert expand(parse_macro_string(macro), CTX) == expanded


def test_ipv6_macros() -> None:
    spec = parse_macro_string("%{ir}.%{v}._spf.%{d2}")
    # RFC 7208 §7.4: lower-case nibbles.
    assert expand(spec, CTX6) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
    assert expand(parse_explanation("%{c} %{i1}"), CTX6) == "2001:db8::cb01 1"


def test_explanation_only_macros() -> None:
    text = "%{c} to %{r} at %{t}: see http://%{d}/why?s=%{S}"
    assert expand(parse_explanation(text), CTX) == (
        "192.0.2.3 to mx.example.net at 1700000000: "
        "see http://email.example.com/why?s=strong-bad%40email.example.com"
    )
    for letter in "crt":
        with pytest.raises(PermError, match="unknown macro letter"):
            parse_domain_spec(f"%{{{letter}}}.example.com")


def test_upper_case_macro_escapes_everything_but_unreserved() -> None:
    ctx = attrs.evolve(CTX, local_part="~jack&jill=up-a_b3.c é")
    assert expand(parse_macro_string("%{L}"), ctx) == "~jack%26jill%3Dup-a_b3.c%20%C3%A9"


@pytest.mark.parametrize(
    "text",
    ["%", "%x", "%{", "%{s", "%{}", "%{q}", "%{d0}", "%{d2x}", "%{dr2}", "%(d)", "a b", "é"],
)
def test_bad_macro_strings(text: str) -> None:
    with pytest.raises(PermError):
        parse_macro_string(text)


def test_explanation_allows_spaces_but_not_controls_or_non_ascii() -> None:
    assert expand(parse_explanation("two  spaces"), CTX) == "two  spaces"
    for bad in ("tab\there", "\ufeffbom", "nul\0"):
        with pytest.raises(PermError):
            parse_explanation(bad)


def test_domain_names_from_macros_lose_the_trailing_dot_and_are_cut_to_253() -> None:
    assert expand_domain(parse_domain_spec("x.example.com."), CTX) == "x.example.com"
    dotted = attrs.evolve(CTX, domain="email.example.com.")
    assert expand_domain(parse_domain_spec("%{d}"), dotted) == "email.example.com"
    long_ctx = attrs.evolve(CTX, domain="a" * 60 + ".example.com")
    spec = parse_domain_spec("x.%{d}.%{d}.%{d}.%{d}.%{d}.tail.example")
    full, name = expand(spec, long_ctx), expand_domain(spec, long_ctx)
    assert len(full) > 253 >= len(name)
    # Whole labels went, on the left, and no more than needed.
    assert full.endswith("." + name)
    dropped = full.removesuffix("." + name).split(".")
    assert len(dropped[-1]) + 1 + len(name) > 253


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ("example.com", True),
        ("example.com.", True),
        ("foo:bar/baz.example.com", True),
        ("foo.example.xn--zckzah", True),
        ("%{d}", True),
        ("%{H}", True),
        ("x.%%", True),
        ("_spf.%{d2}", True),
        ("", False),
        ("museum", False),
        ("museum.", False),
        ("abc.123", False),
        ("example.-com", False),
        ("example.com-", False),
        ("example.com..", False),
        ("%{d}com", False),
        ("%{d}.", False),  # domain-end is "." toplabel ["."] or a macro, not a bare dot
    ],
)
def test_domain_spec_must_end_in_macro_or_toplabel(spec: str, ok: bool) -> None:
    if ok:
        parse_domain_spec(spec)
    else:
        with pytest.raises(PermError):
            parse_domain_spec(spec)


@pytest.mark.parametrize(
    ("term", "network"),
    [
        ("ip4:192.0.2.1", "192.0.2.1/32"),
        ("ip4:192.0.2.1/0", "0.0.0.0/0"),
        ("ip4:192.0.2.129/25", "192.0.2.128/25"),
        ("IP4:192.0.2.1/32", "192.0.2.1/32"),
        ("ip6:2001:db8::1", "2001:db8::1/128"),
        ("ip6:2001:db8::1/0", "::/0"),
        ("ip6:2001:DB8:8000::/33", "2001:db8:8000::/33"),
        ("ip6:::ffff:192.0.2.1/96", "::ffff:0.0.0.0/96"),
    ],
)
def test_ip_networks(term: str, network: str) -> None:
    (mechanism,) = parse_record(f"v=spf1 {term}").mechanisms
    assert mechanism.network == ipaddress.ip_network(network)


@pytest.mark.parametrize(
    ("term", "cidr4", "cidr6"),
    [
        ("a", 32, 128),
        ("a/0", 0, 128),
        ("a//0", 32, 0),
        ("a/24//64", 24, 64),
        ("mx:example.com/32//128", 32, 128),
        ("a:foo:bar/baz.example.com", 32, 128),
        ("A:example.com/8", 8, 128),
    ],
)
def test_dual_cidr(term: str, cidr4: int, cidr6: int) -> None:
    (mechanism,) = parse_record(f"v=spf1 {term}").mechanisms
    assert (mechanism.cidr4, mechanism.cidr6) == (cidr4, cidr6)


@pytest.mark.parametrize(
    "term",
    [
        "ip4:192.0.2.1/33",
        "ip4:192.0.2.1/032",
        "ip4:192.0.2.01",
        "ip4:192.0.2",
        "ip4:192.0.2.1:25",
        "ip4:192.0.2.1//32",
        "ip4",
        "ip4:",
        "ip6:::1/129",
        "ip6:::1//64",
        "ip6::1::2",
        "ip6:192.0.2.1",
        "a/33",
        "a//129",
        "a/24/64",
        "a/",
        "a//",
        "a/-1",
        "mx/01",
        "ptr/24",
        "ptr:",
        "include",
        "include:",
        "include:example.com/24",
        "exists",
        "exists:example.com/24",
        "all:x",
        "all/0",
        "-all.",
        "*all",
        "foo",
        "redirect:example.com",
        "=all",
        "1x=y",
        "exp=",
        "redirect=",
        "unknown=%q",
    ],
)
def test_bad_terms_are_permerror(term: str) -> None:
    with pytest.raises(PermError):
        parse_record(f"v=spf1 {term}")


def test_record_terms_and_modifiers() -> None:
    record = parse_record(
        "v=spf1  +a -mx:mx.%{d2} ~ptr ?exists:%{i}.bl.example include:_spf.example.com "
        "IP6:2001:db8::/32 all redirect=other.example exp=why.%{d} x-ignored=%{h} "
    )
    assert [(m.qualifier, m.kind) for m in record.mechanisms] == [
        (Qualifier.PASS, Kind.A),
        (Qualifier.FAIL, Kind.MX),
        (Qualifier.SOFTFAIL, Kind.PTR),
        (Qualifier.NEUTRAL, Kind.EXISTS),
        (Qualifier.PASS, Kind.INCLUDE),
        (Qualifier.PASS, Kind.IP6),
        (Qualifier.PASS, Kind.ALL),
    ]
    assert record.mechanisms[1].text == "-mx:mx.%{d2}"
    assert record.redirect is not None
    assert record.redirect.text == "other.example"
    assert record.exp is not None
    assert record.exp.text == "why.%{d}"
    assert record.unknown_modifiers == ("x-ignored",)


@pytest.mark.parametrize(
    "text",
    [
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 exp=a.example Exp=b.example",
        "v=spf1 a:example.com\r-all",
        "v=spf1 a:example.com\t-all",
        "v=spf1 ip4:192.0.2.1\n",
        "v=spf1 a:ex\u00e4mple.com",
        "v=spf1 \ufffd",
        "v=spf1 -all moo",
        "spf2.0/pra -all",
    ],
)
def test_bad_records(text: str) -> None:
    with pytest.raises(PermError):
        parse_record(text)


@pytest.mark.parametrize(
    ("text", "spf"),
    [
        ("v=spf1", True),
        ("v=spf1 -all", True),
        ("V=SpF1 -all", True),
        ("v=spf10", False),
        ("v=spf1-all", False),
        ("v=spf1\t-all", False),
        (" v=spf1 -all", False),
        ("spf2.0/mfrom -all", False),
    ],
)
def test_record_selection(text: str, spf: bool) -> None:
    assert is_spf_record(text) is spf


@pytest.mark.parametrize(
    ("name", "fqdn", "problem"),
    [
        ("example.com", True, None),
        ("example.com.", True, None),
        ("a" * 63 + ".example.com", True, None),
        ("a" * 64 + ".example.com", True, "label longer than 63 octets"),
        ("a..example.com", True, "empty label in domain"),
        ("", False, "empty domain"),
        ("localhost", True, "not a fully qualified domain name"),
        ("localhost", False, None),
        ("[192.0.2.1]", True, "domain literal"),
        (".".join(["a" * 50] * 6), False, "domain longer than 253 octets"),
    ],
)
def test_domain_problem(name: str, fqdn: bool, problem: str | None) -> None:
    assert domain_problem(name, fqdn=fqdn) == problem


# -- properties ----------------------------------------------------------------

_SPF_ALPHABET = st.sampled_from(
    [*"aeilmnoprstx46:/.%{}-+~?=_ 0123456789", "all", "ip4:", "ip6:", "include:", "\0", "é"]
)
_spfish = st.lists(_SPF_ALPHABET, max_size=40).map("".join)


@given(st.text(max_size=200))
def test_parse_record_only_raises_permerror(text: str) -> None:
    with contextlib.suppress(PermError):
        parse_record(text)


@given(_spfish)
def test_parse_record_only_raises_permerror_past_the_version(tail: str) -> None:
    for parse in (parse_record, lambda t: parse_record("v=spf1 " + t)):
        with contextlib.suppress(PermError):
            parse(tail)


@given(_spfish)
def test_macro_parsers_only_raise_permerror_and_expand_anything_they_accept(text: str) -> None:
    for parse in (parse_macro_string, parse_domain_spec, parse_explanation):
        try:
            macro_string = parse(text)
        except PermError:
            continue
        assert isinstance(expand(macro_string, CTX6), str)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=50))
def test_text_without_percent_expands_to_itself(text: str) -> None:
    text = text.replace("%", "")
    assert expand(parse_macro_string(text), CTX) == text


@given(
    st.lists(
        st.sampled_from(
            ["a", "mx", "-all", "~ptr", "ip4:192.0.2.0/24", "a:x.example/24//64", "exp=e.%{d}"]
        ),
        max_size=8,
    )
)
def test_valid_terms_keep_their_text(terms: list[str]) -> None:
    if terms.count("exp=e.%{d}") > 1:
        return
    record = parse_record(" ".join(["v=spf1", *terms]))
    assert [m.text for m in record.mechanisms] == [t for t in terms if "=" not in t]
