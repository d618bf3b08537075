"""CHUNKING (RFC 3030): the ``BDAT <size> [LAST]`` command and its chunks' octets.

A chunk is exactly ``size`` octets after the command line: no dot-stuffing,
no terminator, so nothing in it can end the message early (no SMTP
smuggling). The danger is the other way round: octets of a chunk the server
did not read would be taken for commands. So every chunk whose size can be
read is consumed, even when the command is refused; a size that cannot be
read leaves no way to find the next command, and the session closes.

BINARYMIME (RFC 3030 §3) is not offered, as Postfix and Dovecot do not: a
message sent with BDAT is still text, so the line-ending policy, the
line-length limit and the hop count apply to it exactly as to a DATA body
(:class:`ChunkReader` runs :class:`~mailio_trio.protocol.data.DataReader`'s
checks without the dot handling), and it is stored with CRLF line endings.

This module must never do I/O, read a clock or import trio.
"""

from __future__ import annotations

import re

import attrs

from mailio_trio.protocol.data import BareLineEndings, DataReader
from mailio_trio.protocol.errors import ClientProtocolError, ProtocolUsageError
from mailio_trio.protocol.replies import Reply

__all__ = ["Bdat", "BdatSyntaxError", "ChunkReader", "parse_bdat"]

_CR = 0x0D
# RFC 3030 §2: chunk-size = 1*DIGIT. Eighteen digits (just under an exabyte)
# is past any size limit and still a plain int: a longer number is noise.
_SIZE = re.compile(r"([0-9]{1,18})(?: |\Z)")
BDAT_SYNTAX = Reply(501, "Syntax: BDAT <size> [LAST]", "5.5.4")


@attrs.frozen
class Bdat:
    """A parsed ``BDAT`` argument.

    Attributes:
      size: Octets of the chunk that follows the command line.
      last: The chunk ends the message (``LAST``).
    """

    size: int
    last: bool


class BdatSyntaxError(ClientProtocolError):
    """A ``BDAT`` argument that does not parse; ``size`` is the chunk still to consume, if known.

    ``size is None``: the size itself is unreadable, so where the next command
    starts is unknown and the session must close (the reply is its last).
    """

    def __init__(self, reply: Reply, size: int | None) -> None:
        super().__init__(reply)
        self.size = size


def parse_bdat(argument: str) -> Bdat:
    """Parse ``BDAT``'s argument: ``<size>`` or ``<size> LAST`` (``LAST`` in any case).

    Raises:
      BdatSyntaxError: ``501 5.5.4``; with ``size`` set when only the part
        after the size is wrong (the chunk is still consumed).

    Example:
      >>> parse_bdat("4096 LAST")
      Bdat(size=4096, last=True)
    """
    match = _SIZE.match(argument)
    if match is None:
        raise BdatSyntaxError(BDAT_SYNTAX, None)
    size = int(match.group(1))
    rest = argument[match.end() :]
    if not rest:
        return Bdat(size, last=False)
    if rest.upper() == "LAST":
        return Bdat(size, last=True)
    raise BdatSyntaxError(BDAT_SYNTAX, size)


class ChunkReader(DataReader):
    """Consume a message's BDAT chunks, yield the body to store; sans-I/O.

    The same size, line-length, bare line ending and hop checks as
    :class:`~mailio_trio.protocol.data.DataReader` (same arguments and
    attributes), with no dot handling and no terminator: the session calls
    :meth:`finish` after the ``LAST`` chunk. How the octets are cut into
    chunks and reads does not change what is returned; only a trailing CR
    is held back (its LF may start the next chunk).

    Example:
      >>> reader = ChunkReader(max_size=0)
      >>> reader.feed(b"Subject: hi\\r\\n\\r\\n.dot\\r") + reader.feed(b"\\nend")
      b'Subject: hi\\r\\n\\r\\n.dot\\r\\nend'
      >>> reader.finish(), reader.done
      (b'\\r\\n', True)
    """

    _unstuff = False

    def __init__(
        self,
        *,
        max_size: int,
        line_limit: int = 1000,
        bare_line_endings: BareLineEndings = BareLineEndings.NORMALISE,
        max_hops: int = 0,
    ) -> None:
        super().__init__(
            max_size=max_size,
            line_limit=line_limit,
            bare_line_endings=bare_line_endings,
            max_hops=max_hops,
        )

    def feed(self, data: bytes) -> bytes:
        """Consume chunk octets; return body octets ready to store (``b""`` once too big).

        Raises:
          ProtocolUsageError: Called after :meth:`finish`.
        """
        if self.done:
            raise ProtocolUsageError("ChunkReader.feed() after finish()")
        buf = self._carry + data if self._carry else bytes(data)
        if not buf:
            return b""
        if buf[-1] == _CR:
            buf, self._carry = buf[:-1], b"\r"
        else:
            self._carry = b""
        return self._process(buf)

    def finish(self) -> bytes:
        """End the message (after ``BDAT ... LAST``); return its last body octets.

        A held CR is bare (no LF came), and a last line without a line end
        gets CRLF, so the stored body ends like a DATA body.
        """
        if self.done:
            raise ProtocolUsageError("ChunkReader.finish() twice")
        self.done = True
        out = self._process(self._carry) if self._carry else b""
        self._carry = b""
        if not self._at_line_start:
            out += self._process(b"\r\n")
        return out
