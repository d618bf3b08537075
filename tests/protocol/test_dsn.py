"""DSN parameters (RFC 3461): xtext, RET, ENVID, NOTIFY, ORCPT, parsed without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.protocol import ClientProtocolError, parse_mail_from, parse_rcpt_to
from mailio_trio.protocol.dsn import (
    MAIL_KEYWORDS,
    RCPT_KEYWORDS,
    DsnMail,
    DsnRcpt,
    NotifyOn,
    Orcpt,
    Ret,
    parse_dsn_mail,
    parse_dsn_rcpt,
    xtext_decode,
    xtext_encode,
)

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@given(PRINTABLE)
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert xtext_decode(encoded) == text
    # The encoding is itself a valid esmtp-value: no space, "+" and "=" only as escapes.
    assert " " not in encoded
    assert "=" not in encoded


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E)))
def test_xtext_decode_then_encode_is_stable(value: str) -> None:
    decoded = xtext_decode(value)
    if decoded is not None:  # "+41" decodes to "A", which encodes as itself
        assert xtext_decode(xtext_encode(decoded)) == decoded


def test_xtext_examples() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_decode("bob+2Bdsn@example.com") == "bob+dsn@example.com"
    for bad in ("a+", "a+2", "a+2b", "a=b", "a b", "+G0"):
        assert xtext_decode(bad) is None


def mail_dsn(argument: str) -> DsnMail:
    return parse_dsn_mail(parse_mail_from(argument, extra_params=MAIL_KEYWORDS).params)


def rcpt_dsn(argument: str) -> DsnRcpt:
    return parse_dsn_rcpt(parse_rcpt_to(argument, extra_params=RCPT_KEYWORDS).params)


def test_mail_parameters() -> None:
    assert mail_dsn("FROM:<a@b.example>") == DsnMail()
    assert mail_dsn("FROM:<a@b.example> RET=FULL ENVID=QQ314159") == DsnMail(Ret.FULL, "QQ314159")
    assert mail_dsn("FROM:<a@b.example> ret=hdrs envid=a+2Bb") == DsnMail(Ret.HDRS, "a+b")


def test_rcpt_parameters() -> None:
    assert rcpt_dsn("TO:<c@d.example>") == DsnRcpt()
    assert rcpt_dsn("TO:<c@d.example> NOTIFY=NEVER").notify == frozenset({NotifyOn.NEVER})
    assert rcpt_dsn("TO:<c@d.example> NOTIFY=success,Delay").notify == frozenset(
        {NotifyOn.SUCCESS, NotifyOn.DELAY}
    )
    parsed = rcpt_dsn("TO:<c@d.example> ORCPT=rfc822;Bob+2Bx@d.example")
    assert parsed.orcpt == Orcpt("rfc822", "Bob+x@d.example")
    assert parsed.orcpt is not None
    assert str(parsed.orcpt) == "rfc822;Bob+x@d.example"
    assert parsed.orcpt.encode() == "rfc822;Bob+2Bx@d.example"


@pytest.mark.parametrize(
    "argument",
    [
        "FROM:<a@b.example> RET",
        "FROM:<a@b.example> RET=",
        "FROM:<a@b.example> RET=BODY",
        "FROM:<a@b.example> ENVID",
        "FROM:<a@b.example> ENVID=a+2",
        "FROM:<a@b.example> ENVID=a+0Db",  # a decoded CR
        "FROM:<a@b.example> ENVID=a+20b",  # ENVID is graphic only
        "FROM:<a@b.example> ENVID=" + "x" * 101,
    ],
)
def test_malformed_mail_parameters_are_501_554(argument: str) -> None:
    with pytest.raises(ClientProtocolError) as info:
        mail_dsn(argument)
    assert (info.value.reply.code, info.value.reply.enhanced) == (501, "5.5.4")


@pytest.mark.parametrize(
    "argument",
    [
        "TO:<c@d.example> NOTIFY",
        "TO:<c@d.example> NOTIFY=",
        "TO:<c@d.example> NOTIFY=NEVER,SUCCESS",
        "TO:<c@d.example> NOTIFY=SUCCESS,SUCCESS",
        "TO:<c@d.example> NOTIFY=SUCCESS,",
        "TO:<c@d.example> NOTIFY=ALWAYS",
        "TO:<c@d.example> ORCPT",
        "TO:<c@d.example> ORCPT=c@d.example",
        "TO:<c@d.example> ORCPT=rfc822;",
        "TO:<c@d.example> ORCPT=rfc(822);c@d.example",
        "TO:<c@d.example> ORCPT=rfc822;c+2",
        "TO:<c@d.example> ORCPT=rfc822;c+0Ad@d.example",
        "TO:<c@d.example> ORCPT=rfc822;" + "c" * 495,
    ],
)
def test_malformed_rcpt_parameters_are_501_554(argument: str) -> None:
    with pytest.raises(ClientProtocolError) as info:
        rcpt_dsn(argument)
    assert (info.value.reply.code, info.value.reply.enhanced) == (501, "5.5.4")


def test_orcpt_at_the_limit_is_taken() -> None:
    value = "rfc822;" + "c" * (500 - len("rfc822;"))
    assert rcpt_dsn(f"TO:<c@d.example> ORCPT={value}").orcpt == Orcpt("rfc822", "c" * 493)


def test_without_the_extension_the_keywords_are_555() -> None:
    with pytest.raises(ClientProtocolError) as info:
        parse_rcpt_to("TO:<c@d.example> NOTIFY=NEVER")
    assert info.value.reply.code == 555


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
def test_envid_and_orcpt_come_back_as_sent(text: str) -> None:
    assert parse_dsn_mail({"ENVID": xtext_encode(text)}).envid == text
    orcpt = parse_dsn_rcpt({"ORCPT": "rfc822;" + xtext_encode(text)}).orcpt
    assert orcpt == Orcpt("rfc822", text)
    assert parse_dsn_rcpt({"ORCPT": orcpt.encode()}).orcpt == orcpt
