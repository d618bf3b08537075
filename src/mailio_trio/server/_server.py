"""The server: listeners, the connection limit, graceful shutdown.

Connections run in a nursery that outlives the accept loops, so stopping
accepting never cuts a transaction short; each connection's task is the error
boundary for that connection (``Session.run``).

Implicit TLS (SMTPS, RFC 8314 §3.3) listeners hand each accepted socket to its
connection task, which does the handshake under ``limits.tls_handshake_timeout``:
a client that never finishes its handshake holds only its own task, never the
accept loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import ssl
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.abuse import AbuseKind
from mailio_trio.chain import Chain, Handler, HandlerFunc, handler_decorator
from mailio_trio.config import Config, ConfigError, ProxyUntrusted
from mailio_trio.networks import Network, in_networks, parse_networks
from mailio_trio.protocol import Reply
from mailio_trio.protocol.catalogue import TOO_MANY_CONNECTIONS, TOO_MANY_FROM_YOU
from mailio_trio.server._admission import Admission, PerIpLimiter
from mailio_trio.server._context import tls_info
from mailio_trio.server._proxy import PrefixedStream, read_proxy_header, refuse_untrusted
from mailio_trio.server._session import ClientInfo, ServerContext, Session
from mailio_trio.server._spool import prepare_directory
from mailio_trio.server._submit import SubmissionRefused
from mailio_trio.server._unix import (
    bound_address,
    close_unix_listener,
    open_unix_listener,
    peer_address,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from email.message import EmailMessage

    from mailio_trio.dns import Resolver
    from mailio_trio.plugins.dsn import DsnOutbox
    from mailio_trio.relay.worker import RelayWorker
    from mailio_trio.server._fleet import FleetLimiter
    from mailio_trio.server._metrics import Metrics
    from mailio_trio.server._submit import SubmissionResult

__all__ = ["Address", "Server", "ServerStatistics"]

logger = logging.getLogger("mailio_trio.server")

Address = tuple[str, int]
"""A bound ``(host, port)``."""

LOCKED_OUT = Reply(421, "Too many failed authentications from your address, try later", "4.7.0")
"""``redis.auth_lockout_failures`` reached for this address, across the fleet."""


# Running out of file descriptors is a passing condition: wait, then accept again,
# as trio.serve_listeners does.
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY_SECONDS = 0.1


@attrs.frozen
class ServerStatistics:
    active_sessions: int
    sessions_total: int
    refused_over_limit: int
    tls_handshakes: int = 0
    """Implicit-TLS connections still in their handshake (they count toward the limit)."""
    proxy_headers: int = 0
    """Connections still sending their PROXY protocol header (they count toward the limit)."""


@attrs.define(eq=False)
class Server:
    """An SMTP server whose every command runs through a chain of handlers.

    Example::

        server = Server(Config(hostname="mx.example.com", domains=["example.com"]))

        @server.handler("rcpt", after=("core",))
        async def only_example(req, res):
            if req.to.domain == "example.com":
                res.accept()
            else:
                res.reject(550, "5.7.1 We only accept mail for example.com")

        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(server.serve, "127.0.0.1", 2525)
    """

    config: Config = attrs.field(factory=Config)
    tls_context: ssl.SSLContext | None = None
    """For STARTTLS and SMTPS; built from ``config.tls`` when not given."""
    resolver: Resolver | None = None
    """DNS for reverse lookups and plugins; by default built from ``config.dns`` if set."""
    discard: bool = attrs.field(default=False, kw_only=True)
    """Read every DATA body in full and drop it (``serve --discard``, the benchmark sink)."""
    lmtp: bool = attrs.field(default=False, kw_only=True)
    """Speak LMTP: ``Server(config, lmtp=True)`` is ``config.lmtp = true`` (which it sets)."""
    chain: Chain = attrs.field(init=False)
    _context: ServerContext = attrs.field(init=False)
    _accept_scopes: set[trio.CancelScope] = attrs.field(factory=set, init=False)
    _serving: int = attrs.field(default=0, init=False)
    _handshaking: int = attrs.field(default=0, init=False)
    _proxy_waiting: int = attrs.field(default=0, init=False)
    _proxy_trusted: tuple[Network, ...] = attrs.field(init=False)
    _stopped: trio.Event = attrs.field(factory=trio.Event, init=False)
    _sessions_total: int = attrs.field(default=0, init=False)
    _refused: int = attrs.field(default=0, init=False)
    relay: RelayWorker | None = attrs.field(default=None, init=False)
    """The relay worker when ``relay.enabled``; run by :meth:`serve_listeners`."""
    _dsn_outbox: DsnOutbox | None = attrs.field(default=None, init=False)
    _relay_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _per_ip: PerIpLimiter = attrs.field(init=False)
    _warned_no_keeper: bool = attrs.field(default=False, init=False)
    _fleet: FleetLimiter | None = attrs.field(default=None, init=False)
    metrics: Metrics | None = attrs.field(default=None, init=False)
    """Prometheus collection, when ``config.metrics.listen`` is set or
    :meth:`serve_metrics` was called (see ``server/_metrics.py``)."""

    def __attrs_post_init__(self) -> None:
        from mailio_trio.plugins import register_configured, register_core
        from mailio_trio.tls import build_server_context

        if self.lmtp and not self.config.lmtp:
            self.config = attrs.evolve(self.config, lmtp=True)
        self.lmtp = self.config.lmtp
        if self.config.spool_dir is not None:
            prepare_directory("server.spool_dir", self.config.spool_dir)
        if self.resolver is None and self.config.dns is not None:
            from mailio_trio.dns import DnsResolver

            self.resolver = DnsResolver(self.config.dns)
        if self.tls_context is None:
            self.tls_context = build_server_context(self.config.tls)
        self.chain = Chain(plugins=self.config.plugins)
        self._context = ServerContext(
            config=self.config,
            chain=self.chain,
            tls_context=self.tls_context,
            resolver=self.resolver,
            discard=self.discard,
        )
        self._per_ip = PerIpLimiter(self.config.limits)
        self._proxy_trusted = parse_networks(self.config.proxy_trusted)
        if self.config.redis.url is not None:
            from mailio_trio._shared import RedisState
            from mailio_trio.server._fleet import FleetLimiter

            self._context.redis = RedisState(self.config.redis, self._context.abuse_log)
            self._fleet = FleetLimiter(self._context.redis, self.config.limits)
        if self.config.metrics.listen is not None:
            self._enable_metrics()
        register_core(self.chain)
        register_configured(self.chain, self.config, has_resolver=self.resolver is not None)
        if self.config.relay.enabled:
            self._start_relay()
        if self.config.maildir.enabled:
            from mailio_trio.plugins import dsn

            # Delivered-at-the-mailbox reports (RFC 3461 NOTIFY=SUCCESS), sent after the 250.
            self._dsn_outbox = dsn.DsnOutbox(self._submit_dsn)
            dsn.register(self.chain, self._dsn_outbox)

    async def _submit_dsn(self, data: bytes, sender: str, recipients: list[str]) -> None:
        # Through our own queue chain: a local sender's DSN lands in its maildir
        # instead of being relayed to ourselves; a remote one is spooled.
        try:
            await self.send_mail(data, sender=sender, recipients=recipients)
        except SubmissionRefused as exc:
            if not exc.refused or any(o.reply.code < 500 for o in exc.refused):
                raise  # the worker keeps the entry and tries again later
            # A DSN whose recipient our own policy refuses for good (no such
            # mailbox, relaying off) has nowhere to go: drop it, as MTAs drop
            # a double bounce, rather than retry it until the spool expires.
            logger.warning("DSN to %s dropped: %s", ", ".join(recipients), exc.reply)

    def _enable_metrics(self) -> Metrics:
        from mailio_trio.server._metrics import MeteredResolver, Metrics

        if self.metrics is None:
            self.metrics = Metrics(self)
            self._context.handler_timer = self.metrics.observe_handler
            if self.resolver is not None:
                self.resolver = MeteredResolver(self.resolver, self.metrics)
                self._context.resolver = self.resolver
        return self.metrics

    def _start_relay(self) -> None:
        from mailio_trio.dns import DnsResolver
        from mailio_trio.plugins import queue_relay
        from mailio_trio.plugins._dkim_signing import load_signer
        from mailio_trio.relay.worker import RelayWorker

        signer = load_signer(self.config)  # reads [dkim.keys] once; ConfigError now, not later
        resolver = self.resolver or DnsResolver()
        self.relay = RelayWorker(self.config, resolver, submit=self._submit_dsn)
        queue_relay.register(self.chain, self.relay, signer)

    async def _run_relay(self, *, task_status: trio.TaskStatus[None]) -> None:
        assert self.relay is not None
        with trio.CancelScope() as self._relay_scope:
            await self.relay.run(task_status=task_status)

    # -- extending -----------------------------------------------------------

    def handler(
        self,
        command: str,
        name: str | None = None,
        *,
        before: Iterable[str] = (),
        after: Iterable[str] = (),
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Decorator: register ``func`` for ``command`` (named after the function by default)."""

        return handler_decorator(self.add_handler, command, name, before, after)

    def add_handler(self, handler: Handler) -> None:
        """Register a handler for every session; see :class:`~mailio_trio.chain.Chain`."""
        self.chain.add(handler)

    def on_session(self, callback: Callable[[Session], None]) -> Callable[[Session], None]:
        """Decorator: call ``callback(session)`` when each connection starts."""
        self._context.on_session.append(callback)
        return callback

    async def send_mail(
        self,
        message: EmailMessage | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        partial: bool = False,
    ) -> SubmissionResult:
        """Submit ``message`` through this server itself (mail-io's ``sendMail``).

        Each recipient meets the ``rcpt`` chain as over SMTP (relay policy,
        local mailboxes, your rcpt handlers), then the message runs the
        ``queue`` chain as one from an authenticated user would
        (``session.user`` is an ``ApiUser``, which may relay with any sender):
        local recipients are delivered, remote ones relayed, your queue
        handlers see it. No socket is opened; no MAIL/DATA handler runs (see
        ``_submit.py``). Every refused recipient is logged at INFO.

        Args:
          message: An ``EmailMessage`` (the envelope defaults to its
            From/Sender and To/Cc/Bcc headers; Bcc is removed) or bytes.
          sender: The reverse-path, ``""`` for the null sender; required for bytes.
          recipients: Forward-paths; required for bytes.
          partial: Deliver to the accepted recipients even if others were
            refused (the result's ``refused`` lists them). By default one
            refused recipient refuses the whole submission.

        Returns:
          Each recipient's outcome and the queue chain's reply
          (``250 2.0.0 OK: queued as ...``), which speaks for the accepted only.

        Raises:
          SubmissionRefused: Nothing was delivered: a recipient was refused
            (unless ``partial``; with it, when every one was), or a queue
            handler refused the message. ``.reply`` says why, ``.recipients``
            gives every recipient's outcome.
          ValueError: An address that MAIL or RCPT would refuse, or no recipient.
        """
        from mailio_trio.server._submit import submit

        return await submit(
            self._context, message, sender=sender, recipients=recipients, partial=partial
        )

    @property
    def sessions(self) -> frozenset[Session]:
        return frozenset(self._context.sessions)

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            active_sessions=len(self._context.sessions),
            sessions_total=self._sessions_total,
            refused_over_limit=self._refused,
            tls_handshakes=self._handshaking,
            proxy_headers=self._proxy_waiting,
        )

    @property
    def shutting_down(self) -> bool:
        return self._context.shutting_down

    @property
    def ready(self) -> bool:
        """Listening and not shutting down (``/readyz``)."""
        return self._serving > 0 and not self._context.shutting_down

    def reload_tls(self, context: ssl.SSLContext | None = None) -> None:
        """Use a new TLS context (renewed certificate) for connections from now on.

        Connections already in TLS keep theirs; nothing is dropped. With no
        argument the files named in ``config.tls`` are read again (the CLI does
        this on SIGHUP).

        Raises:
          ConfigError: The files cannot be used; the old context stays in place.
        """
        from mailio_trio.tls import build_server_context

        if context is None:
            context = build_server_context(self.config.tls)
        self.tls_context = self._context.tls_context = context
        logger.info("TLS context reloaded" if context is not None else "TLS turned off")

    # -- serving -------------------------------------------------------------

    async def serve(
        self,
        host: str | None = "127.0.0.1",
        port: int = 2525,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` and serve until cancelled or :meth:`shutdown`.

        ``await nursery.start(server.serve, "127.0.0.1", 0)`` returns the bound
        addresses once listening (port 0 picks a free port).
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        await self.serve_listeners(listeners, task_status=task_status)

    async def serve_tls(
        self,
        host: str | None = "127.0.0.1",
        port: int = 4650,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Like :meth:`serve`, with implicit TLS (SMTPS, RFC 8314): TLS from the first byte.

        May run alongside :meth:`serve` on the same server (plain 2525 and TLS 4650).

        Raises:
          RuntimeError: The server has no TLS context (no ``config.tls.cert``).
        """
        if self.tls_context is None:
            raise RuntimeError("serve_tls needs a certificate: set config.tls or tls_context")
        listeners = await trio.open_tcp_listeners(port, host=host)
        await self.serve_listeners([], tls_listeners=listeners, task_status=task_status)

    async def serve_unix(
        self,
        path: str | os.PathLike[str],
        *,
        mode: int = 0o660,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Like :meth:`serve`, on the Unix socket ``path`` (an MTA's LMTP to us, most often).

        A stale socket file is removed first; the new one gets ``mode``; it is
        removed again when serving ends. Clients are served as ``127.0.0.1``
        (see ``server/_unix.py``). Returns ``[(path, 0)]`` once listening.

        Raises:
          OSError: A server already listens at ``path``, or a file that is not a socket is there.
        """
        where = os.fspath(path)
        listener, file = await open_unix_listener(where, mode=mode)
        try:
            await self.serve_listeners([listener], task_status=task_status)
        finally:
            close_unix_listener(listener, where, file)

    async def serve_listeners(
        self,
        listeners: Sequence[trio.SocketListener],
        *,
        tls_listeners: Sequence[trio.SocketListener] = (),
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on listeners already open (``SO_REUSEPORT`` workers); ``tls_listeners``
        speak implicit TLS. Returns the bound addresses, plain ones first.

        Raises:
          ConfigError: A ``config.plugins`` key names no handler, built-in or
            registered by now (checked here, once the application's handlers are known).
        """
        from mailio_trio.plugins import builtin_keys, check_plugins

        everything = [*listeners, *tls_listeners]
        try:
            check_plugins(self.config.plugins, builtin_keys() | self.chain.keys())
        except ConfigError:
            _close_listeners(everything)
            raise
        self._warn_if_nothing_keeps_mail()
        addresses: list[Address] = [bound_address(lst.socket) for lst in everything]
        accept_scope = trio.CancelScope()
        self._accept_scopes.add(accept_scope)
        if self._context.shutting_down:
            accept_scope.cancel()
        self._serving += 1
        try:
            async with trio.open_nursery() as connections:
                if self.relay is not None and self._relay_scope is None:
                    await connections.start(self._run_relay)
                if self._dsn_outbox is not None and not self._dsn_outbox.running:
                    await connections.start(self._dsn_outbox.run)
                with accept_scope:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept_loop, listener, connections, False)
                        for listener in tls_listeners:
                            accepting.start_soon(self._accept_loop, listener, connections, True)
                        logger.info("listening on %s", ", ".join(f"{h}:{p}" for h, p in addresses))
                        task_status.started(addresses)
                _close_listeners(everything)  # now, not after the drain: refuse new clients
                self._drain(connections)
        finally:
            _close_listeners(everything)
            self._accept_scopes.discard(accept_scope)
            self._serving -= 1
            if not self._serving:
                self._context.abuse_log.flush()  # counts not yet summarised
                self._stopped.set()

    async def serve_metrics(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP until cancelled.

        ``host`` and ``port`` default to ``config.metrics.listen``. Run it next
        to :meth:`serve` and cancel it once :meth:`wait_stopped` returns, so
        ``/readyz`` answers ``503`` for the whole graceful shutdown.

        Raises:
          ConfigError: No address given and none configured, or the
            ``metrics`` extra (prometheus-client) is not installed.
        """
        from mailio_trio.server._http import serve_http

        if host is None or port is None:
            if self.config.metrics.listen is None:
                raise ConfigError("metrics.listen: not set, and serve_metrics was given no address")
            from mailio_trio.config import parse_listen

            default_host, default_port = parse_listen(self.config.metrics.listen)
            host = default_host if host is None else host
            port = default_port if port is None else port
        metrics = self._enable_metrics()
        listeners = await trio.open_tcp_listeners(port, host=host)
        addresses: list[Address] = [lst.socket.getsockname()[:2] for lst in listeners]
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_http(
                    listeners,
                    metrics.respond,
                    patience=self.config.metrics.request_timeout,
                    task_status=task_status,
                )
            )
            logger.info("metrics on %s", ", ".join(f"http://{h}:{p}/metrics" for h, p in addresses))
            task_status.started(addresses)

    def _warn_if_nothing_keeps_mail(self) -> None:
        """Say so at start when ``250`` would be answered for mail nothing keeps.

        ``queue/core`` alone accepts every message and stores nothing (the
        library's ``Config`` has maildir off): quietly losing mail is the worst
        failure a mail server has. Once per server, and not with ``discard``,
        which is asked for. Per-session ``queue`` handlers are not seen here.
        """
        if self._warned_no_keeper or self.discard:
            return
        if any(h.name != "core" for h in self.chain.handlers("queue")):
            return
        self._warned_no_keeper = True
        logger.warning(
            "accepted mail is not kept: no queue handler stores it, yet every message "
            "is answered 250; enable maildir (Config(maildir={'enabled': True, 'root': "
            "'mail'})) or relay, or register a queue handler before serving"
        )

    async def _accept_loop(
        self, listener: trio.SocketListener, connections: trio.Nursery, tls: bool
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                logger.error("accept failed (%s); retrying shortly", errno.errorcode[exc.errno])
                await trio.sleep(_ACCEPT_RETRY_SECONDS)
                continue
            connections.start_soon(self._handle, stream, tls)

    async def _handle(self, stream: trio.SocketStream, tls: bool) -> None:
        self._sessions_total += 1
        # Clients still in their TLS handshake or PROXY header count: a flood of
        # stalled handshakes must hit the limit like a flood of idle sessions.
        busy = len(self._context.sessions) + self._handshaking + self._proxy_waiting
        if busy >= self.config.limits.max_connections:
            self._refused += 1
            self._context.tally.refused["max_connections"] += 1
            if tls:  # a plaintext 421 means nothing to a client that expects TLS
                await trio.aclose_forcefully(stream)
            else:
                await _refuse(stream, TOO_MANY_CONNECTIONS, self.config.limits.farewell_timeout)
            return
        try:
            host, port = peer_address(stream.socket)
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        client = ClientInfo(address=host, port=port)
        early = b""  # the client's first bytes, read with a PROXY header
        if self.config.proxy_protocol:
            # Before admission: the per-address limits count the client the
            # header names, never the balancer.
            if in_networks(host, self._proxy_trusted):
                self._proxy_waiting += 1
                try:
                    proxied = await read_proxy_header(stream, self._context, (host, port))
                finally:
                    self._proxy_waiting -= 1
                if proxied is None:
                    return
                client, early = proxied.client_info((host, port)), proxied.trailing
                host = client.address
            elif self.config.proxy_untrusted is ProxyUntrusted.REFUSE:
                await refuse_untrusted(stream, self._context, (host, port))
                return
        admission, slot = await self._admit(host)
        if admission is not Admission.ADMITTED:
            self._refused += 1
            self._context.tally.refused[admission.name.lower()] += 1
            self._context.abuse_log.log(
                AbuseKind.PER_IP_REFUSED,
                logger,
                logging.INFO,
                "refused %s: %s",
                host,
                admission.value,
            )
            locked = admission is Admission.AUTH_LOCKOUT
            reply = LOCKED_OUT if locked else TOO_MANY_FROM_YOU
            await _refuse(stream, reply, self.config.limits.farewell_timeout)
            return
        try:
            if not tls:
                session = Session.for_stream(self._context, stream, client)
                if early:
                    session.connection.push_input(early)
                await session.run()
                return
            self._handshaking += 1
            try:
                tls_stream = await self._handshake(
                    PrefixedStream(stream, early) if early else stream, client
                )
            finally:
                self._handshaking -= 1
            if tls_stream is not None:
                session = Session.for_stream(
                    self._context, tls_stream, client, secure=True, tls=tls_info(tls_stream)
                )
                await session.run()
        finally:
            await self._release(host, slot)

    async def _admit(self, host: str) -> tuple[Admission, str | None]:
        """This node's count first (it alone applies while Redis is down), then the fleet's."""
        admission = self._per_ip.admit(host, trio.current_time())
        if admission is not Admission.ADMITTED or self._fleet is None or self._per_ip.exempt(host):
            return admission, None
        admission, slot = await self._fleet.admit(host)
        if admission is not Admission.ADMITTED:
            self._per_ip.release(host)
        return admission, slot

    async def _release(self, host: str, slot: str | None) -> None:
        self._per_ip.release(host)
        if self._fleet is not None:
            await self._fleet.release(host, slot, self._context.auth_failed.pop(host, 0))

    async def _handshake(
        self, stream: trio.abc.Stream, client: ClientInfo
    ) -> trio.SSLStream[trio.abc.Stream] | None:
        """Implicit TLS: the handshake, in this connection's task and under its timeout."""
        context = self._context.tls_context
        assert context is not None  # serve_tls refuses to start without one
        tls_stream = trio.SSLStream(stream, context, server_side=True)
        failure = "timed out"
        with trio.move_on_after(self.config.limits.tls_handshake_timeout):
            try:
                await tls_stream.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                failure = f"failed: {exc.__cause__ or exc}"
            else:
                return tls_stream
        # A scanner or a client speaking plain SMTP to the TLS port: not our error.
        self._context.tally.refused["tls_handshake"] += 1
        self._context.abuse_log.log(
            AbuseKind.TLS_HANDSHAKE,
            logger,
            logging.INFO,
            "TLS handshake with %s:%s %s",
            client.address,
            client.port,
            failure,
        )
        await trio.aclose_forcefully(stream)
        return None

    def _drain(self, connections: trio.Nursery) -> None:
        """Stop idle sessions now; give busy ones the grace period, then cancel them."""
        if not self._context.shutting_down:
            return  # cancelled from outside: the nursery's cancellation does the rest
        grace = self.config.limits.shutdown_grace
        connections.cancel_scope.deadline = min(
            connections.cancel_scope.deadline, trio.current_time() + grace
        )
        for session in list(self._context.sessions):
            session.connection.interrupt_idle()

    def shutdown(self) -> None:
        """Start a graceful shutdown: stop accepting, answer ``421 4.3.2`` to new
        commands, let messages in DATA finish within ``limits.shutdown_grace``."""
        self._context.shutting_down = True
        if self._relay_scope is not None:
            # Deliveries in flight are cut: the spool records them as still pending.
            self._relay_scope.cancel()
        if self._dsn_outbox is not None:
            self._dsn_outbox.stop()  # success reports are best effort (plugins/dsn.py)
        for scope in self._accept_scopes:
            scope.cancel()
        for session in list(self._context.sessions):
            session.connection.interrupt_idle()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`serve` has returned after :meth:`shutdown`."""
        await self._stopped.wait()

    async def aclose(self) -> None:
        """Shut down gracefully and wait for it."""
        self.shutdown()
        await self.wait_stopped()


def _close_listeners(listeners: Sequence[trio.SocketListener]) -> None:
    # Synchronous on purpose: this also runs while serve() is being cancelled.
    for listener in listeners:
        listener.socket.close()


async def _refuse(stream: trio.abc.Stream, reply: Reply, patience: float) -> None:
    with trio.move_on_after(patience):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(reply.to_bytes())
    await trio.aclose_forcefully(stream)
