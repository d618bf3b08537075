"""``mailio-trio config check FILE`` and ``config show [serve flags]``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from mailio_trio.cli._args import EXIT_OK
from mailio_trio.cli._serve import checked_file, effective_config, server_flags
from mailio_trio.tls import build_server_context

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:  # argparse._SubParsersAction is private
    config = commands.add_parser("config", help="check or show configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate a TOML configuration file")
    check.add_argument("file", metavar="FILE")
    config_commands.add_parser(
        "show",
        parents=[server_flags()],
        help="print the effective configuration as TOML",
        description="Print what `serve` with the same options would run with.",
    )


def run(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        _, config = checked_file(args.file)
        build_server_context(config.tls)  # the certificate files must load, not only be named
        print(f"{args.file}: OK")
        return EXIT_OK
    sys.stdout.write(effective_config(args).to_toml())
    return EXIT_OK
