"""DataReader: the end of DATA, dot-unstuffing, smuggling, limits; dot_stuff and DotStuffer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailio_trio.protocol import (
    BareLineEndings,
    DataReader,
    DotStuffer,
    ProtocolUsageError,
    dot_stuff,
)


def feed_all(reader: DataReader, chunks: list[bytes]) -> tuple[bytes, bool, bytes]:
    """Feed chunks until done; return body, done and everything after the terminator."""
    out: list[bytes] = []
    later: list[bytes] = []
    for chunk in chunks:
        if reader.done:
            later.append(chunk)
        else:
            out.append(reader.feed(chunk))
    trailing = reader.take_trailing() + b"".join(later) if reader.done else b""
    return b"".join(out), reader.done, trailing


def reference(stream: bytes, line_limit: int = 0) -> tuple[bytes, bool, bytes, bool, bool]:
    """A slow line-by-line model of the rules: body, done, trailing, bare seen, too long."""
    out: list[bytes] = []
    pos = 0
    after_crlf = True
    bare = too_long = False
    while True:
        cr = stream.find(b"\r", pos)
        lf = stream.find(b"\n", pos)
        ends = [i for i in (cr, lf) if i != -1]
        if not ends:
            return b"".join(out), False, b"", bare, too_long
        i = min(ends)
        if stream[i] == 0x0D:
            if i + 1 == len(stream):
                return b"".join(out), False, b"", bare, too_long
            crlf = stream[i + 1] == 0x0A
            nxt = i + 2 if crlf else i + 1
        else:
            crlf = False
            nxt = i + 1
        content = stream[pos:i]
        if content == b"." and after_crlf and crlf:
            return b"".join(out), True, stream[nxt:], bare, too_long
        bare = bare or not crlf
        if line_limit and len(content) + 2 > line_limit:
            too_long = True
        if content.startswith(b".") and content != b".":
            content = content[1:]
        out.append(content + b"\r\n")
        after_crlf = crlf
        pos = nxt


# --- table: the terminator and smuggling variants ------------------------------


@pytest.mark.parametrize(
    ("stream", "body", "trailing"),
    [
        (b".\r\n", b"", b""),
        (b"hello\r\n.\r\n", b"hello\r\n", b""),
        (b"hello\r\n.\r\nQUIT\r\n", b"hello\r\n", b"QUIT\r\n"),
        (b"a\r\n\r\n.\r\n", b"a\r\n\r\n", b""),
        (b"..\r\n.\r\n", b".\r\n", b""),
        (b"...\r\n.\r\n", b"..\r\n", b""),
        (b".hidden\r\n.\r\n", b"hidden\r\n", b""),
        (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n", b""),
        (b"a\r\n.\r\n.\r\n", b"a\r\n", b".\r\n"),
        # A bare CR followed by CRLF: the "." line is preceded by that CRLF.
        (b"a\r\r\n.\r\n", b"a\r\n\r\n", b""),
    ],
)
def test_terminator_and_unstuffing(stream: bytes, body: bytes, trailing: bytes) -> None:
    reader = DataReader(max_size=0)
    assert reader.feed(stream) == body
    assert reader.done
    assert reader.take_trailing() == trailing
    assert reader.take_trailing() == b""


@pytest.mark.parametrize(
    ("stream", "body"),
    [
        # CVE-2023-51764/51765/51766: none of these end DATA; the dot stays.
        (b"a\n.\nMAIL FROM:<x@y>\n", b"a\r\n.\r\nMAIL FROM:<x@y>\r\n"),
        (b"a\r.\rMAIL", b"a\r\n.\r\nMAIL"),
        (b"a\n.\r\nMAIL\r\n", b"a\r\n.\r\nMAIL\r\n"),
        (b"a\r\n.\nMAIL\r\n", b"a\r\n.\r\nMAIL\r\n"),
        (b"a\r\n.\rMAIL\r\n", b"a\r\n.\r\nMAIL\r\n"),
        (b"a\r.\r\nMAIL\r\n", b"a\r\n.\r\nMAIL\r\n"),
        (b"a\r.\nMAIL\r\n", b"a\r\n.\r\nMAIL\r\n"),
        (b".\n", b".\r\n"),
        (b".\rx", b".\r\nx"),
    ],
)
@pytest.mark.parametrize("mode", list(BareLineEndings))
def test_bare_line_endings_never_end_data(
    stream: bytes, body: bytes, mode: BareLineEndings
) -> None:
    reader = DataReader(max_size=0, bare_line_endings=mode)
    assert reader.feed(stream) == body
    assert not reader.done
    assert reader.bare_line_ending_seen is (mode is BareLineEndings.REJECT)
    # The message still ends at a real terminator afterwards.
    reader.feed(b"\r\n.\r\n")
    assert reader.done


def test_bare_lf_dot_does_not_end_data_one_byte_at_a_time() -> None:
    reader = DataReader(max_size=0)
    out = b"".join(reader.feed(bytes([b])) for b in b"x\n.\ny\r\n")
    assert out == b"x\r\n.\r\ny\r\n"
    assert not reader.done


def test_clean_body_does_not_flag_bare_endings() -> None:
    reader = DataReader(max_size=0, bare_line_endings=BareLineEndings.REJECT)
    reader.feed(b"a\r\nb\r")
    reader.feed(b"\nc\r\n.\r\n")
    assert reader.done
    assert not reader.bare_line_ending_seen


def test_feed_after_done_is_usage_error() -> None:
    reader = DataReader(max_size=0)
    reader.feed(b".\r\n")
    with pytest.raises(ProtocolUsageError):
        reader.feed(b"more")


def test_empty_feed_is_harmless() -> None:
    reader = DataReader(max_size=0)
    assert reader.feed(b"") == b""
    assert not reader.done


# --- limits --------------------------------------------------------------------


def test_size_limit_counts_unstuffed_body() -> None:
    reader = DataReader(max_size=6)
    assert reader.feed(b"..abc\r\n") == b".abc\r\n"
    assert (reader.size, reader.size_exceeded) == (6, False)
    assert reader.feed(b"x\r\n.\r\nQUIT\r\n") == b""
    assert (reader.size, reader.size_exceeded, reader.done) == (9, True, True)
    assert reader.take_trailing() == b"QUIT\r\n"


def test_size_exactly_at_limit_is_fine() -> None:
    body, reader = b"", DataReader(max_size=5)
    body = reader.feed(b"abc\r\n.\r\n")
    assert (body, reader.size, reader.size_exceeded) == (b"abc\r\n", 5, False)


def test_oversized_body_keeps_scanning_for_the_terminator() -> None:
    reader = DataReader(max_size=100)
    chunk = b"x" * 70 + b"\r\n"
    out = [reader.feed(chunk) for _ in range(10_000)]
    assert out[0] == chunk
    assert all(part == b"" for part in out[2:])
    assert reader.size_exceeded
    assert reader.feed(b".\r\nQUIT\r\n") == b""
    assert reader.done
    assert reader.size == 720_000
    assert reader.take_trailing() == b"QUIT\r\n"


@pytest.mark.parametrize(
    ("chunks", "too_long"),
    [
        ([b"a" * 998 + b"\r\n.\r\n"], False),
        ([b"a" * 999 + b"\r\n.\r\n"], True),
        ([b"a" * 500, b"a" * 498 + b"\r\n.\r\n"], False),
        ([b"a" * 500, b"a" * 499, b"\r\n.\r\n"], True),
        ([b"a" * 998 + b"\r", b"\n.\r\n"], False),
        # Counted as sent, before the stuffed dot is removed (RFC 5321 §4.5.3.1.6).
        ([b"." + b"a" * 998 + b"\r\n.\r\n"], True),
        ([b"b\r\n" * 400 + b"a" * 998 + b"\r\n.\r\n"], False),
        ([b"b\r\n" * 400 + b"a" * 999 + b"\r\n.\r\n"], True),
    ],
)
def test_line_limit(chunks: list[bytes], too_long: bool) -> None:
    reader = DataReader(max_size=0, line_limit=1000)
    out = b"".join(reader.feed(c) for c in chunks)
    assert reader.done
    assert reader.line_too_long is too_long
    # Content is still delivered.
    assert out.endswith(b"a" * 998 + b"\r\n")


def test_line_limit_zero_is_unlimited() -> None:
    reader = DataReader(max_size=0, line_limit=0)
    reader.feed(b"a" * 100_000 + b"\r\n.\r\n")
    assert reader.done
    assert not reader.line_too_long


def test_huge_line_is_not_held() -> None:
    reader = DataReader(max_size=0)
    chunk = b"z" * 65536
    for _ in range(160):  # 10 MiB without a line end
        assert reader.feed(chunk) == chunk
        assert len(reader._carry) <= 2
    assert reader.line_too_long
    reader.feed(b"\r\n.\r\n")
    assert reader.done


# --- properties ----------------------------------------------------------------

_pieces = st.sampled_from(
    [b"\r", b"\n", b".", b"a", b"\r\n", b"..", b"\r\n.\r\n", b"\r\n.", b".\r", b"\xff"]
)
_streams = st.lists(_pieces, max_size=60).map(b"".join)


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(stream=_streams, cuts=st.lists(st.integers(min_value=0), max_size=12))
@settings(max_examples=400)
def test_any_chunking_gives_the_same_result(stream: bytes, cuts: list[int]) -> None:
    whole = DataReader(max_size=0, line_limit=5, bare_line_endings=BareLineEndings.REJECT)
    expected = feed_all(whole, [stream])
    parts = DataReader(max_size=0, line_limit=5, bare_line_endings=BareLineEndings.REJECT)
    got = feed_all(parts, _chunk(stream, cuts))
    if expected[1]:
        assert got == expected
    else:
        # Unfinished: up to two octets may still be held back.
        assert not got[1]
        assert got[0] == expected[0]
    assert parts.size == whole.size
    assert parts.bare_line_ending_seen == whole.bare_line_ending_seen


@given(stream=_streams, cuts=st.lists(st.integers(min_value=0), max_size=12))
@settings(max_examples=400)
def test_matches_line_by_line_model(stream: bytes, cuts: list[int]) -> None:
    stream += b"\r\n.\r\nQUIT\r\n"
    reader = DataReader(max_size=0, line_limit=4, bare_line_endings=BareLineEndings.REJECT)
    body, done, trailing = feed_all(reader, _chunk(stream, cuts))
    ref_body, ref_done, ref_trailing, ref_bare, ref_long = reference(stream, line_limit=4)
    assert (body, done, trailing) == (ref_body, ref_done, ref_trailing)
    assert reader.bare_line_ending_seen == ref_bare
    assert reader.line_too_long == ref_long
    assert reader.size == len(body)


_crlf_lines = st.lists(
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=20,
).map(lambda lines: b"".join(line + b"\r\n" for line in lines))


@given(body=_crlf_lines, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_dot_stuff_round_trips(body: bytes, cuts: list[int]) -> None:
    reader = DataReader(max_size=0, bare_line_endings=BareLineEndings.REJECT)
    out, done, trailing = feed_all(reader, _chunk(dot_stuff(body), cuts))
    assert (out, done, trailing) == (body, True, b"")
    assert not reader.bare_line_ending_seen


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (b"", b".\r\n"),
        (b"abc", b"abc\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        # Never send bare line endings a lax receiver could misread.
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.\rb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    ],
)
def test_dot_stuff(body: bytes, wire: bytes) -> None:
    assert dot_stuff(body) == wire


@pytest.mark.parametrize(
    ("chunks", "body", "trailing"),
    [
        # Chunks with no "." at all skip the "\r\n." search: the terminator,
        # a stuffed dot and a held-back CR in the next chunk must still count.
        ([b"QUJD\r\nREVG\r\n", b".\r\nQUIT\r\n"], b"QUJD\r\nREVG\r\n", b"QUIT\r\n"),
        ([b"QUJD\r", b"\n", b"..x\r\n.\r\n"], b"QUJD\r\n.x\r\n", b""),
        ([b"QUJD\r\n\r", b"\n.", b"\r\n"], b"QUJD\r\n\r\n", b""),
        ([b"QUJD\nREVG\r\n", b".\r\n"], b"QUJD\r\nREVG\r\n", b""),
    ],
)
def test_dot_free_chunks(chunks: list[bytes], body: bytes, trailing: bytes) -> None:
    reader = DataReader(max_size=0)
    out = b"".join(reader.feed(chunk) for chunk in chunks)
    assert (out, reader.done, reader.take_trailing()) == (body, True, trailing)


# -- DotStuffer: dot_stuff for a body fed in chunks ---------------------------


@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=20))
def test_chunked_dot_stuffing_equals_whole_body(body: bytes, cuts: list[int]) -> None:
    stuffer = DotStuffer()
    out, pos = b"", 0
    for size in cuts:
        out += stuffer.feed(body[pos : pos + size])
        pos += size
    out += stuffer.feed(body[pos:]) + stuffer.finish()
    assert out == dot_stuff(body)


@pytest.mark.parametrize("body", [b"", b"\r", b".", b"a\r", b"\r\n.\r\n", b"x\n.\ny", b"a\r\r\n.b"])
def test_dot_stuffing_edge_cases_byte_by_byte(body: bytes) -> None:
    stuffer = DotStuffer()
    out = b"".join(stuffer.feed(body[i : i + 1]) for i in range(len(body))) + stuffer.finish()
    assert out == dot_stuff(body)
