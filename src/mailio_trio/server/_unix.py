"""Unix-domain listeners (``Server.serve_unix``): LMTP from a local MTA, most often.

A Unix socket's client is a process on this machine. It has no IP address,
so the server serves it as ``127.0.0.1`` (port 0): the per-address limits,
network exemptions and the ``Received:`` line treat it as the loopback
client it is, and no plugin is handed a string that is not an address.

The socket file is created with ``mode`` before ``listen()`` — until then a
``connect()`` is refused, so no client ever reaches it with the umask's
looser bits. A socket file left by a server that died is removed at start;
one that still answers, or a path that is not a socket, is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

import trio

__all__ = [
    "UNIX_CLIENT",
    "bound_address",
    "close_unix_listener",
    "open_unix_listener",
    "peer_address",
]

UNIX_CLIENT = ("127.0.0.1", 0)
"""The address a Unix-socket client is served as."""


def peer_address(sock: trio.socket.SocketType) -> tuple[str, int]:
    """``(host, port)`` of a connected socket; :data:`UNIX_CLIENT` for a Unix one.

    Raises:
      OSError: The peer is already gone.
    """
    if sock.family == socket.AF_UNIX:
        return UNIX_CLIENT
    host, port = sock.getpeername()[:2]
    return host, port


def bound_address(sock: trio.socket.SocketType) -> tuple[str, int]:
    """What a listener is bound to: ``(host, port)``, or ``(path, 0)`` for a Unix socket."""
    if sock.family == socket.AF_UNIX:
        return str(sock.getsockname()), 0
    host, port = sock.getsockname()[:2]
    return host, port


def _remove_stale(path: str) -> None:
    """Remove a socket file nobody listens on; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a dead server's: nobody accepts on it
        return
    except FileNotFoundError:
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: a server is listening on it")


async def open_unix_listener(
    path: str, *, mode: int = 0o660, backlog: int = 128
) -> tuple[trio.SocketListener, tuple[int, int]]:
    """Bind and listen on the Unix socket ``path`` with permissions ``mode``.

    Returns:
      The listener, and the socket file's ``(st_dev, st_ino)`` for :func:`close_unix_listener`.

    Raises:
      OSError: A live server or a non-socket file is at ``path``, or it cannot be bound.
    """
    await trio.to_thread.run_sync(_remove_stale, path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        os.chmod(path, mode)  # before listen(): until then every connect is refused
        st = os.lstat(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock), (st.st_dev, st.st_ino)


def close_unix_listener(listener: trio.SocketListener, path: str, file: tuple[int, int]) -> None:
    """Close ``listener`` and remove its socket file, unless another server replaced it."""
    listener.socket.close()
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == file:
            os.unlink(path)
