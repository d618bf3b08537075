"""``mailio-trio queue`` on a real spool, through the CLI's main()."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailio_trio.cli import main
from mailio_trio.relay.spool import RecipientStatus, Spool

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    source = tmp_path / "m.eml"
    source.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = spool.prepare_sync(source, "a@example.com", ["b@remote.test"], now=1000.0)
    spool.commit_sync(entry.id)
    return spool


def test_list_show_flush_bounce_delete(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    [entry] = spool.entries_sync()
    entry.next_attempt = 1e12
    spool.save_sync(entry)
    where = ["queue", "--spool-dir", str(spool.root)]
    assert main([*where, "list"]) == 0
    line = capsys.readouterr().out
    assert entry.id in line
    assert "<a@example.com>" in line
    assert "b@remote.test" in line
    assert "attempts=0" in line
    assert main([*where, "show", entry.id]) == 0
    assert "b@remote.test: pending" in capsys.readouterr().out
    assert main([*where, "flush"]) == 0
    loaded = spool.load_sync(entry.id)
    assert loaded is not None
    assert loaded.next_attempt < 1e12
    assert main([*where, "bounce", entry.id]) == 0
    loaded = spool.load_sync(entry.id)
    assert loaded is not None
    assert [r.status for r in loaded.recipients] == [RecipientStatus.FAILED]
    assert main([*where, "delete", entry.id]) == 0
    assert spool.entries_sync() == []
    assert list(spool.queue_dir.iterdir()) == []


def test_unknown_id_and_missing_spool(
    spool: Spool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queue", "--spool-dir", str(spool.root), "delete", "nope"]) == 1
    assert "no message 'nope'" in capsys.readouterr().err
    assert main(["queue", "--spool-dir", str(tmp_path / "none"), "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--spool-dir" in err
