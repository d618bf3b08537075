"""DATA framing: DataReader (dot-unstuffing, CRLF.CRLF, size, line and hop limits).

Contract: no exception while fed before the terminator; the body, the flags
and the octets after the terminator do not depend on how the stream is cut;
the body has only CRLF line endings; the body, dot-stuffed and sent again,
reads back as itself.
"""

from __future__ import annotations

from _common import chunks, fuzz_main, split
from mailio_trio.protocol.data import BareLineEndings, DataReader, dot_stuff

SEEDS = [
    b"\x01\x00\x00Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    b"\x02\x10\x01Received: x\r\nReceived: y\r\n\r\nbody\n.\r\n",
    b"\x00\x03\x02a\rb\nc\r\n.\n.\r\n.\r\n",
]


def _read(reads: list[bytes], knobs: bytes) -> tuple[bytes, tuple[object, ...]]:
    policy = BareLineEndings.REJECT if knobs[1] & 1 else BareLineEndings.NORMALISE
    reader = DataReader(
        max_size=knobs[0] * 7,
        line_limit=0 if knobs[1] & 2 else 1 + knobs[1] // 4,
        bare_line_endings=policy,
        max_hops=knobs[1] >> 6,
    )
    body, after = [], []
    for read in reads:
        if reader.done:
            after.append(read)  # a session reads the next command from here on
        else:
            body.append(reader.feed(read))
    state = (
        reader.done,
        reader.size,
        reader.size_exceeded,
        reader.line_too_long,
        reader.bare_line_ending_seen,
        reader.hops,
        reader.too_many_hops,
        reader.take_trailing() + b"".join(after),
    )
    return b"".join(body), state


def test_one_input(data: bytes) -> None:
    """Check the contract (octet 0: the cuts; 1-2: size, line limit, policy, hops)."""
    (spec, *knobs_list), payload = split(data, 3)
    knobs = bytes(knobs_list)
    whole = _read([payload], knobs)
    pieces = _read(chunks(spec, payload), knobs)
    assert pieces[1] == whole[1]
    # Past max_size the body is dropped (the session refuses it); before that, it
    # may have returned octets read earlier, depending on the cuts.
    assert pieces[0] == whole[0] or whole[1][2]
    body, state = whole
    unix = body.replace(b"\r\n", b"")
    assert b"\r" not in unix and b"\n" not in unix, body
    done, size, size_exceeded = state[0], state[1], state[2]
    if not size_exceeded:
        assert size == len(body)
    if done and not size_exceeded and body:
        assert body.endswith(b"\r\n")
        again = DataReader(max_size=0, line_limit=0)
        assert again.feed(dot_stuff(body)) == body and again.done


if __name__ == "__main__":
    fuzz_main(test_one_input)
