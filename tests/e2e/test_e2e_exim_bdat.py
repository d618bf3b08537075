"""Interop: Exim 4 sends to us with CHUNKING; the messages arrive byte-exact.

Exim runs as a one-shot client: a generated configuration routes every
address to our port (``manualroute`` to 127.0.0.1, ``self = send``), its smtp
transport tries CHUNKING everywhere, and ``exim -C <config> -odf`` delivers
in the foreground and exits. Exim adds no header of its own here (an empty
``received_header_text``, and the message brings From, Date and Message-ID),
so what we store is exactly the input with CRLF line endings. Exim's log
shows ``K`` on a delivery that used CHUNKING; our side checks it saw BDAT.

Run as root, Exim drops to ``exim_user`` (``nobody``), so its spool lives in
a world-writable directory of its own under the system temp dir. Where Exim
is not installed these tests skip, unless ``MAILIO_REQUIRE_EXIM=1`` (set by
``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from hostile_clients import MB, WAIT, start

from mailio_trio.chain import Handler, Request, Response

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailio_trio.testing import RunningServer


def _exim() -> str:
    binary = (
        shutil.which("exim4")
        or shutil.which("exim")
        or next((p for p in ("/usr/sbin/exim4", "/usr/sbin/exim") if os.path.exists(p)), None)
    )
    if binary is None:
        if os.environ.get("MAILIO_REQUIRE_EXIM") == "1":
            pytest.fail("Exim is required (MAILIO_REQUIRE_EXIM=1) but not installed")
        pytest.skip("Exim not installed (Debian: apt-get install exim4-daemon-light)")
    return binary


CONFIG = """\
primary_hostname = client.test
spool_directory = {home}/spool
log_file_path = {home}/%slog
exim_user = nobody
exim_group = {group}
keep_environment =
received_header_text =
local_from_check = false
message_size_limit = 0

begin routers
to_mailio:
  driver = manualroute
  domains = *
  route_list = * 127.0.0.1
  transport = mailio_smtp
  self = send

begin transports
mailio_smtp:
  driver = smtp
  port = {port}
  hosts_try_chunking = *
  hosts_avoid_tls = *
  hosts_avoid_pipelining =
  allow_localhost

begin retry
* * F,1m,1m
"""


@pytest.fixture
def exim_home() -> Iterator[Path]:
    """Exim's spool and logs: world-writable (root's Exim works as nobody), removed after."""
    home = Path(tempfile.mkdtemp(prefix="mailio-exim-"))
    (home / "spool").mkdir()
    for path in (home, home / "spool"):
        path.chmod(0o777)  # a private temp dir for one test's Exim
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _group() -> str:
    import grp

    for name in ("nogroup", "nobody"):
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    return grp.getgrgid(os.getgid()).gr_name


async def exim_send(home: Path, port: int, message: bytes) -> str:
    """Deliver ``message`` to b@example.com through Exim; return Exim's log lines."""
    binary = _exim()
    config = home / "exim.conf"
    config.write_text(CONFIG.format(home=home, port=port, group=_group()))
    config.chmod(0o644)
    result = await trio.run_process(
        [binary, "-C", str(config), "-odf", "-oi", "-f", "a@example.org", "b@example.com"],
        stdin=message,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    # Root's Exim receives as root and delivers as nobody: a log line that the
    # other cannot append to mainlog goes to stderr instead, so read both.
    log = (home / "mainlog").read_text() if (home / "mainlog").exists() else ""
    log += result.stderr.decode(errors="replace")
    assert result.returncode == 0, log
    return log


def message_of(size: int) -> bytes:
    head = (
        b"From: a@example.org\nTo: b@example.com\nSubject: exim chunks\n"
        b"Date: Fri, 04 Dec 2026 12:00:00 +0000\nMessage-ID: <exim.1@example.org>\n\n"
        b".\n..two dots\n"
    )
    line = bytes(range(33, 127)) + b"\n"
    return head + line * max(1, (size - len(head)) // len(line))


def stored_body(raw: bytes) -> bytes:
    end = raw.index(b";\r\n\t") + 3
    return raw[raw.index(b"\r\n", end) + 2 :]


@pytest.mark.parametrize("size", [1024, 5 * MB])
async def test_exim_sends_with_bdat_and_message_arrives_byte_exact(
    nursery: trio.Nursery, tmp_path: Path, exim_home: Path, size: int
) -> None:
    _exim()
    running: RunningServer = await start(nursery, tmp_path / "spool")
    seen: list[str] = []

    async def record(req: Request, res: Response) -> None:
        seen.append(req.argument)
        res.accept()

    running.server.chain.add(Handler(command="bdat", name="seen", func=record))
    message = message_of(size)
    with trio.fail_after(WAIT * 4):
        log = await exim_send(exim_home, running.port, message)
        [captured] = await running.outbox.wait_for(1)
    delivered = [line for line in log.splitlines() if "=> b@example.com " in line]
    assert len(delivered) == 1, log
    assert " K " in delivered[0], f"Exim did not use CHUNKING: {delivered[0]}"
    assert seen, "the server saw no BDAT"
    assert seen[-1].upper().endswith("LAST")
    assert stored_body(captured.raw) == message.replace(b"\n", b"\r\n")
    assert list((tmp_path / "spool").iterdir()) == []
