"""Postfix's ``smtp-source -L`` (a C LMTP client) against the server, on TCP and a Unix socket.

smtp-source comes from Debian's postfix package unpacked by
``bench/get_postfix.sh`` (no daemon installed). Where it is absent these
tests skip, unless ``MAILIO_REQUIRE_POSTFIX=1`` (set by ``.ci/run``), where
they fail instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.config import MaildirConfig

ROOT = Path(
    os.environ.get("MAILIO_BENCH_POSTFIX", Path(__file__).parents[2] / "bench" / ".postfix")
)
SMTP_SOURCE = ROOT / "usr" / "sbin" / "smtp-source"
MESSAGES, RECIPIENTS = 6, 3


@pytest.fixture
def smtp_source() -> Path:
    if not SMTP_SOURCE.is_file():
        if os.environ.get("MAILIO_REQUIRE_POSTFIX") == "1":
            pytest.fail(
                f"smtp-source is required (MAILIO_REQUIRE_POSTFIX=1) but {SMTP_SOURCE} is absent"
            )
        pytest.skip("Postfix's smtp-source not unpacked (sh bench/get_postfix.sh)")
    return SMTP_SOURCE


def copies(root: Path) -> int:
    return sum(1 for p in root.rglob("new/*") if p.is_file())


@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_smtp_source_lmtp_delivers_every_copy(
    nursery: trio.Nursery, tmp_path: Path, smtp_source: Path, transport: str
) -> None:
    server = Server(
        Config(
            hostname="store.test",
            domains=["example.com"],
            maildir=MaildirConfig(enabled=True, root=tmp_path / "mail"),
        ),
        lmtp=True,
    )
    if transport == "tcp":
        bound: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
        target = f"127.0.0.1:{bound[0][1]}"
    else:
        path = tmp_path / "lmtp.sock"
        await nursery.start(server.serve_unix, path)
        target = f"unix:{path}"
    env = {**os.environ, "LD_LIBRARY_PATH": str(ROOT / "usr" / "lib" / "postfix")}
    command = [
        str(smtp_source),
        "-L",  # LMTP: LHLO, one reply per recipient after the dot
        "-s", "2",
        "-m", str(MESSAGES),
        "-r", str(RECIPIENTS),
        "-f", "sender@example.org",
        "-t", "user@example.com",
        target,
    ]  # fmt: skip
    with trio.fail_after(60):
        result = await trio.run_process(
            command, env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    assert result.returncode == 0, result.stderr
    assert copies(tmp_path / "mail") == MESSAGES * RECIPIENTS
