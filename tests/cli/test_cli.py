"""The ``mailio-trio`` command as an operator runs it: real subprocesses, real sockets.

No test sleeps for the server: each reads the "listening on" line, which the
server prints only once its sockets are bound and its signal handlers are set.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from serve_process import serving

if TYPE_CHECKING:
    from pathlib import Path

    import trustme

MESSAGE = b"Subject: hello\r\nFrom: alice@localhost\r\n\r\nHi there.\r\n"


def run(
    cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailio_trio", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=60,
        check=False,
    )


def send(port: int, sender: str, recipients: list[str], message: bytes = MESSAGE) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail(sender, recipients, message) == {}


def new_files(mailbox: Path) -> list[Path]:
    return sorted((mailbox / "new").iterdir()) if (mailbox / "new").is_dir() else []


def test_serve_delivers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, port):
        send(port, "alice@localhost", ["bob@localhost", "carol@localhost"])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "SIGTERM, shutting down" in out
    for user in ("bob", "carol"):
        [copy] = new_files(tmp_path / "mail" / "localhost" / user)
        assert copy.read_bytes().endswith(b"\r\n" + MESSAGE)
    [sent] = (tmp_path / "mail" / "localhost" / "alice" / ".Sent" / "cur").iterdir()
    assert sent.name.endswith(":2,S")


def test_sigint_is_a_graceful_stop_too(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, _):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_sigkill_right_after_250_loses_nothing(tmp_path: Path) -> None:
    with serving(tmp_path, "--maildir", "store") as (proc, port):
        send(port, "x@elsewhere.test", ["bob@localhost"])
        proc.kill()  # no chance to flush anything the 250 did not already make durable
        proc.communicate(timeout=60)
    [copy] = new_files(tmp_path / "store" / "localhost" / "bob")
    assert copy.read_bytes().endswith(b"\r\n" + MESSAGE)
    # After a restart the mailbox is as it was, and more mail joins it.
    with serving(tmp_path, "--maildir", "store") as (proc, port):
        send(port, "x@elsewhere.test", ["bob@localhost"])
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert len(new_files(tmp_path / "store" / "localhost" / "bob")) == 2


def test_sigkill_mid_data_leaves_nothing_in_new(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, port), smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.test")
        assert client.mail("x@elsewhere.test")[0] == 250
        assert client.rcpt("bob@localhost")[0] == 250
        assert client.docmd("DATA")[0] == 354
        client.send(b"Subject: half\r\n\r\nthe first half of the")
        proc.kill()
        proc.communicate(timeout=60)
    assert new_files(tmp_path / "mail" / "localhost" / "bob") == []


def test_send_command_round_trip(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, port):
        result = run(
            tmp_path,
            "send",
            "--server",
            f"127.0.0.1:{port}",
            "--from",
            "alice@localhost",
            "--to",
            "bob@localhost",
            "--subject",
            "Round trip",
            stdin="Hello from stdin.\n",
        )
        assert result.returncode == 0, result.stderr
        refused = run(
            tmp_path,
            *("send", "--server", f"127.0.0.1:{port}", "--from", "a@localhost"),
            *("--to", "x@elsewhere.test", "--body", "x"),
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert refused.returncode == 1
    assert "550 5.7.1" in refused.stderr
    [copy] = new_files(tmp_path / "mail" / "localhost" / "bob")
    raw = copy.read_bytes()
    assert b"Subject: Round trip" in raw
    assert b"Hello from stdin." in raw


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run(tmp_path, "serve", "--listen", f"127.0.0.1:{busy.getsockname()[1]}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "cannot listen on 127.0.0.1:" in result.stderr


BAD_CONFIGS = {
    "unknown key": ("[limits]\nidel_timeout = 5\n", "limits.idel_timeout: unknown key"),
    "unknown section": ("[frobnicate]\n", "[frobnicate]: unknown section"),
    "wrong type": ('[limits]\nidle_timeout = "x"\n', 'limits.idle_timeout = "x": must be'),
    "negative limit": ("[limits]\nmax_recipients = -1\n", "limits.max_recipients = -1"),
    "bad listen": ('[server]\nlisten = ["nowhere"]\n', 'server.listen = "nowhere"'),
    "escaping template": ('[maildir]\npath = "../%n"\n', 'maildir.path = "../%n"'),
    "not toml": ("[limits\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_file_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, expected = BAD_CONFIGS[case]
    (tmp_path / "bad.toml").write_text(text)
    for args in (("config", "check", "bad.toml"), ("serve", "--config", "bad.toml")):
        result = run(tmp_path, *args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("mailio-trio: bad.toml: "), result.stderr
        assert expected in result.stderr
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


def test_unwritable_maildir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "mail").write_text("a file where the maildir root should be")
    result = run(tmp_path, "serve", "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert result.stderr.startswith('mailio-trio: maildir.root = "mail": cannot create')
    assert result.stderr.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_read_only_maildir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir(mode=0o500)
    result = run(tmp_path, "serve", "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "is not writable" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("serve", "--listen", "nowhere"), "argument --listen: 'nowhere' must be HOST:PORT"),
        (("serve", "--listen", "127.0.0.1:99999"), "argument --listen"),
        (("serve", "--idle-timeout", "-3"), "argument --idle-timeout: '-3' must be"),
        (("serve", "--idle-timeout", "soon"), "argument --idle-timeout"),
        (("serve", "--max-message-size", "0"), "argument --max-message-size: '0' must be"),
        (("serve", "--log-format", "xml"), "argument --log-format: invalid choice"),
        (("serve", "--bogus"), "unrecognized arguments: --bogus"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        ((), "the following arguments are required: COMMAND"),
        (("send", "--to", "b@localhost"), "the following arguments are required: --from"),
        (("config", "check", "missing.toml"), "missing.toml: cannot read"),
        (
            ("send", "--from", "a@localhost", "--to", "b@localhost", "--file", "missing.txt"),
            "--file missing.txt: cannot read",
        ),
        (("serve", "--dns-server", "nope"), "argument --dns-server: 'nope' must be an IP"),
        (("serve", "--dns-server", "127.0.0.1:0"), "argument --dns-server: '127.0.0.1:0'"),
        (("serve", "--smart-host", "relay.test"), "argument --smart-host: 'relay.test' must be"),
        (("serve", "--smart-host", "relay.test:0"), "argument --smart-host"),
        (
            ("serve", "--dns-server", "127.0.0.1", "--dns-server", "127.0.0.2:5353"),
            "--dns-server: servers on ports 53, 5353; all must use one port",
        ),
    ],
)
def test_bad_flag_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("mailio-trio")


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(
        '[server]\ndomains = ["example.com"]\n[limits]\nidle_timeout = 30\n'
        '[maildir]\nenabled = true\nmailboxes = ["bob@example.com"]\n'
        '[plugins."rcpt/dnsbl"]\nlists = ["zen.example"]\n'
    )
    result = run(tmp_path, "config", "check", "good.toml")
    assert (result.returncode, result.stdout) == (0, "good.toml: OK\n")


def test_config_check_loads_the_certificate_it_names(tmp_path: Path) -> None:
    (tmp_path / "tls.toml").write_text('[tls]\ncert = "missing.pem"\n')
    result = run(tmp_path, "config", "check", "tls.toml")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "tls.cert" in result.stderr
    assert "missing.pem" in result.stderr


def test_config_show_layers_defaults_file_and_flags(tmp_path: Path) -> None:
    import tomllib

    (tmp_path / "site.toml").write_text(
        '[server]\ndomains = ["example.com"]\n[limits]\nidle_timeout = 30\nmax_recipients = 7\n'
    )
    result = run(tmp_path, "config", "show", "--config", "site.toml", "--idle-timeout", "12.5")
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["server"]["domains"] == ["example.com"]  # file over default
    assert shown["limits"]["idle_timeout"] == 12.5  # flag over file
    assert shown["limits"]["max_recipients"] == 7  # file
    assert shown["server"]["listen"] == ["127.0.0.1:2525"]  # CLI default
    assert shown["maildir"]["enabled"] is True
    # What show prints is itself a valid configuration file.
    (tmp_path / "shown.toml").write_text(result.stdout)
    assert run(tmp_path, "config", "check", "shown.toml").returncode == 0


def test_version_and_help(tmp_path: Path) -> None:
    version = run(tmp_path, "--version")
    assert (version.returncode, version.stdout.split()[0]) == (0, "mailio-trio")
    for args in (("--help",), ("serve", "--help"), ("send", "--help"), ("config", "show", "-h")):
        result = run(tmp_path, *args)
        assert result.returncode == 0
        assert "usage: mailio-trio" in result.stdout


def test_serve_with_workers_and_discard_serves_and_stops_all(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2", "--discard") as (proc, port):
        for n in range(6):
            send(port, "alice@example.org", [f"user{n}@anywhere.example"])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out.endswith("mailio-trio: stopped\n")
    assert not (tmp_path / "mail").exists()  # --discard keeps nothing


def test_workers_refuse_what_one_process_must_own(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text('[relay]\nenabled = true\nspool_dir = "relay"\n')
    result = run(tmp_path, "serve", "--config", "relay.toml", "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--workers 2: relay.enabled needs one process" in result.stderr


def test_relay_flags_map_to_the_relay_and_dns_sections(tmp_path: Path) -> None:
    import tomllib

    result = run(
        tmp_path,
        *("config", "show", "--smart-host", "smtp.example.net:587"),
        *("--dns-server", "127.0.0.1:5353", "--dns-server", "[::1]:5353"),
    )
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["relay"]["enabled"] is True  # --smart-host implies --relay
    assert shown["relay"]["smart_host"] == "smtp.example.net:587"
    assert shown["relay"]["spool_dir"] == "spool/relay"  # beside the DATA spool
    assert shown["dns"]["nameservers"] == ["127.0.0.1", "::1"]
    assert shown["dns"]["port"] == 5353
    (tmp_path / "shown.toml").write_text(result.stdout)
    assert run(tmp_path, "config", "check", "shown.toml").returncode == 0
    plain = tomllib.loads(run(tmp_path, "config", "show", "--relay").stdout)
    assert plain["relay"]["enabled"] is True
    assert "smart_host" not in plain["relay"]
    assert "dns" not in plain  # the system resolver


def test_send_with_starttls_and_auth(tmp_path: Path, tls_ca: trustme.CA) -> None:
    from mailio_trio.passwords import hash_password

    tls_ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    tls_ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "site.toml").write_text(
        f'[tls]\ncert = "server.pem"\n[auth.users]\nbob = "{hash_password("s3cret", log_n=10)}"\n'
    )

    def send_as_bob(password: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MAILIO_PASSWORD"}
        if password is not None:
            env["MAILIO_PASSWORD"] = password
        return run(
            tmp_path,
            *("send", "--server", f"127.0.0.1:{port}", "--from", "bob@localhost"),
            *("--to", "carol@localhost", "--body", "hi", *extra),
            env=env,
        )

    tls = ("--starttls", "--cafile", "ca.pem", "--user", "bob")
    with serving(tmp_path, "--config", "site.toml") as (proc, port):
        good = send_as_bob("s3cret", *tls)
        wrong = send_as_bob("guess", *tls)
        unverified = send_as_bob("s3cret", "--starttls", "--user", "bob")  # system CAs only
        no_password = send_as_bob(None, *tls)
        in_clear = send_as_bob("s3cret", "--user", "bob")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert good.returncode == 0, good.stderr
    [copy] = new_files(tmp_path / "mail" / "localhost" / "carol")
    assert b" with ESMTPSA id " in copy.read_bytes()  # over TLS, authenticated
    assert wrong.returncode == 1
    assert "535 5.7.8" in wrong.stderr
    assert unverified.returncode == 1
    assert "certificate verify failed" in unverified.stderr
    for usage in (no_password, in_clear):
        assert usage.returncode == 2
        assert usage.stderr.count("\n") == 1
    assert "set $MAILIO_PASSWORD or use --password-stdin" in no_password.stderr
    assert "--user bob: needs --starttls" in in_clear.stderr


def test_sigterm_as_workers_start_still_stops_cleanly(tmp_path: Path) -> None:
    """The signal can reach a worker before its Trio loop listens for it."""
    with serving(tmp_path, "--workers", "2", "--discard") as (proc, _port):
        proc.send_signal(signal.SIGTERM)  # at once: the workers are still starting
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert "exited; stopping" not in err
    assert out.endswith("mailio-trio: stopped\n")
