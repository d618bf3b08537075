"""Megabyte attacks against the real ``mailio-trio serve`` process: its peak RSS stays put.

The in-process tests (tests/e2e/test_e2e_hostile.py) trace Python allocations; this
one reads the kernel's own account of the server process (``VmHWM``, the peak
resident set, in /proc), which also sees buffers outside Python's allocator.
Not an e2e module: the subprocess ignores the in-process I/O path switch, so
running it twice would test the same thing twice.
"""

from __future__ import annotations

import contextlib
import re
import signal
import smtplib
import socket
from pathlib import Path

import pytest
from serve_process import serving

MB = 1024 * 1024
# Four attacks of 4-10 MB each; holding any one of them would add at least 4 MB.
RSS_GROWTH_BOUND = 3 * MB

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads the server's peak RSS from /proc"
)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in octets (``VmHWM``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def polite_send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        message = f"Subject: {subject}\r\n\r\nHello.\r\n".encode()
        assert client.sendmail("alice@localhost", ["bob@localhost"], message) == {}


class Attacker:
    """A raw socket that sends and reads reply lines (blocking, with a timeout)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.replies = self.sock.makefile("rb")
        assert self.reply().startswith(b"220 ")

    def reply(self) -> bytes:
        while (line := self.replies.readline())[3:4] == b"-":
            pass
        return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


def test_megabyte_attacks_do_not_grow_the_server_process(tmp_path: Path) -> None:
    command_half = b"MAIL FROM:<" + b"a" * (5 * MB)
    data_half = b"x" * (5 * MB)
    nul_flood = bytes(10 * MB)
    garbage = b"XYZZY plugh\r\n" * (4 * MB // 13)
    with serving(tmp_path) as (proc, port):
        polite_send(port, "warm-up")  # imports and first-use allocations happen here
        before = peak_rss(proc.pid)

        attacker = Attacker(port)
        try:
            attacker.sock.sendall(command_half)
            polite_send(port, "during a 10 MB command line")
            assert attacker.command(command_half + b">").startswith(b"500 5.5.6 ")

            assert attacker.command(b"EHLO bad.test").startswith(b"250")
            assert attacker.command(b"MAIL FROM:<a@localhost>").startswith(b"250")
            assert attacker.command(b"RCPT TO:<bob@localhost>").startswith(b"250")
            assert attacker.command(b"DATA").startswith(b"354")
            attacker.sock.sendall(data_half)
            polite_send(port, "during a 10 MB DATA line")
            assert attacker.command(data_half + b"\r\n.").startswith(b"550 5.6.0 ")

            attacker.sock.sendall(nul_flood)
            assert attacker.command(b"").startswith(b"500 5.5.6 ")
        finally:
            attacker.close()

        attacker = Attacker(port)
        try:
            with contextlib.suppress(ConnectionError):
                attacker.sock.sendall(garbage)  # cut off after the 5th unknown verb
            replies = [attacker.reply() for _ in range(6)]
            assert replies[-1].startswith(b"421 4.7.0 "), replies
        finally:
            attacker.close()
        polite_send(port, "after the attacks")

        grown = peak_rss(proc.pid) - before
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert grown < RSS_GROWTH_BOUND, grown
    assert "Traceback" not in err
    assert "ERROR" not in err
    mailbox = tmp_path / "mail" / "localhost" / "bob" / "new"
    assert len(list(mailbox.iterdir())) == 4
