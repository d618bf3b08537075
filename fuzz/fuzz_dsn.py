"""DSN parameters (RFC 3461): RET, ENVID, NOTIFY, ORCPT and xtext (protocol/dsn.py).

Contract: ``parse_dsn_mail`` and ``parse_dsn_rcpt`` raise only
``ClientProtocolError`` (501 5.5.4); what they accept is printable ASCII;
an accepted ORCPT, encoded again, parses back to itself; xtext encoding
round-trips.
"""

from __future__ import annotations

from _common import fuzz_main, split
from mailio_trio.protocol.dsn import parse_dsn_mail, parse_dsn_rcpt, xtext_decode, xtext_encode
from mailio_trio.protocol.errors import ClientProtocolError

SEEDS = [
    b"\x0fFULL\x00abc+2Bdef",
    b"\x0fSUCCESS,DELAY\x00rfc822;bob+40example.com",
    b"\x0bNEVER,FAILURE\x00utf-8;\xc3\xa9+20x",
    b"\x03hdrs\x00+3",
]


def test_one_input(data: bytes) -> None:
    """Check the contract (octet 0: which keys are present, and bare; then two values)."""
    (knob,), payload = split(data, 1)
    first, _, second = payload.decode("utf-8", "replace").partition("\x00")
    # Bits 0-1: RET/NOTIFY given, ENVID/ORCPT given; bits 2-3: the first/second is bare.
    one = None if knob & 4 else first
    two = None if knob & 8 else second
    mail = {k: v for k, v, on in (("RET", one, knob & 1), ("ENVID", two, knob & 2)) if on}
    rcpt = {k: v for k, v, on in (("NOTIFY", one, knob & 1), ("ORCPT", two, knob & 2)) if on}
    try:
        dsn_mail = parse_dsn_mail(mail)
        assert dsn_mail.envid is None or dsn_mail.envid.isascii()
    except ClientProtocolError as exc:
        assert exc.reply.code == 501
    try:
        dsn_rcpt = parse_dsn_rcpt(rcpt)
        if dsn_rcpt.orcpt is not None:
            again = parse_dsn_rcpt({"ORCPT": dsn_rcpt.orcpt.encode()})
            assert again.orcpt == dsn_rcpt.orcpt
    except ClientProtocolError as exc:
        assert exc.reply.code == 501
    printable = "".join(c for c in second if " " <= c <= "~")
    assert xtext_decode(xtext_encode(printable)) == printable


if __name__ == "__main__":
    fuzz_main(test_one_input)
