"""The order of durable steps behind ``250``, watched on real files (issue #19, blind spot 1).

The rule (``mailio_trio._durable``): fsync the file, rename it into place,
fsync the directory holding the new name — all before the client reads
``250``. Skipping either fsync loses nothing in a test that never crashes, so
these tests spy on the system calls: ``os.fsync`` (the file's, and the
directory's inside ``fsync_dir``: its descriptors are mapped to paths through
``/proc/self/fd``) and ``os.rename``/``os.replace``. The spy on the last
directory fsync blocks until the test releases it, and the client, on a real
socket, must have no reply while it is held.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio import Config
from mailio_trio.config import DnsConfig, MaildirConfig, RelayConfig
from mailio_trio.testing import RawConnection, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

    from mailio_trio.protocol import Reply

WAIT = 20  # seconds: an upper bound for anything to happen, never expected
HELD = 0.3  # seconds the blocked directory fsync is held while the client listens
BODY = b"Subject: durable\r\n\r\nkeep me\r\n."

Event = tuple[str, str, str]
"""("fsync", path, "") or ("rename", source, destination) or ("reply", code, "")."""


@attrs.define(eq=False)
class DurabilitySpy:
    """Records fsyncs and renames in order; blocks one directory fsync on cue."""

    block_when: Callable[[str, list[Event]], bool]
    """Whether this directory fsync (its path, the events so far) is the one to hold."""
    events: list[Event] = attrs.field(factory=list)
    entered: threading.Event = attrs.field(factory=threading.Event)
    release: threading.Event = attrs.field(factory=threading.Event)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def record(self, *event: str) -> None:
        with self._lock:
            self.events.append((event[0], event[1], event[2] if len(event) > 2 else ""))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

        def fsync(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            real_fsync(fd)
            if os.path.isdir(path):
                hold = False
                with self._lock:
                    if not self.entered.is_set() and self.block_when(path, list(self.events)):
                        self.entered.set()
                        hold = True
                self.record("fsync", path)
                if hold:
                    # A thread of trio.to_thread: the session waits on it, as on a slow disk.
                    self.release.wait(WAIT)
            else:
                self.record("fsync", path)

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            real_rename(src, dst, *args, **kwargs)
            self.record("rename", os.fspath(src), os.fspath(dst))

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            real_replace(src, dst, *args, **kwargs)
            self.record("rename", os.fspath(src), os.fspath(dst))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)  # Path.replace calls os.replace


def index(events: list[Event], event: Event) -> int:
    assert event in events, f"{event} never happened; events: {events}"
    return events.index(event)


async def send_until_final_dot(conn: RawConnection, sender: str, recipient: str) -> None:
    assert (await conn.read_reply()).code == 220
    assert (await conn.command("EHLO client.test")).code == 250
    assert (await conn.command(f"MAIL FROM:<{sender}>")).code == 250
    assert (await conn.command(f"RCPT TO:<{recipient}>")).code == 250
    assert (await conn.command("DATA")).code == 354
    await conn.send(BODY + b"\r\n")


async def reply_only_after_release(conn: RawConnection, spy: DurabilitySpy) -> Reply:
    """The client's reply to the final dot; asserts none came while the fsync was held."""
    replies: list[Reply] = []

    async def read() -> None:
        reply = await conn.read_reply()
        spy.record("reply", str(reply.code))
        replies.append(reply)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        # Whichever comes first: the held directory fsync, or (a defect) the reply.
        while not (spy.entered.is_set() or replies):  # noqa: ASYNC110  # a thread sets it
            await trio.sleep(0.005)
        assert not replies, f"reply {replies[0]} before the directory fsync; {spy.events}"
        await trio.sleep(HELD)
        assert not replies, f"reply {replies[0]} while the directory fsync was held"
        spy.release.set()
    [reply] = replies
    return reply


async def test_maildir_file_fsync_rename_then_new_dir_fsync_before_250(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mail"
    new_dir = str(root / "example.com" / "bob" / "new")
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=root),
    )
    running = await start_capturing_server(nursery, config)
    spy = DurabilitySpy(block_when=lambda path, _events: path == new_dir)
    spy.install(monkeypatch)
    try:
        with trio.fail_after(WAIT):
            async with running.open_raw() as conn:
                await send_until_final_dot(conn, "x@elsewhere.test", "bob@example.com")
                reply = await reply_only_after_release(conn, spy)
    finally:
        spy.release.set()
    assert reply.code == 250
    [delivered] = (root / "example.com" / "bob" / "new").iterdir()
    tmp = str(root / "example.com" / "bob" / "tmp" / delivered.name)
    events = spy.events
    file_synced = index(events, ("fsync", tmp, ""))
    renamed = index(events, ("rename", tmp, str(delivered)))
    dir_synced = index(events, ("fsync", new_dir, ""))
    replied = index(events, ("reply", "250", ""))
    assert file_synced < renamed < dir_synced < replied, events


async def test_relay_spool_entry_durable_in_order_before_250(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    queue_dir, tmp_dir = str(spool / "queue"), str(spool / "tmp")
    # Nothing resolves: the worker bounces the entry later, after the 250 this test is about.
    dns_host, dns_port = await nursery.start(DnsServer(Zone()).serve)
    config = Config(
        hostname="mx.example.com",
        domains=["example.com"],
        relay=RelayConfig(enabled=True, spool_dir=spool, allow_unauthenticated=True),
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )
    running = await start_capturing_server(nursery, config)

    def metadata_renamed(path: str, events: list[Event]) -> bool:
        # The queue/ fsync after the commit point: the .json renamed into queue/.
        return path == queue_dir and any(
            e[0] == "rename" and e[2].startswith(queue_dir) and e[2].endswith(".json")
            for e in events
        )

    spy = DurabilitySpy(block_when=metadata_renamed)
    spy.install(monkeypatch)
    try:
        with trio.fail_after(WAIT):
            async with running.open_raw() as conn:
                await send_until_final_dot(conn, "a@example.com", "b@remote.test")
                reply = await reply_only_after_release(conn, spy)
    finally:
        spy.release.set()
    assert reply.code == 250
    events = spy.events[: index(spy.events, ("reply", "250", ""))]
    [entry_id] = {
        Path(e[2]).stem for e in events if e[0] == "rename" and e[2].startswith(queue_dir)
    }
    eml, meta = f"{entry_id}.eml", f"{entry_id}.json"
    eml_synced = index(events, ("fsync", f"{tmp_dir}/{eml}", ""))
    meta_synced = index(events, ("fsync", f"{tmp_dir}/{meta}", ""))
    eml_renamed = index(events, ("rename", f"{tmp_dir}/{eml}", f"{queue_dir}/{eml}"))
    meta_renamed = index(events, ("rename", f"{tmp_dir}/{meta}", f"{queue_dir}/{meta}"))
    queue_syncs = [i for i, e in enumerate(events) if e == ("fsync", queue_dir, "")]
    # The message is in queue/ (its rename fsync'd) before the commit point is written.
    assert eml_synced < eml_renamed, events
    assert meta_synced < meta_renamed, events
    assert any(eml_renamed < i < meta_renamed for i in queue_syncs), events
    # And the commit point's own rename is fsync'd before the 250 (the held fsync).
    assert any(i > meta_renamed for i in queue_syncs), events
