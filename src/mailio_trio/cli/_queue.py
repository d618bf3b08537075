"""``mailio-trio queue``: inspect and steer the relay spool (mailq / postqueue).

Works on the spool directory while the server runs: every change is an atomic
metadata rewrite the worker reads at its next scan (``relay.scan_interval``),
and the worker never resurrects an entry deleted under it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from mailio_trio.config import Config, ConfigError
from mailio_trio.relay.spool import ErrorInfo, RecipientStatus, Spool

if TYPE_CHECKING:
    import argparse

    from mailio_trio.relay.spool import Entry

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:  # argparse._SubParsersAction is private
    queue = commands.add_parser("queue", help="list, show, flush, delete or bounce spooled mail")
    where = queue.add_mutually_exclusive_group()
    where.add_argument("--spool-dir", metavar="DIR", help="the relay spool directory")
    where.add_argument("--config", metavar="FILE", help="TOML file naming relay.spool_dir")
    actions = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="one line per message: id, age, sender, recipients, ...")
    for name, text in (
        ("show", "every recipient's status and last error"),
        ("delete", "remove a message without delivering or bouncing it"),
        ("bounce", "give up now: the sender gets a DSN"),
    ):
        actions.add_parser(name, help=text).add_argument("id")
    flush = actions.add_parser("flush", help="retry now (all, or one ID)")
    flush.add_argument("id", nargs="?")


def _spool(args: argparse.Namespace) -> Spool:
    if args.spool_dir:
        directory = args.spool_dir
    elif args.config:
        found = Config.from_toml(args.config).relay.spool_dir
        if found is None:
            raise ConfigError(f"{args.config}: relay.spool_dir is not set")
        directory = str(found)
    else:
        raise ConfigError("queue: give --spool-dir DIR or --config FILE")
    spool = Spool(directory)
    if not spool.queue_dir.is_dir():
        raise ConfigError(f"--spool-dir = {directory!r}: not a spool (no queue/ directory)")
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
            for e in spool.entries_sync():
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
            print(f"{e.id} will be bounced")
    except LookupError as exc:
        print(
            f"mailio-trio: queue {action}: no message {exc.args[0]!r} in the spool", file=sys.stderr
        )
        return 1
    return 0
