"""``send`` talks to ``serve --tls-self-signed``; no server there is one line (#13 item 15)."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from serve_process import serving

from mailio_trio.tls import make_self_signed


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailio_trio", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def send(cwd: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        cwd,
        *("send", "--server", f"127.0.0.1:{port}", "--from", "alice@localhost"),
        *("--to", "bob@localhost", "--body", "hi", *extra),
    )


def test_send_trusts_or_skips_the_self_signed_certificate(tmp_path: Path) -> None:
    with serving(tmp_path, "--tls-self-signed") as (proc, port):
        assert proc.stdout is not None
        note = proc.stdout.readline()
        assert note.startswith("mailio-trio: self-signed certificate in "), note
        cert = Path(note.split(" in ", 1)[1].split(" (", 1)[0])
        assert cert.is_file()
        assert f"send --cafile {cert}" in note
        trusted = send(tmp_path, port, "--cafile", str(cert))
        insecure = send(tmp_path, port, "--insecure")
        unverified = send(tmp_path, port, "--starttls")
        both = send(tmp_path, port, "--insecure", "--cafile", str(cert))
        assert cert.is_file()  # kept while serving
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert not cert.exists()  # a throw-away: gone with the server
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stderr == ""
    assert insecure.returncode == 0, insecure.stderr
    [warning] = insecure.stderr.splitlines()
    assert warning.startswith("mailio-trio: warning: --insecure: ")
    assert unverified.returncode == 1
    assert unverified.stderr.count("\n") == 1
    assert "certificate verify failed" in unverified.stderr
    assert "--cafile" in unverified.stderr
    assert "--insecure" in unverified.stderr
    assert both.returncode == 2
    mailbox = tmp_path / "mail" / "localhost" / "bob" / "new"
    copies = [p.read_bytes() for p in mailbox.iterdir()]
    assert len(copies) == 2
    assert all(b" with ESMTPS id " in copy for copy in copies)  # both over TLS


def test_user_needs_tls_of_some_kind(tmp_path: Path) -> None:
    plain = run(tmp_path, "send", "--from", "a@localhost", "--to", "b@localhost", "--user", "bob")
    assert plain.returncode == 2
    assert "--user bob: needs --starttls (or --cafile/--insecure" in plain.stderr


def test_server_not_running_is_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    result = send(tmp_path, port)
    assert result.returncode == 1
    assert result.stderr == (
        f"mailio-trio: cannot connect to 127.0.0.1:{port}: connection refused "
        "(is the server running?)\n"
    )


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A TLS handshake in memory, for 127.0.0.1; raises if the client refuses the certificate."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    ends = [
        client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1"),
        server.wrap_bio(s_in, s_out, server_side=True),
    ]
    finished: set[int] = set()
    for _ in range(10):
        for i, end in enumerate(ends):
            if i not in finished:
                try:
                    end.do_handshake()
                    finished.add(i)
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if len(finished) == 2:
            return
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("tool", ["openssl", "trustme"])
def test_the_certificate_file_is_a_trust_anchor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    if tool == "trustme":
        pytest.importorskip("trustme")
        monkeypatch.setattr(shutil, "which", lambda _name: None)
    elif shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    cert, key = make_self_signed(tmp_path, "mx.test")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    _handshake(server, ssl.create_default_context(cafile=str(cert)))
