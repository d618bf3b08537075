"""One SMTP connection: reads command lines, runs their chains, writes replies.

The session is the error boundary: whatever a handler or the client does,
this connection ends with a reply where one can still be sent and the server
goes on serving everyone else.

Replies are collected and written in one ``send_all`` when the client's input
is drained (RFC 2920 pipelining); anything that waits for the client flushes
first. Waiting for a command is the only place the idle timer runs, and it
counts from the end of the last command, not the last byte, so a client
dripping one byte a second is cut off like a silent one. That byte side —
reply queue, line input, idle timer, direct socket I/O — is a
``mailio_trio.server._connection.Connection``, which a :class:`Session` *has*
(``session.connection``) and drives through its public methods; the session
is the SMTP side: handler chains, DATA, STARTTLS and the command loop.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio._handler_log import SessionLog
from mailio_trio.abuse import AbuseKind
from mailio_trio.chain import (
    Decision,
    Handler,
    HandlerFunc,
    HandlerMisuse,
    Request,
    Response,
    Step,
    handler_decorator,
    order_handlers,
)
from mailio_trio.message import Envelope, Message
from mailio_trio.plugins.ehlo import dsn_offered
from mailio_trio.protocol import (
    ClientProtocolError,
    Command,
    ConnectionLost,
    DataReader,
    OverlongLine,
    Reply,
    Verb,
    data_problem,
    parse_command,
)
from mailio_trio.protocol.catalogue import (
    DATA_TIMEOUT,
    INTERNAL_ERROR,
    LINE_TOO_LONG,
    NOT_IMPLEMENTED,
    SHUTTING_DOWN,
    TOO_MANY_UNRECOGNIZED,
)
from mailio_trio.protocol.dsn import ORCPT_LIMIT
from mailio_trio.server import _session_log
from mailio_trio.server._bdat import ChunkedMessage, receive_bdat
from mailio_trio.server._connection import Connection
from mailio_trio.server._context import (
    ClientInfo,
    Close,
    Counters,
    ServerContext,
    TLSInfo,
    tls_info,
)
from mailio_trio.server._spool import NullSpool, Spool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mailio_trio.config import Config


__all__ = ["ClientInfo", "ConnectionLost", "Counters", "ServerContext", "Session", "TLSInfo"]

logger = logging.getLogger("mailio_trio.session")
transcript = logging.getLogger("mailio_trio.transcript")


REFUSALS_LOGGED = 20
"""Refusals per connection that get a mail log line of their own (see ``note_refused``)."""


def command_line_limit(config: Config) -> int:
    """The longest command line a session reads, CRLF included."""
    limit = config.limits.command_line_length
    if dsn_offered(config):
        # RFC 3461 §4: DSN lengthens a RCPT line by up to 500 octets (NOTIFY, ORCPT).
        limit += ORCPT_LIMIT
    return limit


@attrs.define(eq=False, kw_only=True)
class Session:
    """One client connection and its SMTP state.

    Attributes users read: ``id``, ``transaction`` (messages accepted so far),
    ``client``, ``envelope``, ``secure``/``tls``, ``user``, ``accepted`` /
    ``rejected`` (command → last reply code), ``counters``, and ``data``, a
    dict that is the user's own; ``context``, ``config`` and ``stream``.

    The bytes — replies out, lines in, the idle timer — are ``connection``'s
    (a ``Connection``); what handlers use of it the session passes on:
    :meth:`send_now`, :meth:`read_auxiliary_line`,
    :meth:`wait_for_early_input` and ``queue_reply``. Make one with
    :meth:`for_stream`.
    """

    context: ServerContext
    connection: Connection
    client: ClientInfo
    transaction: int = 0
    envelope: Envelope = attrs.field(factory=Envelope)
    esmtp: bool = False
    secure: bool = False
    tls: TLSInfo | None = None
    user: Any = None
    accepted: dict[str, int] = attrs.field(factory=dict)
    rejected: dict[str, int] = attrs.field(factory=dict)
    counters: Counters = attrs.field(factory=Counters)
    data: dict[str, Any] = attrs.field(factory=dict)
    values: dict[str, Any] = attrs.field(factory=dict)
    """What handlers stored with ``res.set``, by ``"command/name"``."""
    _log: SessionLog | None = attrs.field(default=None, init=False)
    _own: dict[str, list[Handler]] = attrs.field(factory=dict, init=False)
    _plans: dict[str, tuple[Step, ...]] | None = attrs.field(default=None, init=False)
    """Plans of commands with per-session handlers; None while there are none."""
    chunked: ChunkedMessage | None = attrs.field(default=None, init=False)
    """A message arriving in BDAT chunks, until its ``LAST`` (``server/_bdat.py``)."""
    id: str = attrs.field(init=False)
    """The session id, the connection's (12 hex digits); message ids are ``id.transaction``."""
    queue_reply: Callable[[Reply], None] = attrs.field(init=False, repr=False)
    """Queue a reply; it goes out with the next flush (``connection.queue_reply``).

    Bound once, not a method that passes it on: every command queues a reply.
    """

    def __attrs_post_init__(self) -> None:
        self.id = self.connection.id  # log lines and message ids: a plain attribute
        self.queue_reply = self.connection.queue_reply

    @classmethod
    def for_stream(
        cls,
        context: ServerContext,
        stream: trio.abc.Stream,
        client: ClientInfo,
        *,
        secure: bool = False,
        tls: TLSInfo | None = None,
    ) -> Session:
        """A session with ``client`` over ``stream``: plain, or already TLS (``secure``)."""
        connection = Connection(context, stream, line_limit=command_line_limit(context.config))
        return cls(context=context, connection=connection, client=client, secure=secure, tls=tls)

    # -- the connection, as handlers see it ------------------------------------

    @property
    def config(self) -> Config:
        return self.context.config

    @property
    def stream(self) -> trio.abc.Stream:
        """The client's stream, a ``trio.SSLStream`` once TLS is on."""
        return self.connection.stream

    async def send_now(self, reply: Reply | str) -> None:
        """Send an intermediate reply immediately (``res.write``)."""
        await self.connection.send_now(reply)

    async def read_auxiliary_line(self) -> str:
        """The next line inside a command's exchange (``res.read``); not a command.

        Raises:
          ClientProtocolError: The line is too long or not UTF-8 (``500``/``501``).
          ConnectionLost: The client went away.
        """
        return await self.connection.read_auxiliary_line()

    async def wait_for_early_input(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the client to send anything before our greeting.

        What arrives is kept for the command loop (``plugins/pregreet.py``).

        Raises:
          ConnectionLost: The client went away while we waited.
        """
        return await self.connection.wait_for_early_input(seconds)

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The session's logger; its lines carry ``[session.transaction]`` (made on first use)."""
        if self._log is None:
            self._log = SessionLog(logger, self)
        return self._log

    def handler_log(self, handler: Handler) -> SessionLog:
        """A logger whose lines carry this session and ``handler`` (``res.log``)."""
        return SessionLog(logger, self, handler.key)

    # -- per-session handlers ------------------------------------------------

    def handler(
        self,
        command: str,
        name: str | None = None,
        *,
        before: Iterable[str] = (),
        after: Iterable[str] = (),
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Decorator: add a handler for this session only (after the server's, unless ordered)."""

        return handler_decorator(self.add_handler, command, name, before, after)

    def add_handler(self, handler: Handler) -> None:
        own = [*self._own.get(handler.command, ()), handler]
        chain = self.context.chain
        ordered = order_handlers(
            [*chain.handlers(handler.command), *own], known=chain.nameable(handler.command)
        )
        if self._plans is None:
            self._plans = {}
        self._plans[handler.command] = chain.plan_of(ordered)
        self._own[handler.command] = own

    def handlers(self, command: str) -> tuple[Handler, ...]:
        if self._plans is None or command not in self._plans:
            return self.context.chain.handlers(command)
        return tuple(step.handler for step in self._plans[command])

    def plan(self, command: str) -> tuple[Step, ...]:
        """What runs for ``command`` in this session (the server's chain plus our own)."""
        if self._plans is not None and (own := self._plans.get(command)) is not None:
            return own
        return self.context.chain.plan(command)

    # -- state ---------------------------------------------------------------

    @property
    def helo_name(self) -> str | None:
        return self.client.helo

    @property
    def in_transaction(self) -> bool:
        return self.envelope.has_sender

    def reset_transaction(self) -> None:
        """Forget the envelope and what handlers stored for it (RSET, EHLO, after DATA)."""
        self.envelope = Envelope()
        if self.chunked is not None:
            self.chunked.discard()
            self.chunked = None
        for key in [k for k in self.values if k.split("/", 1)[0] in _TRANSACTION_COMMANDS]:
            del self.values[key]

    def reset_after_tls(self) -> None:
        """RFC 3207 §4.2: forget all knowledge obtained from the client before TLS."""
        self.reset_transaction()
        self.client.helo = None
        self.esmtp = False
        self.user = None
        self.values.clear()

    # -- DATA ----------------------------------------------------------------

    async def receive_message(self) -> Message:
        """Stream the DATA body to a spool file, with our ``Received:`` line first.

        Raises:
          ClientProtocolError: Too big, bare line endings under ``reject``, or an
            over-long line; the body was read to its end and thrown away.
          ConnectionLost: The client went away mid-body.
        """
        limits = self.config.limits
        reader = DataReader(
            max_size=limits.message_size,
            line_limit=limits.text_line_length,
            bare_line_endings=limits.bare_line_endings,
            max_hops=limits.max_hops,
        )
        spool = NullSpool() if self.context.discard else Spool(self.config.spool_dir)

        def store(body: bytes) -> None:
            # Once a line was too long (or, under "reject", ended bare) the
            # message will be refused: read on to its end, store no more.
            if not (reader.line_too_long or reader.bare_line_ending_seen or reader.too_many_hops):
                spool.write(body)

        try:
            header = b"" if self.context.discard else self.received_header()
            spool.write(header)
            # limits.data_timeout bounds the whole body; when it fires, _serve
            # answers 421 4.4.2 (connection.data_timed_out).
            await self.connection.receive_data(reader, store, limits.data_timeout)
            problem = data_problem(reader, limits.bare_line_endings, limits.text_line_length)
            if problem is not None:
                raise ClientProtocolError(problem)
            spool.close()
        except BaseException:
            spool.discard()
            raise
        return Message(
            id=f"{self.id}.{self.transaction}",
            path=spool.path,
            envelope=self.envelope.copy(),
            size=len(header) + reader.size,
        )

    def per_recipient(self, reply: Reply) -> list[Reply]:
        """The end of a message's ``reply`` as sent: once, or under LMTP once per recipient."""
        if not self.config.lmtp:
            return [reply]
        return [reply] * max(1, len(self.envelope.recipients))

    def queue_replies(self, replies: list[Reply]) -> Reply:
        """Queue all of ``replies`` but the last, which is returned for the caller to send."""
        for reply in replies[:-1]:
            self.queue_reply(reply)
        return replies[-1]

    def received_header(self) -> bytes:
        """Our trace line (RFC 5321 §4.4), protocol type per RFC 3848."""
        client = self.client
        ip = client.address
        literal = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"
        remote = f"{client.hostname} {literal}" if client.hostname else literal
        # RFC 3848 names LMTP, LMTPS, LMTPA and LMTPSA too (LHLO sets esmtp).
        base = "LMTP" if self.config.lmtp else "ESMTP" if self.esmtp else "SMTP"
        protocol = base + (
            ("S" if self.secure else "") + ("A" if self.user is not None else "")
            if self.esmtp
            else ""
        )
        recipients = self.envelope.recipients
        message_id = f"{self.id}.{self.transaction}"
        parts = [
            f"Received: from {client.helo or literal} ({remote})",
            f"\tby {self.config.hostname} (mailio_trio) with {protocol} id {message_id}",
        ]
        if self.tls is not None:
            parts[-1] += f"\r\n\t(using {self.tls.version} with cipher {self.tls.cipher})"
        if len(recipients) == 1:
            parts.append(f"\tfor <{recipients[0]}>")
        parts[-1] += ";"
        parts.append(f"\t{format_datetime(datetime.now(UTC))}")
        return ("\r\n".join(parts) + "\r\n").encode("utf-8")

    # -- STARTTLS ------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the stream in TLS after our ``220`` was sent; reset the session state."""
        dropped = self.connection.drop_buffered_input()
        if dropped:
            self.log.info("discarded %d octets pipelined after STARTTLS", len(dropped))
        stream = trio.SSLStream(self.stream, context, server_side=True)
        with trio.move_on_after(self.config.limits.tls_handshake_timeout) as scope:
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                self.context.abuse_log.log(
                    AbuseKind.TLS_HANDSHAKE,
                    self.log,
                    logging.INFO,
                    "TLS handshake failed: %s",
                    exc.__cause__ or exc,
                )
                raise Close(None) from exc
        if scope.cancelled_caught:
            self.log.info("TLS handshake timed out")
            raise Close(None)
        self.connection.replace_stream(stream)
        self.secure = True
        self.tls = tls_info(stream)
        self.reset_after_tls()

    # -- running -------------------------------------------------------------

    async def run(self) -> None:
        """Serve this connection until it ends; never raises but for cancellation."""
        self.context.sessions.add(self)
        started = trio.current_time()
        try:
            await self._serve()
        except Close as close:
            await self._send_last(close.reply)
        except (ConnectionLost, trio.BrokenResourceError) as exc:
            # BrokenResourceError here is a reply we could not write: the client
            # reset the connection or stopped reading. Its doing, not our error.
            self.log.debug("connection lost: %s", exc)
        except Exception:
            self.log.exception("session failed")
            await self._send_last(INTERNAL_ERROR)
        finally:
            self.context.sessions.discard(self)
            if self.chunked is not None:  # gone between two chunks: no spool file left behind
                self.chunked.discard()
            if self.counters.auth_failures and self.context.redis is not None:
                self.context.auth_failed[self.client.address] += self.counters.auth_failures
            if _session_log.wanted():
                _session_log.log_connection(self, trio.current_time() - started)
            await self.connection.aclose()

    async def _send_last(self, reply: Reply | None) -> None:
        if reply is not None:
            self.queue_reply(reply)
        # At most limits.farewell_timeout for a client that does not read its last
        # reply; the timeout is flush's own, so the usual case (one write) needs no scope.
        lost = (ConnectionLost, trio.BrokenResourceError, trio.ClosedResourceError)
        with contextlib.suppress(*lost):
            await self.connection.flush(patience=self.config.limits.farewell_timeout, last=True)

    async def _serve(self) -> None:
        for callback in self.context.on_session:
            callback(self)
        decision, reply = await self.run_chain("connect", Request(_CONNECT, self))
        if decision != Decision.ACCEPT or reply is None:
            # A refused client gets its answer and nothing more (RFC 5321 §3.1's 554).
            if reply is not None:
                self.note_refused("connect", reply)
            raise Close(reply)
        self.queue_reply(reply)
        connection = self.connection
        next_command_line = connection.next_command_line
        # Leaving this block means the idle timer, shutdown or the DATA timeout
        # cancelled it (see Connection.new_idle_scope).
        with connection.new_idle_scope():
            while True:
                line = await next_command_line()
                if self.context.shutting_down:
                    connection.answering = "shutdown"
                    raise Close(SHUTTING_DOWN)
                if isinstance(line, OverlongLine):
                    self.context.abuse_log.log(
                        AbuseKind.OVERLONG_COMMAND,
                        self.log,
                        logging.INFO,
                        "command line of %d octets refused",
                        line.length,
                    )
                    self.not_a_command(LINE_TOO_LONG)
                    continue
                await self.handle_line(line)
        connection.drop_idle_scope()
        if connection.data_timed_out:
            raise Close(DATA_TIMEOUT)
        if self.context.shutting_down:
            raise Close(SHUTTING_DOWN)
        await self.run_event("timeout")
        raise Close(None)

    async def handle_line(self, line: bytes) -> None:
        try:
            command = parse_command(line)
        except ClientProtocolError as exc:
            # A malformed AUTH line still carries credentials: never in the transcript.
            redacted = b"AUTH ***" if line[:4].upper() == b"AUTH" else line[:100]
            transcript.debug("[%s] C: %r", self.id, redacted)
            self.not_a_command(exc.reply)
            return
        self.counters.commands += 1
        if transcript.isEnabledFor(logging.DEBUG):
            shown = (
                f"AUTH {command.argument.split(' ')[0]} ***" if command.verb is Verb.AUTH else line
            )
            transcript.debug("[%s] C: %r", self.id, shown)
        if command.verb is Verb.BDAT:
            # Its chunk follows the line, read whatever the chain decides.
            self.connection.answering = "bdat"
            await receive_bdat(self, command)
            return
        name = command.name if command.verb is not None else "unrecognized"
        plan = self.plan(name)
        if not plan:
            self.connection.answering = name
            self.queue_reply(NOT_IMPLEMENTED)
            return
        await self.dispatch(name, Request(command, self), plan)

    def not_a_command(self, reply: Reply) -> None:
        """Answer a line that is no command at all; it counts as an unrecognized one.

        Binary noise, TLS spoken to the plain port, a flood of NUL or over-long
        lines: answered one by one forever, such a client would hold its slot and
        our CPU, so it meets ``limits.unrecognized_commands`` like any other
        guesser (Postfix counts these toward its junk and hard error limits too).

        Raises:
          Close: The limit is passed; ``421 4.7.0`` and the connection is closed.
        """
        self.connection.answering = "unrecognized"
        self.counters.unrecognized += 1
        if self.counters.unrecognized > self.config.limits.unrecognized_commands:
            self.context.abuse_log.log(  # rate-limited: one line per guessing bot
                AbuseKind.UNRECOGNIZED,
                self.log,
                logging.INFO,
                "closing after %d unrecognized lines",
                self.counters.unrecognized,
            )
            raise Close(TOO_MANY_UNRECOGNIZED)
        self.queue_reply(reply)

    async def run_event(self, name: str) -> None:
        """Run an internal event's chain (``timeout``) and send what it answers."""
        await self.dispatch(name, Request(Command(None, name, ""), self))

    async def dispatch(self, name: str, req: Request, plan: tuple[Step, ...] | None = None) -> None:
        """Run ``name``'s chain for ``req``, send its reply, then any after-reply steps."""
        self.connection.answering = name
        reply = await self.decide(name, req, plan)
        self.queue_reply(reply)
        # accept() only takes 2xx/3xx and reject() only 4xx/5xx: the code says which it was.
        for step in req.take_after_reply() if reply.is_positive else ():
            self.connection.disarm_idle()
            await self.connection.flush()
            try:
                follow_up = await step()
            except ClientProtocolError as exc:
                follow_up = exc.reply
            if follow_up is not None:
                self.queue_reply(follow_up)

    async def decide(self, name: str, req: Request, plan: tuple[Step, ...] | None = None) -> Reply:
        """Run ``name``'s chain and carry out its decision; returns the reply to send.

        Raises:
          Close: A handler ended the session.
        """
        decision, reply = await self.run_chain(name, req, plan)
        if decision == Decision.END:
            if reply is not None and not reply.is_positive:
                self.note_refused(name, reply, req)
            raise Close(reply)
        assert reply is not None
        if decision == Decision.REJECT:
            self.rejected[name] = reply.code
            if name != "queue":  # deliver() logs the message, refused or not
                self.note_refused(name, reply, req)
            else:
                self.counters.refused += 1
            return reply
        if req.refused_recipients and self._refuses_all(req):
            # Nobody left to keep it for (or SMTP, with one reply for all): see reject_recipient.
            await req.roll_back()
            reply = next(iter(req.refused_recipients.values()))
            self.rejected[name] = reply.code
            return reply
        # Queue handlers' second phase, before the reply goes out (see _transaction.py).
        if req.prepared:
            self.connection.disarm_idle()  # commit steps wait (threads, fsync)
            if not (reply := await req.commit(reply)).is_positive:
                self.rejected[name] = reply.code
                self.counters.refused += 1
                return reply
        for effect in req.take_effects():
            effect()
        self.accepted[name] = reply.code
        return reply

    def _refuses_all(self, req: Request) -> bool:
        if not self.config.lmtp or req.message is None:
            return True
        refused = req.refused_recipients
        return all(r.key() in refused for r in req.message.envelope.recipients)

    async def deliver(self, message: Message) -> Reply:
        """Run the ``queue`` chain for a received message; the spool copy is removed after.

        The transaction ends here whatever the answer (RFC 5321 §4.1.1.4).
        """
        return (await self.deliver_each(message))[0]

    async def deliver_each(self, message: Message) -> list[Reply]:
        """:meth:`deliver`, with LMTP's replies: one per recipient, in RCPT order (RFC 2033 §4.2).

        Under SMTP the list holds the one reply.
        """
        req = Request(_QUEUE, self, sender=message.envelope.sender, message=message)
        reply: Reply | None = None
        try:
            reply = await self.decide("queue", req)
            tally = self.context.tally
            if reply.is_positive:
                tally.messages["accepted"] += 1
                tally.message_bytes += message.size
            else:
                tally.messages["refused"] += 1
            if not self.config.lmtp:
                return [reply]
            refused = req.refused_recipients
            return [refused.get(r.key(), reply) for r in message.envelope.recipients]
        finally:
            if reply is not None and _session_log.wanted():
                _session_log.log_message(self, message, reply)
            await req.roll_back()  # unless committed: refused, raised, cancelled, client gone
            if not self.context.discard:
                message.path.unlink(missing_ok=True)
            self.counters.messages += 1

    def note_refused(self, command: str, reply: Reply, req: Request | None = None) -> None:
        """Count a 4xx/5xx answer to ``command`` and give it its mail log line.

        At most ``REFUSALS_LOGGED`` lines per connection: a client flooding us
        with refused commands (5,000 RCPTs) must not flood the log, or pay
        for a line each; the connection's line counts them all (``refused=``).
        """
        self.counters.refused += 1
        if self.counters.refused <= REFUSALS_LOGGED and _session_log.wanted():
            _session_log.log_refusal(self, command, reply, req)

    async def run_chain(
        self, name: str, req: Request, plan: tuple[Step, ...] | None = None
    ) -> tuple[str, Reply | None]:
        """Run the handlers of ``name`` (or ``plan``) in order; returns the decision and the reply.

        The reply is ``None`` only for an ``end`` without one.
        """
        reply = _DEFAULT_ACCEPT
        for handler, config, may_wait in plan if plan is not None else self.plan(name):
            res = Response(self, handler)
            req.config = config
            failure: BaseException | None = None
            try:
                if not may_wait:
                    # It cannot block, so handler_timeout needs no cancel scope (~7 µs each).
                    await handler.func(req, res)
                else:
                    self.connection.disarm_idle()
                    timeout = self.context.config.limits.handler_timeout
                    timer = self.context.handler_timer
                    started = time.perf_counter() if timer is not None else 0.0
                    with trio.move_on_after(timeout) as scope:
                        await handler.func(req, res)
                    if timer is not None:
                        timer(handler.key, time.perf_counter() - started)
                    if scope.cancelled_caught:
                        self.log.error("handler %s timed out after %ss", handler.key, timeout)
                        return Decision.REJECT, INTERNAL_ERROR
            except ClientProtocolError as exc:
                return Decision.REJECT, exc.reply
            except (ConnectionLost, Close):
                raise
            except Exception as exc:
                failure = exc
            if failure is not None or res.decided_twice or res.decision is None:
                if failure is None:  # no decision, or a second one whose error it swallowed
                    what = "decided twice" if res.decided_twice else "returned without deciding"
                    failure = HandlerMisuse(f"handler {handler.key} {what}")
                self.log.error("handler %s failed", handler.key, exc_info=failure)
                return Decision.REJECT, INTERNAL_ERROR
            if res.decision == Decision.ACCEPT:
                if res.reply is not None:
                    reply = res.reply
                continue
            return res.decision, res.reply
        return Decision.ACCEPT, reply


_TRANSACTION_COMMANDS = frozenset({"mail", "rcpt", "data", "bdat", "queue"})
_DEFAULT_ACCEPT = Reply(250, "OK", "2.0.0")
_CONNECT = Command(None, "connect", "")
_QUEUE = Command(None, "queue", "")
