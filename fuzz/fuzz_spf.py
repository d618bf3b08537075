"""SPF records and macro strings (mailauth/_spf_record.py).

Contract: ``parse_record``, ``parse_macro_string``, ``parse_explanation`` and
``parse_domain_spec`` raise only ``PermError``; whatever parses expands
against a fixed context without an exception; an expanded domain-spec is at
most 253 octets whenever it has a dot to cut at.
"""

from __future__ import annotations

import ipaddress

from _common import fuzz_main, split
from mailio_trio.mailauth._spf_record import (
    MAX_DOMAIN_LENGTH,
    MacroContext,
    MacroString,
    PermError,
    expand,
    expand_domain,
    parse_domain_spec,
    parse_explanation,
    parse_macro_string,
    parse_record,
)

SEEDS = [
    b"\x00v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a/24//64 mx:%{d} -all exp=why.%{d}",
    b"\x01v=spf1 include:_spf.%{d2r}.example redirect=%{l1r-}.%{o}._spf.example",
    b"\x02%{ir}.%{v}._spf.%{d2} %% %_ %- %{c} %{t}",
    b"\x03v=spf1 exists:%{i}.%{h}.%{p}.%{S}.%{L}.%{O}.example ?all foo=%{d}",
]

CONTEXTS = [
    MacroContext(
        sender="strong-bad@email.example.com",
        local_part="strong-bad",
        sender_domain="email.example.com",
        domain="email.example.com",
        ip=ipaddress.ip_address("192.0.2.3"),
        helo="mx.example.org",
    ),
    MacroContext(
        sender="a.b.c@" + "l." * 100 + "example",
        local_part="a.b.c",
        sender_domain="l." * 100 + "example",
        domain="x" * 63 + ".example",
        ip=ipaddress.ip_address("2001:db8::cb01"),
        helo="[192.0.2.1]",
        validated_name="ptr.example",
        receiver="mx.example",
        timestamp=1_700_000_000,
    ),
]


def _expand(macro_string: MacroString, ctx: MacroContext, *, domain: bool) -> None:
    if domain:
        name = expand_domain(macro_string, ctx)
        assert len(name) <= MAX_DOMAIN_LENGTH or "." not in name
    else:
        expand(macro_string, ctx)


def test_one_input(data: bytes) -> None:
    """Check the contract (octet 0: which parser and context; the rest, latin-1, is the text)."""
    (knob,), payload = split(data, 1)
    text = payload.decode("latin-1")
    ctx = CONTEXTS[knob >> 7]
    try:
        match knob % 4:
            case 0:
                record = parse_record(text)
                for mechanism in record.mechanisms:
                    if mechanism.domain_spec is not None:
                        _expand(mechanism.domain_spec, ctx, domain=True)
                for spec in (record.redirect, record.exp):
                    if spec is not None:
                        _expand(spec, ctx, domain=True)
            case 1:
                _expand(parse_macro_string(text), ctx, domain=False)
            case 2:
                _expand(parse_explanation(text), ctx, domain=False)
            case _:
                _expand(parse_domain_spec(text), ctx, domain=True)
    except PermError:
        pass


if __name__ == "__main__":
    fuzz_main(test_one_input)
