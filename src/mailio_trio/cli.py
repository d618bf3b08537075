"""The ``mailio-trio`` command.

Errors an operator can fix (a bad flag, a port in use) are one line on
stderr and exit code 2 or 1 — never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import TYPE_CHECKING

import trio

from mailio_trio import __version__
from mailio_trio.config import Config, ConfigError, Limits
from mailio_trio.plugins.capture import add_capture_arguments, install_capture
from mailio_trio.server import Server

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_USAGE = 2


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:2525)")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailio-trio", description="A Trio SMTP server with a plugin handler chain."
    )
    parser.add_argument("--version", action="version", version=f"mailio-trio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the SMTP server")
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=_host_port,
        action="append",
        help="address to listen on (repeatable; default 127.0.0.1:2525)",
    )
    serve.add_argument(
        "--domain",
        action="append",
        metavar="DOMAIN",
        help="a local domain (repeatable; default localhost)",
    )
    serve.add_argument("--hostname", help="our name in the greeting and Received: lines")
    serve.add_argument("--max-message-size", type=int, metavar="BYTES")
    serve.add_argument("--idle-timeout", type=float, metavar="SECONDS")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_capture_arguments(serve)
    return parser


def _config(args: argparse.Namespace) -> Config:
    limits = {}
    if args.max_message_size is not None:
        limits["message_size"] = args.max_message_size
    if args.idle_timeout is not None:
        limits["idle_timeout"] = args.idle_timeout
    return Config(
        hostname=args.hostname or "localhost",
        domains=args.domain or ["localhost"],
        limits=Limits(**limits),
    )


async def _serve(server: Server, listen: Sequence[tuple[str, int]]) -> None:
    async with trio.open_nursery() as nursery:
        for host, port in listen:
            addresses: list[tuple[str, int]] = await nursery.start(server.serve, host, port)
            for bound_host, bound_port in addresses:
                print(f"mailio-trio: listening on {bound_host}:{bound_port}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                print(f"mailio-trio: {signal.Signals(signum).name}, shutting down", flush=True)
                server.shutdown()
                break


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"mailio-trio: {exc}", file=sys.stderr)
        return EXIT_USAGE
    server = Server(config)
    install_capture(server.chain, args)
    try:
        trio.run(_serve, server, args.listen or [("127.0.0.1", 2525)])
    except OSError as exc:
        print(f"mailio-trio: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
