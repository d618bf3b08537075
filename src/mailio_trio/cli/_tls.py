"""``serve``'s TLS flags, its SMTPS listeners and the SIGHUP certificate reload."""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from mailio_trio.config import Config, ConfigError
from mailio_trio.tls import SelfSignedError, build_server_context, make_self_signed

if TYPE_CHECKING:
    import argparse
    import contextlib
    from collections.abc import Callable, Sequence

    import trio

    from mailio_trio.server import Server

__all__ = [
    "add_tls_arguments",
    "apply_tls_arguments",
    "reload_tls",
    "start_smtps",
]

logger = logging.getLogger("mailio_trio.cli")

# Config keys as the operator typed them on the command line.
_FLAGS = {"tls.cert": "--tls-cert", "tls.key": "--tls-key"}


def add_tls_arguments(
    serve: argparse.ArgumentParser, host_port: Callable[[str], tuple[str, int]]
) -> None:
    """Add ``--tls-cert``, ``--tls-key``, ``--tls-self-signed``, ``--smtps-listen`` to ``serve``."""
    group = serve.add_argument_group("TLS")
    group.add_argument(
        "--tls-cert", metavar="PATH", help="PEM certificate chain for STARTTLS/SMTPS"
    )
    group.add_argument("--tls-key", metavar="PATH", help="PEM private key (if not in --tls-cert)")
    group.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="make a throw-away self-signed certificate (development only)",
    )
    group.add_argument(
        "--smtps-listen",
        metavar="HOST:PORT",
        type=host_port,
        action="append",
        default=[],
        help="also listen with implicit TLS, RFC 8314 (repeatable; e.g. 127.0.0.1:4650)",
    )


def apply_tls_arguments(
    args: argparse.Namespace, config: Config, stack: contextlib.ExitStack
) -> Config:
    """``config`` with the TLS flags applied; a self-signed pair lives until ``stack`` closes.

    Raises:
      ConfigError: One line naming the flag: conflicting flags, or files that
        cannot be used (checked now, so the server never starts half-configured).
    """
    if args.tls_self_signed and (args.tls_cert or args.tls_key):
        raise ConfigError("--tls-self-signed: cannot be combined with --tls-cert/--tls-key")
    if args.tls_key and not args.tls_cert:
        raise ConfigError(f"--tls-key = {args.tls_key!r}: needs --tls-cert as well")
    tls = config.tls
    if args.tls_self_signed:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailio-tls-")))
        try:
            cert, key = make_self_signed(directory, config.hostname)
        except SelfSignedError as exc:
            raise ConfigError(str(exc)) from None
        tls = attrs.evolve(tls, cert=cert, key=key)
    elif args.tls_cert:
        tls = attrs.evolve(tls, cert=args.tls_cert, key=args.tls_key)
    if args.smtps_listen and not tls.enabled:
        listen = ", ".join(f"{h}:{p}" for h, p in args.smtps_listen)
        raise ConfigError(
            f"--smtps-listen = {listen}: needs a certificate (--tls-cert or --tls-self-signed)"
        )
    try:
        build_server_context(tls)
    except ConfigError as exc:
        message = str(exc)
        for config_key, flag in _FLAGS.items():
            if message.startswith(config_key) and (args.tls_cert or args.tls_self_signed):
                message = flag + message[len(config_key) :]
        raise ConfigError(message) from None
    return attrs.evolve(config, tls=tls)


async def start_smtps(
    nursery: trio.Nursery, server: Server, listeners: Sequence[trio.SocketListener]
) -> list[tuple[str, int]]:
    """Serve implicit TLS on ``listeners``, already bound; returns their addresses.

    The caller binds them (as it binds the plain ones), so a busy port is its
    one-line error rather than an ``ExceptionGroup`` out of the nursery.
    """
    if not listeners:
        return []
    serve = functools.partial(server.serve_listeners, [], tls_listeners=listeners)
    bound: list[tuple[str, int]] = await nursery.start(serve)
    return bound


def reload_tls(server: Server) -> None:
    """SIGHUP: read the certificate files again; on error keep serving with the old ones."""
    if server.tls_context is None:
        logger.info("SIGHUP: no TLS configured, nothing to reload")
        return
    try:
        server.reload_tls()
    except ConfigError as exc:
        logger.error("SIGHUP: TLS reload failed, keeping the current certificate: %s", exc)
