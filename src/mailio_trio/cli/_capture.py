"""``serve --capture`` and ``--print``: the development sink's flags."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from mailio_trio.plugins.capture import print_handler

if TYPE_CHECKING:
    import argparse

    from mailio_trio.chain import Chain

__all__ = ["add_capture_arguments", "install_capture"]


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--capture`` and ``--print`` to the ``serve`` sub-command's parser."""
    parser.add_argument(
        "--capture",
        action="store_true",
        help="development sink: accept every message for any domain, print a summary line each",
    )
    parser.add_argument(
        "--print",
        dest="print_messages",
        action="store_true",
        help="with --capture (implied): print each whole message, not just its summary",
    )


def install_capture(chain: Chain, args: argparse.Namespace, out: TextIO | None = None) -> bool:
    """Register the capture handler when ``--capture``/``--print`` was given; returns whether.

    The core ``rcpt`` handler already takes every recipient; policy plugins that
    refuse some (local domains, relay rules) must not be registered in capture mode.
    """
    if not (args.capture or args.print_messages):
        return False
    chain.add(print_handler(out, whole=args.print_messages))
    return True
