"""The README's quick start, run as written: serve, send, find the files, Ctrl-C.

The only change is the port (a free one instead of 2525). What ``find mail
-type f`` prints is compared with the README's listing and with
docs/quickstart.md's, by shape: the unique file names differ on every run.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"
LISTENING = re.compile(
    r"^mailio-trio: listening on 127\.0\.0\.1:(\d+); mail for localhost goes to "
)


def console_blocks(page: Path) -> list[str]:
    return re.findall(r"^```console\n(.*?)^```", page.read_text(), re.S | re.M)


def command(page: Path, program: str) -> list[str]:
    """The first command line of ``page`` running ``mailio-trio PROGRAM``."""
    for block in console_blocks(page):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part.removeprefix("$ "), comments=True)
                if words[:2] == ["mailio-trio", program]:
                    return words
    raise AssertionError(f"no mailio-trio {program} in {page.name}")


def listing(page: Path) -> list[str]:
    """The lines the page shows under ``$ find mail -type f``."""
    for block in console_blocks(page):
        if block.startswith("$ find mail -type f\n"):
            return block.splitlines()[1:]
    raise AssertionError(f"no find listing in {page.name}")


def shape(path: str) -> str:
    """``mail/localhost/bob/new/<unique name>``, keeping the flags and marker files."""
    folder, _, name = path.rpartition("/")
    if name == "maildirfolder":
        return path
    flags = name[name.index(":") :] if ":" in name else ""
    return f"{folder}/<unique name>{flags}"


def startup_lines(text: str, port: int) -> list[str]:
    """The start-up lines without what differs between runs: time, port, directory."""
    lines = []
    for line in text.splitlines():
        if "listening on" in line:
            line = re.sub(r"^[\d-]+ [\d:,]+ ", "<time> ", line).replace(f":{port}", ":<port>")
            lines.append(re.sub(r"goes to /\S*/mail/", "goes to <dir>/mail/", line))
    return lines


def mailio(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailio_trio", *args]


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    assert command(README, "serve") == ["mailio-trio", "serve"]  # on the embedded defaults
    send = command(README, "send")
    assert "--server" not in send
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        mailio("serve", "--listen", "127.0.0.1:0"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        try:
            first = proc.stdout.readline()
            match = LISTENING.match(first)
            assert match, (first, proc.poll())
            sent = subprocess.run(
                mailio(*send[1:], "--server", f"127.0.0.1:{match.group(1)}"),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert sent.returncode == 0, sent.stderr
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, (out, err)
    texts = re.findall(r"^```text\n(.*?)^```", QUICKSTART.read_text(), re.S | re.M)
    [shown] = [text for text in texts if "listening on" in text]
    port = int(match.group(1))
    assert startup_lines(shown, 2525) == startup_lines(err, port) + startup_lines(first, port)
    assert out.splitlines() == [
        "mailio-trio: SIGINT, shutting down (send it again to stop at once)",
        "mailio-trio: stopped",
    ]
    assert "Traceback" not in err, err

    found = subprocess.run(
        ["find", "mail", "-type", "f"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    shapes = sorted(shape(path) for path in found)
    assert sorted(listing(README)) == shapes
    assert sorted(shape(path) for path in listing(QUICKSTART)) == shapes
