"""BDAT (RFC 3030): the argument parser and the chunk reader, sans-I/O."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailio_trio.protocol import (
    BareLineEndings,
    Bdat,
    BdatSyntaxError,
    ChunkReader,
    DataReader,
    ProtocolUsageError,
    data_problem,
    dot_stuff,
    parse_bdat,
)


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("0", Bdat(0, last=False)),
        ("0 LAST", Bdat(0, last=True)),
        ("4096 last", Bdat(4096, last=True)),
        ("007", Bdat(7, last=False)),
        ("999999999999999999", Bdat(999_999_999_999_999_999, last=False)),
    ],
)
def test_parse_bdat(argument: str, expected: Bdat) -> None:
    assert parse_bdat(argument) == expected


@pytest.mark.parametrize(
    "argument",
    ["", "LAST", "x1", "+5", "-5", "0x10", "1e3", "1.5", "١٢", "5LAST", "1" * 19, "5\tLAST"],
)
def test_unreadable_size_leaves_the_chunk_unknown(argument: str) -> None:
    with pytest.raises(BdatSyntaxError) as info:
        parse_bdat(argument)
    assert info.value.size is None
    assert (info.value.reply.code, info.value.reply.enhanced) == (501, "5.5.4")


@pytest.mark.parametrize(
    ("argument", "size"), [("5 LASTX", 5), ("5 LAST x", 5), ("12 FIRST", 12), ("3  LAST", 3)]
)
def test_bad_rest_still_knows_the_size(argument: str, size: int) -> None:
    with pytest.raises(BdatSyntaxError) as info:
        parse_bdat(argument)
    assert info.value.size == size


def read(chunks: list[bytes], **kwargs: object) -> tuple[bytes, ChunkReader]:
    reader = ChunkReader(max_size=0, **kwargs)  # type: ignore[arg-type]
    out = b"".join(reader.feed(c) for c in chunks) + reader.finish()
    return out, reader


def test_dots_and_terminators_are_plain_content() -> None:
    body = b"Subject: x\r\n\r\n.\r\n..two\r\n.\r\nQUIT\r\n"
    assert read([body])[0] == body


def test_bare_line_endings_are_normalised() -> None:
    out, reader = read([b"a\nb\rc\r", b"\nd\r"])
    assert out == b"a\r\nb\r\nc\r\nd\r\n"
    assert not reader.bare_line_ending_seen


def test_bare_line_endings_flagged_under_reject() -> None:
    _, reader = read([b"a\r", b"\nb\n"], bare_line_endings=BareLineEndings.REJECT)
    assert reader.bare_line_ending_seen
    problem = data_problem(reader, BareLineEndings.REJECT, 1000)
    assert problem is not None
    assert problem.code == 550


def test_crlf_split_across_chunks_is_not_bare() -> None:
    _, reader = read([b"a\r", b"\nb\r\n"], bare_line_endings=BareLineEndings.REJECT)
    assert not reader.bare_line_ending_seen


def test_last_line_gets_crlf_and_empty_message_stays_empty() -> None:
    assert read([b"no end"])[0] == b"no end\r\n"
    assert read([])[0] == b""
    assert read([b"", b""])[0] == b""


def test_size_limit_counts_stored_octets() -> None:
    reader = ChunkReader(max_size=10)
    assert reader.feed(b"12345678\r\n") == b"12345678\r\n"
    assert data_problem(reader, BareLineEndings.NORMALISE, 1000) is None
    assert reader.feed(b"x") == b""
    assert reader.size_exceeded
    problem = data_problem(reader, BareLineEndings.NORMALISE, 1000)
    assert problem is not None
    assert (problem.code, problem.enhanced) == (552, "5.3.4")


def test_line_limit_across_chunks() -> None:
    chunks = [b"a" * 6, b"a" * 5 + b"\r", b"\n"]  # 11 octets and CRLF: 13 in all
    assert read(chunks, line_limit=12)[1].line_too_long
    assert not read(chunks, line_limit=13)[1].line_too_long


def test_hops_are_counted() -> None:
    _, reader = read([b"Received: a\r\nReceived: b\r\n", b"\r\nbody\r\n"], max_hops=2)
    assert reader.hops == 2
    assert reader.too_many_hops


def test_no_feed_after_finish() -> None:
    reader = ChunkReader(max_size=0)
    reader.finish()
    with pytest.raises(ProtocolUsageError):
        reader.feed(b"x")
    with pytest.raises(ProtocolUsageError):
        reader.finish()


# --- properties ----------------------------------------------------------------

_pieces = st.sampled_from(
    [b"\r", b"\n", b".", b"a", b"\r\n", b"..", b"\r\n.\r\n", b"\r\n.", b".\r", b"\xff", b"\x00"]
)
_streams = st.lists(_pieces, max_size=60).map(b"".join)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


@given(stream=_streams, cuts=st.lists(st.integers(min_value=0), max_size=12))
@settings(max_examples=400)
def test_any_split_into_chunks_stores_the_same_bytes_as_one_chunk(
    stream: bytes, cuts: list[int]
) -> None:
    kwargs = {"line_limit": 5, "bare_line_endings": BareLineEndings.REJECT, "max_hops": 1}
    whole, one = read([stream], **kwargs)
    parts, many = read(_split(stream, cuts), **kwargs)
    assert parts == whole
    assert (many.size, many.bare_line_ending_seen, many.line_too_long) == (
        one.size,
        one.bare_line_ending_seen,
        one.line_too_long,
    )
    assert many.size == len(parts)


@given(stream=_streams)
@settings(max_examples=300)
def test_stores_what_data_stores_for_the_same_message(stream: bytes) -> None:
    """BDAT and DATA are two ways into one message path: the same body stored."""
    # (Line lengths differ by design: DATA counts a line before unstuffing.)
    chunked, chunk_reader = read([stream], max_hops=1)
    data_reader = DataReader(max_size=0, max_hops=1)
    via_data = data_reader.feed(dot_stuff(stream))
    assert data_reader.done
    assert chunked == via_data
    assert (chunk_reader.size, chunk_reader.hops) == (data_reader.size, data_reader.hops)


_lines = st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@given(text=st.lists(_lines))
def test_crlf_text_is_stored_byte_exact(text: list[bytes]) -> None:
    message = b"".join(line + b"\r\n" for line in text)
    assert read([message])[0] == message
