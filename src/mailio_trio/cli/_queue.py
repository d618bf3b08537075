"""``mailio-trio queue``: inspect and steer the relay spool (mailq / postqueue).

Works on the spool directory while the server runs: every change is an atomic
metadata rewrite, and the worker never resurrects an entry deleted under it.
``flush`` and ``bounce`` then make the spool's ``flush`` file, which a running
server's relay worker polls for (every half second) and acts on at once; a
server that is not running finds the changes when it starts.

The spool is ``serve``'s: ``--spool-dir``, else ``--config``'s
``relay.spool_dir`` (or its ``server.spool_dir`` + ``/relay``), else
``./spool/relay``. Options go before or after the action.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailio_trio.config import ConfigError
from mailio_trio.relay.spool import ErrorInfo, RecipientStatus, Spool

if TYPE_CHECKING:
    from mailio_trio.relay.spool import Entry

__all__ = ["add_parser", "run"]


def _where(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--spool-dir", metavar="DIR", default=default, help="the relay spool (default spool/relay)"
    )
    parser.add_argument(
        "--config", metavar="FILE", default=default, help="TOML file: its relay spool"
    )


def add_parser(commands: Any) -> None:  # argparse._SubParsersAction is private
    queue = commands.add_parser("queue", help="list, show, flush, delete or bounce spooled mail")
    _where(queue, None)
    actions = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    subs = [actions.add_parser("list", help="one line per message: id, age, sender, recipients")]
    for name, text in (
        ("show", "every recipient's status and last error"),
        ("delete", "remove a message without delivering or bouncing it"),
        ("bounce", "give up now: the sender gets a DSN"),
    ):
        subs.append(actions.add_parser(name, help=text))
        subs[-1].add_argument("id")
    subs.append(actions.add_parser("flush", help="retry now (all, or one ID)"))
    subs[-1].add_argument("id", nargs="?")
    for sub in subs:
        # After the action too; SUPPRESS keeps a value given before it.
        _where(sub, argparse.SUPPRESS)


def _spool_dir(args: argparse.Namespace) -> Path:
    """``serve``'s relay spool: the flag, else the file's, else ``spool/relay``."""
    if args.spool_dir and args.config:
        raise ConfigError("queue: give --spool-dir DIR or --config FILE, not both")
    if args.spool_dir:
        return Path(args.spool_dir)
    from mailio_trio.cli._serve import CLI_DEFAULTS, checked_file

    if args.config:
        config = checked_file(args.config)[1]
        if config.relay.spool_dir is not None:
            return config.relay.spool_dir
        if config.spool_dir is not None:
            return config.spool_dir / "relay"
        raise ConfigError(f"{args.config}: neither relay.spool_dir nor server.spool_dir is set")
    return Path(CLI_DEFAULTS["server"]["spool_dir"]) / "relay"


def _spool(args: argparse.Namespace) -> Spool:
    directory = _spool_dir(args)
    spool = Spool(directory)
    if not spool.queue_dir.is_dir():
        flag = "--spool-dir" if args.spool_dir else "relay spool"
        raise ConfigError(f"{flag} = {str(directory)!r}: not a spool (no queue/ directory)")
    return spool


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _error(error: ErrorInfo | None) -> str:
    if error is None:
        return "-"
    return f"{error.code} {error.enhanced + ' ' if error.enhanced else ''}{error.text}"


def _find(spool: Spool, entry_id: str) -> Entry:
    entry = spool.load_sync(entry_id)
    if entry is None:
        raise LookupError(entry_id)
    return entry


def run(args: argparse.Namespace) -> int:
    """Run one ``queue`` action; 0 on success, 1 for an unknown ID, 2 for bad options."""
    spool = _spool(args)
    now = time.time()
    action = args.queue_command
    try:
        if action == "list":
            entries = spool.entries_sync()
            if not entries:
                print("queue is empty")
            for e in entries:
                pending = [r.address for r in e.pending()]
                nxt = "now" if e.next_attempt <= now else f"in {_age(e.next_attempt - now)}"
                print(
                    f"{e.id}  {_age(now - e.created)}  <{e.sender}>  {','.join(pending)}  "
                    f"attempts={e.attempts}  last={_error(e.last_error)}  next={nxt}"
                )
        elif action == "show":
            e = _find(spool, args.id)
            print(f"id: {e.id}\nsender: <{e.sender}>\nage: {_age(now - e.created)}")
            print(f"attempts: {e.attempts}\nnext attempt: {_age(max(0, e.next_attempt - now))}")
            for r in e.recipients:
                print(f"  {r.address}: {r.status.value}  {_error(r.error)}")
        elif action == "flush":
            targets = [_find(spool, args.id)] if args.id else spool.entries_sync()
            for e in targets:
                e.next_attempt = now
                spool.save_sync(e)
            spool.request_scan_sync()
            print(f"{len(targets)} message(s) due now")
        elif action == "delete":
            if not spool.remove_sync(args.id):
                raise LookupError(args.id)
            print(f"{args.id} deleted")
        elif action == "bounce":
            e = _find(spool, args.id)
            for r in e.pending():
                r.status = RecipientStatus.FAILED
                r.error = ErrorInfo(550, "5.3.0", "delivery cancelled by the postmaster")
            e.next_attempt = now
            spool.save_sync(e)
            spool.request_scan_sync()
            print(f"{e.id} will be bounced")
    except LookupError as exc:
        print(
            f"mailio-trio: queue {action}: no message {exc.args[0]!r} in the spool", file=sys.stderr
        )
        return 1
    return 0
