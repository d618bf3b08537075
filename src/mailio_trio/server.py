"""The server: listeners, the connection limit, graceful shutdown.

Connections run in a nursery that outlives the accept loops, so stopping
accepting never cuts a transaction short; each connection's task is the error
boundary for that connection (``Session.run``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.chain import Chain, Handler, HandlerFunc, handler_decorator
from mailio_trio.config import Config
from mailio_trio.protocol import Reply
from mailio_trio.session import ClientInfo, ServerContext, Session

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable, Sequence

__all__ = ["Address", "Server", "ServerStatistics"]

logger = logging.getLogger("mailio_trio.server")

Address = tuple[str, int]
"""A bound ``(host, port)``."""

TOO_MANY_CONNECTIONS = Reply(421, "Too many connections, try again later", "4.7.0")

# Running out of file descriptors is a passing condition: wait, then accept again,
# as trio.serve_listeners does.
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY_SECONDS = 0.1


@attrs.frozen
class ServerStatistics:
    active_sessions: int
    sessions_total: int
    refused_over_limit: int


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
    discard: bool = attrs.field(default=False, kw_only=True)
    """Read every DATA body in full and drop it (``serve --discard``, the benchmark sink)."""
    chain: Chain = attrs.field(init=False)
    _context: ServerContext = attrs.field(init=False)
    _accept_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _stopped: trio.Event = attrs.field(factory=trio.Event, init=False)
    _sessions_total: int = attrs.field(default=0, init=False)
    _refused: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        from mailio_trio.plugins import register_core

        self.chain = Chain(plugins=self.config.plugins)
        self._context = ServerContext(
            config=self.config, chain=self.chain, tls_context=self.tls_context, discard=self.discard
        )
        register_core(self.chain)

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

    @property
    def sessions(self) -> frozenset[Session]:
        return frozenset(self._context.sessions)

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            active_sessions=len(self._context.sessions),
            sessions_total=self._sessions_total,
            refused_over_limit=self._refused,
        )

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

    async def serve_listeners(
        self,
        listeners: Sequence[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on listeners already open (``SO_REUSEPORT`` workers, implicit TLS)."""
        addresses: list[Address] = [lst.socket.getsockname()[:2] for lst in listeners]
        try:
            async with trio.open_nursery() as connections:
                with trio.CancelScope() as self._accept_scope:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept_loop, listener, connections)
                        logger.info("listening on %s", ", ".join(f"{h}:{p}" for h, p in addresses))
                        task_status.started(addresses)
                _close_listeners(listeners)
                self._drain(connections)
        finally:
            _close_listeners(listeners)
            self._stopped.set()

    async def _accept_loop(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                logger.error("accept failed (%s); retrying shortly", errno.errorcode[exc.errno])
                await trio.sleep(_ACCEPT_RETRY_SECONDS)
                continue
            connections.start_soon(self._handle, stream)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self._sessions_total += 1
        if len(self._context.sessions) >= self.config.limits.max_connections:
            self._refused += 1
            await _refuse(stream, TOO_MANY_CONNECTIONS)
            return
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        session = Session(self._context, stream, ClientInfo(address=host, port=port))
        await session.run()

    def _drain(self, connections: trio.Nursery) -> None:
        """Stop idle sessions now; give busy ones the grace period, then cancel them."""
        if not self._context.shutting_down:
            return  # cancelled from outside: the nursery's cancellation does the rest
        grace = self.config.limits.shutdown_grace
        connections.cancel_scope.deadline = min(
            connections.cancel_scope.deadline, trio.current_time() + grace
        )
        for session in list(self._context.sessions):
            session.interrupt_idle()

    def shutdown(self) -> None:
        """Start a graceful shutdown: stop accepting, answer ``421 4.3.2`` to new
        commands, let messages in DATA finish within ``limits.shutdown_grace``."""
        self._context.shutting_down = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for session in list(self._context.sessions):
            session.interrupt_idle()

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


async def _refuse(stream: trio.abc.Stream, reply: Reply) -> None:
    with trio.move_on_after(1):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(reply.to_bytes())
    await trio.aclose_forcefully(stream)
