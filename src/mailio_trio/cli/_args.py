"""What every sub-command shares: the parser class, exit codes and argument types."""

from __future__ import annotations

import argparse
from typing import NoReturn

from mailio_trio.config import parse_listen

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "Parser",
    "host_port",
    "listen_arg",
    "positive_float",
    "positive_int",
]

PROG = "mailio-trio"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def listen_arg(value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None
    return value


def host_port(value: str) -> tuple[str, int]:
    return parse_listen(listen_arg(value))


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number greater than 0")
    return int(value)


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a number of seconds greater than 0")
    return number
