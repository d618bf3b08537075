"""The spool's files and the retry arithmetic (no network)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.relay import schedule
from mailio_trio.relay.spool import RecipientStatus, Spool

if TYPE_CHECKING:
    from pathlib import Path


def test_backoff_is_base_times_attempts_squared() -> None:
    assert [schedule.next_attempt(0.0, n, 60.0) for n in (1, 2, 3)] == [60.0, 240.0, 540.0]
    assert not schedule.expired(48 * 3600 - 1, 0.0, 48)
    assert schedule.expired(48 * 3600, 0.0, 48)


def test_entry_round_trips_and_survives_reopen(tmp_path: Path) -> None:
    source = tmp_path / "m.eml"
    source.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = spool.add_sync(source, "a@example.com", ["b@x.test", "c@y.test"], now=1000.0)
    entry.recipients[0].status = RecipientStatus.DELIVERED
    spool.save_sync(entry)
    reopened = Spool(tmp_path / "spool")
    reopened.open()
    [loaded] = reopened.entries_sync()
    assert loaded.id == entry.id
    assert [r.status for r in loaded.recipients] == [
        RecipientStatus.DELIVERED,
        RecipientStatus.PENDING,
    ]
    assert reopened.message_path(entry.id).read_bytes() == source.read_bytes()
    assert loaded.created == 1000.0


def test_uncommitted_message_and_temp_files_are_cleared_on_open(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    (spool.queue_dir / "orphan.eml").write_bytes(b"never acknowledged")
    (spool.tmp_dir / "half.json").write_bytes(b"{")
    spool.open()
    assert list(spool.queue_dir.iterdir()) == []
    assert list(spool.tmp_dir.iterdir()) == []


def test_remove_deletes_metadata_first_and_ids_cannot_escape(tmp_path: Path) -> None:
    source = tmp_path / "m.eml"
    source.write_bytes(b"x")
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = spool.add_sync(source, "", ["b@x.test"])
    assert spool.remove_sync(entry.id)
    assert not spool.remove_sync(entry.id)
    assert spool.load_sync("../../etc/passwd") is None
    assert list(spool.queue_dir.iterdir()) == []
