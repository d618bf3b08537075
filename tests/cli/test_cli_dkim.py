"""``mailio-trio dkim keygen``: the key file, the DNS record it prints, the [dkim.keys] line.

Run in-process (``main(argv)``): the command does no I/O beyond its one file
and stdout, so a subprocess would only slow the RSA cases down.
"""

from __future__ import annotations

import re
import stat
import tomllib
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio.cli._dkim import txt_strings
from mailio_trio.cli._main import main
from mailio_trio.config import Config
from mailio_trio.dns import DnsConfig, DnsResolver
from mailio_trio.mailauth.dkim import DkimAlgorithm, DkimVerdict, sign, verify
from mailio_trio.plugins._dkim_signing import load_signer
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from pathlib import Path

MESSAGE = b"From: Alice <alice@example.com>\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
RECORD = re.compile(r'^(\S+)\._domainkey\.(\S+)\. IN TXT ((?:"[^"]*" ?)+)$', re.MULTILINE)


def keygen(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dkim", "keygen", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("algorithm", "a_tag"),
    [("rsa", DkimAlgorithm.RSA_SHA256), ("ed25519", DkimAlgorithm.ED25519_SHA256)],
)
async def test_keygen_record_verifies_a_signature_made_with_the_key(
    nursery: trio.Nursery,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    algorithm: str,
    a_tag: DkimAlgorithm,
) -> None:
    out_file = tmp_path / "k.pem"
    code, out, err = keygen(
        capsys, "--domain", "Example.COM", "--selector", "s2026", "--algorithm", algorithm,
        "--out", str(out_file),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    match = RECORD.search(out)
    assert match is not None, out
    selector, domain, strings = match.groups()
    assert (selector, domain) == ("s2026", "example.com")
    parts = re.findall(r'"([^"]*)"', strings)
    assert all(len(p) <= 255 for p in parts)
    if algorithm == "rsa":
        assert len(parts) == 2  # an RSA-2048 record is longer than one string may be
    text = "".join(parts)
    assert text.startswith(f"v=DKIM1; k={algorithm}; p=")

    zone = Zone()
    zone.txt("s2026._domainkey.example.com", text)
    dns = DnsServer(zone)
    host, port = await nursery.start(dns.serve)
    resolver = DnsResolver(DnsConfig(nameservers=[host], port=port, timeout=2.0, cache_size=0))
    header = sign(
        MESSAGE,
        domain="example.com",
        selector="s2026",
        private_key_pem=out_file.read_text(),
        algorithm=a_tag,
    )
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=resolver)
    assert result.result is DkimVerdict.PASS, result.reason

    # The printed [dkim.keys] line is one the server loads as it is.
    line = out.splitlines()[-1]
    table = tomllib.loads(f"[server]\ndomains = ['example.com']\n[dkim.keys]\n{line}\n")
    signer = load_signer(Config.from_mapping(table))
    assert signer is not None
    [key] = signer.keys.keys_for("example.com")
    assert (key.selector, key.algorithm) == ("s2026", a_tag)


def test_keygen_refuses_to_overwrite_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "k.pem"
    out_file.write_text("keep me")
    out_file.chmod(0o644)
    args = ("--domain", "example.com", "--selector", "s", "--algorithm", "ed25519")
    code, out, err = keygen(capsys, *args, "--out", str(out_file))
    assert (code, out) == (2, "")
    assert err == f'mailio-trio: dkim keygen --out "{out_file}": exists; --force overwrites it\n'
    assert out_file.read_text() == "keep me"
    code, out, err = keygen(capsys, *args, "--out", str(out_file), "--force")
    assert code == 0
    assert out_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600  # tightened, not kept at 0644


def test_keygen_default_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = keygen(
        capsys, "--domain", "example.com.", "--selector", "ed", "--algorithm", "ed25519"
    )
    assert code == 0
    assert (tmp_path / "example.com.ed.pem").exists()
    assert f'key = "{tmp_path / "example.com.ed.pem"}"' in out  # absolute: serve runs elsewhere


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--domain", "localhost", "--selector", "s"),
            'dkim keygen --domain "localhost": not a domain',
        ),
        (("--domain", "example.com", "--selector", "a_b"), 'dkim keygen --selector "a_b": must be'),
        (
            ("--domain", "example.com", "--selector", "s", "--out", "/no/such/dir/k.pem"),
            'dkim keygen --out "/no/such/dir/k.pem": cannot write: No such file or directory',
        ),
    ],
)
def test_keygen_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = keygen(capsys, "--algorithm", "ed25519", *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"mailio-trio: {message}")
    assert err.count("\n") == 1


def test_txt_strings_split_at_255_octets() -> None:
    assert txt_strings("a" * 600) == ["a" * 255, "a" * 255, "a" * 90]
    assert txt_strings("short") == ["short"]
