"""Count the ``Received:`` trace lines of a message's header block, as it streams.

RFC 5321 §6.3: a server "SHOULD" count ``Received:`` headers to detect mail
loops and refuse a message past a threshold (the RFC suggests at least 100;
Postfix refuses past 50, Exim past 30). Only the header block counts: the
lines before the first empty line. A header line is one that starts with
``Received:`` (any case) at the start of a line; continuation lines begin
with white space and never match, and nothing after the empty line is
looked at, so a body quoting trace lines is not a loop.

The counter holds at most the first few octets of the current line between
chunks, and stops reading at the end of the header block, so counting costs
nothing for the body however large. Input is CRLF text, as the DATA reader
emits and the spool stores; a bare LF also ends a line.

This module must never do I/O, read a clock or import trio.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["HopCounter", "count_hops"]

_PREFIX = b"received:"
# Over whole lines at once (the usual case: a header block in one read). With a
# search position, ``^`` matches only at a real line start, which is where feed
# starts its searches.
_TRACE_LINE = re.compile(rb"^received:", re.IGNORECASE | re.MULTILINE)
_EMPTY_LINE = re.compile(rb"^\r*\n", re.MULTILINE)


class HopCounter:
    """Feed a message's octets in any chunking; ``hops`` counts its trace lines.

    Example:
      >>> counter = HopCounter()
      >>> counter.feed(b"Received: from a\\r\\n\\tby b\\r\\nRECEIVED: x\\r\\nSubj")
      >>> counter.feed(b"ect: hi\\r\\n\\r\\nReceived: body\\r\\n")
      >>> counter.hops, counter.done
      (2, True)

    Attributes:
      hops: ``Received:`` header lines seen so far.
      done: The empty line ending the header block was seen; later input is ignored.
    """

    __slots__ = ("_head", "_skipping", "done", "hops")

    def __init__(self) -> None:
        self.hops = 0
        self.done = False
        self._head = b""  # the current line's first octets, up to len(_PREFIX)
        self._skipping = False  # the current line is judged: skip to its end

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n and not self.done:
            if not (self._skipping or self._head):
                # At a line start: the complete lines ahead in two regex scans,
                # not a Python step per line (this runs for every message).
                last = data.rfind(b"\n", i)
                if last != -1:
                    empty = _EMPTY_LINE.search(data, i, last + 1)
                    stop = last + 1 if empty is None else empty.start()
                    self.hops += len(_TRACE_LINE.findall(data, i, stop))
                    if empty is not None:
                        self.done = True
                        return
                    i = last + 1
                    if i == n:
                        return
            if self._skipping:
                end = data.find(b"\n", i)
                if end == -1:
                    return
                i, self._skipping = end + 1, False
                continue
            piece = data[i : i + len(_PREFIX) - len(self._head)]
            end = piece.find(b"\n")
            if end != -1:  # a line shorter than the prefix ended
                line, self._head = self._head + piece[:end], b""
                i += end + 1
                if not line.rstrip(b"\r"):
                    self.done = True  # the empty line: the body follows
                continue
            self._head += piece
            i += len(piece)
            if len(self._head) == len(_PREFIX):
                if self._head.lower() == _PREFIX:
                    self.hops += 1
                self._head, self._skipping = b"", True


def count_hops(chunks: Iterable[bytes]) -> int:
    """The ``Received:`` lines of the header block in ``chunks``; stops reading at its end.

    Example (a stored message, read lazily)::

        with path.open("rb") as f:
            hops = count_hops(iter(lambda: f.read(65536), b""))
    """
    counter = HopCounter()
    for chunk in chunks:
        counter.feed(chunk)
        if counter.done:
            break
    return counter.hops
