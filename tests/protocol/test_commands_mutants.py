"""protocol/commands.py's edges, as mutation testing (nox -s mutants) asked for them.

Each test pins what a client sees: the exact reply (code, enhanced code and
text, all of which go on the wire) or the value parsed. The mutants that no
caller can tell apart are listed in docs/testing-the-project.md.
"""

from __future__ import annotations

import pytest

from mailio_trio.protocol import (
    Address,
    ClientProtocolError,
    Command,
    Reply,
    Verb,
    parse_command,
    parse_helo_name,
    parse_mail_from,
    parse_rcpt_to,
)

MAIL_SYNTAX = Reply(501, "Syntax: MAIL FROM:<address>", "5.5.4")
HELO_SYNTAX = Reply(501, "Syntax: EHLO hostname", "5.5.4")
PARAM_SYNTAX = Reply(501, "Syntax error in parameters", "5.5.4")
PATH_TOO_LONG = Reply(501, "Path too long", "5.5.4")


def sender_refused(detail: str) -> Reply:
    return Reply(553, f"Bad sender address syntax: {detail}", "5.1.7")


def recipient_refused(detail: str) -> Reply:
    return Reply(553, f"Bad address syntax: {detail}", "5.1.3")


def mail_reply(argument: str, *, smtputf8: bool = True, eight_bit_mime: bool = True) -> Reply:
    with pytest.raises(ClientProtocolError) as exc:
        parse_mail_from(argument, smtputf8=smtputf8, eight_bit_mime=eight_bit_mime)
    return exc.value.reply


def rcpt_reply(argument: str) -> Reply:
    with pytest.raises(ClientProtocolError) as exc:
        parse_rcpt_to(argument)
    return exc.value.reply


# --- parse_command ---------------------------------------------------------------


def test_only_space_and_tab_are_stripped_from_a_command_line() -> None:
    # str.strip() without arguments would also take Unicode spaces (U+3000,
    # NBSP), turning "\u3000NOOP" into a NOOP the client never sent.
    assert parse_command("\u3000NOOP".encode()) == Command(None, "\u3000noop", "")
    assert parse_command("MAIL FROM:<a@b>\u00a0".encode()).argument == "FROM:<a@b>\u00a0"
    # ...and only those two characters: an argument ending in "X" keeps it.
    assert parse_command(b"HELO X") == Command(Verb.HELO, "helo", "X")
    assert parse_command(b"XHELO X\t ") == Command(None, "xhelo", "X")


# --- Address.key -----------------------------------------------------------------


def test_a_domain_the_idna_codec_cannot_convert_keys_as_sent() -> None:
    # A label over 63 octets makes Python's IDNA codec raise; key() must not.
    domain = "ü" * 64 + ".example"
    assert Address("a", domain).key() == ("a", domain)


# --- addresses through the general parser ------------------------------------------


def test_an_address_literal_must_end_in_a_bracket() -> None:
    # "[1.2.3.45" would be a valid literal if the "]" were not checked.
    assert rcpt_reply("TO:<a@[1.2.3.45>") == recipient_refused("invalid address literal")
    assert mail_reply("FROM:<a@[1.2.3.45>") == sender_refused("invalid address literal")


def test_every_label_of_a_domain_is_checked() -> None:
    # The first label is fine; the second is not (the underscore also keeps
    # the address off the fast path).
    assert rcpt_reply("TO:<a@example.bad_label>") == recipient_refused("invalid domain")
    assert mail_reply("FROM:<a@example.bad_label>") == sender_refused("invalid domain")
    # The same after a U-label (RFC 6531), which is checked another way.
    assert rcpt_reply("TO:<a@ü.bad_label>") == recipient_refused("invalid domain")


def test_a_63_octet_label_is_allowed_on_the_general_path() -> None:
    label = "a" * 63
    # SIZE keeps it off the fast path, which checks its own label length.
    parsed = parse_mail_from(f"FROM:<a@{label}.example> SIZE=1")
    assert parsed.sender == Address("a", f"{label}.example")
    assert mail_reply(f"FROM:<a@{label}a.example> SIZE=1") == sender_refused("invalid domain")


def test_a_64_octet_local_part_is_allowed_on_the_general_path() -> None:
    local = "a" * 64
    parsed = parse_mail_from(f"FROM:<{local}@b.example> SIZE=1")
    assert parsed.sender == Address(local, "b.example")


@pytest.mark.parametrize("gap", ["", " "])
def test_a_path_is_at_most_256_octets_with_its_brackets(gap: str) -> None:
    # "a@" + 252-octet domain = 254 octets, 256 with "<>"; one more is too long.
    # Without a gap after the colon the fast path decides, with one the general.
    domain = ".".join(["a" * 63] * 3 + ["a" * 60])
    assert len(f"<a@{domain}>") == 256
    assert parse_mail_from(f"FROM:{gap}<a@{domain}>").sender == Address("a", domain)
    assert parse_rcpt_to(f"TO:{gap}<a@{domain}>").recipient == Address("a", domain)
    assert mail_reply(f"FROM:{gap}<ab@{domain}>") == PATH_TOO_LONG
    assert rcpt_reply(f"TO:{gap}<ab@{domain}>") == PATH_TOO_LONG


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ('"a\tb"@b.example', "unterminated or invalid quoted local part"),
        ("a..b@b.example", "invalid local part"),
        ("a\u0085b@b.example", "invalid local part"),  # RFC 6531 atext, but a C1 control
        # The last "@" ends the local part, so it is the local part that is refused.
        ("a@b@b.example", "invalid local part"),
        ("a" * 65 + "@b.example", "local part longer than 64 octets"),
        ("a", "missing domain"),
        ("a@[1.2.3.999]", "invalid address literal"),
        ("a@-b.example", "invalid domain"),
        ("@b.example", "invalid source route"),
        ("@b_c.example:a@b.example", "invalid source route"),
    ],
)
def test_address_refusals_say_what_was_wrong(path: str, detail: str) -> None:
    assert mail_reply(f"FROM:<{path}>") == sender_refused(detail)
    assert rcpt_reply(f"TO:<{path}>") == recipient_refused(detail)


