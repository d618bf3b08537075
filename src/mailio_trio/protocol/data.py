"""Read a DATA body: find its end, undo dot-stuffing, normalise line endings.

Security: only ``<CRLF>.<CRLF>`` ends DATA (RFC 5321 §4.1.1.4). Bare LF and
bare CR never do, in any combination: ``<LF>.<LF>``, ``<CR>.<CR>``,
``<LF>.<CRLF>``, ``<CRLF>.<LF>`` and ``<CRLF>.<CR>`` are body content. Servers
that accepted any of them let a client hide a second message inside the first
that a stricter next hop then reads as its own transaction — SMTP smuggling
(CVE-2023-51764 Postfix, CVE-2023-51765 Sendmail, CVE-2023-51766 Exim). The
lone "." of such a line is kept as ``.\\r\\n`` content, and every bare CR or LF
is rewritten as CRLF in the output, so nothing we store or relay can end a
message early anywhere downstream (RFC 5321 §2.3.8 forbids bare CR/LF in text).

Algorithm: the terminator is the first ``\\r\\n.\\r\\n`` in the stream with a
``\\r\\n`` imagined before it (the DATA command line ended in CRLF). Each chunk
is handled with whole-chunk C operations (``find``, ``count``, ``re.sub``,
``split``), never a Python loop per byte or per line. At most two octets are
held between chunks: a trailing CR (its LF may follow) and a "." at a line
start (``.`` alone, ``.\\r\\n`` the terminator, ``..`` a stuffed dot — the next
octet decides). Body sizes and line lengths are counted, not buffered.

This module must never do I/O, read a clock or import trio.
"""

from __future__ import annotations

import enum
import re

from mailio_trio.protocol.catalogue import MESSAGE_TOO_BIG
from mailio_trio.protocol.errors import ProtocolUsageError
from mailio_trio.protocol.hops import HopCounter
from mailio_trio.protocol.replies import Reply

__all__ = [
    "BareLineEndings",
    "DataReader",
    "DotStuffer",
    "crlf_line_endings",
    "data_problem",
    "dot_stuff",
]

# RFC 5321 §4.5.3.1.6: a text line is at most 998 octets + CRLF = 1000.
DEFAULT_TEXT_LINE_LIMIT = 1000

_CR = 0x0D
_LF = 0x0A
_DOT = 0x2E
_ANY_LINE_END = re.compile(rb"\r\n|\r|\n")
# In CRLF-normalised text, "\r\n.\r\n" can only be a lone-dot content line
# (the real terminator was cut off before), which keeps its dot.
_STUFFED_DOT = re.compile(rb"\n\.(?!\r\n)")


class BareLineEndings(enum.Enum):
    """What to do about bare CR or LF in a body (RFC 5321 §2.3.8)."""

    NORMALISE = "normalise"
    REJECT = "reject"


