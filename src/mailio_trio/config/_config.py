"""``Config``: the whole server's configuration, one attrs tree.

Sections typed on :class:`Config` live in this package (``mailio_trio.config``);
an optional plugin's own table lives in the plugin and is reached through
``Config.plugins["command/name"]`` (see ``docs/configuration.md``).
"""

from __future__ import annotations

import enum
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from mailio_trio.config._auth import AuthConfig
from mailio_trio.config._dkim import DkimConfig
from mailio_trio.config._mailauth import MailauthConfig
from mailio_trio.config._metrics import MetricsConfig, RedisConfig
from mailio_trio.config._sections import DnsConfig, Limits, MaildirConfig, RelayConfig
from mailio_trio.config._tls import TLSConfig
from mailio_trio.config._toml import (
    build_section,
    config_from_table,
    config_to_table,
    dumps,
    load_toml,
)
from mailio_trio.config._validators import (
    ConfigError,
    networks,
    parse_listen,
    positive,
    show,
    strings,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Config", "ProxyUntrusted"]


class ProxyUntrusted(enum.Enum):
    """What ``proxy_protocol`` does with a connection from outside ``proxy_trusted``."""

    REFUSE = "refuse"
    """Close it unanswered: only the balancers may reach a port that expects a header."""
    SMTP = "smtp"
    """Serve it as plain SMTP, its own address standing; a PROXY line is then one
    more unrecognized command (``500 5.5.1``), never believed."""


def _proxy_untrusted(value: str | ProxyUntrusted) -> ProxyUntrusted:
    if isinstance(value, ProxyUntrusted):
        return value
    try:
        return ProxyUntrusted(str(value).lower())
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in ProxyUntrusted)
        raise ConfigError(
            f"server.proxy_untrusted = {show(value)}: must be one of {allowed}"
        ) from None


def _proxy_trusted(value: Any) -> tuple[str, ...]:
    return networks(value, "server.proxy_trusted")


T = TypeVar("T")


