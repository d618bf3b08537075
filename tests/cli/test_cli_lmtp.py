"""``mailio-trio serve --lmtp`` and ``--lmtp-socket``: the real program, driven by smtplib.LMTP."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

from serve_process import serving

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MESSAGE = b"Subject: via lmtp\r\n\r\nHello.\r\n"
UNIX_LISTENING = re.compile(r"^mailio-trio: listening on (?:127\.0\.0\.1:(\d+), )?unix:(\S+); ")


def new_files(box: Path) -> list[Path]:
    return sorted((box / "new").iterdir()) if (box / "new").is_dir() else []


def deliver(client: smtplib.LMTP, recipients: list[str]) -> list[tuple[int, bytes]]:
    assert client.ehlo("client.test")[0] == 250  # smtplib.LMTP's ehlo_msg is "lhlo"
    assert client.mail("x@elsewhere.test")[0] == 250
    for rcpt in recipients:
        assert client.rcpt(rcpt)[0] == 250
    replies = [client.data(MESSAGE)]
    return replies + [client.getreply() for _ in recipients[1:]]


def test_serve_lmtp_over_tcp_answers_per_recipient(tmp_path: Path) -> None:
    with serving(tmp_path, "--lmtp") as (proc, port):
        with smtplib.LMTP("127.0.0.1", port, timeout=30) as client:
            assert client.helo("client.test")[0] == 500  # RFC 2033 §4.1
            replies = deliver(client, ["bob@localhost", "carol@localhost"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert [code for code, _ in replies] == [250, 250]
    for user in ("bob", "carol"):
        [copy] = new_files(tmp_path / "mail" / "localhost" / user)
        assert b"with LMTP id" in copy.read_bytes()


def test_lmtp_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "lmtp.toml").write_text("[server]\nlmtp = true\n")
    with (
        serving(tmp_path, "--config", "lmtp.toml") as (_, port),
        smtplib.LMTP("127.0.0.1", port, timeout=30) as client,
    ):
        assert client.docmd("EHLO", "client.test")[0] == 500
        assert client.ehlo("client.test")[0] == 250  # LHLO


@contextlib.contextmanager
def serving_unix(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str, int | None]]:
    """``serve ARGS`` with ``--lmtp-socket``; yields the socket's path and any TCP port."""
    with subprocess.Popen(
        [sys.executable, "-m", "mailio_trio", "serve", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            match = UNIX_LISTENING.match(line)
            assert match, (line, proc.poll())
            port = match.group(1)
            yield proc, match.group(2), int(port) if port else None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def test_lmtp_socket_alone_serves_only_the_socket_and_removes_it(tmp_path: Path) -> None:
    sock = tmp_path / "lmtp.sock"
    args = ("--lmtp-socket", str(sock), "--lmtp-socket-mode", "600")
    with serving_unix(tmp_path, *args) as (proc, path, port):
        assert (path, port) == (str(sock), None)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        with smtplib.LMTP(path, timeout=30) as client:
            replies = deliver(client, ["bob@localhost"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert [code for code, _ in replies] == [250]
    assert len(new_files(tmp_path / "mail" / "localhost" / "bob")) == 1
    assert not sock.exists()


def test_lmtp_socket_beside_tcp_with_listen(tmp_path: Path) -> None:
    sock = tmp_path / "lmtp.sock"
    args = ("--lmtp-socket", str(sock), "--listen", "127.0.0.1:0")
    with serving_unix(tmp_path, *args) as (_, _, port):
        assert port is not None
        for host, tcp_port in (("127.0.0.1", port), (str(sock), 0)):
            with smtplib.LMTP(host, tcp_port, timeout=30) as client:
                assert [code for code, _ in deliver(client, ["bob@localhost"])] == [250]
    assert len(new_files(tmp_path / "mail" / "localhost" / "bob")) == 2


def test_lmtp_socket_with_workers_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailio_trio", "serve", "--lmtp-socket", "x.sock", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "--lmtp-socket needs --workers 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_socket_mode_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailio_trio",
            "serve",
            "--lmtp-socket",
            "x",
            "--lmtp-socket-mode",
            "9",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "octal permission bits" in result.stderr
