"""Configuration: attrs classes with defaults, validated where they are built.

A leaf package: it imports only ``mailio_trio.protocol`` (and the stdlib-only
``passwords`` format check), never the server, TLS machinery or a plugin.

One rule for where configuration lives: a field of ``Config`` (a section
such as ``[limits]``, ``[tls]`` or ``[auth]``) lives here; an optional
plugin's own table lives in the plugin and is reached through
``Config.plugins["command/name"]``.
"""

from __future__ import annotations

from mailio_trio.config._auth import AuthConfig, Mechanism
from mailio_trio.config._config import Config, ProxyUntrusted
from mailio_trio.config._dkim import DkimConfig, DkimKey
from mailio_trio.config._mailauth import MailauthConfig
from mailio_trio.config._metrics import MetricsConfig, RedisConfig
from mailio_trio.config._sections import DnsConfig, Limits, MaildirConfig, RelayConfig
from mailio_trio.config._tls import TLSConfig, TLSVersion
from mailio_trio.config._transports import Transport
from mailio_trio.config._validators import ConfigError, networks, parse_listen, show

__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "DkimConfig",
    "DkimKey",
    "DnsConfig",
    "Limits",
    "MailauthConfig",
    "MaildirConfig",
    "Mechanism",
    "MetricsConfig",
    "ProxyUntrusted",
    "RedisConfig",
    "RelayConfig",
    "TLSConfig",
    "TLSVersion",
    "Transport",
    "networks",
    "parse_listen",
    "show",
]

# Documented and shown (repr, tracebacks, Sphinx) under the public path, as trio does.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("mailio_trio.config."):
        _obj.__module__ = __name__