def _listen(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value:
        raise ConfigError("server.listen = []: must list at least one HOST:PORT")
    for item in value:
        try:
            parse_listen(item)
        except ValueError as exc:
            raise ConfigError(f"server.listen = {show(item)}: {exc}") from None


def _hostname() -> str:
    return socket.getfqdn() or "localhost"


def _domains(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    return tuple(d.strip().lower().rstrip(".") for d in value)


def _section(cls: type[T], value: Any, where: str) -> T:
    """A section field's value: its class, or its table built as ``[where]`` in TOML.

    Every section of :class:`Config` takes a plain mapping (``maildir={"root": d}``)
    through the same builder as a file, so a wrong key or type is the file's one
    line at construction, not an ``AttributeError`` deep in plugin registration.
    Each field names its own converter below (the attrs mypy plugin needs named ones).
    """
    if isinstance(value, cls):
        return value
    built: T = build_section(cls, value, where)
    return built


def _limits(value: Any) -> Limits:
    return _section(Limits, value, "limits")


def _dns(value: Any) -> DnsConfig | None:
    return None if value is None else _section(DnsConfig, value, "dns")


def _maildir(value: Any) -> MaildirConfig:
    return _section(MaildirConfig, value, "maildir")


def _relay(value: Any) -> RelayConfig:
    return _section(RelayConfig, value, "relay")


def _mailauth(value: Any) -> MailauthConfig:
    return _section(MailauthConfig, value, "mailauth")


def _metrics(value: Any) -> MetricsConfig:
    return _section(MetricsConfig, value, "metrics")


def _redis(value: Any) -> RedisConfig:
    return _section(RedisConfig, value, "redis")


def _tls(value: Any) -> TLSConfig:
    return _section(TLSConfig, value, "tls")


def _auth(value: Any) -> AuthConfig:
    return _section(AuthConfig, value, "auth")


def _dkim(value: Any) -> DkimConfig:
    return _section(DkimConfig, value, "dkim")


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
    limits: Limits = attrs.field(factory=Limits, converter=_limits)
    strict_helo: bool = True
    """Refuse HELO/EHLO names that are not a domain or address literal."""
    smtputf8: bool = True
    eight_bit_mime: bool = True
    pipelining: bool = True
    chunking: bool = True
    """Offer CHUNKING (RFC 3030): messages sent in ``BDAT`` chunks, without BINARYMIME."""
    enhanced_status_codes: bool = True
    lmtp: bool = False
    """Speak LMTP (RFC 2033) instead of SMTP: ``LHLO`` greets (HELO and EHLO are
    ``500``), and after the message each accepted recipient gets its own reply."""
    spool_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """Where DATA bodies are streamed while handlers run; ``None`` is the system temp dir."""
    dns: DnsConfig | None = attrs.field(default=None, converter=_dns)
    """The resolver for reverse DNS at connect, DNSBL and other lookups; ``None``: no
    lookups by the server itself (reverse DNS off; plugins that need DNS say so)."""
    plugins: Mapping[str, Any] = attrs.field(factory=dict)
    """Per-handler configuration by ``"command/name"``; ``False`` disables a handler."""
    listen: tuple[str, ...] = attrs.field(
        default=("127.0.0.1:2525",), converter=strings, validator=_listen
    )
    """``HOST:PORT`` addresses ``mailio-trio serve`` listens on (``Server.serve`` takes its own)."""
    maildir: MaildirConfig = attrs.field(factory=MaildirConfig, converter=_maildir)
    tls: TLSConfig = attrs.field(factory=lambda: _tls({}), converter=_tls)
    """Certificate for STARTTLS and SMTPS; a ``TLSConfig`` or its table (see ``tls.py``)."""
    auth: AuthConfig = attrs.field(factory=lambda: _auth({}), converter=_auth)
    """Where AUTH may be used, and the ``[auth.users]`` table (see ``plugins/auth.py``)."""
    relay: RelayConfig = attrs.field(factory=RelayConfig, converter=_relay)
    mailauth: MailauthConfig = attrs.field(factory=MailauthConfig, converter=_mailauth)
    """Email authentication on receipt: authserv-id and trusted networks (``[mailauth]``)."""
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig, converter=_metrics)
    """The Prometheus and health-check listener (``[metrics]``); off by default."""
    redis: RedisConfig = attrs.field(factory=RedisConfig, converter=_redis)
    """State shared by several servers (``[redis]``); off by default."""
    dkim: DkimConfig = attrs.field(factory=DkimConfig, converter=_dkim)
    """DKIM keys of local domains: the relay signs (and ARC-seals) what it sends."""
    worker_parent_check: float = attrs.field(default=1.0, validator=positive)
    """Seconds between a ``--workers`` child's checks that its parent still lives,
    where the kernel cannot tell it (Linux's ``PR_SET_PDEATHSIG`` needs no polling).
    One ``getppid()`` a second costs nothing and leaves an orphan serving for a second."""

    proxy_protocol: bool = False
    """Expect a PROXY protocol header (HAProxy's, v1 or v2) before SMTP from the
    ``proxy_trusted`` peers, and serve the client it names (``docs/deploy.md``)."""
    proxy_trusted: tuple[str, ...] = attrs.field(default=(), converter=_proxy_trusted)
    """CIDRs of the load balancers whose PROXY headers are believed."""
    proxy_timeout: float = attrs.field(default=5.0, validator=positive)
    """Seconds a trusted peer has for the whole header; a balancer sends it at once."""
    proxy_untrusted: ProxyUntrusted = attrs.field(
        default=ProxyUntrusted.REFUSE, converter=_proxy_untrusted
    )
    """``refuse`` (close) or ``smtp`` (serve without a header) a peer outside ``proxy_trusted``."""

    def __attrs_post_init__(self) -> None:
        if self.proxy_protocol and not self.proxy_trusted:
            raise ConfigError(
                "server.proxy_protocol = true: server.proxy_trusted must list the load "
                "balancers' networks (nobody else's header may be believed)"
            )
        if not self.domains:
            host = self.hostname.lower().rstrip(".")
            parent = host.split(".", 1)[1] if host.count(".") >= 2 else host
            object.__setattr__(self, "domains", (parent,))
        if self.relay.enabled and self.relay.spool_dir is None:
            # The rule `serve --relay` always had, here so files and code get it too.
            if self.spool_dir is None:
                raise ConfigError(
                    "relay.spool_dir: required when relaying; set it, or set "
                    "server.spool_dir (the relay spool is then its relay/ directory)"
                )
            relay = attrs.evolve(self.relay, spool_dir=self.spool_dir / "relay")
            object.__setattr__(self, "relay", relay)

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> Config:
        """Build from a TOML-shaped table: ``[server]``, ``[limits]``, ``[maildir]``, ``[plugins]``.

        Raises:
          ConfigError: One line naming the key, the value and what is allowed.
        """
        return config_from_table(cls, table)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Config:
        """Load a TOML file (see ``docs/configuration.md``).

        Raises:
          ConfigError: Unreadable file, TOML syntax, or a bad value; the line
            starts with the file name.
        """
        table = load_toml(path)
        try:
            return cls.from_mapping(table)
        except ConfigError as exc:
            raise ConfigError(f"{os.fspath(path)}: {exc}") from None

    def to_table(self) -> dict[str, Any]:
        """This configuration as a TOML-shaped table; ``from_mapping`` reads it back."""
        return config_to_table(self)

    def to_toml(self) -> str:
        """This configuration as TOML text (``mailio-trio config show``)."""
        return dumps(self.to_table())