class DataReader:
    """Consume the octets after ``354``, yield the body to store.

    Example:
      >>> reader = DataReader(max_size=0)
      >>> reader.feed(b"Subject: hi\\r\\n\\r\\n..dot\\r\\n.\\r\\nQUIT\\r\\n")
      b'Subject: hi\\r\\n\\r\\n.dot\\r\\n'
      >>> reader.done, reader.take_trailing()
      (True, b'QUIT\\r\\n')

    Args:
      max_size: Most body octets (after unstuffing, with CRLF endings) to
        accept; 0 means unlimited. Past it, ``size_exceeded`` is set and
        nothing more is returned, but the terminator is still looked for so
        the session can answer 552 in step (RFC 5321 §4.5.3.1.10).
      line_limit: Most octets per text line including CRLF, counted before
        unstuffing; 0 means unlimited. Longer lines set ``line_too_long`` but
        are still returned.
      bare_line_endings: Both modes write bare CR/LF as CRLF; ``REJECT``
        also sets ``bare_line_ending_seen`` so the session can refuse the
        message after the terminator (``NORMALISE`` never sets it).
      max_hops: ``Received:`` header lines (RFC 5321 §6.3, see
        ``mailio_trio.protocol.hops``) at which ``too_many_hops`` is set,
        so the session can refuse a looping message; 0 means unlimited.

    Attributes:
      done: The terminator has been consumed.
      size: Body octets emitted, or that would have been past ``max_size``.
      size_exceeded: ``size`` went over ``max_size``.
      line_too_long: Some line was longer than ``line_limit``.
      bare_line_ending_seen: In ``REJECT`` mode, some line ended in a bare CR or LF.
      hops: ``Received:`` lines in the header block so far.
      too_many_hops: ``hops`` reached ``max_hops``.
    """

    # BDAT chunks (protocol/chunking.py) share every check but dot-unstuffing.
    _unstuff = True

    def __init__(
        self,
        *,
        max_size: int,
        line_limit: int = DEFAULT_TEXT_LINE_LIMIT,
        bare_line_endings: BareLineEndings = BareLineEndings.NORMALISE,
        max_hops: int = 0,
    ) -> None:
        self.max_size = max_size
        self.max_hops = max_hops
        self.too_many_hops = False
        self._hops = HopCounter()
        self.line_limit = line_limit
        self.bare_line_endings = bare_line_endings
        self.done = False
        self.size = 0
        self.size_exceeded = False
        self.line_too_long = False
        self.bare_line_ending_seen = False
        self._carry = b""
        self._trailing = b""
        # The next octet starts a line; and whether the line before ended in
        # CRLF. Both start True: the DATA command line ended in CRLF.
        self._at_line_start = True
        self._after_crlf = True
        # Octets of the current, unfinished line (CRLF-normalised, not unstuffed).
        self._line_len = 0

    def feed(self, data: bytes) -> bytes:
        """Consume bytes from the client and return body bytes ready to store.

        Args:
          data: The next chunk; how the stream is chunked does not matter.

        Returns:
          Unstuffed body with CRLF line endings; ``b""`` once ``size_exceeded``.

        Raises:
          ProtocolUsageError: Called after ``done``.
        """
        if self.done:
            raise ProtocolUsageError("DataReader.feed() after the terminator; use take_trailing()")
        buf = self._carry + data if self._carry else bytes(data)
        if not buf:
            return b""

        end = -1
        # Every terminator and every dot-stuffed line after a CRLF contains
        # "\r\n.": one search usually rules out both (no dot-line in the chunk).
        # A chunk without any "." (base64 attachments, the bulk of big mail) is
        # ruled out first by a memchr scan, many times faster than that search,
        # which stops at the first "." when there is one.
        dot = buf.find(b"\r\n.") if b"." in buf else -1
        if self._at_line_start and self._after_crlf and buf.startswith(b".\r\n"):
            end = 0
            region = b""
            after = 3
        else:
            found = -1 if dot == -1 else buf.find(b"\r\n.\r\n", dot)
            if found != -1:
                end = found + 2
                region = buf[:end]
                after = found + 5
        if end != -1:
            self.done = True
            self._trailing = buf[after:]
            self._carry = b""
        else:
            cut = len(buf)
            # A CR at the end may be the first half of a CRLF.
            if buf[-1] == _CR:
                cut -= 1
            # A "." starting the last line: the next octet decides whether it
            # is a stuffed dot, a lone-dot line or the terminator.
            if cut and buf[cut - 1] == _DOT:
                at_start = self._at_line_start if cut == 1 else buf[cut - 2] in (_CR, _LF)
                if at_start:
                    cut -= 1
            region = buf[:cut]
            self._carry = buf[cut:]
        return self._process(region, crlf_dot_free=dot == -1)

    def _process(self, region: bytes, *, crlf_dot_free: bool = False) -> bytes:
        """Transform a stretch that ends neither in a CR nor a line-start dot.

        ``crlf_dot_free``: the caller knows ``region`` holds no ``"\r\n."``.
        """
        if not region:
            return b""
        at_start = self._at_line_start
        # A region may end in a CR only when that CR is already known to be
        # bare, so the test is exact: with every CRLF pair taken out (split is
        # left to right, like a reader), a clean region has no CR or LF left.
        # split + join + two memchr scans cost less than a count and a
        # translate, the two full passes this replaced.
        parts = region.split(b"\r\n")
        rest = b"".join(parts) if len(parts) > 1 else region
        if b"\r" not in rest and b"\n" not in rest:
            text = region
        else:
            if self.bare_line_endings is BareLineEndings.REJECT:
                self.bare_line_ending_seen = True
            text = _ANY_LINE_END.sub(b"\r\n", region)

        last_nl = text.rfind(b"\n")
        if self.line_limit:
            if last_nl == -1:
                self._line_len += len(text)
                longest = self._line_len + 1
            elif self._line_len + len(text) + 1 <= self.line_limit:
                # Too short for any line to be over the limit: skip the split.
                longest = 0
                self._line_len = len(text) - last_nl - 1
            else:
                longest = self._longest_complete_line(text, last_nl)
                self._line_len = len(text) - last_nl - 1
                # The unfinished last line counts once it is over, as it does when
                # it comes in reads of its own: the flag must not depend on the cuts.
                longest = max(longest, self._line_len + 1)
            if longest > self.line_limit:
                self.line_too_long = True

        last = region[-1]
        self._at_line_start = last in (_LF, _CR)
        if self._at_line_start:
            self._after_crlf = region.endswith(b"\r\n")

        if self._unstuff:
            # RFC 5321 §4.5.2: a line starting with "." loses that dot — except a
            # lone-dot line that was not the terminator, which stays as content.
            if at_start and text[0] == _DOT and not text.startswith(b".\r\n"):
                text = text[1:]
            # Clean text is the region itself, so "\n." in it means "\r\n." in the region.
            if not (crlf_dot_free and text is region) and b"\n." in text:
                text = _STUFFED_DOT.sub(b"\n", text)

        if not self._hops.done:  # the header block only: one attribute test per chunk after
            self._hops.feed(text)
            if self.max_hops and self._hops.hops >= self.max_hops:
                self.too_many_hops = True
        self.size += len(text)
        if self.max_size and self.size > self.max_size:
            self.size_exceeded = True
        if self.size_exceeded:
            return b""
        return text

    def _longest_complete_line(self, text: bytes, last_nl: int) -> int:
        """The length of a line ending in ``text`` that is over the limit, else 0.

        Lines are checked a window at a time: from a line start, the last LF
        within ``line_limit`` octets ends a run of lines that all fit, so the
        search jumps about ``line_limit`` octets per step instead of one line
        (a 64 KiB chunk of 76-octet lines is ~65 steps, not ~860 split pieces).
        The loop body is kept to one ``rfind`` and one comparison: it is the
        only Python-level loop over a DATA chunk.
        """
        limit = self.line_limit
        before = self._line_len
        # The first line continues one from earlier chunks: its LF must come
        # within limit - before octets. (A window end below 0 would count
        # from the end: clamp it.)
        end = text.rfind(b"\n", 0, max(0, limit - before))
        if end == -1:
            return before + text.find(b"\n") + 1
        rfind = text.rfind
        while end != last_nl:
            start = end + 1
            end = rfind(b"\n", start, start + limit)
            if end == -1:
                # The line from ``start`` has no LF within the limit: too long.
                return text.find(b"\n", start) - start + 1
        return 0

    @property
    def hops(self) -> int:
        return self._hops.hops

    def take_trailing(self) -> bytes:
        """Return and forget the octets received after the terminator.

        These are pipelined commands (``QUIT``, or the next ``MAIL`` under RFC
        2920), to be fed back to the line splitter.
        """
        trailing, self._trailing = self._trailing, b""
        return trailing


