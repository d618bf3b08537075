"""``serve`` under systemd: sd_notify READY/STOPPING/WATCHDOG, and socket activation."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def _datagrams(sock: socket.socket, until: str) -> list[str]:
    seen: list[str] = []
    while not any(until in d for d in seen):
        seen.append(sock.recv(4096).decode())  # the socket's timeout bounds each wait
    return seen


def test_serve_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
        with subprocess.Popen(
            [sys.executable, "-m", "mailio_trio", "serve", "--listen", "127.0.0.1:0"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                ready = _datagrams(notify, "READY=1")
                assert any("STATUS=listening on 127.0.0.1:" in d for d in ready)
                assert "WATCHDOG=1" in "".join(_datagrams(notify, "WATCHDOG=1"))
                proc.send_signal(signal.SIGTERM)
                assert "STOPPING=1" in "".join(_datagrams(notify, "STOPPING=1"))
                assert proc.wait(timeout=20) == 0
            finally:
                proc.kill()
                proc.communicate()


def test_serve_uses_the_socket_systemd_passed(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        port = listening.getsockname()[1]
        fd = listening.fileno()
        # What systemd does: the socket on fd 3, LISTEN_PID naming the process that runs.
        wrapper = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', "
            "LISTEN_FDNAMES='smtp'); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
        )
        command = ["-m", "mailio_trio", "serve", "--listen", "127.0.0.1:1"]
        with subprocess.Popen(
            [sys.executable, "-c", wrapper, str(fd), *command],
            cwd=tmp_path,
            pass_fds=(fd,),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                assert re.match(rf"mailio-trio: listening on 127\.0\.0\.1:{port};", line), line
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    assert smtp.noop()[0] == 250
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
            finally:
                proc.kill()
                proc.communicate()
