"""Serving from several processes, and the ``--discard`` benchmark sink.

One Python process runs on one core. ``serve(..., workers=N)`` opens the
listening sockets in the parent, forks ``N`` children that each run their own
Trio loop and :class:`~mailio_trio.server.Server` on them, and supervises them:
``SIGTERM`` or ``SIGINT`` to the parent is passed on to every child as
``SIGTERM``, which starts that child's graceful shutdown (``421 4.3.2`` to new
commands, transactions in DATA get ``limits.shutdown_grace``); the parent
returns once every child has exited.

A child whose parent dies (SIGKILL, OOM killer) stops by itself, gracefully,
as on ``SIGTERM``: otherwise it would go on serving a port nobody supervises.
On Linux the kernel tells it (``prctl(PR_SET_PDEATHSIG, SIGTERM)``); elsewhere
it checks ``os.getppid()`` every ``worker_parent_check`` seconds.

On Linux each child gets its own socket bound with ``SO_REUSEPORT``, so the
kernel spreads new connections over the workers instead of waking them all
for each one; elsewhere the children share one inherited socket.

``mailio-trio serve --workers N`` calls :func:`serve`; its flags are in
``mailio_trio.cli``::

    return workers.serve(config, listen, workers=args.workers, make_server=build)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

import trio

from mailio_trio.server._server import Server

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mailio_trio.config import Config

__all__ = ["open_sockets", "serve"]

# The listen backlog: a burst of new clients waits in the kernel, not refused.
BACKLOG = 1024

# <linux/prctl.h>: deliver a signal to this process when its parent exits.
_PR_SET_PDEATHSIG = 1


def open_sockets(listen: Sequence[tuple[str, int]], copies: int) -> list[list[socket.socket]]:
    """Bind ``listen`` ``copies`` times over with ``SO_REUSEPORT`` (or once, shared).

    Port 0 is resolved by the first socket and reused for the copies, so all
    workers serve the same port. Returns one list of sockets per worker.
    """
    reuse_port = copies > 1 and hasattr(socket, "SO_REUSEPORT")
    per_worker: list[list[socket.socket]] = [[] for _ in range(copies)]
    try:
        for host, port in listen:
            for info in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            ):
                family, kind, proto, _, address = info
                bound_port = port
                for i in range(copies if reuse_port else 1):
                    sock = socket.socket(family, kind, proto)
                    per_worker[i].append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if reuse_port:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((address[0], bound_port, *address[2:]))
                    bound_port = sock.getsockname()[1]
                    sock.listen(BACKLOG)
        if not reuse_port:
            for i in range(1, copies):
                per_worker[i] = per_worker[0]
    except BaseException:
        for sock in {s for group in per_worker for s in group}:
            sock.close()
        raise
    return per_worker


_early_stop = False


def _note_early_stop(signum: int, frame: object) -> None:
    global _early_stop  # a signal handler has nowhere else to put it
    _early_stop = True


def _die_with_parent(parent: int) -> bool:
    """In a freshly forked worker: get ``SIGTERM`` when ``parent`` exits.

    Returns False where the kernel cannot do it (not Linux, ``prctl`` refused):
    the worker must then watch ``os.getppid()`` itself (:func:`_watch_parent`).
    A parent already gone before the request (the race prctl(2) describes:
    the child is then re-parented and nothing will ever signal it) is noted
    as an early stop, so the worker shuts down as soon as it is serving.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:
        _note_early_stop(signal.SIGTERM, None)
    return True


async def _watch_parent(server: Server, parent: int, interval: float) -> None:
    """The portable fallback: stop gracefully once ``parent`` is no longer our parent."""
    # Polling is the point here: no event exists for "my parent died" off Linux.
    while os.getppid() == parent:  # noqa: ASYNC110
        await trio.sleep(interval)
    print(f"mailio-trio: worker pid {os.getpid()}: parent exited; stopping", file=sys.stderr)
    server.shutdown()


