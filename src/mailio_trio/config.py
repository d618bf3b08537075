"""Configuration: attrs classes with defaults, validated where they are built.

Every limit, timeout and policy lives here with its default beside the reason
for it. Values come from code (``Config(...)``), and a bad one is refused with
one line naming the key, the value and what is allowed (:class:`ConfigError`).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.protocol import BareLineEndings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailio_trio.plugins.auth import AuthConfig
    from mailio_trio.tls import TLSConfig

__all__ = ["Config", "ConfigError", "Limits"]


class ConfigError(ValueError):
    """A configuration value that cannot work; the message is one line for the operator."""


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"{_key(instance, attribute)} = {value!r}: must be a number greater than 0"
        )


def _at_least(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(
                f"{_key(instance, attribute)} = {value!r}: must be a whole number >= {minimum}"
            )

    return check


def _key(instance: object, attribute: attrs.Attribute[Any]) -> str:
    section = getattr(type(instance), "_section", "")
    return f"{section}.{attribute.name}" if section else attribute.name


def _bare_line_endings(value: str | BareLineEndings) -> BareLineEndings:
    if isinstance(value, BareLineEndings):
        return value
    try:
        return BareLineEndings(str(value).lower())
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in BareLineEndings)
        raise ConfigError(
            f"limits.bare_line_endings = {value!r}: must be one of {allowed}"
        ) from None


@attrs.frozen(kw_only=True)
class Limits:
    """What one client may cost us; defaults follow mail-io where it set one."""

    _section = "limits"

    idle_timeout: float = attrs.field(default=60.0, validator=_positive)
    """Seconds from the last complete command line to the next (RFC 5321 §4.5.3.2.7 says 5 min)."""
    handler_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Seconds one handler may take before the client gets ``451 4.3.0``."""
    data_timeout: float = attrs.field(default=600.0, validator=_positive)
    """Seconds for the whole DATA phase, so a drip-feeding client cannot hold a slot forever."""
    tls_handshake_timeout: float = attrs.field(default=30.0, validator=_positive)
    shutdown_grace: float = attrs.field(default=30.0, validator=_positive)
    """Seconds a transaction in DATA may take to finish once shutdown starts."""
    message_size: int = attrs.field(default=100 * 1024 * 1024, validator=_at_least(1))
    """Octets; advertised with SIZE and enforced while streaming."""
    max_connections: int = attrs.field(default=100, validator=_at_least(1))
    max_recipients: int = attrs.field(default=100, validator=_at_least(1))
    unrecognized_commands: int = attrs.field(default=5, validator=_at_least(1))
    auth_failures: int = attrs.field(default=5, validator=_at_least(1))
    # RFC 5321 §4.5.3.1.4: 510 octets of command + CRLF = 512.
    command_line_length: int = attrs.field(default=512, validator=_at_least(64))
    # RFC 5321 §4.5.3.1.6: 998 octets of text + CRLF = 1000; 0 turns the check off.
    text_line_length: int = attrs.field(default=1000, validator=_at_least(0))
    bare_line_endings: BareLineEndings = attrs.field(
        default=BareLineEndings.NORMALISE, converter=_bare_line_endings
    )
    """``normalise`` bare CR/LF to CRLF inside DATA (as Postfix 3.9), or ``reject`` the message."""


def _hostname() -> str:
    return socket.getfqdn() or "localhost"


def _domains(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    return tuple(d.strip().lower().rstrip(".") for d in value)


def _tls(value: Any) -> TLSConfig:
    from mailio_trio.tls import TLSConfig  # tls.py imports ConfigError from here

    return value if isinstance(value, TLSConfig) else TLSConfig.from_mapping(value)


def _auth(value: Any) -> AuthConfig:
    from mailio_trio.plugins.auth import AuthConfig  # it imports ConfigError from here

    return value if isinstance(value, AuthConfig) else AuthConfig.from_mapping(value)


@attrs.frozen(kw_only=True)
class Config:
    """The server's configuration.

    Example:
      >>> Config(hostname="mx.example.com", domains=["example.com"]).domains
      ('example.com',)
    """

    hostname: str = attrs.field(factory=_hostname)
    """Our name in the greeting, EHLO reply and ``Received:``."""
    greeting: str = "mailio_trio ESMTP"
    domains: tuple[str, ...] = attrs.field(default=(), converter=_domains)
    """Local domains; empty means the domain part of ``hostname``."""
    limits: Limits = attrs.field(factory=Limits)
    strict_helo: bool = True
    """Refuse HELO/EHLO names that are not a domain or address literal."""
    smtputf8: bool = True
    eight_bit_mime: bool = True
    pipelining: bool = True
    enhanced_status_codes: bool = True
    spool_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """Where DATA bodies are streamed while handlers run; ``None`` is the system temp dir."""
    plugins: Mapping[str, Any] = attrs.field(factory=dict)
    """Per-handler configuration by ``"command/name"``; ``False`` disables a handler."""
    tls: TLSConfig = attrs.field(factory=lambda: _tls({}), converter=_tls)
    """Certificate for STARTTLS and SMTPS; a ``TLSConfig`` or its table (see ``tls.py``)."""
    auth: AuthConfig = attrs.field(factory=lambda: _auth({}), converter=_auth)
    """Where AUTH may be used, and the ``[auth.users]`` table (see ``plugins/auth.py``)."""

    def __attrs_post_init__(self) -> None:
        if not self.domains:
            host = self.hostname.lower().rstrip(".")
            parent = host.split(".", 1)[1] if host.count(".") >= 2 else host
            object.__setattr__(self, "domains", (parent,))

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains
