"""``serve --metrics HOST:PORT``: the scrape listener of the real program."""

from __future__ import annotations

import re
import signal
import smtplib
import socket
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest
from serve_process import serving

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # our loopback URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_metrics_flag_serves_a_scrape_and_health(tmp_path: Path) -> None:
    with serving(tmp_path, "--metrics", "127.0.0.1:0") as (proc, port):
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(r"mailio-trio: metrics on (http://127\.0\.0\.1:\d+)/metrics$", line)
        assert match, line
        base = match.group(1)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("a@client.test", ["u@localhost"], b"Subject: x\r\n\r\nhi\r\n")
        status, text = _get(base + "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        [accepted] = [
            s for s in families["mailio_messages"].samples if s.labels == {"outcome": "accepted"}
        ]
        assert accepted.value == 1
        assert _get(base + "/readyz") == (200, "ready\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_each_worker_is_its_own_scrape_target(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    if base >= 65535:
        pytest.skip("no room for a second port")
    with serving(tmp_path, "--workers", "2", "--metrics", f"127.0.0.1:{base}") as (proc, _):
        for port in (base, base + 1):  # worker i on PORT + i
            url = f"http://127.0.0.1:{port}/readyz"
            status = 0
            for _ in range(200):  # the workers bind their metrics port once they serve
                try:
                    status = _get(url)[0]
                    break
                except OSError:
                    time.sleep(0.05)
            assert status == 200, port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
