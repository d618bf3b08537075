"""The durable relay spool: one entry per accepted message, on disk before our ``250``.

Layout under ``relay.spool_dir``::

    tmp/<id>.eml, tmp/<id>.json    being written; anything here after a crash is garbage
    flush                          "scan now": made by ``mailio-trio queue flush/bounce``,
                                   removed by the worker, which polls for it
    queue/<id>.eml                 the message as received (our Received: line first)
    queue/<id>.json                the metadata: envelope, per-recipient status, attempts

Every write is atomic: write to ``tmp/``, ``fsync`` the file, ``rename`` into
``queue/``, ``fsync`` the directory. The message file is committed first; the
metadata file is the **commit point**: an entry exists if and only if
``queue/<id>.json`` exists. A crash before it leaves an orphan ``.eml`` (the
client got no ``250`` and will retry), removed at the next load.

At-least-once point: a recipient is marked ``delivered`` in the metadata only
after the remote server answered ``250`` to the body and the metadata rewrite
(tmp, fsync, rename, directory fsync) completed. A crash (SIGKILL, power loss)
between the remote ``250`` and that rewrite sends the message again to the
recipients of that one delivery (one domain's group) after restart. Nothing
is ever lost; at most the in-flight group is sent twice.

Removal is the reverse: the metadata goes first (the entry stops existing),
then the message file.

Two phases for ``queue/relay`` (the ``queue`` chain is one transaction, see
``mailio_trio._transaction``): :meth:`Spool.prepare_sync` writes and fsyncs
``tmp/<id>.eml`` and ``tmp/<id>.json``, and :meth:`Spool.commit_sync` renames
them into ``queue/`` (message first, each rename's directory fsync'd) once
every queue handler accepted, before the client's ``250``. A crash in
between leaves only ``tmp/`` files, removed at the next load: the
refused-or-unanswered message is never delivered, and the client, which got
no ``250``, still has it.

Blocking file work runs in a thread (``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio._durable import fsync_dir
from mailio_trio.protocol.dsn import DsnRcpt, NotifyOn, Orcpt, Ret

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Entry", "ErrorInfo", "NotifyOn", "RecipientState", "RecipientStatus", "Spool"]

logger = logging.getLogger("mailio_trio.relay")


class RecipientStatus(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Permanently failed (or given up); a bounce reports it."""


@attrs.frozen
class ErrorInfo:
    """The last reply (or our reason) for a recipient: enough for a DSN and ``queue list``."""

    code: int
    enhanced: str | None
    text: str
    remote: str | None = None
    """The host that answered (``Remote-MTA``), or ``None`` when we decided locally."""


@attrs.define
class RecipientState:
    address: str
    status: RecipientStatus = RecipientStatus.PENDING
    error: ErrorInfo | None = None
    notify: frozenset[NotifyOn] | None = None
    """The client's ``NOTIFY`` for this recipient (RFC 3461 §4.1); ``None``: not
    given, our defaults apply (failures and delays reported, success not)."""
    orcpt: Orcpt | None = None
    """The client's ``ORCPT`` (RFC 3461 §4.2), passed on and reported as
    ``Original-Recipient``."""
    relayed: bool = False
    """Delivered to a next hop that does not offer DSN: a ``NOTIFY=SUCCESS``
    recipient's ``relayed`` report is ours to send (RFC 3461 §5.2.2)."""

    def wants(self, kind: NotifyOn) -> bool:
        """Whether a report of ``kind`` is wanted; without NOTIFY, failures and delays."""
        if self.notify is None:
            return kind in (NotifyOn.FAILURE, NotifyOn.DELAY)
        return kind in self.notify


