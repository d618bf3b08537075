"""The spool's files and the retry arithmetic (no network)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailio_trio import Config
from mailio_trio.config import ConfigError
from mailio_trio.relay import schedule
from mailio_trio.relay.bounce import delay_recipients
from mailio_trio.relay.spool import NotifyOn, RecipientStatus, Spool

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
    entry = spool.prepare_sync(source, "a@example.com", ["b@x.test", "c@y.test"], now=1000.0)
    spool.commit_sync(entry.id)
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
    entry = spool.prepare_sync(source, "", ["b@x.test"])
    spool.commit_sync(entry.id)
    assert spool.remove_sync(entry.id)
    assert not spool.remove_sync(entry.id)
    assert spool.load_sync("../../etc/passwd") is None
    assert list(spool.queue_dir.iterdir()) == []


def test_notify_and_delay_warned_round_trip_and_choose_delay_recipients(tmp_path: Path) -> None:
    """RFC 3461 §4.1: a recipient with NOTIFY gets a delay DSN only if it has DELAY;
    one without NOTIFY gets our default (relay.delay_warning_hours)."""
    source = tmp_path / "m.eml"
    source.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = spool.prepare_sync(source, "a@example.com", ["d@x.test", "f@x.test", "n@x.test"])
    spool.commit_sync(entry.id)
    entry.recipients[0].notify = frozenset({NotifyOn.DELAY, NotifyOn.FAILURE})
    entry.recipients[1].notify = frozenset({NotifyOn.FAILURE})
    entry.delay_warned = True
    spool.save_sync(entry)
    loaded = spool.load_sync(entry.id)
    assert loaded is not None
    assert loaded.delay_warned
    assert [r.notify for r in loaded.recipients] == [
        frozenset({NotifyOn.DELAY, NotifyOn.FAILURE}),
        frozenset({NotifyOn.FAILURE}),
        None,
    ]
    assert [r.address for r in delay_recipients(loaded)] == ["d@x.test", "n@x.test"]
    loaded.recipients[0].notify = frozenset({NotifyOn.NEVER})
    loaded.recipients[2].notify = frozenset({NotifyOn.SUCCESS})
    assert delay_recipients(loaded) == []


def test_delay_warning_time_is_counted_from_acceptance() -> None:
    assert schedule.delay_warning_at(1000.0, 4) == 1000.0 + 4 * 3600
    assert schedule.delay_warning_at(1000.0, 0) is None  # 0 turns warnings off


def test_bad_delay_warning_hours_is_one_line() -> None:
    with pytest.raises(ConfigError) as exc:
        Config.from_mapping({"relay": {"delay_warning_hours": -1}})
    assert str(exc.value) == "relay.delay_warning_hours = -1: must be a number >= 0 (0: off)"
