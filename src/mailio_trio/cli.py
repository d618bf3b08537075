"""The ``mailio-trio`` command.

Errors an operator can fix (a bad flag, a port in use) are one line on
stderr and exit code 2 or 1 — never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING

import trio

from mailio_trio import __version__
from mailio_trio._cli_tls import (
    add_passwd_command,
    add_tls_arguments,
    apply_tls_arguments,
    reload_tls,
    run_passwd,
    start_smtps,
)
from mailio_trio.config import Config, ConfigError, Limits
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
    add_tls_arguments(serve, _host_port)
    add_passwd_command(commands)
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


async def _serve(
    server: Server, listen: Sequence[tuple[str, int]], smtps: Sequence[tuple[str, int]] = ()
) -> None:
    async with trio.open_nursery() as nursery:
        for host, port in listen:
            addresses: list[tuple[str, int]] = await nursery.start(server.serve, host, port)
            for bound_host, bound_port in addresses:
                print(f"mailio-trio: listening on {bound_host}:{bound_port}", flush=True)
        for bound_host, bound_port in await start_smtps(nursery, server, smtps):
            print(f"mailio-trio: listening on {bound_host}:{bound_port} (SMTPS)", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    reload_tls(server)
                    continue
                print(f"mailio-trio: {signal.Signals(signum).name}, shutting down", flush=True)
                server.shutdown()
                break


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "passwd":
        return run_passwd(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    with contextlib.ExitStack() as stack:  # holds a --tls-self-signed certificate's directory
        try:
            config = apply_tls_arguments(args, _config(args), stack)
            server = Server(config)
        except ConfigError as exc:
            print(f"mailio-trio: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _run(server, args)


def _run(server: Server, args: argparse.Namespace) -> int:
    try:
        trio.run(_serve, server, args.listen or [("127.0.0.1", 2525)], args.smtps_listen)
    except OSError as exc:
        print(f"mailio-trio: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