async def _serve_sockets(
    server: Server,
    sockets: Sequence[socket.socket],
    watch_parent: int | None = None,
    index: int = 0,
) -> None:
    """Serve until SIGTERM/SIGINT (first one: graceful; later ones are ignored).

    With ``watch_parent`` (a pid), also stop once that process is no longer our parent.
    With ``metrics.listen``, worker ``index`` serves its metrics on that port plus
    ``index``: one scrape target per worker (see ``server/_metrics.py``).
    """
    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_listeners, listeners)
            if server.config.metrics.listen is not None:
                from mailio_trio.config import parse_listen

                host, port = parse_listen(server.config.metrics.listen)
                await nursery.start(server.serve_metrics, host, port + index if port else 0)
            if _early_stop:
                server.shutdown()
            if watch_parent is not None:
                interval = server.config.worker_parent_check
                nursery.start_soon(_watch_parent, server, watch_parent, interval)

            async def stop_on_signal() -> None:
                async for _ in signals:
                    server.shutdown()
                    # Keep receiving so a repeated signal cannot kill the worker
                    # mid-transaction; shutdown_grace bounds how long this lasts.

            nursery.start_soon(stop_on_signal)
            await server.wait_stopped()
            nursery.cancel_scope.cancel()


def serve(
    config: Config,
    listen: Sequence[tuple[str, int]],
    *,
    workers: int = 1,
    discard: bool = False,
    make_server: Callable[[], Server] | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve ``listen`` from ``workers`` processes until SIGTERM/SIGINT; returns an exit code.

    Args:
      make_server: Builds each worker's server (default: ``Server(config,
        discard=discard)``); called in the worker, after the fork.
      announce: Told ``"listening on HOST:PORT"`` once the sockets are bound.

    Raises:
      OSError: A listening socket could not be opened (port in use).
    """

    def build() -> Server:
        if make_server is not None:
            return make_server()
        return Server(config, discard=discard)

    per_worker = open_sockets(listen, workers)

    def announce_bound() -> None:
        # Only once signals are handled: whoever reads this line may stop us at once.
        if announce is None:
            return
        for sock in per_worker[0]:
            host, port = sock.getsockname()[:2]
            announce(f"listening on {host}:{port}")

    if workers == 1:
        old = {s: signal.signal(s, _note_early_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            announce_bound()
            trio.run(_serve_sockets, build(), per_worker[0])
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            for sock in per_worker[0]:
                sock.close()
        return 0
    return _supervise(per_worker, build, announce_bound)


def _supervise(
    per_worker: list[list[socket.socket]],
    build: Callable[[], Server],
    announce_bound: Callable[[], None],
) -> int:
    every = {s for group in per_worker for s in group}
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # Installed before forking, so no signal between forks is lost; the
    # children reset them before Trio takes over. signal.signal() only works in
    # the main thread, so the forks below happen there too — which matters:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the
    # process, and the main thread lives exactly as long as this process.
    parent = os.getpid()  # recorded before forking, for the children's re-check
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        announce_bound()
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        for index, sockets in enumerate(per_worker):
            # Blocked across the fork: a signal must reach the child's own
            # handler, not the parent's forwarder the child starts with.
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    # Until Trio's receiver is up, a stop request is only noted:
                    # the default action would kill a worker still starting.
                    for s in stop_signals:
                        signal.signal(s, _note_early_stop)
                    # While SIGTERM is still blocked: if the parent dies from here
                    # on, the signal waits for the handler above.
                    watch = None if _die_with_parent(parent) else parent
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                    for sock in every - set(sockets):
                        sock.close()
                    trio.run(_serve_sockets, build(), sockets, watch, index)
                    code = 0
                except BaseException as exc:  # the worker's error boundary: one line, exit 1
                    print(f"mailio-trio: worker {index} failed: {exc!r}", file=sys.stderr)
                finally:
                    sys.stdout.flush()
                    os._exit(code)
            children[pid] = index
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            if stopping:  # a signal arrived while forking: the new child must stop too
                os.kill(pid, signal.SIGTERM)
        for sock in every:
            sock.close()
        failed = 0
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            children.pop(pid, None)
            if os.waitstatus_to_exitcode(status) != 0:
                failed += 1
            if not stopping:
                # A worker died on its own: stop the rest rather than serve short-handed silently.
                print(f"mailio-trio: worker pid {pid} exited; stopping", file=sys.stderr)
                forward(signal.SIGTERM, None)
        return 1 if failed else 0
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        for s, handler in old.items():
            signal.signal(s, handler)
        for sock in every:
            sock.close()
