"""A port that cannot be bound is one line and exit code 1, plain or SMTPS alike."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("flag", ["--listen", "--smtps-listen"])
def test_a_busy_port_is_one_line_and_exit_1(tmp_path: Path, flag: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plain = ["--listen", "127.0.0.1:0"] if flag == "--smtps-listen" else []
        args = ["serve", "--tls-self-signed", *plain, flag, f"127.0.0.1:{port}"]
        result = subprocess.run(
            [sys.executable, "-m", "mailio_trio", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert "Traceback" not in result.stderr
    # --tls-self-signed logs its own development-only warning first.
    lines = [line for line in result.stderr.splitlines() if "self-signed" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mailio-trio: cannot listen on 127.0.0.1:{port}"), lines
    assert "in use" in lines[0]
    assert result.returncode == 1
