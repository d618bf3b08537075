"""Reply: validation and wire format (RFC 5321 §4.2, RFC 3463)."""

from __future__ import annotations

import pytest

from mailio_trio.protocol import ClientProtocolError, Reply


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (Reply(250, "OK", "2.0.0"), b"250 2.0.0 OK\r\n"),
        (Reply(354, "End data with <CR><LF>.<CR><LF>"), b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (
            Reply(250, "mx.example\nPIPELINING\nSMTPUTF8", "2.0.0"),
            b"250-2.0.0 mx.example\r\n250-2.0.0 PIPELINING\r\n250 2.0.0 SMTPUTF8\r\n",
        ),
        (Reply(550, "No", "5.7.1"), b"550 5.7.1 No\r\n"),
    ],
)
def test_to_bytes(reply: Reply, wire: bytes) -> None:
    assert reply.to_bytes() == wire


def test_to_bytes_without_enhanced() -> None:
    assert Reply(250, "a\nb", "2.0.0").to_bytes(enhanced=False) == b"250-a\r\n250 b\r\n"


def test_str_and_properties() -> None:
    reply = Reply(451, "Try later", "4.3.0")
    assert str(reply) == "451 4.3.0 Try later"
    assert reply.lines == ["Try later"]
    assert not reply.is_positive
    assert not reply.is_permanent
    assert Reply(250, "OK").is_positive
    assert Reply(554, "No").is_permanent


@pytest.mark.parametrize(
    ("code", "text", "enhanced"),
    [
        (199, "x", None),
        (600, "x", None),
        (250, "a\r\n250 forged", None),
        (250, "x", "5.0.0"),
        (550, "x", "2.0.0"),
        (250, "x", "2.0"),
        (250, "x", "2.0.0000"),
        (250, "x", "3.0.0"),
    ],
)
def test_invalid_replies(code: int, text: str, enhanced: str | None) -> None:
    with pytest.raises(ValueError, match=r"."):
        Reply(code, text, enhanced)


def test_client_protocol_error_carries_reply() -> None:
    reply = Reply(501, "Syntax error", "5.5.4")
    err = ClientProtocolError(reply)
    assert err.reply is reply
    assert str(err) == "501 5.5.4 Syntax error"
    assert str(ClientProtocolError(Reply(500, "No"))) == "500 No"