@attrs.define(eq=False)
class Entry:
    """One spooled message: its envelope and how far delivery got."""

    id: str
    sender: str
    """The reverse-path without brackets; ``""`` is the null sender."""
    recipients: list[RecipientState]
    created: float
    """Wall-clock seconds (persisted, so ``time.time()``, not trio's clock)."""
    next_attempt: float
    attempts: int = 0
    smtputf8: bool = False
    body_8bit: bool | None = None
    bounced: bool = False
    """True once a DSN for the failed recipients was submitted."""
    delay_warned: bool = False
    """True once the delay warning is settled: submitted, or found not wanted
    (null sender, auto-submitted, every recipient's NOTIFY without DELAY).
    Persisted, so a restart never sends a second one."""
    ret: Ret | None = None
    """MAIL's ``RET`` (RFC 3461 §4.3): ``FULL`` returns the whole message in a
    failure report; ``HDRS`` or none, its headers."""
    envid: str | None = None
    """MAIL's ``ENVID`` (RFC 3461 §4.4), decoded; ``Original-Envelope-Id`` in reports."""

    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients if r.status is RecipientStatus.PENDING]

    def failed(self) -> list[RecipientState]:
        return [r for r in self.recipients if r.status is RecipientStatus.FAILED]

    @property
    def last_error(self) -> ErrorInfo | None:
        errors = [r.error for r in self.recipients if r.error is not None]
        return errors[-1] if errors else None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "id": self.id,
            "sender": self.sender,
            "recipients": [
                {
                    "address": r.address,
                    "status": r.status.value,
                    "error": None if r.error is None else attrs.asdict(r.error),
                    **({} if r.notify is None else {"notify": sorted(n.value for n in r.notify)}),
                    **({} if r.orcpt is None else {"orcpt": str(r.orcpt)}),
                    **({"relayed": True} if r.relayed else {}),
                }
                for r in self.recipients
            ],
            "created": self.created,
            "next_attempt": self.next_attempt,
            "attempts": self.attempts,
            "smtputf8": self.smtputf8,
            "body_8bit": self.body_8bit,
            "bounced": self.bounced,
            "delay_warned": self.delay_warned,
            # Written only when set, so entries stay readable by older versions.
            **({} if self.ret is None else {"ret": self.ret.value}),
            **({} if self.envid is None else {"envid": self.envid}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            id=str(data["id"]),
            sender=str(data["sender"]),
            recipients=[
                RecipientState(
                    address=str(r["address"]),
                    status=RecipientStatus(r["status"]),
                    error=None if r.get("error") is None else ErrorInfo(**r["error"]),
                    notify=(
                        None
                        if r.get("notify") is None
                        else frozenset(NotifyOn(n) for n in r["notify"])
                    ),
                    orcpt=_orcpt(r.get("orcpt")),
                    relayed=bool(r.get("relayed", False)),
                )
                for r in data["recipients"]
            ],
            created=float(data["created"]),
            next_attempt=float(data["next_attempt"]),
            attempts=int(data.get("attempts", 0)),
            smtputf8=bool(data.get("smtputf8", False)),
            body_8bit=data.get("body_8bit"),
            bounced=bool(data.get("bounced", False)),
            delay_warned=bool(data.get("delay_warned", False)),
            ret=None if data.get("ret") is None else Ret(data["ret"]),
            envid=None if data.get("envid") is None else str(data["envid"]),
        )


def _orcpt(value: Any) -> Orcpt | None:
    if value is None:
        return None
    addr_type, _, address = str(value).partition(";")
    return Orcpt(addr_type, address)


def _write_synced(tmp: Path, write: Any) -> None:
    """Write ``tmp`` and fsync it; removed again if that fails."""
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_durably(path: Path, tmp: Path, write: Any) -> None:
    """Write via ``tmp``: fsync the file, rename into place, fsync the directory."""
    _write_synced(tmp, write)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz-")


