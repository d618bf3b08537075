"""DKIM's tag=value lists and header blocks (mailauth/_keys.py, dkimpy underneath).

Contract: ``parse_tags`` never raises (``None`` for a list that does not
parse) and returns bytes keys and values; ``header_fields`` raises only
``dkim.MessageFormatError``, and every field name it returns is non-empty.
"""

from __future__ import annotations

import dkim

from _common import fuzz_main, split
from mailio_trio.mailauth._keys import header_fields, parse_tags

SEEDS = [
    b"\x00v=1; a=rsa-sha256; d=example.net; s=brisbane; c=relaxed/simple;\r\n h=from:to; bh=ab=;"
    b" b=dzdV\r\n 9Xz=",
    b"\x01DKIM-Signature: v=1; d=a\r\n\tb=c\r\nFrom: a@b\r\nSubject:x\r\n",
    b"\x01 folded first\r\nFrom: a\r\n",
    b"\x00v=DKIM1; k=ed25519; p=; t=y:s",
]


def test_one_input(data: bytes) -> None:
    """Check the contract (octet 0: which parser; the rest is its input)."""
    (knob,), payload = split(data, 1)
    if knob & 1 == 0:
        tags = parse_tags(payload)
        if tags is not None:
            assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in tags.items())
        return
    try:
        fields = header_fields(payload)
    except dkim.MessageFormatError:
        return
    assert all(name for name, _ in fields)


if __name__ == "__main__":
    fuzz_main(test_one_input)
