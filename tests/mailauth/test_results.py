"""Authentication-Results: building ours, reading others', stripping forged ones (RFC 8601)."""

from __future__ import annotations

import contextlib
import doctest
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.mailauth import results
from mailio_trio.mailauth.results import (
    AuthResHeader,
    AuthResParseError,
    AuthResStripper,
    MethodResult,
    format_header,
    is_forged,
    parse_header_value,
    strip_forged,
)

OURS = "mx.example.net"


def test_docstring_examples_run() -> None:
    assert doctest.testmod(results).failed == 0


# --- building: golden ----------------------------------------------------------


def test_all_four_methods_one_per_line() -> None:
    header = format_header(
        OURS,
        [
            MethodResult.spf("pass", mailfrom="example.com"),
            MethodResult.dkim(
                "pass", domain="example.com", selector="sel1", signature="abc/def+ghijkl"
            ),
            MethodResult.dmarc("pass", header_from="example.com", comment="p=reject dis=none"),
            MethodResult.arc("pass", oldest_pass=1, remote_ip="2001:db8::1"),
        ],
    )
    assert header == (
        "Authentication-Results: mx.example.net;\r\n"
        "\tspf=pass smtp.mailfrom=example.com;\r\n"
        # "/" is an RFC 2045 tspecial: the header.b prefix must be quoted.
        '\tdkim=pass header.d=example.com header.s=sel1 header.b="abc/def+";\r\n'
        "\tdmarc=pass (p=reject dis=none) header.from=example.com;\r\n"
        # ":" likewise: an IPv6 address is a quoted-string.
        '\tarc=pass header.oldest-pass=1 smtp.remote-ip="2001:db8::1"\r\n'
    )


def test_no_results_is_none() -> None:
    assert format_header(OURS, []) == "Authentication-Results: mx.example.net; none\r\n"


def test_helo_spf_and_reason() -> None:
    header = format_header(
        OURS, [MethodResult.spf("fail", helo="bad.example", reason='says "no" \\ here')]
    )
    assert header == (
        "Authentication-Results: mx.example.net;\r\n"
        '\tspf=fail reason="says \\"no\\" \\\\ here" smtp.helo=bad.example\r\n'
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("example.com", "example.com"),
        ("user@example.com", "user@example.com"),  # pvalue's [local-part "@"] domain form
        ("@example.com", "@example.com"),
        ("first.last+tag@sub.example.com", "first.last+tag@sub.example.com"),
        ("has space@example.com", '"has space@example.com"'),
        ("a@b@example.com", '"a@b@example.com"'),
        ("", '""'),
        ("büro.example", '"büro.example"'),  # UTF-8 only inside a quoted-string (RFC 6532)
        ("x;y", '"x;y"'),
    ],
)
def test_property_values_are_quoted_only_when_needed(value: str, written: str) -> None:
    header = format_header(OURS, [MethodResult.spf("pass", mailfrom=value)])
    assert header.endswith(f"smtp.mailfrom={written}\r\n")


def test_authserv_id_quoted_when_not_a_token() -> None:
    assert format_header("mx [1]", []).startswith('Authentication-Results: "mx [1]"; none')


def test_control_characters_cannot_start_a_new_field() -> None:
    header = format_header(
        OURS, [MethodResult.spf("pass", helo="x\r\nAuthentication-Results: mx.example.net; pass")]
    )
    lines = header.split("\r\n")
    assert lines[-1] == ""
    assert all(line.startswith("\t") for line in lines[1:-1])
    assert "\n" not in "".join(lines)
    assert "\r" not in "".join(lines)


def test_comment_parentheses_are_escaped() -> None:
    header = format_header(OURS, [MethodResult("dmarc", "none", comment="a (b) c\\")])
    assert "(a \\(b\\) c\\\\)" in header


@pytest.mark.parametrize(
    "bad",
    [
        lambda: MethodResult("spf", "maybe"),
        lambda: MethodResult("dmarc", "softfail"),
        lambda: MethodResult("sp f", "pass"),
        lambda: MethodResult("x-custom", "pass", properties={"nodot": "v"}),
    ],
)
def test_invalid_method_results_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="RFC 8601"):
        bad()  # type: ignore[operator]  # each case is a zero-argument lambda


def test_method_and_result_are_lower_cased() -> None:
    assert MethodResult("SPF", "Pass") == MethodResult("spf", "pass")


def test_unknown_methods_accept_any_keyword_result() -> None:
    assert (
        MethodResult("iprev", "pass", properties=[("policy.iprev", "192.0.2.1")]).result == "pass"
    )


# --- building: folding ---------------------------------------------------------


def widths(header: str) -> list[int]:
    return [len(line.replace("\t", " " * 8)) for line in header.split("\r\n")[:-1]]


