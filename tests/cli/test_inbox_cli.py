"""``mailio-trio serve --capture --web`` as a developer runs it: a real process, restarted."""

from __future__ import annotations

import contextlib
import re
import signal
import smtplib
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LISTENING = re.compile(
    r"mailio-trio: listening on 127\.0\.0\.1:(\d+), web inbox (http://127\.0\.0\.1:\d+)/; "
    r"captured mail is kept in capture\.sqlite \(newest 1000, 268435456 octets at most\)\n"
)


def _run(cwd: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailio_trio", "serve", "--listen", "127.0.0.1:0", *flags],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def _inbox(cwd: Path) -> Iterator[tuple[int, str]]:
    process = _run(cwd, "--capture", "--web", "127.0.0.1:0")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once both ports are bound: no sleep
        match = LISTENING.fullmatch(line)
        assert match, (line, process.poll())
        yield int(match.group(1)), match.group(2)
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.endswith("mailio-trio: stopped\n")


def test_the_inbox_survives_a_restart(tmp_path: Path) -> None:
    with _inbox(tmp_path) as (port, url):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("dev@app.example", ["a@x.example"], b"Subject: first\r\n\r\nHi.\r\n")
        listing = httpx.get(f"{url}/api/v1/wait", params={"count": 1, "timeout": 20}).json()
        assert [m["Subject"] for m in listing["messages"]] == ["first"]
    assert (tmp_path / "capture.sqlite").exists()
    with _inbox(tmp_path) as (_, url):
        listing = httpx.get(f"{url}/api/v1/messages", timeout=20).json()
        assert [m["Subject"] for m in listing["messages"]] == ["first"]


def test_a_web_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        process = _run(tmp_path, "--capture", "--web", f"127.0.0.1:{busy}")
        out, err = process.communicate(timeout=30)
    assert process.returncode == 1
    last = err.splitlines()[-1]
    assert re.fullmatch(rf"mailio-trio: cannot listen on 127\.0\.0\.1:{busy} \(web\): .+", last)
    assert "Traceback" not in out + err


def test_capture_with_workers_is_refused(tmp_path: Path) -> None:
    process = _run(tmp_path, "--capture", "--workers", "2")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err == (
        "mailio-trio: --workers 2: --capture keeps one inbox in one process; use --workers 1\n"
    )
