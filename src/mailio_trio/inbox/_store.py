"""The capture store: captured messages in SQLite, on disk or in memory, with a cap.

One table, one connection, one lock. SQLite is blocking, so every call from
Trio goes through :func:`trio.to_thread.run_sync`; the connection is shared by
those worker threads (``check_same_thread=False``) and a
:class:`threading.Lock` makes the calls one at a time — SQLite's own locking
is per connection, not per thread, so the lock is what keeps a transaction
whole. The inbox of a development server holds at most a few thousand
messages: one writer is plenty.

The cap: after each insert, the oldest messages go until both the count and
the total size fit (``max_messages``, ``max_bytes``); the newest message is
always kept, even when it alone is over ``max_bytes``.

What is stored per message: the raw bytes as received (our ``Received:`` line
first), the envelope, the session facts (client address, HELO, TLS, AUTH
user, our ``Authentication-Results`` value), the received time, the size and a
stable ID; plus columns derived from the parse (``_parse.py``) at insert time,
so listing and searching never re-parse.
"""

from __future__ import annotations

import datetime
import json
import secrets
import shlex
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.inbox._parse import Parsed, parse

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_MESSAGES", "NewMessage", "SqliteStore", "Stored"]

DEFAULT_MAX_MESSAGES = 1000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a development inbox, not an archive

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    raw BLOB NOT NULL,
    sender TEXT,
    recipients TEXT NOT NULL,
    client_address TEXT NOT NULL,
    helo TEXT,
    tls INTEGER NOT NULL,
    auth_user TEXT,
    auth_results TEXT,
    read INTEGER NOT NULL DEFAULT 0,
    subject TEXT NOT NULL,
    from_text TEXT NOT NULL,
    to_text TEXT NOT NULL,
    search_text TEXT NOT NULL,
    summary TEXT NOT NULL
)
"""

# The columns every listing reads; ``raw`` only when one message is asked for.
_META = (
    "id, created, size, sender, recipients, client_address, helo, tls, auth_user,"
    " auth_results, read, summary"
)


@attrs.frozen(kw_only=True)
class NewMessage:
    """One message to store, as the ``queue`` handler saw it."""

    raw: bytes
    sender: str | None
    """The envelope sender; ``None`` for the null reverse-path ``<>``."""
    recipients: tuple[str, ...]
    client_address: str
    helo: str | None = None
    tls: bool = False
    auth_user: str | None = None
    auth_results: str | None = None
    """Our ``Authentication-Results`` value (``queue/mailauth``'s ``header_value``)."""
    created: float = attrs.field(factory=time.time)
    """Received, as a Unix time (wall clock: it is shown and persisted)."""


@attrs.frozen(kw_only=True)
class Stored:
    """A stored message's facts; ``raw`` only when one message was asked for."""

    id: str
    created: float
    size: int
    sender: str | None
    recipients: tuple[str, ...]
    client_address: str
    helo: str | None
    tls: bool
    auth_user: str | None
    auth_results: str | None
    read: bool
    summary: dict[str, Any]
    """The Mailpit list fields computed at insert (From, To, Subject, Snippet, ...)."""
    raw: bytes | None = None

    @property
    def created_rfc3339(self) -> str:
        """``Created`` as Mailpit writes it: UTC, milliseconds, ``Z``."""
        when = datetime.datetime.fromtimestamp(self.created, datetime.UTC)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _summary(parsed: Parsed) -> dict[str, Any]:
    return {
        "MessageID": parsed.message_id,
        "From": parsed.from_,
        "To": parsed.to,
        "Cc": parsed.cc,
        "Bcc": parsed.bcc,
        "ReplyTo": parsed.reply_to,
        "Subject": parsed.subject,
        "Snippet": parsed.snippet,
        "Attachments": len(parsed.attachments),
    }


def _row(row: sqlite3.Row, raw: bytes | None = None) -> Stored:
    return Stored(
        id=row["id"],
        created=row["created"],
        size=row["size"],
        sender=row["sender"],
        recipients=tuple(json.loads(row["recipients"])),
        client_address=row["client_address"],
        helo=row["helo"],
        tls=bool(row["tls"]),
        auth_user=row["auth_user"],
        auth_results=row["auth_results"],
        read=bool(row["read"]),
        summary=json.loads(row["summary"]),
        raw=raw,
    )


def _like(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_FIELDS = {"from": "from_text", "to": "to_text", "subject": "lower(subject)"}


def search_clause(query: str) -> tuple[str, list[str]]:
    """A SQL ``WHERE`` clause for a Mailpit-style query: ``from:``, ``to:``, ``subject:``, words.

    Every term must match (AND); a term is a substring match, case-insensitive;
    ``"quoted words"`` are one term. An unknown ``name:value`` is free text.
    """
    try:
        terms = shlex.split(query)
    except ValueError:  # an unbalanced quote: take the words as they are
        terms = query.split()
    clauses: list[str] = []
    params: list[str] = []
    for term in terms:
        name, sep, value = term.partition(":")
        column = _FIELDS.get(name.lower()) if sep else None
        if column is None:
            column, value = "search_text", term
        if value:
            clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            params.append(_like(value))
    return (" AND ".join(clauses) or "1"), params


@attrs.define(eq=False)
class SqliteStore:
    """The blocking store; :class:`~mailio_trio.inbox.Inbox` calls it from threads.

    Args:
      path: A file (created if missing, kept across restarts) or ``":memory:"``.
      max_messages: Keep at most this many; the oldest go first.
      max_bytes: Keep at most this many octets of messages in total.
    """

    path: str
    max_messages: int = DEFAULT_MAX_MESSAGES
    max_bytes: int = DEFAULT_MAX_BYTES
    _db: sqlite3.Connection = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        if self.max_messages < 1 or self.max_bytes < 1:
            raise ValueError("capture store: max_messages and max_bytes must be at least 1")
        # isolation_level=None: we say BEGIN/COMMIT ourselves, one per call.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, new: NewMessage) -> tuple[Stored, list[str]]:
        """Store ``new``; returns it and the IDs the cap dropped (oldest first)."""
        parsed = parse(new.raw)
        summary = _summary(parsed)
        who = f"{parsed.from_['Name']} {parsed.from_['Address']} {new.sender or ''}"
        people = " ".join(f"{a['Name']} {a['Address']}" for a in parsed.to + parsed.cc + parsed.bcc)
        message_id = secrets.token_urlsafe(16)  # 22 characters, like Mailpit's IDs
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO messages (id, created, size, raw, sender, recipients,"
                    " client_address, helo, tls, auth_user, auth_results, subject, from_text,"
                    " to_text, search_text, summary)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message_id,
                        new.created,
                        len(new.raw),
                        new.raw,
                        new.sender,
                        json.dumps(list(new.recipients)),
                        new.client_address,
                        new.helo,
                        int(new.tls),
                        new.auth_user,
                        new.auth_results,
                        parsed.subject,
                        who.lower(),
                        f"{people} {' '.join(new.recipients)}".lower(),
                        f"{parsed.search_text()}\n{who}".lower(),
                        json.dumps(summary),
                    ),
                )
                dropped = self._enforce_cap()
                row = self._db.execute(
                    f"SELECT {_META} FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return _row(row), dropped

    def _enforce_cap(self) -> list[str]:
        count, total = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
        ).fetchone()
        dropped: list[str] = []
        if count <= self.max_messages and total <= self.max_bytes:
            return dropped
        for seq, message_id, size in self._db.execute(
            "SELECT seq, id, size FROM messages ORDER BY seq"
        ).fetchall():
            if count <= 1 or (count <= self.max_messages and total <= self.max_bytes):
                break
            self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            dropped.append(message_id)
            count -= 1
            total -= size
        return dropped

    def page(self, start: int = 0, limit: int = 50, query: str = "") -> tuple[list[Stored], int]:
        """Newest first: ``limit`` messages from ``start``, and how many match in all."""
        where, params = search_clause(query)
        with self._lock:
            total = self._db.execute(
                f"SELECT COUNT(*) FROM messages WHERE {where}", params
            ).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_META} FROM messages WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*params, limit, start],
            ).fetchall()
        return [_row(r) for r in rows], total

    def counts(self) -> tuple[int, int, int]:
        """``(messages, unread, total octets)``."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(read = 0), 0), COALESCE(SUM(size), 0) FROM messages"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def get(self, message_id: str, *, mark_read: bool = False) -> Stored | None:
        """One message with its raw bytes; ``mark_read`` marks it read (Mailpit does on view)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_META}, raw FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is not None and mark_read and not row["read"]:
                self._db.execute("UPDATE messages SET read = 1 WHERE id = ?", (message_id,))
        if row is None:
            return None
        stored = _row(row, raw=bytes(row["raw"]))
        return attrs.evolve(stored, read=True) if mark_read else stored

    def delete(self, ids: Sequence[str] | None = None) -> list[str]:
        """Delete these messages (``None``: all); returns the IDs that were there."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if ids is None:
                    gone = [r[0] for r in self._db.execute("SELECT id FROM messages")]
                    self._db.execute("DELETE FROM messages")
                else:
                    gone = []
                    for message_id in ids:
                        cursor = self._db.execute(
                            "DELETE FROM messages WHERE id = ?", (message_id,)
                        )
                        if cursor.rowcount:
                            gone.append(message_id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return gone
