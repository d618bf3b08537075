"""``mailio-trio queue`` finds ``serve``'s spool, takes options anywhere, says when it is empty.

#13 item 16: ``serve --relay`` spools in ``./spool/relay`` (or the config
file's); ``queue`` looks in the same place without being told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.cli import main
from mailio_trio.relay.spool import Spool

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _one_entry(spool_dir: Path, tmp_path: Path) -> str:
    source = tmp_path / "m.eml"
    source.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    spool = Spool(spool_dir)
    spool.open()
    entry = spool.prepare_sync(source, "a@example.com", ["b@remote.test"], now=1000.0)
    spool.commit_sync(entry.id)
    return entry.id


def test_default_spool_is_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Spool(tmp_path / "spool" / "relay").open()
    assert main(["queue", "list"]) == 0
    assert capsys.readouterr().out == "queue is empty\n"
    entry_id = _one_entry(tmp_path / "spool" / "relay", tmp_path)
    assert main(["queue", "list"]) == 0
    assert entry_id in capsys.readouterr().out


def test_options_after_the_action(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spool_dir = tmp_path / "elsewhere"
    entry_id = _one_entry(spool_dir, tmp_path)
    assert main(["queue", "list", "--spool-dir", str(spool_dir)]) == 0
    assert entry_id in capsys.readouterr().out
    assert main(["queue", "show", entry_id, "--spool-dir", str(spool_dir)]) == 0
    assert "b@remote.test: pending" in capsys.readouterr().out
    assert main(["queue", "--spool-dir", str(spool_dir), "show", entry_id]) == 0  # as before
    assert "b@remote.test: pending" in capsys.readouterr().out


def test_config_file_spool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry_id = _one_entry(tmp_path / "var" / "relay", tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nspool_dir = "{tmp_path / "var"}"\n')
    assert main(["queue", "list", "--config", str(config)]) == 0
    assert entry_id in capsys.readouterr().out
    other = tmp_path / "other"
    Spool(other).open()
    config.write_text(f'[relay]\nspool_dir = "{other}"\n')
    assert main(["queue", "--config", str(config), "list"]) == 0
    assert capsys.readouterr().out == "queue is empty\n"


def test_flush_and_bounce_ask_the_worker_to_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_dir = tmp_path / "spool"
    entry_id = _one_entry(spool_dir, tmp_path)
    spool = Spool(spool_dir)
    assert main(["queue", "flush", "--spool-dir", str(spool_dir)]) == 0
    assert spool.take_scan_request_sync()
    assert not spool.take_scan_request_sync()  # taken once
    assert main(["queue", "bounce", entry_id, "--spool-dir", str(spool_dir)]) == 0
    assert spool.flush_path.exists()
    capsys.readouterr()


def test_both_places_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    assert main(["queue", "--config", str(config), "list", "--spool-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not both" in err
