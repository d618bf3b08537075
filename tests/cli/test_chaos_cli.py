"""``serve --capture`` with chaos: ``--fault``, ``--fault-probability``, ``--rate-limit``, [chaos].

A real process and a real ``smtplib`` client, as a developer runs it.
"""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

MESSAGE = "From: dev@app.example\r\nSubject: Chaos\r\n\r\nHello.\r\n"
CHAOS_FILE = """\
[chaos]
faults = ["mail:451:1"]
seed = 3
"""


FLAGS = [
    *("--capture", "--capture-db", ":memory:", "--listen", "127.0.0.1:0"),
    *("--config", "chaos.toml", "--fault", "rcpt:452:2", "--rate-limit", "3/3600"),
]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailio_trio", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_file_and_flag_faults_and_the_rate_limit_over_smtp(tmp_path: Path) -> None:
    (tmp_path / "chaos.toml").write_text(CHAOS_FILE)
    process = subprocess.Popen(
        cwd=tmp_path,
        args=[sys.executable, "-m", "mailio_trio", "serve", *FLAGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the port is bound: no sleep
        match = re.match(r"mailio-trio: listening on 127\.0\.0\.1:(\d+); ", line)
        assert match, line
        port = int(match.group(1))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            # The file's fault: the first MAIL answers 451 (no token spent on it).
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("dev@app.example", ["a@x.example"], MESSAGE)
            assert refused.value.smtp_code == 451
            # The flag's: the next two RCPTs answer 452, the third is taken (token 1).
            rcpts = ["a@x.example", "b@x.example", "c@x.example"]
            result = client.sendmail("dev@app.example", rcpts, MESSAGE)
            assert {code for code, _ in result.values()} == {452}
            assert sorted(result) == ["a@x.example", "b@x.example"]
            client.sendmail("dev@app.example", ["d@x.example"], MESSAGE)  # token 2
            client.sendmail("dev@app.example", ["e@x.example"], MESSAGE)  # token 3
            with pytest.raises(smtplib.SMTPSenderRefused) as limited:
                client.sendmail("dev@app.example", ["f@x.example"], MESSAGE)
            assert limited.value.smtp_code == 421
            assert limited.value.smtp_error.startswith(b"4.7.0 Rate limit exceeded")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--fault", "rcpt:452"], "needs serve --capture"),
        (["--rate-limit", "5/60"], "needs serve --capture"),
    ],
)
def test_chaos_without_capture_is_refused(tmp_path: Path, flags: list[str], expected: str) -> None:
    result = run(tmp_path, "serve", "--listen", "127.0.0.1:0", *flags)
    assert result.returncode == 2, result
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--fault", "rcpt:999", "a fault's code is 4xx or 5xx, not 999"),
        ("--fault", "quit:452", "no fault stage 'quit'"),
        ("--fault-probability", "mail:451:2", "PROBABILITY is a number in (0, 1]"),
        ("--rate-limit", "ten/60", "a rate limit is N/SECONDS"),
    ],
)
def test_a_bad_chaos_flag_is_a_usage_error(
    tmp_path: Path, flag: str, value: str, expected: str
) -> None:
    result = run(tmp_path, "serve", "--capture", flag, value)
    assert result.returncode == 2, result
    assert expected in result.stderr


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_bad_chaos_table_is_one_line_naming_the_file(tmp_path: Path, command: str) -> None:
    (tmp_path / "bad.toml").write_text('[chaos]\ntriggers = ["mail:451:0.5", "mail:drop:0.1"]\n')
    args = (
        ("config", "check", "bad.toml")
        if command == "check"
        else ("serve", "--capture", "--config", "bad.toml", "--listen", "127.0.0.1:0")
    )
    result = run(tmp_path, *args)
    assert result.returncode == 2, result
    assert result.stderr.startswith("mailio-trio: bad.toml: [chaos]: "), result.stderr
    assert "one probabilistic fault per stage" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_chaos_table_without_capture_is_refused(tmp_path: Path) -> None:
    (tmp_path / "chaos.toml").write_text(CHAOS_FILE)
    assert run(tmp_path, "config", "check", "chaos.toml").returncode == 0
    result = run(tmp_path, "serve", "--config", "chaos.toml", "--listen", "127.0.0.1:0")
    assert result.returncode == 2, result
    assert "needs serve --capture" in result.stderr