def test_long_result_folds_between_words_at_78_columns() -> None:
    header = format_header(
        OURS,
        [
            MethodResult.dkim(
                "fail",
                domain="a-rather-long-signing-domain.example.co.uk",
                selector="selector-2026-with-a-long-name",
                signature="AbCdEfGh",
                comment="signature verification failed: body hash did not verify in the end",
            )
        ],
    )
    assert max(widths(header)) <= 78
    assert header == (
        "Authentication-Results: mx.example.net;\r\n"
        "\tdkim=fail (signature verification failed: body hash did not verify in\r\n"
        "\tthe end) header.d=a-rather-long-signing-domain.example.co.uk\r\n"
        "\theader.s=selector-2026-with-a-long-name header.b=AbCdEfGh\r\n"
    )


def unfold(header: str) -> str:
    return re.sub(r"\r\n(?=[ \t])", "", header)


words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@given(
    mailfrom=words,
    helo=words,
    reason=st.none() | words,
    comment=st.none() | st.lists(words, max_size=8).map(" ".join),
)
def test_folding_keeps_lines_short_and_unfolds_to_one_line(
    mailfrom: str, helo: str, reason: str | None, comment: str | None
) -> None:
    spf = MethodResult.spf("pass", mailfrom=mailfrom, helo=helo, reason=reason, comment=comment)
    header = format_header(OURS, [spf, MethodResult.dmarc("none")])
    assert header.endswith("\r\n")
    body = header[:-2]
    # Every line break is a fold: CRLF then TAB; none is bare.
    assert body.count("\r\n") == body.count("\r\n\t") == body.count("\r") == body.count("\n")
    # Lines only pass 78 columns when one word alone is longer than a line.
    longest_word = max(len(w) for w in unfold(body).split())
    assert max(widths(header)) <= max(78, 8 + longest_word)
    assert parse_header_value(unfold(body).partition(":")[2]).authserv_id == OURS


# --- reading -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (" example.org; none", AuthResHeader("example.org")),
        (" example.org;spf=pass smtp.mailfrom=a@b", AuthResHeader("example.org")),
        (" example.org 1; spf=pass", AuthResHeader("example.org", 1)),
        (" (c) example.org (c2) 1 (c3) ; none", AuthResHeader("example.org", 1)),
        (" ((nested) (twice)) example.org; none", AuthResHeader("example.org")),
        (" (escaped \\) paren) example.org; none", AuthResHeader("example.org")),
        ('"example.org"; none', AuthResHeader("example.org")),
        (' "odd \\"id\\""; none', AuthResHeader('odd "id"')),
        ("\r\n\texample.org\r\n ;\r\n none", AuthResHeader("example.org")),
        (" example.org", AuthResHeader("example.org")),
        (" example.org 1", AuthResHeader("example.org", 1)),
        (" ÿxample.org; none", AuthResHeader("ÿxample.org")),  # RFC 6532 UTF-8
        (" example.org2; none", AuthResHeader("example.org2")),
    ],
)
def test_authserv_id_and_version(value: str, parsed: AuthResHeader) -> None:
    assert parse_header_value(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "; none",
        " (unterminated example.org; none",
        " example.org foo; spf=pass",
        ' "unterminated; none',
        " example.org 1 2; none",
        " @example.org; none",
        " (c)",
    ],
)
def test_unparsable_values(value: str) -> None:
    with pytest.raises(AuthResParseError):
        parse_header_value(value)


@given(st.text())
def test_reading_raises_only_its_own_error(value: str) -> None:
    with contextlib.suppress(AuthResParseError):
        parse_header_value(value)


cfws = st.lists(
    st.sampled_from([" ", "\t", "\r\n ", "(comment)", "(a (nested) one)", "(\\) esc)"]),
    max_size=4,
).map("".join)


@given(
    authserv_id=st.text(min_size=1, max_size=30).filter(lambda s: "\r" not in s and "\n" not in s),
    before=cfws,
    after=cfws,
)
def test_any_id_we_write_reads_back(authserv_id: str, before: str, after: str) -> None:
    written = format_header(authserv_id, []).removeprefix("Authentication-Results: ")
    head = written.removesuffix("; none\r\n")
    assert parse_header_value(f"{before} {head}{after} ; none").authserv_id == re.sub(
        r"[\x00-\x1f\x7f]", "?", authserv_id
    )


@pytest.mark.parametrize(
    ("value", "forged"),
    [
        (" mx.example.net; spf=pass", True),
        (" MX.Example.NET; spf=pass", True),
        (" mx.example.net.; spf=pass", True),
        ("mx.example.net;dkim=pass", True),
        (" (we are mx.other.example) mx.example.net (really) 1 ; dmarc=pass", True),
        ('\r\n\t"mx.example.net"\r\n\t; arc=pass', True),
        (" mx.other.example; spf=pass smtp.helo=mx.example.net", False),
        (" (mx.example.net) mx.other.example; none", False),
        (" mx.example.net.evil; none", False),
        # Broken at the start, but naming us: an MUA might still believe it.
        (" (mx.example.net; spf=pass", True),
        (" mx.example.net garbage; spf=pass", True),
        (" (broken mx.other.example; spf=pass", False),
    ],
)
def test_forged_fields_claim_our_id(value: str, forged: bool) -> None:
    assert is_forged(value, OURS) is forged


