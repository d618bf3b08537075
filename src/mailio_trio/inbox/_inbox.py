"""The Trio face of the capture store: threads for SQLite, events for live updates."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.chain import Handler, Request, Response
from mailio_trio.inbox._store import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MESSAGES,
    NewMessage,
    SqliteStore,
    Stored,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from mailio_trio.inbox._release import ReleaseTarget

__all__ = ["Inbox", "InboxEvent", "inbox_handler", "open_inbox"]

# A subscriber (one browser tab's event stream) that falls this far behind is
# dropped; its EventSource reconnects and reloads the list.
_SUBSCRIBER_BUFFER = 256


@attrs.frozen
class InboxEvent:
    """What changed: ``"new"`` (one message's facts) or ``"delete"`` (IDs, ``None`` for all)."""

    kind: str
    message: Stored | None = None
    ids: tuple[str, ...] | None = None


@attrs.define(eq=False)
class Inbox:
    """Captured messages, for Trio: the store's calls in threads, changes to subscribers.

    Build with :func:`open_inbox`. Every method but :meth:`close` and
    :meth:`subscribe` awaits a worker thread; calls are serialised by the
    store's lock.
    """

    store: SqliteStore
    release_to: ReleaseTarget | None = attrs.field(default=None, kw_only=True)
    """Where ``POST /api/v1/message/{ID}/release`` sends mail (``serve --release-to``)."""
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _subscribers: set[trio.MemorySendChannel[InboxEvent]] = attrs.field(factory=set, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    def _publish(self, event: InboxEvent) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(channel)
                channel.close()
        self._changed.set()
        self._changed = trio.Event()

    async def add(self, new: NewMessage) -> Stored:
        """Store ``new`` (the cap may drop the oldest); subscribers hear of both."""
        stored, dropped = await trio.to_thread.run_sync(self.store.add, new)
        if dropped:
            self._publish(InboxEvent("delete", ids=tuple(dropped)))
        self._publish(InboxEvent("new", message=stored))
        return stored

    async def page(
        self, start: int = 0, limit: int = 50, query: str = ""
    ) -> tuple[list[Stored], int]:
        """Newest first, ``limit`` from ``start``, matching ``query``; and the number matching."""
        return await trio.to_thread.run_sync(self.store.page, start, limit, query)

    async def counts(self) -> tuple[int, int, int]:
        """``(messages, unread, total octets)``."""
        return await trio.to_thread.run_sync(self.store.counts)

    async def get(self, message_id: str, *, mark_read: bool = False) -> Stored | None:
        """One message with its raw bytes, or ``None``."""
        return await trio.to_thread.run_sync(
            lambda: self.store.get(message_id, mark_read=mark_read)
        )

    async def delete(self, ids: Sequence[str] | None = None) -> list[str]:
        """Delete ``ids`` (``None``: every message); returns those that existed."""
        gone = await trio.to_thread.run_sync(self.store.delete, ids)
        if gone or ids is None:
            self._publish(InboxEvent("delete", ids=None if ids is None else tuple(gone)))
        return gone

    async def wait_for_count(self, count: int) -> int:
        """Wait until at least ``count`` messages are stored; returns how many are.

        Cancellation: wrap in :func:`trio.fail_after` or ``move_on_after``.
        """
        while True:
            changed = self._changed
            total = (await self.counts())[0]
            if total >= count:
                return total
            await changed.wait()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[InboxEvent]]:
        """Every change from now on, until the block ends (or the subscriber falls behind)."""
        send, receive = trio.open_memory_channel[InboxEvent](_SUBSCRIBER_BUFFER)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()

    def close(self) -> None:
        """Close the store (blocking, brief); ends every subscription."""
        if self._closed:
            return
        self._closed = True
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()
        self.store.close()


def open_inbox(
    path: str = ":memory:",
    *,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Inbox:
    """Open (or create) the capture store at ``path``; ``":memory:"`` keeps nothing on disk.

    Opening is blocking but brief (SQLite opens a file and creates one table):
    call it before :func:`trio.run`, or from a thread.

    Example::

        inbox = open_inbox("capture.sqlite", max_messages=500)
        server.add_handler(inbox_handler(inbox))
    """
    return Inbox(SqliteStore(path, max_messages=max_messages, max_bytes=max_bytes))


def _user_name(user: Any) -> str | None:
    if user is None:
        return None
    return str(getattr(user, "username", user))


def inbox_handler(inbox: Inbox) -> Handler:
    """A ``queue/inbox`` handler: every accepted message goes into ``inbox``."""

    async def keep(req: Request, res: Response) -> None:
        message = req.message
        assert message is not None
        session = req.session
        raw = await trio.to_thread.run_sync(message.read_bytes)
        verdict = res.get("queue/mailauth")
        envelope = message.envelope
        new = NewMessage(
            raw=raw,
            sender=None if envelope.sender is None else str(envelope.sender),
            recipients=tuple(str(r) for r in envelope.recipients),
            client_address=session.client.address,
            helo=session.helo_name,
            tls=session.secure,
            auth_user=_user_name(session.user),
            auth_results=getattr(verdict, "header_value", None) or None,
        )
        added: list[str] = []

        async def roll_back() -> None:
            if added:
                await inbox.delete(added)

        async def show() -> None:
            # Stored at commit, not before: a message a later handler refuses
            # (or the client abandons) never appears in the inbox.
            added.append((await inbox.add(new)).id)

        req.on_rollback(roll_back)
        req.on_commit(show)
        res.accept()

    # After mailauth, when it runs: its verdict is read above.
    return Handler(command="queue", name="inbox", func=keep, after=("mailauth",), if_present=True)
