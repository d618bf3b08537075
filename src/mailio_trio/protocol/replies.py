"""SMTP replies: a code, text and enhanced status code, formatted for the wire.

RFC 5321 §4.2 gives the reply syntax (``code SP text`` / ``code - text`` for all
but the last line of a multi-line reply); RFC 2034 and RFC 3463 the enhanced
status code ``class.subject.detail`` whose class must match the reply's first
digit. Intermediate replies (3xx) carry no enhanced code.

:class:`ReplyReader` is the other direction, for the client role: lines from a
server in, :class:`Reply` values out. Both the client and the test harness
(``mailio_trio.testing.RawConnection``) read replies with it, so they cannot
disagree about what a server said. It must never do I/O, read a clock or
import trio.
"""

from __future__ import annotations

import re

import attrs

from mailio_trio.protocol.errors import ServerProtocolError
from mailio_trio.protocol.lines import LineSplitter, Need, OverlongLine

__all__ = ["REPLY_LINE_LIMIT", "REPLY_MAX_LINES", "Reply", "ReplyReader"]

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")

# RFC 5321 §4.5.3.1.5 allows reply lines of 512 octets; real servers send longer
# banners, so be lenient, but bounded: a hostile server must not fill our memory.
REPLY_LINE_LIMIT = 4096
REPLY_MAX_LINES = 128
_CODE_DIGITS = frozenset(b"0123456789")


def _check_code(_: object, __: attrs.Attribute[int], code: int) -> None:
    if not 200 <= code <= 599:
        raise ValueError(f"SMTP reply code must be 200..599, not {code!r}")


def _check_text(_: object, __: attrs.Attribute[str], text: str) -> None:
    # A CR inside the text would let it forge further replies; lines split on LF only.
    if "\r" in text:
        raise ValueError("reply text must not contain CR; separate lines with \\n")


@attrs.frozen
class Reply:
    """One SMTP reply, possibly multi-line (lines separated by ``\\n`` in ``text``).

    Example:
      >>> Reply(250, "OK", "2.0.0").to_bytes()
      b'250 2.0.0 OK\\r\\n'
    """

    code: int = attrs.field(validator=_check_code)
    text: str = attrs.field(validator=_check_text)
    enhanced: str | None = None
    # The wire form, with and without the enhanced code, made on first use: a
    # constant reply is sent per command and formatting it is pure waste.
    _wire: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)
    _wire_plain: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.enhanced is None:
            return
        if not _ENHANCED.match(self.enhanced):
            raise ValueError(f"enhanced status code must look like 2.0.0, not {self.enhanced!r}")
        if self.enhanced[0] != str(self.code)[0]:
            raise ValueError(
                f"enhanced status {self.enhanced} does not match the class of reply {self.code}"
            )

    @property
    def lines(self) -> list[str]:
        """The text lines of the reply (at least one)."""
        return self.text.split("\n")

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def to_bytes(self, *, enhanced: bool = True) -> bytes:
        """The reply as wire bytes; ``enhanced=False`` leaves the status code out."""
        wire = self._wire if enhanced else self._wire_plain
        if wire is None:
            wire = self._format(enhanced=enhanced)
            # Frozen to users; the cache is ours to fill.
            object.__setattr__(self, "_wire" if enhanced else "_wire_plain", wire)
        return wire

    def _format(self, *, enhanced: bool) -> bytes:
        prefix = f"{self.enhanced} " if enhanced and self.enhanced else ""
        lines = self.lines
        out = [f"{self.code}-{prefix}{line}\r\n" for line in lines[:-1]]
        out.append(f"{self.code} {prefix}{lines[-1]}\r\n")
        return "".join(out).encode("utf-8", "replace")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8").rstrip("\r\n")


