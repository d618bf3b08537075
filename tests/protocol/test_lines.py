"""LineSplitter: framing of command lines, the length limit, take_buffered."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.protocol import LineSplitter, Need, OverlongLine


def drain(splitter: LineSplitter) -> list[bytes | OverlongLine]:
    lines: list[bytes | OverlongLine] = []
    while (line := splitter.next_line()) is not Need.DATA:
        lines.append(line)
    return lines


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"NOOP\r\n", [b"NOOP"]),
        (b"NOOP\n", [b"NOOP"]),
        (b"NOOP", []),
        (b"NOOP\r", []),
        (b"\r\n", [b""]),
        (b"A\r\nB\nC\r\n", [b"A", b"B", b"C"]),
        # Only one CR before the LF belongs to the terminator; others stay.
        (b"A\r\r\n", [b"A\r"]),
        (b"A\rB\r\n", [b"A\rB"]),
        (b"\x00\r\n", [b"\x00"]),
    ],
)
def test_lines(data: bytes, lines: list[bytes]) -> None:
    splitter = LineSplitter()
    splitter.feed(data)
    assert drain(splitter) == lines


@pytest.mark.parametrize(
    ("content", "overlong"),
    [
        # RFC 5321 §4.5.3.1.4: 510 octets + CRLF = 512.
        (b"x" * 510 + b"\r\n", False),
        (b"x" * 511 + b"\r\n", True),
        (b"x" * 511 + b"\n", False),
        (b"x" * 512 + b"\n", True),
    ],
)
def test_limit_includes_terminator(content: bytes, overlong: bool) -> None:
    splitter = LineSplitter(limit=512)
    splitter.feed(content + b"NOOP\r\n")
    first = splitter.next_line()
    if overlong:
        assert first == OverlongLine(length=len(content))
    else:
        assert first == content.rstrip(b"\r\n")
    assert splitter.next_line() == b"NOOP"


def test_overlong_line_between_good_lines_keeps_order() -> None:
    splitter = LineSplitter(limit=10)
    splitter.feed(b"A\r\nB\r\n" + b"y" * 30)
    splitter.feed(b"y" * 30)
    splitter.feed(b"yy\r\nC\r\n")
    assert drain(splitter) == [b"A", b"B", OverlongLine(length=64), b"C"]


def test_two_overlong_lines_in_a_row() -> None:
    splitter = LineSplitter(limit=10)
    splitter.feed(b"z" * 20)
    splitter.feed(b"\n" + b"w" * 20 + b"\nOK\n")
    assert drain(splitter) == [OverlongLine(length=21), OverlongLine(length=21), b"OK"]


def test_ten_megabyte_line_is_not_buffered() -> None:
    splitter = LineSplitter(limit=512)
    chunk = b"x" * 65536
    for _ in range(160):
        splitter.feed(chunk)
        assert splitter.next_line() is Need.DATA
        # Held only until the lines before it are out (a BDAT chunk may follow one).
        assert splitter.buffered_size <= 512
    splitter.feed(b"\r\nQUIT\r\n")
    assert drain(splitter) == [OverlongLine(length=160 * 65536 + 2), b"QUIT"]
    assert splitter.buffered_size == 0


def test_limit_can_be_raised_for_auth() -> None:
    splitter = LineSplitter(limit=512)
    splitter.limit = 12288  # RFC 4954 §4
    splitter.feed(b"a" * 5000 + b"\r\n")
    assert splitter.next_line() == b"a" * 5000


def test_take_buffered_drops_pipelined_plaintext() -> None:
    splitter = LineSplitter()
    splitter.feed(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRC")
    assert splitter.next_line() == b"STARTTLS"
    assert splitter.has_buffered
    dropped = splitter.take_buffered()
    assert (dropped, splitter.has_buffered) == (b"MAIL FROM:<evil@x>\r\nRC", False)
    assert splitter.next_line() is Need.DATA
    assert splitter.take_buffered() == b""


def test_take_buffered_resets_discarding() -> None:
    splitter = LineSplitter(limit=10)
    splitter.feed(b"q" * 50)
    assert splitter.next_line() is Need.DATA  # nothing before it: dropped now
    assert splitter.has_buffered
    assert splitter.take_buffered() == b""
    splitter.feed(b"EHLO x\r\n")
    assert drain(splitter) == [b"EHLO x"]


@pytest.mark.parametrize(
    ("data", "pending"),
    [(b"", False), (b"NOOP\r\n", True), (b"NO", True)],
)
def test_has_buffered(data: bytes, pending: bool) -> None:
    splitter = LineSplitter()
    splitter.feed(data)
    assert splitter.has_buffered is pending
    drain(splitter)
    assert splitter.has_buffered is (pending and not data.endswith(b"\n"))


_pieces = st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"bcdefgh", b"x" * 7])


@given(
    stream=st.lists(_pieces, max_size=50).map(b"".join),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    limit=st.integers(min_value=1, max_value=20),
)
def test_any_chunking_gives_the_same_lines(stream: bytes, cuts: list[int], limit: int) -> None:
    whole = LineSplitter(limit=limit)
    whole.feed(stream)
    expected = drain(whole)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0, *points, len(stream)]
    parts = LineSplitter(limit=limit)
    got: list[bytes | OverlongLine] = []
    for a, b in itertools.pairwise(bounds):
        parts.feed(stream[a:b])
        got.extend(drain(parts))
        assert parts.buffered_size < limit
    assert got == expected
    # A model: split at LF, drop one CR, length includes the terminator.
    model: list[bytes | OverlongLine] = []
    for raw in stream.split(b"\n")[:-1]:
        if len(raw) + 1 > limit:
            model.append(OverlongLine(length=len(raw) + 1))
        else:
            model.append(raw.removesuffix(b"\r"))
    assert got == model


def test_octets_after_a_line_are_kept_whole_even_if_too_long_for_a_line() -> None:
    # A BDAT chunk (RFC 3030) sent with its command: no line, however long.
    splitter = LineSplitter(limit=10)
    splitter.feed(b"BDAT 50\r\n" + b"c" * 50)
    assert splitter.next_line() == b"BDAT 50"
    assert splitter.take_buffered() == b"c" * 50


@given(
    payload=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_take_buffered_after_a_line_returns_the_rest(payload: bytes, cuts: list[int]) -> None:
    """Fed as the session feeds (only when no line is ready), the rest is intact."""
    stream = b"NOOP\r\nBDAT 1\r\n" + payload
    splitter = LineSplitter(limit=16)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in itertools.pairwise([0, *points, len(stream)])]
    fed = 0
    lines: list[bytes | OverlongLine] = []
    while len(lines) < 2:
        line = splitter.next_line()
        if line is Need.DATA:
            splitter.feed(pieces[fed])
            fed += 1
            continue
        lines.append(line)
    assert lines == [b"NOOP", b"BDAT 1"]
    rest = splitter.take_buffered() + b"".join(pieces[fed:])
    assert rest == payload
