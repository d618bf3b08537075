"""Command lines: LineSplitter, then parse_command and the MAIL/RCPT/EHLO/BDAT arguments.

Contract: lines do not depend on how the stream is cut into reads; no line
holds an LF or reaches the limit; after the lines are drained the splitter
holds less than one line; the parsers raise only ``ClientProtocolError``; a
parsed address prints in a form that parses back to the same address.
"""

from __future__ import annotations

from _common import chunks, fuzz_main, split
from mailio_trio.protocol.chunking import parse_bdat
from mailio_trio.protocol.commands import (
    Verb,
    parse_command,
    parse_helo_name,
    parse_mail_from,
    parse_rcpt_to,
)
from mailio_trio.protocol.errors import ClientProtocolError
from mailio_trio.protocol.lines import LineSplitter, Need, OverlongLine

SEEDS = [
    b"\x01\x7fEHLO a.example\r\nMAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME\r\n",
    b'\x02\x7fRCPT TO:<"q\\"x"@[IPv6:2001:db8::1]> NOTIFY=NEVER\nBDAT 10 LAST\r\n',
    b"\x00\x02MAIL FROM:<@r.example:a@b.example> SMTPUTF8\r\nRCPT TO:<Postmaster>\r\n",
    b"\x03\x01" + b"x" * 40 + b"\r\nNOOP\r\n",
]


def _lines(reads: list[bytes], limit: int) -> list[bytes | OverlongLine]:
    splitter = LineSplitter(limit)
    out: list[bytes | OverlongLine] = []
    for read in reads:
        splitter.feed(read)
        while (line := splitter.next_line()) is not Need.DATA:
            out.append(line)
        assert splitter.buffered_size < limit, (splitter.buffered_size, limit)
    out.append(splitter.take_buffered())  # the unfinished line, if any
    assert not splitter.has_buffered
    return out


def _check_arguments(line: bytes, flags: int) -> None:
    try:
        command = parse_command(line)
    except ClientProtocolError:
        return
    utf8 = bool(flags & 1)
    try:
        if command.verb is Verb.MAIL:
            mail = parse_mail_from(command.argument, smtputf8=utf8, eight_bit_mime=bool(flags & 2))
            if mail.sender is not None:
                again = parse_mail_from(f"FROM:<{mail.sender}>")
                assert again.sender is not None and again.sender.key() == mail.sender.key()
        elif command.verb is Verb.RCPT:
            rcpt = parse_rcpt_to(command.argument, smtputf8_allowed=utf8)
            again_rcpt = parse_rcpt_to(f"TO:<{rcpt.recipient}>")
            assert again_rcpt.recipient.key() == rcpt.recipient.key()
        elif command.verb in (Verb.HELO, Verb.EHLO):
            assert parse_helo_name(command.argument, strict=utf8) == command.argument
        elif command.name == "bdat":
            parse_bdat(command.argument)
    except ClientProtocolError:
        pass


def test_one_input(data: bytes) -> None:
    """Check the contract on one input (octet 0: the cuts; octet 1: the line limit and flags)."""
    (spec, knobs), payload = split(data, 2)
    # Small limits reach the over-long paths with short inputs; 0 keeps the real 512.
    limit = 512 if knobs == 0 else 3 + knobs
    whole = _lines([payload], limit)
    assert _lines(chunks(spec, payload), limit) == whole
    for line in whole[:-1]:
        if isinstance(line, OverlongLine):
            assert line.length > limit
            continue
        assert b"\n" not in line and len(line) < limit
        _check_arguments(line, knobs)


if __name__ == "__main__":
    fuzz_main(test_one_input)
