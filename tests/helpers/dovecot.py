"""A real Dovecot LMTP server for tests (Debian's ``dovecot-core`` + ``dovecot-lmtpd``).

Started in the foreground (``dovecot -F -c <generated config>``) with every
directory in a private temporary one: LMTP only, on 127.0.0.1 and a Unix
socket, no TLS, mail in ``maildir:<dir>/mail/%d/%n``. The users it knows are
a passwd-file passdb; the userdb is static (one uid for everyone), so a user
not in the file is unknown: ``550 5.1.1`` at RCPT.

Dovecot refuses uid 0 for mail, so under root the mail belongs to
``nobody`` (and the mail directory is given to it); otherwise to us. Where
Dovecot is not installed the tests skip, unless ``MAILIO_REQUIRE_DOVECOT=1``
(set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

NOBODY = 65534


def dovecot_binary() -> str:
    binary = shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/bin/dovecot") if os.path.exists(p)), None
    )
    lmtp = any(os.path.exists(p) for p in ("/usr/lib/dovecot/lmtp", "/usr/libexec/dovecot/lmtp"))
    if binary is None or not lmtp:
        if os.environ.get("MAILIO_REQUIRE_DOVECOT") == "1":
            pytest.fail("dovecot's LMTP is required (MAILIO_REQUIRE_DOVECOT=1) but not installed")
        pytest.skip("dovecot is not installed (apt-get install dovecot-core dovecot-lmtpd)")
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define(eq=False)
class Dovecot:
    """One Dovecot instance: ``port`` and ``socket_path`` speak LMTP; restartable."""

    binary: str
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / "lmtp"

    @property
    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def mailbox(self, domain: str, user: str) -> list[bytes]:
        """The messages in ``user@domain``'s INBOX (``new/``), oldest name first."""
        new = self.root / "mail" / domain / user / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    async def start(self) -> None:
        """Start it and wait until the TCP listener answers."""
        assert self.process is None
        self.process = subprocess.Popen(  # noqa: ASYNC220  # returns at once; waited on below
            [self.binary, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with trio.fail_after(20):
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read() if self.process.stderr else b""
                    raise RuntimeError(f"dovecot exited: {err.decode(errors='replace')}")
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.05)
                    continue
                await stream.aclose()
                if self.socket_path.exists():
                    return
                await trio.sleep(0.05)

    async def stop(self) -> None:
        """Stop it (SIGTERM) and wait until it is gone, listeners closed."""
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            await trio.to_thread.run_sync(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
            await trio.to_thread.run_sync(process.wait)
        if process.stderr is not None:
            process.stderr.close()


def _config(root: Path, port: int, uid: int, gid: int) -> str:
    return f"""\
protocols = lmtp
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
listen = 127.0.0.1
mail_location = maildir:{root}/mail/%d/%n
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%d/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""


@asynccontextmanager
async def run_dovecot(users: Iterable[str]) -> AsyncIterator[Dovecot]:
    """Start Dovecot knowing ``users`` (``amy@example.com``); stopped and removed on exit."""
    binary = dovecot_binary()
    # Not pytest's tmp_path: its parents are 0700 root's, and the mail's uid must reach it.
    root = Path(tempfile.mkdtemp(prefix="mailio-dovecot-"))
    try:
        os.chmod(root, 0o755)
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir()
        uid, gid = os.getuid(), os.getgid()
        if uid == 0:
            uid = gid = NOBODY
            os.chown(root / "mail", uid, gid)
        (root / "users").write_text("".join(f"{u}:{{PLAIN}}unused::::::\n" for u in users))
        port = _free_port()
        (root / "dovecot.conf").write_text(_config(root, port, uid, gid))
        dovecot = Dovecot(binary, root, port)
        await dovecot.start()
        try:
            yield dovecot
        finally:
            with trio.CancelScope(shield=True):
                await dovecot.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
