"""``mailio-trio serve --capture`` as a developer runs it: a real process, a real client."""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

WHERE_MAIL_GOES = pytest.StashKey[str]()
MESSAGE = "From: dev@app.example\r\nSubject: Password reset\r\n\r\nClick the link.\r\n"


@pytest.fixture
def serve_capture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    flags: list[str] = request.param
    process = subprocess.Popen(
        cwd=tmp_path,
        args=[sys.executable, "-m", "mailio_trio", "serve", "--listen", "127.0.0.1:0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        # The CLI prints this line once the port is bound: no sleep needed.
        line = process.stdout.readline()
        match = re.fullmatch(r"mailio-trio: listening on 127\.0\.0\.1:(\d+); (.*)\n", line)
        assert match, line
        request.node.stash[WHERE_MAIL_GOES] = match.group(2)
        yield process, int(match.group(1))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("dev@app.example", ["a@anywhere.example", "b@else.example"], MESSAGE)


@pytest.mark.parametrize("serve_capture", [["--capture"]], indirect=True)
def test_capture_accepts_any_domain_and_prints_one_line(
    serve_capture: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = serve_capture
    assert process.stdout is not None
    _send(port)
    line = process.stdout.readline()
    assert re.fullmatch(
        r"mailio-trio: captured \S+ from <dev@app\.example> to <a@anywhere\.example>,"
        r" <b@else\.example> subject 'Password reset' \(\d+ octets\)\n",
        line,
    ), line


@pytest.mark.parametrize("serve_capture", [["--print"]], indirect=True)
def test_print_shows_the_whole_message(serve_capture: tuple[subprocess.Popen[str], int]) -> None:
    process, port = serve_capture
    assert process.stdout is not None
    _send(port)
    lines = [process.stdout.readline() for _ in range(3)]
    assert lines[0].startswith("mailio-trio: captured ")
    assert lines[1] == "-" * 72 + "\n"
    assert lines[2].startswith("Received: from ")
    rest = []
    while (line := process.stdout.readline()) not in ("-" * 72 + "\n", ""):  # "": it died
        rest.append(line)
    assert line, "the server exited before the closing separator"
    assert "Subject: Password reset\n" in rest
    assert rest[-1] == "Click the link.\n"


@pytest.mark.parametrize("serve_capture", [["--capture"]], indirect=True)
def test_capture_alone_says_where_the_inbox_is(
    serve_capture: tuple[subprocess.Popen[str], int], request: pytest.FixtureRequest
) -> None:
    assert request.node.stash[WHERE_MAIL_GOES] == (
        "captured mail is kept in capture.sqlite (newest 1000, 268435456 octets at most)"
    )


@pytest.mark.parametrize(
    "serve_capture", [["--capture", "--maildir", "captured-mail"]], indirect=True
)
def test_capture_with_maildir_stores_every_domain(
    serve_capture: tuple[subprocess.Popen[str], int], request: pytest.FixtureRequest
) -> None:
    process, port = serve_capture
    assert process.stdout is not None
    assert request.node.stash[WHERE_MAIL_GOES].startswith("mail for any domain goes to ")
    _send(port)
    assert process.stdout.readline().startswith("mailio-trio: captured ")
    mailboxes = request.node.stash[WHERE_MAIL_GOES].split(" goes to ")[1].split("; ")[0]
    root = Path(mailboxes).parents[1]
    for mailbox in ("anywhere.example/a", "else.example/b"):
        [stored] = list((root / mailbox / "new").iterdir())
        assert b"Click the link." in stored.read_bytes()
