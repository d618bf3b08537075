"""``serve --capture``, ``--print`` and ``--web``: the development sink's flags.

``--capture`` keeps every message in the capture store (``./capture.sqlite``,
``--capture-db``), newest ``--capture-max-messages`` / ``--capture-max-bytes``;
``--web HOST:PORT`` shows it in a browser and over Mailpit's API (docs/inbox.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from mailio_trio.cli._args import host_port, positive_int
from mailio_trio.config import ConfigError
from mailio_trio.inbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES, inbox_handler, open_inbox
from mailio_trio.plugins.capture import print_handler

if TYPE_CHECKING:
    import argparse

    from mailio_trio.chain import Chain
    from mailio_trio.inbox import Inbox

__all__ = ["add_capture_arguments", "capturing", "install_capture", "open_capture_inbox"]


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
    parser.add_argument(
        "--capture-db",
        metavar="PATH",
        default="capture.sqlite",
        help="with --capture: the SQLite file captured mail is kept in, across restarts "
        "(default ./capture.sqlite; :memory: keeps nothing)",
    )
    parser.add_argument(
        "--capture-max-messages",
        metavar="N",
        type=positive_int,
        default=DEFAULT_MAX_MESSAGES,
        help=f"with --capture: keep the newest N messages (default {DEFAULT_MAX_MESSAGES})",
    )
    parser.add_argument(
        "--capture-max-bytes",
        metavar="BYTES",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        help=f"with --capture: keep at most this many octets of mail (default {DEFAULT_MAX_BYTES})",
    )
    parser.add_argument(
        "--web",
        metavar="HOST:PORT",
        type=host_port,
        help="with --capture (implied): the web inbox and its API, e.g. 127.0.0.1:8025 "
        "(needs the [web] extra)",
    )
    parser.add_argument(
        "--release-to",
        metavar="HOST:PORT",
        type=host_port,
        help="with --web: the SMTP server the inbox's Release sends captured mail to",
    )
    parser.add_argument(
        "--release-starttls",
        action="store_true",
        help="with --release-to: require STARTTLS there, certificate checked (default plain)",
    )


def capturing(args: argparse.Namespace) -> bool:
    """Whether ``serve`` runs as the development sink."""
    return bool(args.capture or args.print_messages or args.web)


def open_capture_inbox(args: argparse.Namespace) -> Inbox | None:
    """The capture store the flags ask for, or ``None`` when not capturing.

    Raises:
      ConfigError: One line: the file cannot be opened, or ``--web`` lacks its extra.
    """
    if not capturing(args):
        return None
    if args.workers > 1:
        raise ConfigError(
            f"--workers {args.workers}: --capture keeps one inbox in one process; use --workers 1"
        )
    if args.web is not None:
        try:
            import hypercorn  # noqa: F401
            import starlette  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--web needs Starlette and Hypercorn: pip install 'mailio-trio[web]'"
            ) from None
    import sqlite3

    try:
        inbox = open_inbox(
            args.capture_db,
            max_messages=args.capture_max_messages,
            max_bytes=args.capture_max_bytes,
        )
    except sqlite3.Error as exc:
        raise ConfigError(f"--capture-db {args.capture_db}: {exc}") from None
    if args.release_to is not None:
        from mailio_trio.inbox._release import ReleaseTarget

        host, port = args.release_to
        inbox.release_to = ReleaseTarget(host, port, starttls=args.release_starttls)
    return inbox


def install_capture(
    chain: Chain,
    args: argparse.Namespace,
    out: TextIO | None = None,
    inbox: Inbox | None = None,
) -> bool:
    """Register the capture handlers when ``--capture``/``--print`` was given; returns whether.

    ``queue/inbox`` keeps each message in ``inbox`` (when given), ``queue/print``
    prints it. The core ``rcpt`` handler already takes every recipient; policy
    plugins that refuse some (local domains, relay rules) must not be
    registered in capture mode.
    """
    if not capturing(args):
        return False
    if inbox is not None:
        chain.add(inbox_handler(inbox))
    chain.add(print_handler(out, whole=args.print_messages))
    return True
