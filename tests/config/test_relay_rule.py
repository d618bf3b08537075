"""One rule for ``[relay]`` in a file, in code and from the flags: a smart host
means relaying, and the relay spool defaults to ``<spool_dir>/relay``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mailio_trio.config import Config, ConfigError


def test_smart_host_implies_relaying_as_the_flag_does(tmp_path: Path) -> None:
    config = Config(spool_dir=tmp_path, relay={"smart_host": "smtp.example.net:587"})
    assert config.relay.enabled
    assert config.relay.spool_dir == tmp_path / "relay"


def test_relay_spool_defaults_beside_the_data_spool(tmp_path: Path) -> None:
    config = Config.from_mapping(
        {"server": {"spool_dir": str(tmp_path)}, "relay": {"enabled": True}}
    )
    assert config.relay.spool_dir == tmp_path / "relay"


def test_an_explicit_relay_spool_is_kept(tmp_path: Path) -> None:
    config = Config(spool_dir=tmp_path, relay={"enabled": True, "spool_dir": "/var/q"})
    assert config.relay.spool_dir == Path("/var/q")


def test_relaying_with_no_spool_at_all_is_one_line_naming_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        Config(relay={"enabled": True})
    message = str(caught.value)
    assert message.startswith("relay.spool_dir: "), message
    assert "server.spool_dir" in message
    assert "\n" not in message


def show(cwd: Path, text: str) -> dict[str, object]:
    (cwd / "site.toml").write_text(text)
    for args in (("check", "site.toml"), ("show", "--config", "site.toml")):
        result = subprocess.run(
            [sys.executable, "-m", "mailio_trio", "config", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    shown: dict[str, object] = tomllib.loads(result.stdout)["relay"]
    return shown


@pytest.mark.parametrize(
    "text",
    ['[relay]\nsmart_host = "smtp.example.net:587"\n', "[relay]\nenabled = true\n"],
    ids=["smart_host alone", "enabled alone"],
)
def test_the_file_behaves_as_the_flags_do(tmp_path: Path, text: str) -> None:
    relay = show(tmp_path, text)
    assert relay["enabled"] is True
    assert relay["spool_dir"] == "spool/relay"
