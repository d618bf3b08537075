"""Loading ``[dkim.keys]`` at relay start, and which domain signs (``plugins/_dkim_signing``).

Every problem with a key is one ConfigError line at start, naming the key and
its path; nothing is left to fail per message.
"""

from __future__ import annotations

import math
import secrets
import sys
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailio_trio.config import Config, ConfigError
from mailio_trio.mailauth.dkim import DkimAlgorithm, generate_key
from mailio_trio.plugins._dkim_signing import load_signer

if TYPE_CHECKING:
    from pathlib import Path

KEY = 'dkim.keys."example.com"[0].key'


def config(
    tmp_path: Path, *keys: Path, domains: tuple[str, ...] = ("example.com",), **dkim: Any
) -> Config:
    table = [{"selector": f"s{i}", "key": str(k)} for i, k in enumerate(keys)]
    return Config(
        hostname="mx.example.com", domains=domains, dkim={"keys": {"example.com": table}, **dkim}
    )


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_rsa_and_ed25519_are_told_from_the_pem(tmp_path: Path) -> None:
    rsa_file = write(tmp_path, "r.pem", generate_key(DkimAlgorithm.RSA_SHA256, rsa_bits=1024)[0])
    ed_file = write(tmp_path, "e.pem", generate_key(DkimAlgorithm.ED25519_SHA256)[0])
    signer = load_signer(config(tmp_path, rsa_file, ed_file))
    assert signer is not None
    assert [(k.selector, k.algorithm) for k in signer.keys.keys_for("example.com")] == [
        ("s1", DkimAlgorithm.ED25519_SHA256),
        ("s0", DkimAlgorithm.RSA_SHA256),
    ]


def test_pkcs8_rsa_is_accepted(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = load_signer(config(tmp_path, write(tmp_path, "k.pem", pem)))
    assert signer is not None
    assert signer.keys.keys[0].algorithm is DkimAlgorithm.RSA_SHA256


def test_nothing_to_load_without_keys_or_with_everything_off(tmp_path: Path) -> None:
    assert load_signer(Config()) is None
    missing = tmp_path / "never-read.pem"
    assert load_signer(config(tmp_path, missing, sign=False, arc_seal=False)) is None


def _prime(bits: int) -> int:
    while True:  # a Fermat test is plenty for a test key
        n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
            return n


def _rsa_512() -> rsa.RSAPrivateKey:
    """A 512-bit RSA key, built by hand: cryptography refuses to generate one."""
    e = 65537
    while True:
        p, q = _prime(256), _prime(256)
        phi = (p - 1) * (q - 1)
        if p != q and math.gcd(e, phi) == 1 and (p * q).bit_length() == 512:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    )
    return numbers.private_key()


def _bad_keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    small = _rsa_512().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    encrypted = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "missing": (tmp_path / "nope.pem", "cannot read: No such file or directory"),
        "directory": (tmp_path, "cannot read: Is a directory"),
        "not PEM": (write(tmp_path, "t.pem", "hello"), "not an unencrypted PEM private key"),
        "encrypted": (write(tmp_path, "x.pem", encrypted), "not an unencrypted PEM private key"),
        "public key": (write(tmp_path, "p.pem", public), "not an unencrypted PEM private key"),
        "EC": (write(tmp_path, "ec.pem", ec_pem), "not an RSA or Ed25519 key"),
        "RSA-512": (write(tmp_path, "s.pem", small), "an RSA key of 512 bits; RFC 8301"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "directory", "not PEM", "encrypted", "public key", "EC", "RSA-512"]
)
def test_a_bad_key_is_one_line_naming_the_key_and_path(tmp_path: Path, case: str) -> None:
    path, reason = _bad_keys(tmp_path)[case]
    with pytest.raises(ConfigError) as excinfo:
        load_signer(config(tmp_path, path))
    message = str(excinfo.value)
    assert message.startswith(f'{KEY} = "{path}": {reason}'), message
    assert "\n" not in message


def test_keys_of_a_domain_that_is_not_local_are_refused(tmp_path: Path) -> None:
    key = write(tmp_path, "e.pem", generate_key(DkimAlgorithm.ED25519_SHA256)[0])
    with pytest.raises(ConfigError, match=r'^dkim\.keys\."example\.com": not a local domain'):
        load_signer(config(tmp_path, key, domains=("example.org",)))


def test_without_dkimpy_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = write(tmp_path, "e.pem", generate_key(DkimAlgorithm.ED25519_SHA256)[0])
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "dkim", None)
    monkeypatch.setitem(sys.modules, "mailio_trio.mailauth.dkim", None)
    with pytest.raises(ConfigError) as excinfo:
        load_signer(config(tmp_path, key))
    assert str(excinfo.value).startswith("dkim.keys: signing needs the mailauth extra")
    assert str(excinfo.value).endswith("pip install 'mailio-trio[mailauth]'")


@pytest.mark.parametrize(
    ("from_domain", "sender_domain", "expected"),
    [
        ("example.com", "example.org", "example.com"),  # From first: DMARC aligns with it
        ("elsewhere.test", "example.com", "example.com"),  # then the envelope sender
        ("mx.example.com", None, "example.com"),  # a subdomain: the closest keyed parent
        ("example.org", "example.org", None),  # local but without keys
        ("elsewhere.test", None, None),
        (None, None, None),
        ("com", None, None),
    ],
)
def test_signing_domain(
    tmp_path: Path, from_domain: str | None, sender_domain: str | None, expected: str | None
) -> None:
    key = write(tmp_path, "e.pem", generate_key(DkimAlgorithm.ED25519_SHA256)[0])
    signer = load_signer(config(tmp_path, key, domains=("example.com", "example.org")))
    assert signer is not None
    assert signer.signing_domain(from_domain, sender_domain) == expected
