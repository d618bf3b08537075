"""The ``[auth]`` section: where AUTH may be used, and the built-in user table.

The exchange itself is ``plugins/auth.py``; this module only validates, so the
configuration tree depends on no plugin.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

from mailio_trio.config._validators import ConfigError
from mailio_trio.passwords import PasswordHashError, check_hash_format

__all__ = ["AuthConfig", "Mechanism"]


class Mechanism(enum.Enum):
    PLAIN = "PLAIN"  # RFC 4616
    LOGIN = "LOGIN"  # draft-murchison-sasl-login; what Outlook and smtplib speak
    CRAM_MD5 = "CRAM-MD5"  # RFC 2195; needs the plain secret on the server side


def _mechanisms(value: Iterable[str | Mechanism]) -> tuple[Mechanism, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    out: list[Mechanism] = []
    for item in value:
        try:
            mech = item if isinstance(item, Mechanism) else Mechanism(str(item).upper())
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in Mechanism)
            raise ConfigError(f"auth.mechanisms: {item!r} is not one of {allowed}") from None
        if mech not in out:
            out.append(mech)
    if not out:
        raise ConfigError("auth.mechanisms = []: name at least one mechanism")
    return tuple(out)


def _users(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f'auth.users: must be a table of USER = "<hash>", not {value!r}')
    for name, stored in value.items():
        try:
            check_hash_format(stored if isinstance(stored, str) else "")
        except PasswordHashError as exc:
            # The value is not echoed: it may be a password pasted by mistake.
            raise ConfigError(
                f"auth.users.{name}: {exc}; make one with `mailio-trio passwd {name}`"
            ) from None
    return dict(value)


@attrs.frozen(kw_only=True)
class AuthConfig:
    """Where AUTH may be used and the built-in user table."""

    _section = "auth"

    allow_insecure: bool = False
    """Offer and accept AUTH without TLS (passwords then cross the network in clear)."""
    mechanisms: tuple[Mechanism, ...] = attrs.field(
        default=(Mechanism.PLAIN, Mechanism.LOGIN), converter=_mechanisms
    )
    """Offered in this order. CRAM-MD5 only with a handler that knows plain secrets."""
    users: Mapping[str, str] = attrs.field(factory=dict, converter=_users, repr=False)
    """User name → ``mailio-trio passwd`` hash, checked by ``auth/users``."""

    def __attrs_post_init__(self) -> None:
        if Mechanism.CRAM_MD5 in self.mechanisms and self.users:
            raise ConfigError(
                "auth.mechanisms: CRAM-MD5 needs the plain secret, but auth.users stores "
                "only hashes; drop CRAM-MD5 or check credentials in an auth handler"
            )
