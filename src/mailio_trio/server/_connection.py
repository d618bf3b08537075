"""The byte side of a session: replies out, command lines in, the idle timer.

:class:`Connection` queues replies and sends them in one write when the
client's input is drained (RFC 2920 pipelining), splits command lines, and
runs the idle timer.
Plain TCP sessions read and write their socket directly (``os.read`` /
``os.write`` on the non-blocking fd) and wait for readiness only when the
kernel has nothing: Trio's ``SocketStream`` costs a scheduler pass and several
wrapper layers per call, most of a small command's CPU. TLS sessions keep
``trio.SSLStream``. Whether a session takes the direct path is decided when it
is created (``FAST_SOCKET_IO``).

A :class:`~mailio_trio.server._session.Session` *has* a connection
(``session.connection``) and uses only its public methods; the session's
state and its handler chains are none of this module's business.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import secrets
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.protocol import (
    ClientProtocolError,
    ConnectionLost,
    DataReader,
    LineSplitter,
    Need,
    OverlongLine,
    Reply,
)
from mailio_trio.protocol.catalogue import LINE_TOO_LONG

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailio_trio.config import Config
    from mailio_trio.server._context import ServerContext

transcript = logging.getLogger("mailio_trio.transcript")

# Large reads let the DATA reader work in bulk; the kernel hands over what it has.
RECEIVE_SIZE = 64 * 1024
# Immediate reads/writes a session may do in a row before yielding to the
# scheduler, so one client pipelining without pause cannot starve the others.
_FAST_IO_BUDGET = 16

# Plain TCP connections read and write their socket directly (see the module
# docstring); tests run the end-to-end suites both ways by turning this off
# (tests/conftest.py). Read when a connection is made.
FAST_SOCKET_IO = os.name == "posix"


class _SessionIds:
    """Session ids: 12 hex digits, unique per process and across forked workers.

    A random 48-bit start per process, counted up: ``secrets.token_hex`` per
    connection was a system call each. The ids name sessions in logs, trace
    lines and queue ids; they are not secrets.
    """

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._counter = itertools.count(int.from_bytes(secrets.token_bytes(6)))

    def next(self) -> str:
        return f"{next(self._counter) & 0xFFFF_FFFF_FFFF:012x}"


_session_ids = _SessionIds()


@attrs.define(eq=False)
class Connection:
    """One client's connection: its stream, reply queue, line splitter and idle timer.

    Attributes:
      context: The server's shared state (limits, shutdown).
      stream: What replies are written to and input read from; a TLS stream
        after :meth:`replace_stream`.
      line_limit: The longest command line, CRLF included.
      id: The session id: transcript lines, and the session's own logs, carry it.
      answering: The command the next queued reply answers: each reply is
        counted under it (``mailio_commands_total``); the session sets it.
    """

    context: ServerContext
    stream: trio.abc.Stream
    line_limit: int = attrs.field(kw_only=True)
    id: str = attrs.field(factory=lambda: _session_ids.next(), kw_only=True)
    _splitter: LineSplitter = attrs.field(init=False)
    _outbox: list[bytes] = attrs.field(factory=list, init=False)
    _idle_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _waiting_for_command: bool = attrs.field(default=False, init=False)
    _idle_armed: bool = attrs.field(default=False, init=False)
    """The idle scope still has the last command wait's deadline (see ``disarm_idle``)."""
    _fd: int = attrs.field(default=-1, init=False)
    """The socket's fd while the fast plain-socket path is in use, else -1."""
    _budget: int = attrs.field(default=_FAST_IO_BUDGET, init=False)
    _data_timed_out: bool = attrs.field(default=False, init=False)
    """A message body's ``limits.data_timeout`` ran out (the session answers ``421 4.4.2``)."""
    answering: str = attrs.field(default="connect", init=False)

    def __attrs_post_init__(self) -> None:
        self._splitter = LineSplitter(self.line_limit)
        if FAST_SOCKET_IO and type(self.stream) is trio.SocketStream:
            self._fd = self.stream.socket.fileno()

    @property
    def config(self) -> Config:
        return self.context.config

    @property
    def data_timed_out(self) -> bool:
        """A message body's ``limits.data_timeout`` ran out: what ended the command loop."""
        return self._data_timed_out

    # -- output --------------------------------------------------------------

    def queue_reply(self, reply: Reply) -> None:
        self.context.tally.replies[self.answering, reply.code // 100] += 1
        data = reply.to_bytes(enhanced=self.context.config.enhanced_status_codes)
        if transcript.isEnabledFor(logging.DEBUG):
            transcript.debug("[%s] S: %r", self.id, data)
        self._outbox.append(data)

    async def flush(self, patience: float | None = None, *, last: bool = False) -> None:
        """Send every queued reply in one write.

        Args:
          patience: Seconds a client that stops reading may hold us up; the
            default is ``limits.idle_timeout``.
          last: Nothing is read after this write (the session ends).
        """
        if not self._outbox:
            return
        data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
        self._outbox.clear()
        if self._fd >= 0:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                # The same exception trio's send_all raises for a broken socket.
                raise trio.BrokenResourceError(str(exc)) from exc
            if sent == len(data):
                if last:
                    return
                # Let the other sessions run before reading on: a client that waits
                # for this reply needs a moment to send its next command, and with
                # it already in the kernel the next read succeeds at once instead
                # of failing and registering the socket with epoll. Shielded, so a
                # stale idle deadline cannot act here (see disarm_idle); the
                # budget still brings a cancellable checkpoint every so often, or
                # a client that always has its next command waiting would never
                # let a cancellation through.
                if self._budget > 1:
                    self._budget -= 1
                    await trio.lowlevel.cancel_shielded_checkpoint()
                else:
                    await self._spend_budget()  # the cancellable one
                return
            data = data[sent:]
        self.disarm_idle()
        # A client that stops reading must not hold this task forever.
        if patience is None:
            patience = self.config.limits.idle_timeout
        with trio.move_on_after(patience) as scope:
            if self._fd >= 0:
                await self._write_slowly(data)
            else:
                await self.stream.send_all(data)
        if scope.cancelled_caught:
            raise ConnectionLost("client stopped reading replies")

    async def _write_slowly(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            await trio.lowlevel.wait_writable(self._fd)
            try:
                sent = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            view = view[sent:]

    async def _spend_budget(self) -> None:
        """Yield to the scheduler after a run of operations that never had to wait."""
        self._budget -= 1
        if self._budget <= 0:
            self._budget = _FAST_IO_BUDGET
            self.disarm_idle()
            await trio.lowlevel.checkpoint()

    def disarm_idle(self) -> None:
        """Turn the idle timer off; call it before anything that may yield outside a command wait.

        After a command wait the idle scope keeps that wait's deadline instead
        of being reset at once (a deadline change costs two heap operations and
        a context manager in Trio, twice per command). That is safe because a
        deadline only takes effect when the task yields to the scheduler:
        everything that may yield between two command waits — a handler that
        may wait, an after-reply step, a slow write, the fast path's periodic
        checkpoint — calls this first, so nothing but a command wait can ever
        be cut short by the idle timer.
        """
        if self._idle_armed:
            self._idle_armed = False
            if self._idle_scope is not None:
                self._idle_scope.deadline = math.inf

    async def send_now(self, reply: Reply | str) -> None:
        """Send an intermediate reply immediately (``res.write``)."""
        if isinstance(reply, str):
            if "\r" in reply or "\n" in reply:
                raise ValueError("write() takes one line without CR or LF")
            transcript.debug("[%s] S: %r", self.id, reply)
            self._outbox.append(reply.encode("utf-8") + b"\r\n")
        else:
            self.queue_reply(reply)
        await self.flush()

    # -- input ---------------------------------------------------------------

    def _receive_nowait(self, size: int = RECEIVE_SIZE) -> bytes | None:
        """What the kernel has for us now on the fast path; ``None`` if nothing (or no fast path).

        Raises:
          ConnectionLost: EOF or a broken connection.
        """
        if self._fd < 0:
            return None
        try:
            data = os.read(self._fd, size)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise ConnectionLost(str(exc)) from exc
        if not data:
            raise ConnectionLost("client closed the connection")
        return data

    async def _receive(self, size: int = RECEIVE_SIZE) -> bytes:
        if self._fd >= 0:
            while True:
                data = self._receive_nowait(size)
                if data is not None:
                    await self._spend_budget()
                    return data
                await trio.lowlevel.wait_readable(self._fd)
                self._budget = _FAST_IO_BUDGET
        try:
            data = bytes(await self.stream.receive_some(size))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from exc
        if not data:
            raise ConnectionLost("client closed the connection")
        return data

    async def read_auxiliary_line(self) -> str:
        """The next line inside a command's exchange (``res.read``); not a command.

        Raises:
          ClientProtocolError: The line is too long or not UTF-8 (``500``/``501``).
          ConnectionLost: The client went away.
        """
        await self.flush()
        while (line := self._splitter.next_line()) is Need.DATA:
            self._splitter.feed(await self._receive())
        if isinstance(line, OverlongLine):
            raise ClientProtocolError(LINE_TOO_LONG)
        assert isinstance(line, bytes)
        # Auxiliary lines carry AUTH secrets: never in the transcript.
        transcript.debug("[%s] C: <%d octets>", self.id, len(line))
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientProtocolError(
                Reply(501, "Syntax error: line is not valid UTF-8", "5.5.2")
            ) from None

    def push_input(self, data: bytes) -> None:
        """Bytes of the client's read before the session began (after a PROXY header).

        They come before anything read from the stream, on both socket paths.
        """
        self._splitter.feed(data)

    async def receive_exact(
        self, size: int, sink: Callable[[bytes], object], seconds: float
    ) -> float:
        """Hand exactly the next ``size`` octets of input to ``sink`` (a BDAT chunk).

        What the line splitter already holds comes first (the client may send
        a chunk with its command); then reads of at most
        ``limits.data_read_size`` octets that never ask for more than the
        chunk, so what follows it stays for the command loop and no more than
        one read is ever held. Like a DATA body, the read runs on the idle
        scope with a deadline of its own (see :meth:`receive_data`).

        Args:
          size: Octets to read.
          sink: Called with each piece, in order.
          seconds: The most this may take.

        Returns:
          What is left of ``seconds``.

        Raises:
          ConnectionLost: The client went away.
          trio.Cancelled: ``seconds`` ran out (:attr:`data_timed_out` is set) or shutdown.
        """
        if size <= 0:
            return seconds
        idle = self._idle_scope
        if idle is None:
            raise RuntimeError("receive_exact runs inside the session's command loop")
        deadline = trio.current_time() + seconds
        idle.deadline, self._idle_armed = deadline, False
        try:
            buffered = self._splitter.take_buffered()
            if len(buffered) > size:
                self._splitter.feed(buffered[size:])  # pipelined commands after the chunk
                buffered = buffered[:size]
            if buffered:
                sink(buffered)
                size -= len(buffered)
            read_size = self.config.limits.data_read_size
            while size:
                data = await self._receive(min(size, read_size))
                sink(data)
                size -= len(data)
        except trio.Cancelled:
            if trio.current_time() >= deadline:
                self._data_timed_out = True
            raise
        finally:
            self._idle_armed = True  # as after a DATA body: see receive_data
        return max(0.0, deadline - trio.current_time())

    async def receive_data(
        self, reader: DataReader, store: Callable[[bytes], object], seconds: float
    ) -> None:
        """Feed a DATA body to ``reader`` up to its end, handing what it gives back to ``store``.

        What the line splitter already holds comes first (pipelined with
        ``DATA``); what the client sent after the body's end goes back to the
        splitter for the command loop.

        ``seconds`` (``limits.data_timeout``) bounds the whole body. It rides
        on the idle scope rather than a cancel scope of its own (a scope per
        message is a tenth of a small message's CPU): the deadline replaces
        any left from the last command wait, "not armed" keeps
        :meth:`disarm_idle` from lifting it at the fast path's checkpoints,
        and when it fires the command loop ends with :attr:`data_timed_out`.

        Raises:
          ConnectionLost: The client went away mid-body.
          trio.Cancelled: ``seconds`` ran out (:attr:`data_timed_out` is set) or shutdown.
        """
        idle = self._idle_scope
        if idle is None:
            raise RuntimeError("receive_data runs inside the session's command loop")
        deadline = trio.current_time() + seconds
        idle.deadline, self._idle_armed = deadline, False
        try:
            read_size = self.config.limits.data_read_size
            chunk = self._splitter.take_buffered()
            while True:
                if chunk and (body := reader.feed(chunk)):
                    store(body)
                if reader.done:
                    break
                chunk = await self._receive(read_size)
            self._splitter.feed(reader.take_trailing())
        except trio.Cancelled:
            if trio.current_time() >= deadline:
                self._data_timed_out = True
            raise
        finally:
            # Left in place like a command wait's (see disarm_idle): whatever
            # yields next lifts it first, and the next command wait replaces it.
            self._idle_armed = True

    def drop_buffered_input(self) -> bytes:
        """Throw away what the client sent but we have not read (STARTTLS, CVE-2011-0411)."""
        return self._splitter.take_buffered()

    def new_idle_scope(self) -> trio.CancelScope:
        """The one cancel scope the command loop runs in; enter it around the loop.

        Its deadline is infinite (or, between commands, that of the last
        wait: see :meth:`disarm_idle`) except while :meth:`next_command_line`
        waits or a message body is read, and only those are ever cancelled
        (idle timer, shutdown, DATA timeout): leaving the scope means one of
        those happened. A scope per connection whose deadline moves costs far
        less than a new scope per command. Call :meth:`drop_idle_scope` after.
        """
        self._idle_scope = scope = trio.CancelScope()
        return scope

    def drop_idle_scope(self) -> None:
        """The command loop has ended: nothing waits on the idle scope any more."""
        self._idle_scope, self._idle_armed = None, False

    async def next_command_line(self) -> bytes | OverlongLine:
        """The next command line, waited for under the idle timer (see :meth:`new_idle_scope`).

        Raises:
          ConnectionLost: The client went away.
          trio.Cancelled: The idle timer ran out, or shutdown interrupted the wait.
        """
        idle = self._idle_scope
        if idle is None:
            raise RuntimeError("next_command_line runs inside new_idle_scope()")
        deadline = None
        while (line := self._splitter.next_line()) is Need.DATA:
            await self.flush()
            # Pipelined input already waiting needs no timer.
            if not self.context.shutting_down and (data := self._receive_nowait()) is not None:
                self._splitter.feed(data)
                await self._spend_budget()
                continue
            if deadline is None:
                # Counted from the end of the last command, not from its last byte.
                deadline = trio.current_time() + self.context.config.limits.idle_timeout
            if not self._idle_armed or idle.deadline != deadline:
                idle.deadline = deadline
                self._idle_armed = True  # left set after the wait: see disarm_idle
            self._waiting_for_command = True
            if self.context.shutting_down:
                idle.cancel()
            elif self._fd >= 0:
                # The read just above found nothing: wait, then read at the top
                # of the loop (going through _receive would try a read again).
                await trio.lowlevel.wait_readable(self._fd)
                self._budget = _FAST_IO_BUDGET
                self._waiting_for_command = False
                continue
            data = await self._receive()
            self._waiting_for_command = False
            self._splitter.feed(data)
        assert not isinstance(line, Need)
        return line

    async def wait_for_early_input(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the client to send anything before our greeting.

        RFC 5321 §3.1: the client waits for the greeting; one that talks first is
        a spam engine that does not listen (Postfix postscreen's pregreet test).
        What arrives is kept for the command loop, so nothing is lost.

        Raises:
          ConnectionLost: The client went away while we waited.
        """
        if self._splitter.has_buffered:
            return True
        with trio.move_on_after(seconds):
            self._splitter.feed(await self._receive())
            return True
        return False

    def interrupt_idle(self) -> None:
        """Wake the session if it is waiting for a command (shutdown)."""
        if self._waiting_for_command and self._idle_scope is not None:
            self._idle_scope.cancel()

    # -- the stream ----------------------------------------------------------

    def replace_stream(self, stream: trio.abc.Stream) -> None:
        """Carry on over ``stream``, which wraps the current one (STARTTLS's ``SSLStream``).

        The direct socket path ends here: the bytes on the socket are TLS
        records, not ours to read.
        """
        self.stream = stream
        self._fd = -1

    async def aclose(self) -> None:
        """Close the stream; a TLS one gets ``close_notify`` within ``limits.farewell_timeout``."""
        if type(self.stream) is trio.SocketStream:
            # What aclose_forcefully does for a plain socket, without its two
            # cancel scopes and checkpoint: the close itself never blocks.
            self.stream.socket.close()
            return
        farewell = self.config.limits.farewell_timeout
        with trio.CancelScope(shield=True), trio.move_on_after(farewell):
            if isinstance(self.stream, trio.SSLStream):
                # close_notify first: TLS clients (openssl s_client) treat a bare
                # TCP close as a truncation attack (RFC 8446 §6.1).
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.stream.aclose()
            await trio.aclose_forcefully(self.stream)
