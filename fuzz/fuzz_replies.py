"""The client's reply reader (ReplyReader).

Contract: only ``ServerProtocolError``, after which the reader goes on with
the next line; the replies and refusals do not depend on how the stream is
cut; every reply is a valid :class:`Reply` (code 200..599, no CR) whose wire
form reads back as the same reply; what is buffered stays bounded.
"""

from __future__ import annotations

from _common import chunks, fuzz_main, split
from mailio_trio.protocol.errors import ServerProtocolError
from mailio_trio.protocol.lines import Need
from mailio_trio.protocol.replies import Reply, ReplyReader

SEEDS = [
    b"\x01\x00220 mx.example ESMTP\r\n250-mx.example\r\n250-SIZE 10\r\n250 2.0.0 OK\r\n",
    b"\x02\x00550 5.1.1 no\r\n550-5.1.1 a\n550 5.1.1 b\r\r\n",
    b"\x00\x01199 x\r\n250-a\r\n251 b\r\n700 c\r\n25\r\n",
]


def _replies(reads: list[bytes], line_limit: int, max_lines: int) -> list[object]:
    reader = ReplyReader(line_limit=line_limit, max_lines=max_lines)
    out: list[object] = []
    for read in reads:
        reader.feed(read)
        while True:
            try:
                reply = reader.next_reply()
            except ServerProtocolError as exc:
                out.append(str(exc))
                continue
            if reply is Need.DATA:
                break
            out.append(reply)
    out.append(reader.take_buffered())
    return out


def test_one_input(data: bytes) -> None:
    """Check the contract (octet 0: the cuts; octet 1: line limit and line count, 0: defaults)."""
    (spec, knob), payload = split(data, 2)
    line_limit, max_lines = (4096, 128) if knob == 0 else (5 + (knob & 0x3F) * 2, 1 + (knob >> 6))
    whole = _replies([payload], line_limit, max_lines)
    assert _replies(chunks(spec, payload), line_limit, max_lines) == whole
    for reply in whole:
        if isinstance(reply, Reply):
            again = ReplyReader(line_limit=1 << 20, max_lines=1 << 20)
            again.feed(reply.to_bytes())
            assert again.next_reply() == reply, reply


if __name__ == "__main__":
    fuzz_main(test_one_input)
