"""``mailio-trio passwd USER``: a salted scrypt hash for the ``[auth.users]`` table."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

from mailio_trio.config import ConfigError
from mailio_trio.passwords import hash_password

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``passwd USER`` to the CLI's subcommands (``parser.add_subparsers()``)."""
    passwd = commands.add_parser(
        "passwd",
        help="hash a password for the [auth.users] table",
        description=(
            "Read a password from stdin (without echo on a terminal) and print the "
            'line USER = "<hash>" to paste under [auth.users].'
        ),
    )
    passwd.add_argument("user", metavar="USER")


def run(args: argparse.Namespace) -> int:
    """``mailio-trio passwd USER``: prints the line and returns 0.

    Raises:
      ConfigError: A user name TOML cannot carry, an empty password, or two
        different entries on a terminal (the CLI's one line and exit 2).
    """
    user: str = args.user
    # TOML bare keys are A-Za-z0-9_-; anything else must be quoted, which we do for it.
    if not user or any(c in user for c in '"\\\r\n') or not user.isprintable():
        raise ConfigError(f"passwd USER = {user!r}: not a usable user name")
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError("passwords differ; nothing printed")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError("passwd: empty password refused")
    key = user if all(c.isascii() and (c.isalnum() or c in "-_") for c in user) else f'"{user}"'
    print(f'{key} = "{hash_password(password)}"')
    return 0
