"""The ``mailio-trio`` command: ``serve``, ``send``, ``queue``, ``config``, ``passwd``, ``dkim``.

Errors an operator can fix are one line on stderr, never a traceback: a bad
flag or configuration value exits with 2, a port that cannot be bound with 1.
Each sub-command is a module with ``add_parser`` and ``run``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

from mailio_trio import __version__
from mailio_trio.cli import _config, _dkim, _passwd, _queue, _send, _serve
from mailio_trio.cli._args import EXIT_USAGE, PROG, Parser
from mailio_trio.config import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["build_parser", "main"]


class _Command(Protocol):
    def add_parser(self, commands: Any) -> None: ...  # argparse._SubParsersAction is private
    def run(self, args: argparse.Namespace) -> int: ...


_COMMANDS: dict[str, _Command] = {
    "serve": _serve,
    "send": _send,
    "config": _config,
    "passwd": _passwd,
    "queue": _queue,
    "dkim": _dkim,
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="A Trio SMTP server with a plugin handler chain.",
        epilog="Run `mailio-trio COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command].run(args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
