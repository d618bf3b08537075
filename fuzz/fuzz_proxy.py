"""The PROXY protocol header, v1 and v2 (ProxyParser).

Contract: only ``ProxyError``; the header (or the refusal) and the client's
octets after it do not depend on how the stream is cut, as long as reads
never ask past ``bytes_wanted``; a closed connection (an empty read) always
ends the parse; ``bytes_wanted`` is 0 exactly when it is over.
"""

from __future__ import annotations

from _common import chunks, fuzz_main, split
from mailio_trio.protocol.lines import Need
from mailio_trio.protocol.proxy import DEFAULT_MAX_V2_LENGTH, V2_SIGNATURE, ProxyError, ProxyParser

SEEDS = [
    b"\x01\x00PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\nEHLO x\r\n",
    b"\x02\x00PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
    b"\x00\x00PROXY UNKNOWN\r\n",
    b"\x03\x00"
    + V2_SIGNATURE
    + b"\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x01\xdc\x04\x00\x19",
    b"\x05\x00" + V2_SIGNATURE + b"\x21\x11\x00\x14\xc0\x00\x02\x01\xc6\x33\x64\x01\xdc\x04\x00\x19"
    b"\x20\x00\x05\x07\x00\x00\x00\x00",
]


def _parse(reads: list[bytes], limit: int, *, bounded: bool) -> tuple[object, bytes]:
    parser = ProxyParser(max_v2_length=limit)
    pending = list(reads)
    while pending and parser.bytes_wanted:
        read = pending.pop(0)
        if bounded and len(read) > parser.bytes_wanted:
            # A reader never asks for more than bytes_wanted: keep the rest for later.
            read, rest = read[: parser.bytes_wanted], read[parser.bytes_wanted :]
            pending.insert(0, rest)
        parser.feed(read)
    trailing = b"".join(pending)
    if parser.bytes_wanted:
        parser.feed(b"")  # the peer closed
        assert parser.bytes_wanted == 0
    try:
        header = parser.header()
    except ProxyError:
        return "refused", b""
    assert header is not Need.DATA
    assert parser.bytes_wanted == 0
    return header, parser.take_trailing() + trailing


def test_one_input(data: bytes) -> None:
    """Check the contract (octet 0: the cuts; octet 1: max_v2_length, 0 for the default)."""
    (spec, knob), payload = split(data, 2)
    limit = 4 * knob if knob else DEFAULT_MAX_V2_LENGTH
    whole = _parse([payload], limit, bounded=True)
    assert _parse(chunks(spec, payload), limit, bounded=True) == whole


if __name__ == "__main__":
    fuzz_main(test_one_input)