def test_the_null_path_is_refused_for_a_recipient() -> None:
    assert rcpt_reply("TO:<>") == recipient_refused("null path")


def test_a_source_route_ends_at_its_first_colon() -> None:
    # The mailbox after the route may hold a colon in its quoted local part.
    parsed = parse_rcpt_to('TO:<@relay.example:"a:b"@b.example>')
    assert parsed.recipient == Address("a:b", "b.example")


def test_a_source_route_may_name_utf8_domains() -> None:
    parsed = parse_rcpt_to("TO:<@ü.example,@relay.example:a@b.example>")
    assert parsed.recipient == Address("a", "b.example")


# --- the keyword and the parameters -----------------------------------------------------


def test_the_keyword_must_be_spelt_with_its_colon() -> None:
    # Same length as "FROM:" and "TO:", so only the comparison can refuse it.
    assert mail_reply("FROM <a@b.example>") == MAIL_SYNTAX
    with pytest.raises(ClientProtocolError) as exc:
        parse_rcpt_to("TO <a@b.example>")
    assert exc.value.reply == Reply(501, "Syntax: RCPT TO:<address>", "5.5.4")


def test_only_spaces_are_skipped_after_the_keyword() -> None:
    assert parse_mail_from("FROM:  <a@b.example>").sender == Address("a", "b.example")
    assert mail_reply("FROM:\t<a@b.example>") == MAIL_SYNTAX
    # A bare (bracket-less) path keeps its first letters, whatever they are.
    assert parse_mail_from("FROM:Xavier@b.example").sender == Address("Xavier", "b.example")


def test_only_spaces_separate_the_path_from_its_parameters() -> None:
    assert mail_reply("FROM:<a@b.example> \tSIZE=1") == PARAM_SYNTAX
    assert mail_reply("FROM:<a@b.example> \u3000SIZE=1") == PARAM_SYNTAX
    # An extension's keyword that starts or ends in "X" is kept whole.
    parsed = parse_mail_from("FROM:<a@b.example> XTRAX", extra_params={"XTRAX"})
    assert parsed.params == {"XTRAX": None}


@pytest.mark.parametrize(
    ("params", "kwargs", "reply"),
    [
        ("SIZE=ten", {}, Reply(501, "Bad value for parameter SIZE", "5.5.4")),
        ("BODY=9BIT", {}, Reply(501, "Bad value for parameter BODY", "5.5.4")),
        ("SMTPUTF8=yes", {}, Reply(501, "Bad value for parameter SMTPUTF8", "5.5.4")),
        ("SMTPUTF8", {"smtputf8": False}, Reply(555, "Unsupported parameter: SMTPUTF8", "5.5.4")),
        ("XFOO", {}, Reply(555, "Unsupported parameter: XFOO", "5.5.4")),
        (
            "BODY=8BITMIME",
            {"eight_bit_mime": False},
            Reply(555, "8BITMIME is not supported", "5.5.4"),
        ),
        ("SIZE=1=2", {}, PARAM_SYNTAX),
    ],
)
def test_parameter_refusals_name_the_parameter(
    params: str, kwargs: dict[str, bool], reply: Reply
) -> None:
    assert mail_reply(f"FROM:<a@b.example> {params}", **kwargs) == reply


def test_a_utf8_sender_without_smtputf8_is_told_so() -> None:
    assert mail_reply("FROM:<ü@b.example>") == Reply(
        553, "Sender address requires SMTPUTF8", "5.6.7"
    )


# --- HELO / EHLO ---------------------------------------------------------------


def test_a_helo_name_is_at_most_255_octets() -> None:
    name = ".".join(["a" * 63] * 4)  # 255 octets
    assert parse_helo_name(name) == name
    assert parse_helo_name(name, strict=False) == name
    with pytest.raises(ClientProtocolError) as exc:
        parse_helo_name(name + "a")
    assert exc.value.reply == HELO_SYNTAX
    # 256 octets in labels that are each fine: the total alone refuses it.
    longer = ".".join(["a" * 63] * 3 + ["a" * 62, "a"])
    assert len(longer) == 256
    with pytest.raises(ClientProtocolError) as exc:
        parse_helo_name(longer)
    assert exc.value.reply == HELO_SYNTAX
    with pytest.raises(ClientProtocolError) as exc:
        parse_helo_name(name + "a", strict=False)
    assert exc.value.reply == HELO_SYNTAX


def test_a_lenient_helo_literal_needs_both_brackets_and_something_inside() -> None:
    assert parse_helo_name("[x]", strict=False) == "[x]"
    for name in ("[ab", "ab]", "[]"):
        with pytest.raises(ClientProtocolError) as exc:
            parse_helo_name(name, strict=False)
        assert exc.value.reply == HELO_SYNTAX
