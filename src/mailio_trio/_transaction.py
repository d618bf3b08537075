"""The ``queue`` chain's second phase: commit every prepared copy, or roll all of them back.

After the final dot the server answers for the whole transaction (RFC 5321
§4.1.1.4, §6.1): ``250`` means every handler that keeps the message has it
durably, anything else means none of them does — the client keeps the message
and retries a ``4xx``, or reports a ``5xx`` to its user. Without a second
phase a handler late in the chain (a relay spool that cannot write, a virus
scanner's ``554``, a timeout) would refuse a message that earlier handlers had
already put in a mailbox: the client's retry then delivers it twice, and a
"refused" message is read all the same.

So a handler that keeps the message *prepares* (writes and fsyncs where no
reader looks: maildir ``tmp/``, a spool file the relay worker does not pick
up) and registers ``req.on_commit`` / ``req.on_rollback`` steps. Once every
handler accepted, the session runs the commit steps in order, before the
reply is sent; the first that fails (or outlasts ``limits.handler_timeout``)
rolls everything back and the client gets ``451 4.3.0``. A chain that
rejects, ends, raises, times out or is cancelled runs the rollback steps
instead, shielded from cancellation, each bounded by
``limits.rollback_timeout``.

Crash safety is each handler's own: a prepared copy must be one that a
restart discards (the client got no ``250`` and retries), a committed one
must survive. Between the first commit step and the ``250`` reaching the
client a crash can still leave a committed copy the client never heard of:
that is the at-least-once window every MTA has (RFC 1047), kept to renames.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio

from mailio_trio.protocol import ConnectionLost, Reply
from mailio_trio.protocol.catalogue import INTERNAL_ERROR

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from mailio_trio.chain import Request

__all__ = ["COMMIT_FAILED", "commit", "peer_closed", "roll_back"]

# The catalogue's 451 4.3.0 under the name chain.commit tests for (by identity).
COMMIT_FAILED = INTERNAL_ERROR


def step_name(step: Callable[[], Awaitable[None]]) -> str:
    """A step's function for log lines (``mailio_trio.plugins.maildir.deliver.<locals>.commit``)."""
    module = getattr(step, "__module__", None) or "?"
    return f"{module}.{getattr(step, '__qualname__', type(step).__qualname__)}"


def peer_closed(stream: trio.abc.Stream) -> bool:
    """Whether the client has closed its side of the connection; never blocks or consumes.

    RFC 5321 §3.8: a connection closed before the reply is a premature close,
    and the server "MUST behave as if a RSET had been received (canceling any
    pending transaction ...)". A client that closed cannot read our ``250``
    and will send the message again, so committing would deliver it twice.

    Only an EOF waiting on the socket counts (``MSG_PEEK``: pipelined commands
    after the dot are left for the session). Under TLS a ``close_notify``
    record may sit before the EOF: then this says ``False`` and the message
    is committed, as before — best effort, never a false "closed".
    """
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if not isinstance(stream, trio.SocketStream):
        return False  # send_mail's stand-in connection, an in-memory test stream
    fd = stream.socket.fileno()
    if fd < 0:
        return True
    # A socket object over the same descriptor, detached again below: no dup, no close.
    sock = socket.socket(fileno=fd)
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # connected, nothing sent: the usual case
    except OSError:
        return True  # reset by the client
    finally:
        sock.detach()


async def commit(
    req: Request,
    steps: Sequence[Callable[[], Awaitable[None]]],
    reply: Reply,
) -> Reply:
    """Run ``steps`` in order; ``reply`` if all succeed, else roll back and ``451 4.3.0``.

    Raises:
      ConnectionLost: The client closed the connection before its reply;
        everything was rolled back.
    """
    session = req.session
    if peer_closed(session.stream):
        session.log.info(
            "client closed the connection before the reply: transaction rolled back (RFC 5321 §3.8)"
        )
        await req.roll_back()
        raise ConnectionLost("client closed the connection before the reply")
    timeout = session.config.limits.handler_timeout
    for step in steps:
        failure: BaseException | None = None
        with trio.move_on_after(timeout) as scope:
            try:
                await step()
            except Exception as exc:
                failure = exc
        if scope.cancelled_caught:
            failure = TimeoutError(f"commit step did not finish in {timeout}s")
        if failure is not None:
            session.log.error(
                "commit step %s failed: rolling the transaction back, answering 451 4.3.0",
                step_name(step),
                exc_info=failure,
            )
            await req.roll_back()
            return COMMIT_FAILED
    return reply


async def roll_back(req: Request, steps: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run rollback ``steps`` newest first, each once, shielded, bounded, errors logged.

    Shielded: a session cancelled by shutdown or by its client's disconnect
    must still remove what it prepared. Bounded by ``limits.rollback_timeout``
    per step, so one stuck step cannot hold the others (or the session) forever.
    """
    session = req.session
    timeout = session.config.limits.rollback_timeout
    for step in reversed(steps):
        with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
            try:
                await step()
            except Exception:
                session.log.exception("rollback step %s failed", step_name(step))
        if scope.cancelled_caught:
            session.log.error(
                "rollback step %s did not finish in %ss: its copy may remain",
                step_name(step),
                timeout,
            )
