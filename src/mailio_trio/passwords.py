"""Salted password hashes for the built-in ``[auth.users]`` table.

Hashes are scrypt (RFC 7914, ``hashlib.scrypt``: memory-hard, in the standard
library) written as one modular-crypt-style string, so the parameters and the
salt travel with the hash::

    $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>

``ln`` is log2 of the cost N. The defaults (N=2**15, r=8, p=1, 32 MiB, about
0.1 s) follow OWASP's scrypt floor; the parameters travel with each hash so
raising them later does not invalidate stored ones. This module never logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = ["PasswordHashError", "hash_password", "verify_password"]

DEFAULT_LOG_N = 15
DEFAULT_R = 8
DEFAULT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# The cost parameters come from the config file: bound them, so a typo cannot
# make every login allocate gigabytes.
_MAX_LOG_N = 20
_MAX_R = 32
_MAX_P = 16

_FORMAT = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/.]+={0,2})\$(?P<hash>[A-Za-z0-9+/.]+={0,2})"
)


class PasswordHashError(ValueError):
    """A stored hash is not in the ``$scrypt$...`` form (a config error, not a failed login)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: bytes, salt: bytes, log_n: int, r: int, p: int, length: int) -> bytes:
    n = 1 << log_n
    # hashlib's default maxmem (32 MiB) is just under what N=2**15, r=8 needs (128·r·N + overhead).
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def hash_password(password: str, *, log_n: int = DEFAULT_LOG_N) -> str:
    """A new salted hash of ``password`` for the ``[auth.users]`` table.

    Example:
      >>> verify_password("s3cret", hash_password("s3cret", log_n=10))
      True
    """
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password.encode("utf-8"), salt, log_n, DEFAULT_R, DEFAULT_P, _HASH_BYTES)
    return f"$scrypt$ln={log_n},r={DEFAULT_R},p={DEFAULT_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> re.Match[str]:
    m = _FORMAT.fullmatch(stored)
    if m is None:
        raise PasswordHashError("not a $scrypt$ln=..,r=..,p=..$salt$hash string")
    ln, r, p = int(m["ln"]), int(m["r"]), int(m["p"])
    if not (1 <= ln <= _MAX_LOG_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise PasswordHashError(
            f"scrypt parameters out of range (ln 1-{_MAX_LOG_N}, r 1-{_MAX_R}, p 1-{_MAX_P})"
        )
    return m


def check_hash_format(stored: str) -> None:
    """Raise :class:`PasswordHashError` unless ``stored`` is a hash this module can verify."""
    _parse(stored)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; constant-time comparison.

    Blocking (scrypt is slow on purpose): call it from a worker thread in async code.

    Raises:
      PasswordHashError: ``stored`` is malformed.
    """
    m = _parse(stored)
    expected = _unb64(m["hash"])
    digest = _scrypt(
        password.encode("utf-8"),
        _unb64(m["salt"]),
        int(m["ln"]),
        int(m["r"]),
        int(m["p"]),
        len(expected),
    )
    return hmac.compare_digest(digest, expected)


# Checked against for unknown users, so a missing user costs as long as a wrong
# password and response times do not reveal which accounts exist.
DUMMY_HASH = (
    "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)
