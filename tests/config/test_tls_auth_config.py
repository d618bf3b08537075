"""TLS and AUTH configuration, password hashes, self-signed certificates, the CLI parts."""

from __future__ import annotations

import functools
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio

from mailio_trio import Config, ConfigError, Server
from mailio_trio.cli import main
from mailio_trio.passwords import PasswordHashError, hash_password, verify_password
from mailio_trio.plugins.auth import AuthConfig, Mechanism
from mailio_trio.testing import start_capturing_server
from mailio_trio.tls import TLSConfig, TLSVersion, build_server_context, make_self_signed

if TYPE_CHECKING:
    from pathlib import Path

    import trustme


@pytest.fixture
def cert_files(tls_server_cert: trustme.LeafCert, tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    for blob in tls_server_cert.cert_chain_pems:
        blob.write_to_path(str(cert), append=True)
    tls_server_cert.private_key_pem.write_to_path(str(key))
    return cert, key


# -- TLS configuration -----------------------------------------------------------


def test_defaults_are_tls_off_and_tls12_floor() -> None:
    config = Config(hostname="mx.test")
    assert not config.tls.enabled
    assert config.tls.minimum_version is TLSVersion.TLS_1_2
    assert build_server_context(config.tls) is None
    assert Server(config).tls_context is None


def test_context_from_files_has_tls12_floor(cert_files: tuple[Path, Path]) -> None:
    cert, key = cert_files
    context = build_server_context(TLSConfig(cert=cert, key=key))
    assert context is not None
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    raised = build_server_context(TLSConfig(cert=cert, key=key, minimum_version="TLSv1.3"))
    assert raised is not None
    assert raised.minimum_version is ssl.TLSVersion.TLSv1_3


def test_config_takes_tls_and_auth_tables(cert_files: tuple[Path, Path]) -> None:
    cert, key = cert_files
    config = Config(
        hostname="mx.test",
        tls={"cert": str(cert), "key": str(key), "minimum_version": "1.3"},
        auth={"allow_insecure": True, "mechanisms": "plain login"},
    )
    assert config.tls.cert == cert
    assert config.tls.minimum_version is TLSVersion.TLS_1_3
    assert config.auth.mechanisms == (Mechanism.PLAIN, Mechanism.LOGIN)
    assert Server(config).tls_context is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cert": "/nonexistent/cert.pem"}, "tls.cert = '/nonexistent/cert.pem': file not found"),
        ({"cert": "/"}, "tls.cert = '/': is a directory, not a PEM file"),
    ],
)
def test_missing_files_are_one_line_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_server_context(TLSConfig(**kwargs))  # type: ignore[arg-type]  # table-driven
    assert str(info.value) == message


def test_key_that_does_not_match_is_one_line_error(
    cert_files: tuple[Path, Path], tls_ca: trustme.CA, tmp_path: Path
) -> None:
    cert, _ = cert_files
    other_key = tmp_path / "other.pem"
    tls_ca.issue_cert("other.test").private_key_pem.write_to_path(str(other_key))
    with pytest.raises(ConfigError, match=r"^tls\.cert/tls\.key = .*: not a usable") as info:
        build_server_context(TLSConfig(cert=cert, key=other_key))
    assert "\n" not in str(info.value)


