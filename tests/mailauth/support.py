"""Helpers of the mailauth tests: a sample message and the shapes the fixtures return."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
import trio

if TYPE_CHECKING:
    from mailio_trio.dns import DnsResolver
    from mailio_trio.mailauth.dkim import DkimSigningKey
    from mailio_trio.testing.dns import DnsServer, Zone

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Lunch\r\n"
    b"Date: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <lunch-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Shall we meet at noon by the fountain?\r\n"
    b"\r\n"
    b"-- \r\nAlice\r\n"
)


@attrs.frozen
class Keys:
    rsa: DkimSigningKey
    ed25519: DkimSigningKey
    rsa_record: str
    ed25519_record: str


@attrs.frozen
class Dns:
    server: DnsServer
    zone: Zone
    resolver: DnsResolver
    port: int


# -- Mail::DKIM, the independent implementation -----------------------------------

HERE = Path(__file__).parent


def require_perl_dkim() -> None:
    """Skip unless Debian's Mail::DKIM and Net::DNS are installed; fail instead in CI.

    ``.ci/run`` installs them and sets ``MAILIO_REQUIRE_PERL_DKIM=1``.
    """
    probe = ["perl", "-MMail::DKIM::Verifier", "-MMail::DKIM::ARC::Verifier", "-MNet::DNS", "-e1"]
    found = (
        shutil.which("perl") is not None
        and subprocess.run(probe, capture_output=True).returncode == 0
    )
    if found:
        return
    if os.environ.get("MAILIO_REQUIRE_PERL_DKIM") == "1":
        pytest.fail("Mail::DKIM is required (MAILIO_REQUIRE_PERL_DKIM=1) but not installed")
    pytest.skip(
        "Mail::DKIM not installed (Debian: apt-get install libmail-dkim-perl libnet-dns-perl)"
    )


def perl_has_ed25519() -> bool:
    """Whether this Mail::DKIM knows RFC 8463 (Debian bookworm's 1.20230212 does not)."""
    probe = ["perl", "-MMail::DKIM::Algorithm::ed25519_sha256", "-e1"]
    return (
        shutil.which("perl") is not None
        and subprocess.run(probe, capture_output=True).returncode == 0
    )


async def run_perl(script: str, *args: str | int | Path, stdin: bytes) -> str:
    """Run one of the Perl scripts beside this file; its stdout, or a failure with its stderr."""
    with trio.fail_after(60):
        done = await trio.run_process(
            ["perl", str(HERE / script), *map(str, args)],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"{script} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode("utf-8", "replace")