# --- stripping -----------------------------------------------------------------


def test_forged_field_and_its_continuation_lines_are_removed() -> None:
    block = (
        b"Received: from a by b; Mon, 1 Jan 2026 00:00:00 +0000\r\n"
        b"Authentication-Results: mx.example.net;\r\n"
        b"\tspf=pass smtp.mailfrom=example.com;\r\n"
        b"  dkim=pass header.d=example.com\r\n"
        b"Authentication-Results: mx.other.example; spf=fail\r\n"
        b"ARC-Authentication-Results: i=1; mx.example.net; spf=pass\r\n"
        b"authentication-results : (odd) MX.EXAMPLE.NET ; none\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mx.example.net; a body line, never touched\r\n"
    )
    stripper = AuthResStripper(OURS)
    out = stripper.feed(block) + stripper.close()
    assert out == (
        b"Received: from a by b; Mon, 1 Jan 2026 00:00:00 +0000\r\n"
        b"Authentication-Results: mx.other.example; spf=fail\r\n"
        b"ARC-Authentication-Results: i=1; mx.example.net; spf=pass\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mx.example.net; a body line, never touched\r\n"
    )
    assert stripper.removed == 2


def test_bare_lf_header_blocks_and_a_last_field_without_line_end() -> None:
    block = b"A: 1\nAuthentication-Results: mx.example.net;\n spf=pass\nB: 2"
    assert strip_forged(block, OURS) == b"A: 1\nB: 2"
    assert strip_forged(b"Authentication-Results: mx.example.net; none", OURS) == b""


def test_nothing_is_held_back_but_an_open_authentication_results_field() -> None:
    stripper = AuthResStripper(OURS)
    assert stripper.feed(b"Subject: a long") == b"Subject: a long"
    assert stripper.feed(b" subject\r\n") == b" subject\r\n"
    assert stripper.feed(b"Authentication-Results: mx.other.example;\r\n") == b""
    assert stripper.feed(b" none\r\n") == b""
    assert stripper.feed(b"X") == b"Authentication-Results: mx.other.example;\r\n none\r\n"
    assert stripper.feed(b": y\r\n\r\nbody") == b"X: y\r\n\r\nbody"


def test_a_huge_forged_field_is_dropped_whole_within_the_memory_bound() -> None:
    filler = b"\tdkim=pass header.d=example.com\r\n" * 100
    forged = b"Authentication-Results: mx.example.net;\r\n" + filler
    kept = b"Authentication-Results: other.example;\r\n" + filler
    stripper = AuthResStripper(OURS, max_field=256)
    out = b"".join(stripper.feed(line) for line in (forged + kept + b"\r\n").splitlines(True))
    assert out + stripper.close() == kept + b"\r\n"
    assert len(stripper._held) == 0  # nothing left over once decided


def test_a_long_line_without_a_colon_passes_through() -> None:
    line = b"x" * 1000 + b"\r\n"
    assert strip_forged(line + b"Authentication-Results: mx.example.net; none\r\n", OURS) == line


field_names = st.sampled_from(
    [
        "Authentication-Results",
        "authentication-results",
        "Authentication-Results ",
        "ARC-Authentication-Results",
        "Subject",
        "Received",
        "X-Authentication-Results",
    ]
)
ids = st.sampled_from([OURS, OURS.upper(), "other.example", f"({OURS}) other.example", ""])
eols = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def header_fields(draw: st.DrawFn) -> tuple[bytes, bool]:
    """One field's bytes, and whether the stripper should remove it."""
    name = draw(field_names)
    authserv_id = draw(ids)
    value = f" {authserv_id}; spf=pass"
    eol = draw(eols)
    lines = [f"{name}:{value}".encode() + eol]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(
            draw(st.sampled_from([b" ", b"\t"]))
            + draw(st.binary(max_size=20)).replace(b"\n", b"")
            + eol
        )
    data = b"".join(lines)
    forged = name.strip().lower() == "authentication-results" and is_forged(value, OURS)
    return data, forged


@given(
    fields=st.lists(header_fields(), max_size=8),
    body=st.binary(max_size=60),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_stripping_keeps_every_other_byte_exactly_in_any_chunking(
    fields: list[tuple[bytes, bool]], body: bytes, cuts: list[int]
) -> None:
    message = b"".join(data for data, _ in fields) + b"\r\n" + body
    expected = b"".join(data for data, forged in fields if not forged) + b"\r\n" + body
    stripper = AuthResStripper(OURS)
    bounds = sorted({0, len(message), *(c for c in cuts if c < len(message))})
    out = b"".join(stripper.feed(message[a:b]) for a, b in itertools.pairwise(bounds))
    assert out + stripper.close() == expected
    assert stripper.removed == sum(forged for _, forged in fields)
