"""Operator mistakes in a config file: one line naming the file, the key and the fix; exit 2."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailio_trio", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


BAD_PLUGINS = {
    "mail-io dnsbl name": (
        '[plugins."rcpt/dnsbl"]\nblacklist = "zen.example"\n',
        "plugins.rcpt/dnsbl.blacklist: mail-io's name (did you mean lists?)",
    ),
    "mail-io spamd name": (
        '[plugins."queue/spamd"]\nbaseScore = 5\n',
        "plugins.queue/spamd.baseScore: mail-io's name (did you mean reject_above?)",
    ),
    "typo in a plugin key": (
        '[plugins."rcpt/dnsbll"]\nlists = ["zen.example"]\n',
        'plugins.rcpt/dnsbll: unknown plugin (did you mean "rcpt/dnsbl"?',
    ),
    "bad plugin value": ('[plugins."rcpt/dnsbl"]\nlists = 5\n', "plugins.rcpt/dnsbl.lists = 5"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLUGINS))
@pytest.mark.parametrize("command", ["check", "serve"])
def test_bad_plugin_table_is_one_line_naming_the_file(
    tmp_path: Path, case: str, command: str
) -> None:
    text, expected = BAD_PLUGINS[case]
    (tmp_path / "bad.toml").write_text(text)
    args = (
        ("config", "check", "bad.toml")
        if command == "check"
        else ("serve", "--config", "bad.toml", "--listen", "127.0.0.1:0")
    )
    result = run(tmp_path, *args)
    assert result.returncode == 2, result
    assert result.stderr.startswith("mailio-trio: bad.toml: "), result.stderr
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
