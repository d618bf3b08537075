"""Split the command stream into lines, with a hard bound on what is held.

This module owns the command-phase framing only; DATA bodies go through
:mod:`mailio_trio.protocol.data`, whose end-of-data rules are stricter.

Lines end at LF, and one CR directly before the LF is dropped with it. RFC 5321
§2.3.8 asks for CRLF, but real clients send bare LF in commands and every major
MTA accepts it there; the danger of bare line endings is confined to DATA. A CR
anywhere else stays in the line so that :func:`~mailio_trio.protocol.commands.parse_command`
can refuse it (a bare CR must never be mistaken for a line end, RFC 5321 §2.3.8).

Memory: a client may send a "line" of any length. Once more than ``limit``
octets are held without an LF, they are dropped and the rest of the line is
counted, not stored, until its LF arrives; the splitter then yields one
:class:`OverlongLine` so the session can answer ``500 5.5.6``. The splitter must
never do I/O, read a clock or import trio.
"""

from __future__ import annotations

import collections
import enum

import attrs

__all__ = ["LineSplitter", "Need", "OverlongLine"]

# RFC 5321 §4.5.3.1.4: 510 octets of command + CRLF = 512.
DEFAULT_LINE_LIMIT = 512


class Need(enum.Enum):
    """Marker: the buffered bytes do not yet hold a complete line."""

    DATA = "need more data"


@attrs.frozen
class OverlongLine:
    """A line longer than the limit; consumed through its line end, content dropped.

    Attributes:
      length: Octets of the whole line, including its terminator.
    """

    length: int


class LineSplitter:
    """Turn a byte stream into lines, sans-I/O.

    Example:
      >>> splitter = LineSplitter(limit=512)
      >>> splitter.feed(b"EHLO a.example\\r\\nNOOP\\n")
      >>> splitter.next_line(), splitter.next_line(), splitter.next_line()
      (b'EHLO a.example', b'NOOP', <Need.DATA: 'need more data'>)

    Args:
      limit: Longest acceptable line in octets, terminator included. AUTH may
        raise it on a live splitter (RFC 4954 §4 allows 12288-octet lines).
    """

    def __init__(self, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self.limit = limit
        # Segments of pending input in arrival order. Every bytearray but the
        # last ends at a line end (or is empty); an OverlongLine stands where a
        # dropped line was, so lines before and after it keep their order.
        self._queue: collections.deque[bytearray | OverlongLine] = collections.deque([bytearray()])
        # While a dropped line's LF has not arrived: octets dropped so far.
        self._discarding: int | None = None
        # Octets at the end of the last feed that are already too long for a
        # line. They are dropped at the next feed, not at once: the lines before
        # them may include a BDAT command, whose chunk they are (RFC 3030), and
        # take_buffered() must hand that chunk over whole. The next feed only
        # comes once every line before them was returned, and next_line drops
        # them as soon as it has nothing else to return.
        self._overlong_tail = 0

    def _drop_overlong_tail(self) -> None:
        tail = self._queue[-1]
        assert isinstance(tail, bytearray)
        del tail[len(tail) - self._overlong_tail :]
        self._discarding, self._overlong_tail = self._overlong_tail, 0

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client.

        Args:
          data: Any chunk; splitting of the stream into chunks does not matter.
        """
        if not data:
            return
        if self._overlong_tail:
            self._drop_overlong_tail()
        if self._discarding is not None:
            end = data.find(b"\n")
            if end == -1:
                self._discarding += len(data)
                return
            self._queue.append(OverlongLine(length=self._discarding + end + 1))
            self._discarding = None
            data = data[end + 1 :]
            self._queue.append(bytearray())
        tail = self._queue[-1]
        assert isinstance(tail, bytearray)  # the invariant above
        start = len(tail)
        tail += data
        # Only the part after the last LF can still grow; if it alone is as long
        # as the limit, its line is over-long whatever comes next.
        last_lf = tail.rfind(b"\n", start)
        if last_lf == -1:
            last_lf = tail.rfind(b"\n", 0, start)
        partial = len(tail) - (last_lf + 1)
        if partial >= self.limit:
            self._overlong_tail = partial

    def next_line(self) -> bytes | OverlongLine | Need:
        """Return the next complete line without its terminator.

        Returns:
          The line's bytes; an :class:`OverlongLine` for a line over the limit;
          or ``Need.DATA`` when no complete line is buffered.
        """
        queue = self._queue
        while True:
            head = queue[0]
            if isinstance(head, OverlongLine):
                queue.popleft()
                return head
            end = head.find(b"\n")
            if end == -1:
                if len(queue) == 1:
                    if self._overlong_tail:  # every line before it is out: drop it now
                        self._drop_overlong_tail()
                    return Need.DATA
                queue.popleft()  # an exhausted segment before an OverlongLine
                continue
            length = end + 1
            line_end = end - 1 if end and head[end - 1] == 0x0D else end
            line = bytes(head[:line_end])
            # bytearray keeps a start offset, so deleting a prefix is cheap.
            del head[:length]
            if length > self.limit:
                return OverlongLine(length=length)
            return line

    @property
    def has_buffered(self) -> bool:
        """True while any received octet has not been returned as part of a line.

        A partial line counts, and so does an over-long line still being skipped.
        """
        if self._discarding is not None or len(self._queue) > 1:
            return True
        head = self._queue[0]
        return isinstance(head, OverlongLine) or bool(head)

    def take_buffered(self) -> bytes:
        """Return and forget everything received but not yet returned as a line.

        After ``STARTTLS`` the session calls this to drop plaintext the client
        pipelined behind the command (the CVE-2011-0411 command injection);
        after ``BDAT`` it takes the chunk's first octets, which are all here:
        an over-long tail is only dropped once no line is left before it.
        Dropped over-long content is already gone and is not included.
        """
        queue = self._queue
        if len(queue) == 1 and isinstance(head := queue[0], bytearray):
            pending = bytes(head)  # the usual case (DATA's first chunk), without a generator
            head.clear()
        else:
            pending = b"".join(bytes(seg) for seg in queue if isinstance(seg, bytearray))
            self._queue = collections.deque([bytearray()])
        self._discarding = None
        self._overlong_tail = 0
        return pending

    @property
    def buffered_size(self) -> int:
        """Octets currently held in memory (never much more than ``limit`` per line)."""
        return sum(len(seg) for seg in self._queue if isinstance(seg, bytearray))
