"""BDAT framing: parse_bdat and ChunkReader (RFC 3030).

Contract: ``parse_bdat`` raises only ``BdatSyntaxError``, and its ``size`` is
set exactly when a size could be read; the stored body does not depend on
how the chunks are cut into reads, has only CRLF line endings, and ends in
CRLF; the flags do not depend on the cuts either.
"""

from __future__ import annotations

from _common import chunks, fuzz_main, split
from mailio_trio.protocol.chunking import BdatSyntaxError, ChunkReader, parse_bdat
from mailio_trio.protocol.data import BareLineEndings

SEEDS = [
    b"\x01\x00\x00\x0012 LAST\nSubject: hi\r\n\r\n.dot\r",
    b"\x02\x10\x01\x01007 last\na\rb\nc\r\nReceived: x\r\n",
    b"\x00\x03\x02\x02x\n\r\n\r\n",
]


def _read(reads: list[bytes], knobs: bytes) -> tuple[bytes, tuple[object, ...]]:
    policy = BareLineEndings.REJECT if knobs[1] & 1 else BareLineEndings.NORMALISE
    reader = ChunkReader(
        max_size=knobs[0] * 7,
        line_limit=0 if knobs[1] & 2 else 1 + knobs[1] // 4,
        bare_line_endings=policy,
        max_hops=knobs[1] >> 6,
    )
    body = [reader.feed(read) for read in reads]
    body.append(reader.finish())
    state = (
        reader.size,
        reader.size_exceeded,
        reader.line_too_long,
        reader.bare_line_ending_seen,
        reader.hops,
        reader.too_many_hops,
    )
    return b"".join(body), state


def test_one_input(data: bytes) -> None:
    """Check the contract (octets 0-2: cuts, limits, policy; then ``argument\\n``, then octets)."""
    (spec, *knobs_list), payload = split(data, 3)
    argument, _, octets = payload.partition(b"\n")
    text = argument.decode("utf-8", "replace")
    try:
        bdat = parse_bdat(text)
        assert bdat.size >= 0
    except BdatSyntaxError as exc:
        assert exc.reply.code == 501
        if exc.size is not None:  # only the part after a readable size is wrong
            size_text, space, _ = text.partition(" ")
            assert space and size_text.isascii() and int(size_text) == exc.size
    knobs = bytes(knobs_list)
    whole = _read([octets], knobs)
    pieces = _read(chunks(spec, octets), knobs)
    assert pieces[1] == whole[1]
    # Past max_size the body is dropped (the session refuses it); before that, it
    # may have returned octets read earlier, depending on the cuts.
    assert pieces[0] == whole[0] or whole[1][1]
    body, (size, size_exceeded, *_) = whole
    unix = body.replace(b"\r\n", b"")
    assert b"\r" not in unix and b"\n" not in unix, body
    if not size_exceeded:
        assert size == len(body)
        assert not body or body.endswith(b"\r\n")


if __name__ == "__main__":
    fuzz_main(test_one_input)