def test_unreadable_key_is_one_line_error(cert_files: tuple[Path, Path]) -> None:
    cert, key = cert_files
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    key.chmod(0)
    with pytest.raises(ConfigError, match=r"^tls\.key = .*: cannot read: Permission denied$"):
        build_server_context(TLSConfig(cert=cert, key=key))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minimum_version": "SSLv3"}, "tls.minimum_version = 'SSLv3': must be one of"),
        ({"key": "k.pem"}, "tls.key = 'k.pem': needs tls.cert as well"),
        ({"cert": "c.pem", "request_client_cert": True}, "tls.request_client_cert = true"),
    ],
)
def test_bad_tls_values_name_the_key(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        TLSConfig(**kwargs)  # type: ignore[arg-type]  # table-driven


def test_unknown_tls_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^tls\.certificate: unknown key"):
        Config(tls={"certificate": "x"})


def test_bad_cipher_string_is_one_line_error(cert_files: tuple[Path, Path]) -> None:
    cert, key = cert_files
    with pytest.raises(ConfigError, match=r"^tls\.ciphers = 'NOPE': selects no cipher"):
        build_server_context(TLSConfig(cert=cert, key=key, ciphers="NOPE"))


async def test_client_certificate_reaches_session_tls(
    nursery: trio.Nursery, cert_files: tuple[Path, Path], tls_ca: trustme.CA, tmp_path: Path
) -> None:
    cert, key = cert_files
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    config = Config(
        hostname="mx.test",
        tls=TLSConfig(cert=cert, key=key, ca=ca_file, request_client_cert=True),
    )
    server = Server(config)
    peers: list[object] = []

    @server.handler("ehlo")
    async def record(req: object, res: object) -> None:
        session = req.session  # type: ignore[attr-defined]  # a plain handler, typed loosely
        peers.append(session.tls.peer_certificate if session.tls else None)
        res.accept()  # type: ignore[attr-defined]

    running = await start_capturing_server(nursery, server=server)
    client = ssl.create_default_context()
    tls_ca.configure_trust(client)
    tls_ca.issue_cert("client.test").configure_cert(client)
    async with running.open_raw() as conn:
        await conn.read_reply()
        assert (await conn.command("EHLO client.test")).code == 250
        assert (await conn.command("STARTTLS")).code == 220
        await conn.start_tls(client, "mx.test")
        assert (await conn.command("EHLO client.test")).code == 250
    assert peers[0] is None
    peer = peers[1]
    assert isinstance(peer, dict)
    assert ("DNS", "client.test") in peer["subjectAltName"]


# -- AUTH configuration and password hashes ---------------------------------------


def test_password_hash_round_trip_and_salt() -> None:
    first, second = hash_password("s3cret", log_n=4), hash_password("s3cret", log_n=4)
    assert first != second  # salted
    assert first.startswith("$scrypt$ln=4,r=8,p=1$")
    assert verify_password("s3cret", first)
    assert not verify_password("s3cret ", first)
    with pytest.raises(PasswordHashError):
        verify_password("s3cret", "s3cret")


def test_plain_password_in_users_table_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError) as info:
        AuthConfig(users={"alice": "hunter2"})
    assert str(info.value).startswith("auth.users.alice: not a $scrypt$")
    assert "hunter2" not in str(info.value)
    assert "mailio-trio passwd alice" in str(info.value)


def test_cram_md5_with_users_table_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^auth\.mechanisms: CRAM-MD5 needs the plain secret"):
        AuthConfig(users={"a": hash_password("x", log_n=4)}, mechanisms=["CRAM-MD5"])


def test_unknown_mechanism_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^auth\.mechanisms: 'GSSAPI' is not one of"):
        AuthConfig(mechanisms=["GSSAPI"])


def test_users_table_is_not_in_repr() -> None:
    stored = hash_password("x", log_n=4)
    assert stored not in repr(AuthConfig(users={"a": stored}))


# -- passwd and the serve flags ----------------------------------------------------


async def test_passwd_cli_prints_a_line_that_verifies() -> None:
    done = await trio.run_process(
        [sys.executable, "-m", "mailio_trio", "passwd", "alice"],
        stdin=b"s3cret pass\n",
        capture_stdout=True,
        capture_stderr=True,
    )
    out = done.stdout.decode()
    assert out.startswith('alice = "$scrypt$')
    assert out.endswith('"\n')
    assert "s3cret" not in out + done.stderr.decode()
    stored = out.split('"')[1]
    assert verify_password("s3cret pass", stored)
    assert AuthConfig(users={"alice": stored}).users["alice"] == stored


def test_passwd_refuses_empty_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["passwd", "alice"]) == 2
    assert capsys.readouterr().err.strip() == "mailio-trio: passwd: empty password refused"


