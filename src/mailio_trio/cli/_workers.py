"""``serve --workers N`` and ``--discard``: the flags of ``mailio_trio.server.workers``."""

from __future__ import annotations

import argparse

__all__ = ["add_workers_arguments", "workers_count"]


def workers_count(value: str) -> int:
    """argparse type for ``--workers``: a whole number >= 1, one-line error otherwise."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--workers {value!r}: must be a whole number >= 1")
    return int(value)


def add_workers_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--workers`` and ``--discard`` to the ``serve`` sub-command."""
    parser.add_argument(
        "--workers",
        type=workers_count,
        default=1,
        metavar="N",
        help="serve from N processes sharing the listening port (default 1)",
    )
    parser.add_argument(
        "--discard",
        action="store_true",
        help="accept every message, read DATA in full and store nothing (benchmarks)",
    )
