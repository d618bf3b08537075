"""``serve --lmtp`` and ``--lmtp-socket``: LMTP (RFC 2033), on TCP or a Unix socket.

``--lmtp`` is ``server.lmtp = true``. ``--lmtp-socket PATH`` implies it and
serves on that Unix socket — only there, unless ``--listen`` is also given
on the command line (then on both): an MTA's LMTP to its local store wants
no TCP port beside the socket, and the CLI's default ``127.0.0.1:2525``
would open one nobody asked for.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailio_trio.server._unix import open_unix_listener

if TYPE_CHECKING:
    import trio

__all__ = ["UnixSocket", "add_lmtp_arguments", "open_lmtp_socket", "unix_socket"]

UnixSocket = tuple[str, int]
"""A Unix socket to serve on: its path and the file's permission bits."""


def socket_mode(value: str) -> int:
    """argparse type for ``--lmtp-socket-mode``: octal permission bits (``660``)."""
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be octal permission bits from 000 to 777, e.g. 660"
        )
    return mode


def add_lmtp_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--lmtp``, ``--lmtp-socket`` and ``--lmtp-socket-mode`` to ``serve``."""
    group = parser.add_argument_group("LMTP (RFC 2033)")
    group.add_argument(
        "--lmtp",
        action="store_true",
        default=None,
        help="speak LMTP instead of SMTP: LHLO, one reply per recipient (server.lmtp)",
    )
    group.add_argument(
        "--lmtp-socket",
        metavar="PATH",
        help="serve LMTP on this Unix socket (implies --lmtp; TCP too only with --listen); "
        "a stale socket file is replaced",
    )
    group.add_argument(
        "--lmtp-socket-mode",
        metavar="OCTAL",
        type=socket_mode,
        default=0o660,
        help="the socket file's permissions (default 660)",
    )


def unix_socket(args: argparse.Namespace) -> UnixSocket | None:
    """The Unix socket ``args`` ask for, if any."""
    path = getattr(args, "lmtp_socket", None)
    if not path:
        return None
    return path, args.lmtp_socket_mode


def serves_tcp(args: argparse.Namespace) -> bool:
    """Whether ``server.listen``'s TCP listeners are opened (see the module docstring)."""
    return unix_socket(args) is None or bool(args.listen)


async def open_lmtp_socket(where: UnixSocket) -> tuple[trio.SocketListener, tuple[int, int]]:
    """Bind the socket (see ``Server.serve_unix``); raises ``OSError``."""
    path, mode = where
    return await open_unix_listener(path, mode=mode)
