"""The README's embedding example, as written there, keeps the mail it accepts
and stops cleanly on Ctrl-C (a stale example is a bug)."""

from __future__ import annotations

import re
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent.parent / "README.md"


def embedding_example() -> str:
    section = README.read_text().split("## Embedding", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block under ## Embedding"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_readme_embedding_example_keeps_mail_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    code = embedding_example()
    assert ", 2525)" in code  # the port the README shows; a test run takes a free one
    port = free_port()
    (tmp_path / "example.py").write_text(code.replace(", 2525)", f", {port})"))
    with subprocess.Popen(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            assert "listening on" in line, (line, proc.poll())
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                refused = client.sendmail(
                    "alice@example.org", ["bob@example.com"], b"Subject: hi\r\n\r\nKept?\r\n"
                )
            assert refused == {}
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    assert "WARNING" not in err, err  # no "accepted mail is not kept" warning either
    assert proc.returncode == 0, (out, err)
    stored = list(tmp_path.glob("mail/example.com/bob/new/*"))
    assert len(stored) == 1, sorted(tmp_path.rglob("*"))
    assert b"Kept?" in stored[0].read_bytes()
