"""mail_parameters: SIZE, BODY=8BITMIME and SMTPUTF8 on MAIL FROM (RFC 1870, 6152, 6531)."""

from __future__ import annotations

import pytest

from mailio_trio.protocol import Reply, mail_parameters

ALL = {"SIZE": "1000", "8BITMIME": "", "SMTPUTF8": "", "PIPELINING": ""}


@pytest.mark.parametrize(
    ("extensions", "size", "eight_bit", "smtputf8", "params"),
    [
        ({}, 10, False, False, []),
        ({}, 10, True, False, []),  # 8-bit without 8BITMIME: sent anyway, unlabelled
        (ALL, 10, False, False, ["SIZE=10"]),
        (ALL, 10, True, False, ["SIZE=10", "BODY=8BITMIME"]),
        (ALL, 10, True, True, ["SIZE=10", "BODY=8BITMIME", "SMTPUTF8"]),
        (ALL, 1000, False, False, ["SIZE=1000"]),  # at the limit is within it
        ({"SIZE": ""}, 10**9, False, False, ["SIZE=1000000000"]),  # no limit announced
        ({"SIZE": "0"}, 10**9, False, False, ["SIZE=1000000000"]),  # RFC 1870 §4: none
        ({"SIZE": "big"}, 10**9, False, False, ["SIZE=1000000000"]),  # garbage: no limit
        ({"8BITMIME": ""}, 10, True, False, ["BODY=8BITMIME"]),
        ({"SMTPUTF8": ""}, 10, False, True, ["SMTPUTF8"]),
    ],
)
def test_parameters(
    extensions: dict[str, str], size: int, eight_bit: bool, smtputf8: bool, params: list[str]
) -> None:
    assert mail_parameters(extensions, size, eight_bit=eight_bit, smtputf8=smtputf8) == params


def test_smtputf8_needed_but_not_offered_is_refused() -> None:
    refusal = mail_parameters({"SIZE": "1"}, 10, eight_bit=False, smtputf8=True, server="mx.test")
    assert refusal == Reply(
        553, "message needs SMTPUTF8 (non-ASCII addresses), which mx.test does not offer", "5.6.7"
    )


def test_over_the_servers_size_is_refused() -> None:
    refusal = mail_parameters(ALL, 1001, eight_bit=False, smtputf8=False, server="mx.test")
    assert refusal == Reply(552, "message of 1001 octets exceeds mx.test's limit of 1000", "5.3.4")


def test_smtputf8_refusal_comes_before_size() -> None:
    refusal = mail_parameters({"SIZE": "1"}, 10, eight_bit=False, smtputf8=True)
    assert isinstance(refusal, Reply)
    assert (refusal.code, refusal.enhanced) == (553, "5.6.7")
    assert "the server does not offer" in refusal.text