def crlf_line_endings(data: bytes) -> bytes:
    """``data`` with every line ending, bare CR and bare LF included, as CRLF.

    Example:
      >>> crlf_line_endings(b"a\\nb\\rc\\r\\n")
      b'a\\r\\nb\\r\\nc\\r\\n'
    """
    return _ANY_LINE_END.sub(b"\r\n", data)


def dot_stuff(body: bytes) -> bytes:
    """Prepare a body for sending after DATA (RFC 5321 §4.5.2).

    Bare CR and LF are first rewritten as CRLF, so no receiver, however lax,
    can find an early end of data in what we send (SMTP smuggling). Every
    line starting with "." gets one more, the body is ended with CRLF if it
    was not, and the terminator ``.\\r\\n`` is appended.

    Args:
      body: The message as stored.

    Returns:
      The octets to send.

    Example:
      >>> dot_stuff(b".hidden\\r\\nlast")
      b'..hidden\\r\\nlast\\r\\n.\\r\\n'
    """
    if body.count(b"\n") != body.count(b"\r\n") or body.count(b"\r") != body.count(b"\r\n"):
        body = crlf_line_endings(body)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\n.", b"\n..") + b".\r\n"


TOO_MANY_HOPS = Reply(554, "Too many hops: mail loop detected (RFC 5321 section 6.3)", "5.4.6")