def test_passwd_quotes_a_user_name_toml_needs_quoted_and_refuses_unusable_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import tomllib

    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    assert main(["passwd", "bob smith"]) == 0
    stored = tomllib.loads(capsys.readouterr().out)["bob smith"]
    assert verify_password("s3cret", stored)
    assert main(["passwd", 'a"b']) == 2
    assert capsys.readouterr().err == "mailio-trio: passwd USER = 'a\"b': not a usable user name\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert", "/nonexistent.pem"], "--tls-cert = '/nonexistent.pem': file not found"),
        (["--tls-key", "k.pem"], "--tls-key = 'k.pem': needs --tls-cert as well"),
        (["--smtps-listen", "127.0.0.1:0"], "--smtps-listen = 127.0.0.1:0: needs a certificate"),
        (
            ["--tls-self-signed", "--tls-cert", "c.pem"],
            "--tls-self-signed: cannot be combined with --tls-cert/--tls-key",
        ),
    ],
)
def test_bad_tls_flags_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mailio-trio: {message}")
    assert err.count("\n") == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_self_signed_with_openssl(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path, "mx.test")
    assert key.stat().st_mode & 0o077 == 0
    context = build_server_context(TLSConfig(cert=cert, key=key))
    assert context is not None


def test_self_signed_falls_back_to_trustme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    cert, key = make_self_signed(tmp_path, "mx.test")
    assert build_server_context(TLSConfig(cert=cert, key=key)) is not None


async def test_serve_with_self_signed_and_smtps_flags(tmp_path: Path) -> None:
    """The real command: plain and SMTPS listeners, a throw-away certificate, SIGHUP, SIGTERM."""
    import signal

    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [
                    sys.executable,
                    "-m",
                    "mailio_trio",
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--smtps-listen",
                    "127.0.0.1:0",
                    "--tls-self-signed",
                    "--hostname",
                    "mx.test",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
                cwd=tmp_path,
            )
        )
        assert process.stdout is not None
        out = b""
        with trio.fail_after(30):
            while b"\n" not in out:
                chunk = await process.stdout.receive_some()
                assert chunk, "serve exited early"
                out += chunk
        found = re.search(
            r"listening on 127\.0\.0\.1:(\d+), 127\.0\.0\.1:(\d+) \(SMTPS\);", out.decode()
        )
        assert found, out
        plain_port, smtps_port = int(found.group(1)), int(found.group(2))
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE  # a self-signed certificate cannot be verified

        def use() -> tuple[int, int]:
            with smtplib.SMTP("127.0.0.1", plain_port) as client:
                client.starttls(context=unverified)
                plain = client.noop()[0]
            with smtplib.SMTP_SSL("127.0.0.1", smtps_port, context=unverified) as client:
                return plain, client.noop()[0]

        assert await trio.to_thread.run_sync(use) == (250, 250)
        process.send_signal(signal.SIGHUP)  # reload: must keep serving
        assert await trio.to_thread.run_sync(use) == (250, 250)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            await process.wait()
        assert process.stderr is not None
        err_bytes = b""
        while chunk := await process.stderr.receive_some():
            err_bytes += chunk
        err = err_bytes.decode()
    assert process.returncode == 0
    assert "self-signed certificate for mx.test" in err
    assert "TLS context reloaded" in err


def test_passwd_on_a_terminal_asks_twice_without_echo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in terminal: a real one would need a pty and a controlling-terminal
    dance; what matters is that getpass (which turns echo off) does the reading."""
    import getpass
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["s3cret", "s3cret", "s3cret", "typo"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert main(["passwd", "bob"]) == 0
    stored = capsys.readouterr().out.split('"')[1]
    assert verify_password("s3cret", stored)
    assert main(["passwd", "bob"]) == 2  # the two entries differ
    assert "passwords differ" in capsys.readouterr().err
    assert prompts == ["Password: ", "Again: ", "Password: ", "Again: "]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"tls": {"certt": "c.pem"}}, r"^tls\.certt: unknown key \(did you mean cert\?\)$"),
        ({"auth": {"user": {}}}, r"^auth\.user: unknown key \(did you mean users\?\)$"),
        ({"auth": {"allow_insecure": "yes"}}, r'^auth\.allow_insecure = "yes": must be true'),
    ],
)
def test_tls_and_auth_tables_given_in_code_are_checked_like_toml(
    section: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        Config(**section)
