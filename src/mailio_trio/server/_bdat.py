"""BDAT (RFC 3030 CHUNKING): a message in chunks, into the one message path DATA takes.

Every chunk goes through the ``bdat`` chain (``plugins/bdat.py`` checks the
sequence), then its octets are read — exactly ``size`` of them, accepted or
not, so none is ever read as a command — through a
:class:`~mailio_trio.protocol.ChunkReader` into the same spool file, under
the same limits, as a DATA body. The ``LAST`` chunk's reply is DATA's final
reply: the ``queue`` chain, and ``250`` only once every copy is durable.

What fails a message: a refused chunk, a bad argument after a readable size
(``501``), the size limit (``552``, checked before reading when the declared
size alone is too much) or, at the chunk that shows it, bare line endings
under ``reject``, an over-long line or too many hops. The transaction then
ends at once: RFC 3030 §2 says the sender must send no more chunks and the
receiver must read and throw away those already pipelined, and as after
``BDAT LAST`` each of those is a command out of sequence, ``503 5.5.1``
(the state after a failed chunk is "indeterminate", RFC 3030 §2, until
RSET or MAIL; ours is: no transaction). A size that cannot be read at all
leaves no way to find the next command, so the session answers ``501
5.5.4`` and closes; with a readable size it reads the chunk and goes on.

``limits.data_timeout`` bounds the time spent reading a message's chunks,
all of them together (the command waits between chunks are the idle
timer's); a refused chunk has a ``data_timeout`` of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from mailio_trio.chain import Request
from mailio_trio.message import Message
from mailio_trio.protocol import BdatSyntaxError, ChunkReader, data_problem, parse_bdat
from mailio_trio.protocol.catalogue import MESSAGE_TOO_BIG
from mailio_trio.server._context import Close
from mailio_trio.server._spool import NullSpool, Spool

if TYPE_CHECKING:
    from mailio_trio.protocol import Command, Reply
    from mailio_trio.server._session import Session

__all__ = ["ChunkedMessage", "receive_bdat"]


@attrs.define(eq=False)
class ChunkedMessage:
    """A message whose first chunks have arrived: its reader, spool file and time left."""

    reader: ChunkReader
    spool: Spool | NullSpool
    header_size: int
    seconds_left: float

    def discard(self) -> None:
        self.spool.discard()


def _drop(_: bytes) -> None:
    pass


async def receive_bdat(session: Session, command: Command) -> None:
    """Run one ``BDAT`` command: its chain, its chunk, and after ``LAST`` the ``queue`` chain.

    Raises:
      Close: The chunk size cannot be read (``501 5.5.4``, then the connection closes).
      ConnectionLost: The client went away mid-chunk (the message is thrown away).
    """
    limits = session.config.limits
    try:
        bdat = parse_bdat(command.argument)
    except BdatSyntaxError as exc:
        if exc.size is None:
            session.log.info("BDAT size unreadable: closing, its chunk cannot be skipped")
            raise Close(exc.reply) from None
        await _refuse(session, exc.size, exc.reply)
        return
    reply = await session.decide("bdat", Request(command, session))
    if not reply.is_positive:
        await _refuse(session, bdat.size, reply)
        return
    message = session.chunked
    if message is None:
        message = session.chunked = _start(session)
    reader = message.reader
    try:
        if limits.message_size and reader.size + bdat.size > limits.message_size:
            # Stored octets are never fewer than sent ones (only bare CR/LF
            # grow, into CRLF): too big already, so read without storing.
            message.seconds_left = await session.connection.receive_exact(
                bdat.size, _drop, message.seconds_left
            )
            problem: Reply | None = MESSAGE_TOO_BIG
        else:
            spool = message.spool

            def store(data: bytes) -> None:
                body = reader.feed(data)
                if body and not (
                    reader.line_too_long or reader.bare_line_ending_seen or reader.too_many_hops
                ):
                    spool.write(body)

            message.seconds_left = await session.connection.receive_exact(
                bdat.size, store, message.seconds_left
            )
            if bdat.last:
                store_last = reader.finish()
                if store_last:
                    spool.write(store_last)
            problem = data_problem(reader, limits.bare_line_endings, limits.text_line_length)
    except BaseException:
        session.reset_transaction()  # the spool file goes with it
        raise
    if problem is not None:
        session.rejected["bdat"] = problem.code
        # LMTP answers the end of the message per recipient (RFC 2033 §4.3).
        replies = session.per_recipient(problem) if bdat.last else [problem]
        session.reset_transaction()
        session.queue_reply(session.queue_replies(replies))
        return
    if not bdat.last:
        session.queue_reply(reply)
        return
    message.spool.close()
    session.chunked = None  # deliver() removes the file from here on
    received = Message(
        id=f"{session.id}.{session.transaction}",
        path=message.spool.path,
        envelope=session.envelope.copy(),
        size=message.header_size + reader.size,
    )
    try:
        finals = await session.deliver_each(received)
    finally:
        session.transaction += 1
        session.reset_transaction()
    session.queue_reply(session.queue_replies(finals))


def _start(session: Session) -> ChunkedMessage:
    limits = session.config.limits
    reader = ChunkReader(
        max_size=limits.message_size,
        line_limit=limits.text_line_length,
        bare_line_endings=limits.bare_line_endings,
        max_hops=limits.max_hops,
    )
    if session.context.discard:
        return ChunkedMessage(reader, NullSpool(), 0, limits.data_timeout)
    spool = Spool(session.config.spool_dir)
    header = session.received_header()
    spool.write(header)
    return ChunkedMessage(reader, spool, len(header), limits.data_timeout)


async def _refuse(session: Session, size: int, reply: Reply) -> None:
    """Consume a refused chunk and answer it; a message under way fails with it."""
    session.rejected["bdat"] = reply.code
    try:
        await session.connection.receive_exact(size, _drop, session.config.limits.data_timeout)
    finally:
        # Even before the first chunk: a message missing one must never be stored.
        if session.in_transaction or session.chunked is not None:
            session.reset_transaction()
    session.queue_reply(reply)
