"""Command lines, MAIL/RCPT paths and parameters, HELO names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.protocol import (
    Address,
    ClientProtocolError,
    Command,
    MailFrom,
    RcptTo,
    Reply,
    Verb,
    commands,
    parse_command,
    parse_helo_name,
    parse_mail_from,
    parse_rcpt_to,
)

CONTROL = Reply(501, "Syntax error: control characters are not allowed", "5.5.2")
NOT_UTF8 = Reply(501, "Syntax error: command is not valid UTF-8", "5.5.2")
EMPTY = Reply(500, "Syntax error: empty command", "5.5.2")
MAIL_SYNTAX = Reply(501, "Syntax: MAIL FROM:<address>", "5.5.4")
RCPT_SYNTAX = Reply(501, "Syntax: RCPT TO:<address>", "5.5.4")
HELO_SYNTAX = Reply(501, "Syntax: EHLO hostname", "5.5.4")


def code_of(exc: pytest.ExceptionInfo[ClientProtocolError]) -> tuple[int, str | None]:
    return exc.value.reply.code, exc.value.reply.enhanced


# --- parse_command -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"NOOP", Command(Verb.NOOP, "noop", "")),
        (b"noop", Command(Verb.NOOP, "noop", "")),
        (b"MAIL FROM:<a@b>", Command(Verb.MAIL, "mail", "FROM:<a@b>")),
        (b"mail   FROM:<A@B>  ", Command(Verb.MAIL, "mail", "FROM:<A@B>")),
        (b"  EHLO client.example", Command(Verb.EHLO, "ehlo", "client.example")),
        (b"StartTLS", Command(Verb.STARTTLS, "starttls", "")),
        (b"BDAT 100 LAST", Command(Verb.BDAT, "bdat", "100 LAST")),
        (b"XYZZY plugh", Command(None, "xyzzy", "plugh")),
        (b"AUTH PLAIN AGFiYwBkZWY=", Command(Verb.AUTH, "auth", "PLAIN AGFiYwBkZWY=")),
        (b"HELP\tme", Command(None, "help\tme", "")),
        ("RCPT TO:<ü@ö.example>".encode(), Command(Verb.RCPT, "rcpt", "TO:<ü@ö.example>")),
    ],
)
def test_parse_command(line: bytes, command: Command) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize("line", sorted(commands._BARE_COMMANDS))
def test_bare_command_shortcut_agrees_with_the_parser(line: bytes) -> None:
    # A trailing space takes the general path; the shared Command must equal its result.
    assert parse_command(line) == parse_command(line + b" ")
    assert parse_command(line).argument == ""


@pytest.mark.parametrize("verb", list(Verb))
def test_every_verb_is_recognised(verb: Verb) -> None:
    assert verb.value == verb.name.lower()
    assert parse_command(verb.name.encode()).verb is verb


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"NOOP\x00", CONTROL),
        (b"MAIL FROM:<a@b>\rRCPT TO:<c@d>", CONTROL),
        (b"NOOP\n", CONTROL),
        (b"NOOP\x1b[31m", CONTROL),
        (b"NOOP\x7f", CONTROL),
        (b"NOOP \xff", NOT_UTF8),
        (b"NOOP \xc3", NOT_UTF8),
        (b"", EMPTY),
        (b"   ", EMPTY),
        (b"\t", EMPTY),
    ],
)
def test_parse_command_errors(line: bytes, reply: Reply) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_command(line)
    assert exc.value.reply == reply


# --- Address -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (Address("a", "b.example"), "a@b.example"),
        (Address("first.last", "b.example"), "first.last@b.example"),
        (Address("with space", "b.example"), '"with space"@b.example'),
        (Address('q"uo\\te', "b.example"), '"q\\"uo\\\\te"@b.example'),
        (Address("", "b.example"), '""@b.example'),
        (Address("a..b", "b.example"), '"a..b"@b.example'),
        (Address(".a", "b.example"), '".a"@b.example'),
        (Address("Postmaster", ""), "Postmaster"),
        (Address("ü", "ö.example"), "ü@ö.example"),
    ],
)
def test_address_str(address: Address, text: str) -> None:
    assert str(address) == text


def test_address_properties() -> None:
    assert Address("a", "[192.0.2.1]").is_address_literal
    assert not Address("a", "b.example").is_address_literal
    assert Address("ü", "b.example").needs_smtputf8
    assert Address("a", "bücher.example").needs_smtputf8
    assert not Address("a", "b.example").needs_smtputf8


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (Address("a", "B.Example"), Address("a", "b.example"), True),
        (Address("A", "b.example"), Address("a", "b.example"), False),
        (Address("a", "Bücher.example"), Address("a", "xn--bcher-kva.example"), True),
        (Address("a", "bücher.example"), Address("a", "XN--BCHER-KVA.example"), True),
    ],
)
def test_address_key(one: Address, other: Address, same: bool) -> None:
    assert (one.key() == other.key()) is same


# --- MAIL FROM -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "sender"),
    [
        ("FROM:<a@b.example>", Address("a", "b.example")),
        ("from:<a@b.example>", Address("a", "b.example")),
        ("From: <a@b.example>", Address("a", "b.example")),
        ("FROM:<>", None),
        ("FROM:a@b.example", Address("a", "b.example")),
        ("FROM:<First.Last+tag@Sub.B-c.example>", Address("First.Last+tag", "Sub.B-c.example")),
        ('FROM:<"john doe"@b.example>', Address("john doe", "b.example")),
        ('FROM:<"a\\"b\\\\c"@b.example>', Address('a"b\\c', "b.example")),
        ('FROM:<"<>@"@b.example>', Address("<>@", "b.example")),
        ("FROM:<@relay.example,@r2.example:a@b.example>", Address("a", "b.example")),
        ("FROM:<@relay.example:a@b.example>", Address("a", "b.example")),
        ("FROM:<a@[192.0.2.1]>", Address("a", "[192.0.2.1]")),
        ("FROM:<a@[IPv6:2001:db8::1]>", Address("a", "[IPv6:2001:db8::1]")),
        ("FROM:<a@[ipv6:::ffff:192.0.2.1]>", Address("a", "[ipv6:::ffff:192.0.2.1]")),
        ("FROM:<" + "l" * 64 + "@b.example>", Address("l" * 64, "b.example")),
        ("FROM:<a@" + "d" * 63 + ".example>", Address("a", "d" * 63 + ".example")),
    ],
)
def test_mail_from_paths(argument: str, sender: Address | None) -> None:
    assert parse_mail_from(argument) == MailFrom(sender=sender)


@pytest.mark.parametrize(
    "argument",
    [
        "",
        "FROM",
        "FROM:",
        "FROM: ",
        "TO:<a@b.example>",
        "FRM:<a@b.example>",
        "<a@b.example>",
        "FROM:<a@b.example",
        "FROM:<a@b.example>SIZE=10",
        "FROM:<<a@b.example>>",
        'FROM:<"unterminated@b.example>',
    ],
)
def test_mail_from_syntax_errors(argument: str) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_mail_from(argument)
    assert exc.value.reply == MAIL_SYNTAX


@pytest.mark.parametrize(
    "argument",
    [
        "FROM:<a>",
        "FROM:<Postmaster>",
        "FROM:<@b.example>",
        "FROM:<a@>",
        "FROM:<a@@b.example>",
        "FROM:<.a@b.example>",
        "FROM:<a.@b.example>",
        "FROM:<a..b@b.example>",
        "FROM:<a b@b.example>",
        "FROM:<a(b)@b.example>",
        'FROM:<"a"b@b.example>',
        "FROM:<a@-b.example>",
        "FROM:<a@b-.example>",
        "FROM:<a@b..example>",
        "FROM:<a@.b.example>",
        "FROM:<a@b.example.>",
        "FROM:<a@b_c.example>",
        "FROM:<a@[192.0.2.256]>",
        "FROM:<a@[192.0.2]>",
        "FROM:<a@[IPv6:2001:db8::g]>",
        "FROM:<a@[IPv6:fe80::1%eth0]>",
        "FROM:<a@[2001:db8::1]>",
        "FROM:<a@[]>",
        "FROM:<a@[x-tag:abc]>",
        "FROM:<" + "l" * 65 + "@b.example>",
        "FROM:<a@" + "d" * 64 + ".example>",
        "FROM:<a@b." + "d" * 64 + ".example>",
        "FROM:<@relay.example a@b.example>",
        "FROM:<@relay.example>",
        "FROM:<@-bad:a@b.example>",
        "FROM:<relay.example:a@b.example>",
        "FROM:<a\u0085b@b.example> SMTPUTF8",
        "FROM:<a@b\u00a0c.example> SMTPUTF8",
    ],
)
def test_mail_from_bad_address_is_553_517(argument: str) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_mail_from(argument)
    assert code_of(exc) == (553, "5.1.7")
    assert exc.value.reply.text.startswith("Bad sender address syntax: ")


def test_path_longer_than_256_octets_is_refused() -> None:
    local = "l" * 60
    domain = ".".join(["d" * 60] * 3) + ".example"  # 191 octets
    ok = f"FROM:<{local}@{domain}>"
    assert parse_mail_from(ok).sender == Address(local, domain)
    route = "@" + "r" * 60 + ".example:"
    too_long = [f"FROM:<{route}{local}@{domain}>", "FROM:<a@" + ".".join(["d" * 60] * 5) + ">"]
    for argument in too_long:
        with pytest.raises(ClientProtocolError) as exc:
            parse_mail_from(argument)
        assert exc.value.reply == Reply(501, "Path too long", "5.5.4")


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        (
            "FROM:<a@b.example> SIZE=1000",
            MailFrom(Address("a", "b.example"), size=1000, params={"SIZE": "1000"}),
        ),
        (
            "FROM:<a@b.example> body=8bitmime",
            MailFrom(Address("a", "b.example"), body="8BITMIME", params={"BODY": "8bitmime"}),
        ),
        (
            "FROM:<a@b.example> BODY=7BIT",
            MailFrom(Address("a", "b.example"), body="7BIT", params={"BODY": "7BIT"}),
        ),
        (
            "FROM:<> SMTPUTF8  size=0",
            MailFrom(None, size=0, smtputf8=True, params={"SMTPUTF8": None, "SIZE": "0"}),
        ),
        (
            "FROM:a@b.example SIZE=5",
            MailFrom(Address("a", "b.example"), size=5, params={"SIZE": "5"}),
        ),
        (
            "FROM:<ü@bücher.example> SMTPUTF8",
            MailFrom(Address("ü", "bücher.example"), smtputf8=True, params={"SMTPUTF8": None}),
        ),
        (
            'FROM:<"ü x"@b.example> SMTPUTF8',
            MailFrom(Address("ü x", "b.example"), smtputf8=True, params={"SMTPUTF8": None}),
        ),
    ],
)
def test_mail_from_params(argument: str, expected: MailFrom) -> None:
    assert parse_mail_from(argument) == expected


def test_extra_params_are_kept_unchecked() -> None:
    mail = parse_mail_from("FROM:<a@b.example> AUTH=<> RET=HDRS", extra_params={"AUTH", "RET"})
    assert mail.params == {"AUTH": "<>", "RET": "HDRS"}


def test_mail_from_is_unhashable_but_comparable() -> None:
    mail = parse_mail_from("FROM:<a@b.example>")
    assert mail == MailFrom(Address("a", "b.example"))
    with pytest.raises(TypeError):
        hash(mail)


@pytest.mark.parametrize(
    ("argument", "kwargs", "reply"),
    [
        ("FROM:<a@b.example> SIZE", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SIZE=", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SIZE=-1", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SIZE=1k", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SIZE=" + "9" * 21, {}, (501, "5.5.4")),
        ("FROM:<a@b.example> BODY=BINARYMIME", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> BODY", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> BODY=8BITMIME", {"eight_bit_mime": False}, (555, "5.5.4")),
        ("FROM:<a@b.example> SMTPUTF8", {"smtputf8": False}, (555, "5.5.4")),
        ("FROM:<a@b.example> SMTPUTF8=yes", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SIZE=1 size=2", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> =x", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> -X=1", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> X=a=b", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SIZE=1\tBODY=7BIT", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> SMTPUTF8 X=a\u2028b", {}, (501, "5.5.4")),
        ("FROM:<a@b.example> XFOO=1", {}, (555, "5.5.4")),
        # RFC 6531 §3.7.4.1: non-ASCII needs SMTPUTF8 in this MAIL command.
        ("FROM:<ü@b.example>", {}, (553, "5.6.7")),
        ("FROM:<a@bücher.example>", {}, (553, "5.6.7")),
        ("FROM:<ü@b.example> SMTPUTF8", {"smtputf8": False}, (555, "5.5.4")),
    ],
)
def test_mail_from_param_errors(
    argument: str, kwargs: dict[str, Any], reply: tuple[int, str]
) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_mail_from(argument, **kwargs)
    assert code_of(exc) == reply


def test_unsupported_parameter_reply_names_it() -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_mail_from("FROM:<a@b.example> xfoo=1")
    assert exc.value.reply == Reply(555, "Unsupported parameter: XFOO", "5.5.4")


# --- RCPT TO -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "recipient"),
    [
        ("TO:<a@b.example>", Address("a", "b.example")),
        ("to: <a@b.example>", Address("a", "b.example")),
        ("TO:a@b.example", Address("a", "b.example")),
        ("TO:<Postmaster>", Address("Postmaster", "")),
        ("TO:<postmaster>", Address("postmaster", "")),
        ("TO:<POSTMASTER>", Address("POSTMASTER", "")),
        ("TO:<postmaster@b.example>", Address("postmaster", "b.example")),
        ("TO:<@r.example:a@b.example>", Address("a", "b.example")),
        ('TO:<"a b"@[IPv6:::1]>', Address("a b", "[IPv6:::1]")),
        ("TO:<ü@bücher.example>", Address("ü", "bücher.example")),
    ],
)
def test_rcpt_to(argument: str, recipient: Address) -> None:
    assert parse_rcpt_to(argument) == RcptTo(recipient)


@pytest.mark.parametrize(
    ("argument", "kwargs", "reply"),
    [
        ("", {}, RCPT_SYNTAX),
        ("TO", {}, RCPT_SYNTAX),
        ("TO:", {}, RCPT_SYNTAX),
        ("FROM:<a@b.example>", {}, RCPT_SYNTAX),
        ("TO:<a@b.example", {}, RCPT_SYNTAX),
        ("TO:<a@b.example> NOTIFY=NEVER", {}, Reply(555, "Unsupported parameter: NOTIFY", "5.5.4")),
        ("TO:<ü@b.example>", {"smtputf8_allowed": False}, None),
    ],
)
def test_rcpt_to_errors(argument: str, kwargs: dict[str, Any], reply: Reply | None) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_rcpt_to(argument, **kwargs)
    if reply is None:
        assert code_of(exc) == (553, "5.6.7")
        assert exc.value.reply.text.endswith("requires SMTPUTF8")
    else:
        assert exc.value.reply == reply


@pytest.mark.parametrize(
    "argument",
    ["TO:<>", "TO:<Postmaster2>", 'TO:<"Postmaster">', "TO:<a@b..example>", "TO:<a@[1.2.3]>"],
)
def test_rcpt_bad_address_is_553_513(argument: str) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_rcpt_to(argument)
    assert code_of(exc) == (553, "5.1.3")
    assert exc.value.reply.text.startswith("Bad address syntax: ")


def test_rcpt_extra_params() -> None:
    rcpt = parse_rcpt_to("TO:<a@b.example> notify=SUCCESS,FAILURE", extra_params={"NOTIFY"})
    assert rcpt.params == {"NOTIFY": "SUCCESS,FAILURE"}


_atext = st.text(alphabet=st.sampled_from("abcXYZ019!#$%&'*+-/=?^_`{|}~"), min_size=1, max_size=8)


@given(
    local=st.one_of(
        st.lists(_atext, min_size=1, max_size=3).map(".".join),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    ),
    domain=st.sampled_from(["b.example", "[192.0.2.7]", "[IPv6:2001:db8::7]", "x"]),
)
def test_str_of_parsed_address_parses_back(local: str, domain: str) -> None:
    address = Address(local, domain)
    assert parse_rcpt_to(f"TO:<{address}>").recipient == address


_path_text = st.text(
    alphabet=st.sampled_from('aZ09.-_@<>:"\\ []!~=é'), min_size=0, max_size=40
) | st.builds(
    lambda local, labels, pad: f"<{local}@{'.'.join(labels)}>" + pad,
    st.text(alphabet=st.sampled_from("aZ09.-_!~"), min_size=0, max_size=70),
    st.lists(st.text(alphabet=st.sampled_from("aZ09-"), min_size=0, max_size=70), max_size=5),
    st.sampled_from(["", " ", " SIZE=1", ">"]),
)


@given(
    keyword=st.sampled_from(["FROM:", "from:", "TO:", "To:", "FROM: ", "TO:  "]), path=_path_text
)
def test_everyday_path_shortcut_agrees_with_the_general_parser(keyword: str, path: str) -> None:
    # parse_mail_from/parse_rcpt_to take a one-regex shortcut for the everyday
    # form; whatever it accepts, the general parser must accept the same way.
    argument = keyword + path
    shortcut = commands._simple_path(argument, keyword.strip().upper())
    if shortcut is None:
        return
    if keyword.upper().startswith("FROM"):
        assert commands._general_mail_from(argument, True, True, ()) == MailFrom(sender=shortcut)
    else:
        assert commands._general_rcpt_to(argument, True, ()) == RcptTo(recipient=shortcut)


@pytest.mark.parametrize(
    ("argument", "accepted"),
    [
        ("FROM:<" + "a" * 64 + "@b.example>", True),
        ("FROM:<" + "a" * 65 + "@b.example>", False),  # RFC 5321 §4.5.3.1.1
        ("FROM:<a@" + "b" * 63 + ".example>", True),
        ("FROM:<a@" + "b" * 64 + ".example>", False),  # a label over 63 octets
        ("FROM:<" + "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ">", False),  # path > 256
    ],
)
def test_shortcut_keeps_the_length_limits(argument: str, accepted: bool) -> None:
    if accepted:
        assert parse_mail_from(argument).sender is not None
    else:
        with pytest.raises(ClientProtocolError):
            parse_mail_from(argument)


# --- HELO / EHLO ---------------------------------------------------------------


@given(
    name=st.text(alphabet=st.sampled_from("aZ09-_.[]:@ é"), max_size=30)
    | st.lists(
        st.text(alphabet=st.sampled_from("aZ09-_"), min_size=0, max_size=70), max_size=5
    ).map(".".join)
)
def test_everyday_helo_shortcut_agrees_with_the_general_check(name: str) -> None:
    # parse_helo_name takes a one-regex shortcut for plain hostnames; whatever
    # it accepts, the general check accepts too.
    if len(name) <= 255 and commands._SIMPLE_HELO.match(name):
        assert commands._general_helo_name(name, strict=True) == name


@pytest.mark.parametrize(
    "name",
    [
        "client.example",
        "Client.Example",
        "localhost",
        "WIN_PC-01",
        "mail_relay.corp.example",
        "a",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "[ipv6:::1]",
        "x" * 63 + ".example",
    ],
)
def test_helo_name_strict_accepts(name: str) -> None:
    assert parse_helo_name(name) == name
    assert parse_helo_name(name, strict=False) == name


@pytest.mark.parametrize(
    "name",
    [
        "-bad.example",
        "bad-.example",
        "a..b",
        ".a",
        "a.",
        "x" * 64 + ".example",
        "[192.0.2.300]",
        "[192.0.2.1",
        "[IPv6:zz::1]",
        "[hostname]",
        "host!name",
        "bücher.example",
    ],
)
def test_helo_name_strict_refuses(name: str) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_helo_name(name)
    assert exc.value.reply == HELO_SYNTAX


@pytest.mark.parametrize("name", ["host!name", "a..b", "[hostname]", "-x-", "x.", "a%b#c"])
def test_helo_name_lenient_accepts(name: str) -> None:
    assert parse_helo_name(name, strict=False) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "two words",
        "tab\there",
        "a<b",
        "a>b",
        "a(b)",
        'a"b',
        "a\\b",
        "a;b",
        "a,b",
        "user@host",
        "[a]b]",
        "[]",
        "bücher.example",
        "x" * 256,
        "nul\x00",
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_helo_name_always_refuses(name: str, strict: bool) -> None:
    with pytest.raises(ClientProtocolError) as exc:
        parse_helo_name(name, strict=strict)
    assert exc.value.reply == HELO_SYNTAX
