"""ReplyReader: server bytes in, Reply values out (RFC 5321 §4.2, RFC 2034).

The client and the test harness both read replies with it; these cases are
the checks the client made inside its network reads before the reader existed.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reply_strategies import chunked, replies

from mailio_trio.protocol import Need, Reply, ReplyReader, ServerProtocolError
from mailio_trio.protocol.replies import REPLY_LINE_LIMIT, REPLY_MAX_LINES


def drain(reader: ReplyReader) -> list[Reply]:
    replies: list[Reply] = []
    while (reply := reader.next_reply()) is not Need.DATA:
        assert isinstance(reply, Reply)
        replies.append(reply)
    return replies


def read(data: bytes) -> list[Reply]:
    reader = ReplyReader()
    reader.feed(data)
    return drain(reader)


@pytest.mark.parametrize(
    ("data", "replies"),
    [
        (b"250 OK\r\n", [Reply(250, "OK")]),
        (b"250 2.0.0 OK\r\n", [Reply(250, "OK", "2.0.0")]),
        (b"250 2.0.0\r\n", [Reply(250, "", "2.0.0")]),
        (b"250\r\n", [Reply(250, "")]),
        (b"250 \r\n", [Reply(250, "")]),
        (
            b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
            [Reply(250, "mx.example\nPIPELINING\nSIZE 1000")],
        ),
        # RFC 2034 §4: the code is repeated on every line; the text shows it once.
        (b"550-5.1.1 No such\r\n550 5.1.1 user\r\n", [Reply(550, "No such\nuser", "5.1.1")]),
        # A later line without the repeat keeps its text whole.
        (b"250-2.0.0 a\r\n250 b\r\n", [Reply(250, "a\nb", "2.0.0")]),
        # The enhanced code's class must be the reply's; else it is just text.
        (b"250 5.0.0 odd\r\n", [Reply(250, "5.0.0 odd")]),
        (b"354 2.0.0 go ahead\r\n", [Reply(354, "2.0.0 go ahead")]),
        (b"250 2.0 short\r\n", [Reply(250, "2.0 short")]),
        # Line ends: bare LF is taken, extra CRs before it are noise, a CR inside is a space.
        (b"250 OK\n", [Reply(250, "OK")]),
        (b"250 OK\r\r\n", [Reply(250, "OK")]),
        (b"250 a\rb\r\n", [Reply(250, "a b")]),
        (b"250 \xff\r\n", [Reply(250, "\ufffd")]),
        ("250 grüße\r\n".encode(), [Reply(250, "grüße")]),
        # Several replies in one chunk (pipelining), and nothing yet.
        (b"250 a\r\n550 5.1.1 b\r\n", [Reply(250, "a"), Reply(550, "b", "5.1.1")]),
        (b"250-a\r\n", []),
        (b"250 OK", []),
        (b"", []),
    ],
)
def test_replies(data: bytes, replies: list[Reply]) -> None:
    assert read(data) == replies


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello\r\n", "sent a malformed reply: 'hello'"),
        (b"25\r\n", "sent a malformed reply: '25'"),
        (b"250x\r\n", "sent a malformed reply: '250x'"),
        (b"\r\n", "sent a malformed reply: ''"),
        # RFC 5321 §4.2: the code is three ASCII digits; other digits are not a code.
        ("٢٥٠ OK\r\n".encode(), "sent a malformed reply: '٢٥٠ OK'"),
        ("²50 OK\r\n".encode(), "sent a malformed reply: '²50 OK'"),
        (b"250-a\r\n251 b\r\n", "changed the code inside a reply"),
        (b"199 x\r\n", "sent reply code 199"),
        (b"600 x\r\n", "sent reply code 600"),
        (b"099-x\r\n099 y\r\n", "sent reply code 99"),
        (b"250 " + b"x" * REPLY_LINE_LIMIT + b"\r\n", f"sent a reply line over {REPLY_LINE_LIMIT}"),
        (b"250-x\r\n" * (REPLY_MAX_LINES + 1), f"sent a reply over {REPLY_MAX_LINES} lines"),
    ],
)
def test_garbage_is_an_error(data: bytes, message: str) -> None:
    reader = ReplyReader()
    reader.feed(data)
    with pytest.raises(ServerProtocolError) as info:
        drain(reader)
    assert str(info.value) == message


def test_malformed_line_is_quoted_only_in_part() -> None:
    reader = ReplyReader()
    reader.feed(b"x" * 200 + b"\r\n")
    with pytest.raises(ServerProtocolError) as info:
        reader.next_reply()
    assert str(info.value) == f"sent a malformed reply: {'x' * 80!r}"


def test_line_limit_counts_the_terminator() -> None:
    fits = b"250 " + b"x" * (REPLY_LINE_LIMIT - 6) + b"\r\n"
    assert len(fits) == REPLY_LINE_LIMIT
    assert read(fits) == [Reply(250, "x" * (REPLY_LINE_LIMIT - 6))]
    assert (
        read(b"250-x\r\n" * (REPLY_MAX_LINES - 1) + b"250 x\r\n")[0].lines
        == ["x"] * REPLY_MAX_LINES
    )


def test_limits_are_parameters() -> None:
    reader = ReplyReader(line_limit=10, max_lines=2)
    reader.feed(b"250-a\r\n250-b\r\n250 c\r\n")
    with pytest.raises(ServerProtocolError, match="over 2 lines"):
        reader.next_reply()
    reader.feed(b"250 0123456789\r\n")
    with pytest.raises(ServerProtocolError, match="line over 10"):
        reader.next_reply()


def test_an_error_forgets_the_reply_and_reading_goes_on() -> None:
    reader = ReplyReader()
    reader.feed(b"250-a\r\n251 b\r\n220 next\r\n")
    with pytest.raises(ServerProtocolError):
        reader.next_reply()
    assert reader.next_reply() == Reply(220, "next")


def test_partial_reply_waits_across_feeds() -> None:
    reader = ReplyReader()
    reader.feed(b"250-mx\r\n25")
    assert reader.next_reply() is Need.DATA
    assert reader.has_buffered
    reader.feed(b"0 2.0.0 OK\r\n")
    assert reader.next_reply() == Reply(250, "mx\n2.0.0 OK")
    assert not reader.has_buffered


def test_take_buffered_drops_what_came_before_tls() -> None:
    """RFC 3207 §4.2: a reply injected behind the 220 is not read after the handshake."""
    reader = ReplyReader()
    reader.feed(b"220 2.0.0 Ready\r\n250 forged\r\n250-par")
    assert reader.next_reply() == Reply(220, "Ready", "2.0.0")
    assert reader.has_buffered
    assert reader.take_buffered() == b"250 forged\r\n250-par"
    assert (reader.has_buffered, reader.next_reply()) == (False, Need.DATA)


def test_take_buffered_forgets_an_unfinished_reply() -> None:
    reader = ReplyReader()
    reader.feed(b"250-a\r\n")
    assert reader.next_reply() is Need.DATA
    assert reader.has_buffered
    assert reader.take_buffered() == b""
    reader.feed(b"221 bye\r\n")
    assert reader.next_reply() == Reply(221, "bye")


# -- properties ---------------------------------------------------------------


@given(replies())
def test_to_bytes_round_trips(reply: Reply) -> None:
    assert read(reply.to_bytes()) == [reply]


@given(st.lists(replies(), min_size=1, max_size=4), st.lists(st.integers(0, 2000), max_size=30))
def test_any_chunking_gives_the_same_replies(batch: list[Reply], cuts: list[int]) -> None:
    data = b"".join(reply.to_bytes() for reply in batch)
    reader = ReplyReader()
    got: list[Reply] = []
    for chunk in chunked(data, cuts):
        reader.feed(chunk)
        got += drain(reader)
    assert got == batch
    assert not reader.has_buffered


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
def test_any_bytes_give_replies_or_protocol_errors(data: bytes, cuts: list[int]) -> None:
    """Hostile input: never another exception, and chunking never changes the outcome."""

    def outcome(chunks: list[bytes]) -> list[Reply | str]:
        reader = ReplyReader(line_limit=64, max_lines=4)
        results: list[Reply | str] = []
        for chunk in chunks:
            reader.feed(chunk)
            while True:
                try:
                    reply = reader.next_reply()
                except ServerProtocolError as exc:
                    results.append(str(exc))
                    continue
                if reply is Need.DATA:
                    break
                assert isinstance(reply, Reply)
                results.append(reply)
        return results

    assert outcome(chunked(data, cuts)) == outcome([data])