class ReplyReader:
    """Turn a server's byte stream into :class:`Reply` values, sans-I/O.

    A multi-line reply (``250-...`` lines, then ``250 ...``) becomes one
    :class:`Reply` whose ``text`` joins the lines with ``\\n``. An enhanced
    status code (RFC 2034) is recognised on the first line when its class
    matches the reply code; it is then taken off every line that repeats it.

    Example:
      >>> reader = ReplyReader()
      >>> reader.feed(b"250-mx.example\\r\\n250 2.0.0 OK")
      >>> reader.next_reply()
      <Need.DATA: 'need more data'>
      >>> reader.feed(b"\\r\\n")
      >>> reader.next_reply()
      Reply(code=250, text='mx.example\\n2.0.0 OK', enhanced=None)

    Args:
      line_limit: Longest reply line in octets, terminator included.
      max_lines: Most lines one reply may have.

    Raises (from :meth:`next_reply`):
      ServerProtocolError: A line that is not ``NNN``, ``NNN text`` or
        ``NNN-text``; a code that changes inside a reply or is outside
        200..599; a line over ``line_limit``; a reply over ``max_lines``.
        The reply being read is then forgotten.
    """

    def __init__(
        self, line_limit: int = REPLY_LINE_LIMIT, max_lines: int = REPLY_MAX_LINES
    ) -> None:
        self.line_limit = line_limit
        self.max_lines = max_lines
        self._splitter = LineSplitter(line_limit)
        # The reply being read: its code (0 before its first line) and texts.
        self._code = 0
        self._texts: list[str] = []

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server; chunk boundaries do not matter."""
        self._splitter.feed(data)

    def next_reply(self) -> Reply | Need:
        """Return the next complete reply, or ``Need.DATA`` if it has not all arrived.

        Raises:
          ServerProtocolError: See the class docstring.
        """
        while (line := self._splitter.next_line()) is not Need.DATA:
            try:
                done = self._add_line(line)
            except ServerProtocolError:
                self._code, self._texts = 0, []
                raise
            if done:
                return self._finish()
        return Need.DATA

    def _add_line(self, line: bytes | OverlongLine) -> bool:
        """Take one line into the reply being read; True if it was the last."""
        if isinstance(line, OverlongLine):
            raise ServerProtocolError(f"sent a reply line over {self.line_limit}")
        # One CR before LF went with the line end; further trailing CRs are noise.
        raw = line.rstrip(b"\r")
        # RFC 5321 §4.2: three ASCII digits, then SP, "-" or the line end.
        if (
            len(raw) < 3
            or not _CODE_DIGITS.issuperset(raw[:3])
            or raw[3:4] not in (b"", b" ", b"-")
        ):
            text = raw.decode("utf-8", "replace")
            raise ServerProtocolError(f"sent a malformed reply: {text[:80]!r}")
        code = int(raw[:3])
        if self._code and code != self._code:
            raise ServerProtocolError("changed the code inside a reply")
        self._code = code
        # A CR inside the text could forge a reply line further on; it cannot
        # be in a Reply either.
        self._texts.append(raw[4:].decode("utf-8", "replace").replace("\r", " "))
        if len(self._texts) > self.max_lines:
            raise ServerProtocolError(f"sent a reply over {self.max_lines} lines")
        return raw[3:4] != b"-"

    def _finish(self) -> Reply:
        code, texts = self._code, self._texts
        self._code, self._texts = 0, []
        if not 200 <= code <= 599:
            raise ServerProtocolError(f"sent reply code {code}")
        enhanced = None
        head, _, rest = texts[0].partition(" ")
        if _ENHANCED.match(head) and head[0] == str(code)[0]:
            enhanced = head
            # RFC 2034 §4: every line of the reply repeats the code; show the text once.
            texts = [rest] + [t.partition(" ")[2] if t.startswith(head) else t for t in texts[1:]]
        return Reply(code, "\n".join(texts), enhanced)

    @property
    def has_buffered(self) -> bool:
        """True while received octets have not been returned as part of a reply."""
        return bool(self._texts) or self._splitter.has_buffered

    def take_buffered(self) -> bytes:
        """Return and forget what was received but not yet returned as a reply.

        After a ``220`` to STARTTLS the client calls this: anything the server
        sent before the handshake is not to be trusted (RFC 3207 §4.2). Lines
        of an unfinished reply are forgotten too; only the partial line's
        octets are returned.
        """
        self._code, self._texts = 0, []
        return self._splitter.take_buffered()