@attrs.define(eq=False)
class Spool:
    """The spool directory; safe to use from the server and the ``queue`` CLI at once.

    Entries are read from disk whenever asked for, so another process's
    change (``queue flush``, ``queue delete``) is seen at the next scan.
    """

    root: Path = attrs.field(converter=Path)

    @property
    def queue_dir(self) -> Path:
        return self.root / "queue"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def flush_path(self) -> Path:
        """The "scan now" request file (see :meth:`request_scan_sync`)."""
        return self.root / "flush"

    def request_scan_sync(self) -> None:
        """Ask a running worker on this spool to scan at once (blocking; any process).

        A file rather than a signal: it needs no pid file that could be stale
        or name another process, no permission to signal the server, and it
        works wherever the spool directory is shared. The caller makes its
        changes first; the worker removes the file before it scans, so it
        sees them.
        """
        self.flush_path.touch()

    def take_scan_request_sync(self) -> bool:
        """Remove the "scan now" file; ``True`` if it was there (blocking)."""
        try:
            self.flush_path.unlink()
        except FileNotFoundError:
            return False
        return True

    def open(self) -> None:
        """Create the directories and clear what a crash left half-written (blocking)."""
        for d in (self.root, self.queue_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        for message in self.queue_dir.glob("*.eml"):
            if not message.with_suffix(".json").exists():
                # Crashed before the commit point: the client never got 250.
                logger.info("removing uncommitted spool message %s", message.name)
                message.unlink(missing_ok=True)

    def valid_id(self, entry_id: str) -> bool:
        return bool(entry_id) and set(entry_id) <= _ID_CHARS

    def _path(self, directory: Path, entry_id: str, suffix: str) -> Path:
        # Ids come back from the CLI and from file names: never a path of their own.
        if not self.valid_id(entry_id):
            raise KeyError(entry_id)
        return directory / f"{entry_id}{suffix}"

    def message_path(self, entry_id: str) -> Path:
        return self._path(self.queue_dir, entry_id, ".eml")

    def _meta_path(self, entry_id: str) -> Path:
        return self._path(self.queue_dir, entry_id, ".json")

    def _tmp_meta_path(self, entry_id: str) -> Path:
        return self._path(self.tmp_dir, entry_id, ".json")

    def _tmp_message_path(self, entry_id: str) -> Path:
        return self._path(self.tmp_dir, entry_id, ".eml")

    # -- blocking primitives (run them in a thread from async code) --------

    def prepare_sync(
        self,
        source: Path,
        sender: str,
        recipients: list[str],
        *,
        smtputf8: bool = False,
        body_8bit: bool | None = None,
        now: float | None = None,
        dsn: Mapping[str, DsnRcpt] | None = None,
        ret: Ret | None = None,
        envid: str | None = None,
        headers: bytes = b"",
    ) -> Entry:
        """Write an entry's files and fsync them, all in ``tmp/`` (``queue/relay``'s phase one).

        ``headers`` (complete header fields, CRLF-terminated) are written in front
        of ``source``'s bytes and fsync'd with them: the DKIM-Signature (and ARC
        set) computed at spool time is then part of the durable entry, so every
        attempt, before or after a restart, sends the same signed bytes.

        Nothing is in ``queue/`` yet: the worker does not see the entry, and a
        restart (``open``) clears ``tmp/``, so a crash before
        :meth:`commit_sync` never delivers a message the client got no ``250``
        for. Keeping the prepared message out of ``queue/`` also means another
        process's ``open`` cannot take it for a crashed write's orphan there:
        it may only clear ``tmp/``, and then the commit fails (``451``)
        instead of committing metadata without its message.

        ``dsn`` maps a recipient (as in ``recipients``) to its RCPT's DSN
        parameters; ``ret`` and ``envid`` are MAIL's.

        Raises:
          OSError: Nothing of the entry is left.
        """
        now = time.time() if now is None else now
        dsn = dsn or {}
        entry_id = f"{int(now):x}-{secrets.token_hex(6)}"
        entry = Entry(
            id=entry_id,
            sender=sender,
            recipients=[
                RecipientState(
                    a,
                    notify=dsn[a].notify if a in dsn else None,
                    orcpt=dsn[a].orcpt if a in dsn else None,
                )
                for a in recipients
            ],
            created=now,
            next_attempt=now,
            smtputf8=smtputf8,
            body_8bit=body_8bit,
            ret=ret,
            envid=envid,
        )

        def copy(f: Any) -> None:
            f.write(headers)
            with source.open("rb") as src:
                shutil.copyfileobj(src, f, 256 * 1024)

        _write_synced(self._tmp_message_path(entry_id), copy)
        data = json.dumps(entry.to_json(), indent=1).encode("utf-8")
        try:
            _write_synced(self._tmp_meta_path(entry_id), lambda f: f.write(data))
        except BaseException:
            self._tmp_message_path(entry_id).unlink(missing_ok=True)
            raise
        return entry

    def commit_sync(self, entry_id: str) -> None:
        """Move a prepared entry into ``queue/``: message, directory fsync, then the commit point.

        A crash can leave an orphan message (removed at the next ``open``),
        never metadata without its message.

        Raises:
          OSError: The entry may be half moved; :meth:`discard_sync` removes it.
        """
        self._tmp_message_path(entry_id).replace(self.message_path(entry_id))
        fsync_dir(self.queue_dir)
        self._tmp_meta_path(entry_id).replace(self._meta_path(entry_id))
        fsync_dir(self.queue_dir)

    def discard_sync(self, entry_id: str) -> None:
        """Remove a prepared entry, or a committed one (a rollback after its commit).

        The metadata goes first, as in :meth:`remove_sync`; a file that is not
        there (or whose directory is not) is already removed.
        """
        meta = self._meta_path(entry_id)
        for path in (
            meta,
            self._tmp_meta_path(entry_id),
            self.message_path(entry_id),
            self._tmp_message_path(entry_id),
        ):
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                continue
            if path is meta:
                fsync_dir(self.queue_dir)  # the entry stays gone after a crash

    def save_sync(self, entry: Entry) -> None:
        data = json.dumps(entry.to_json(), indent=1).encode("utf-8")
        _write_durably(
            self._meta_path(entry.id), self.tmp_dir / f"{entry.id}.json", lambda f: f.write(data)
        )

    def load_sync(self, entry_id: str) -> Entry | None:
        """The entry as on disk now, or ``None`` if it is gone (delivered, deleted)."""
        try:
            data = json.loads(self._meta_path(entry_id).read_bytes())
        except (FileNotFoundError, KeyError):
            return None
        except (ValueError, TypeError) as exc:
            logger.error("spool entry %s is unreadable: %s", entry_id, exc)
            return None
        return Entry.from_json(data)

    def entries_sync(self) -> list[Entry]:
        out = []
        for meta in sorted(self.queue_dir.glob("*.json")):
            entry = self.load_sync(meta.stem)
            if entry is not None:
                out.append(entry)
        return out

    def remove_sync(self, entry_id: str) -> bool:
        """Remove an entry; metadata first, so a crash never leaves a half entry."""
        meta = self._meta_path(entry_id)
        try:
            meta.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(self.queue_dir)
        with contextlib.suppress(FileNotFoundError):
            self.message_path(entry_id).unlink()
        return True

    # -- async wrappers --------------------------------------------------------

    async def prepare(self, source: Path, sender: str, recipients: list[str], **kw: Any) -> Entry:
        return await trio.to_thread.run_sync(
            lambda: self.prepare_sync(source, sender, recipients, **kw)
        )

    async def commit(self, entry_id: str) -> None:
        await trio.to_thread.run_sync(self.commit_sync, entry_id)

    async def discard(self, entry_id: str) -> None:
        await trio.to_thread.run_sync(self.discard_sync, entry_id)

    async def save(self, entry: Entry) -> None:
        await trio.to_thread.run_sync(self.save_sync, entry)

    async def load(self, entry_id: str) -> Entry | None:
        return await trio.to_thread.run_sync(self.load_sync, entry_id)

    async def entries(self) -> list[Entry]:
        return await trio.to_thread.run_sync(self.entries_sync)

    async def remove(self, entry_id: str) -> bool:
        return await trio.to_thread.run_sync(self.remove_sync, entry_id)