class DotStuffer:
    """Dot-stuff a body fed in chunks (RFC 5321 §4.5.2), carrying line state across them.

    Gives the same octets as :func:`dot_stuff` on the whole body: bare CR / LF
    become CRLF, a leading ``.`` is doubled, the body ends with CRLF, then
    ``.\\r\\n``. The client streams a body from a file through it, one chunk
    at a time, so the body is never held whole.

    Example:
      >>> stuffer = DotStuffer()
      >>> stuffer.feed(b"a\\r") + stuffer.feed(b"\\n.b") + stuffer.finish()
      b'a\\r\\n..b\\r\\n.\\r\\n'
    """

    def __init__(self) -> None:
        self._line_start = True
        self._held_cr = False
        self._empty = True

    def feed(self, chunk: bytes) -> bytes:
        """Return the stuffed octets for ``chunk`` (a trailing CR waits for the next)."""
        if not chunk:
            return b""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            # It may be half of a CRLF split across chunks: decide with the next one.
            chunk = chunk[:-1]
            self._held_cr = True
            if not chunk:
                return b""
        self._empty = False
        chunk = crlf_line_endings(chunk)
        if self._line_start and chunk.startswith(b"."):
            chunk = b"." + chunk
        self._line_start = chunk.endswith(b"\n")
        return chunk.replace(b"\n.", b"\n..")

    def finish(self) -> bytes:
        """Return the end of the body: a held CR, a missing CRLF, then ``.\\r\\n``."""
        out = b""
        if self._held_cr:
            out = b"\r\n"
            self._held_cr, self._line_start, self._empty = False, True, False
        if not self._empty and not self._line_start:
            out += b"\r\n"
        return out + b".\r\n"


def data_problem(reader: DataReader, policy: BareLineEndings, line_limit: int) -> Reply | None:
    """The refusal a finished DATA body earns (size, bare line endings, line length), if any."""
    if reader.size_exceeded:
        return MESSAGE_TOO_BIG
    if reader.bare_line_ending_seen and policy is BareLineEndings.REJECT:
        return Reply(550, "Bare CR or LF in message; lines must end with CRLF", "5.5.2")
    if reader.line_too_long:
        return Reply(550, f"Message has a line longer than {line_limit} octets", "5.6.0")
    if reader.too_many_hops:
        # RFC 5321 §6.3 (mail loops); RFC 3463 X.4.6 "Routing loop detected".
        # Postfix says "554 5.4.0 Error: too many hops".
        return TOO_MANY_HOPS
    return None
