"""The ``[tls]`` section: where the certificate lives and what clients must offer.

``mailio_trio.tls`` builds the ``ssl.SSLContext`` from it; this module only
validates, so the configuration tree needs nothing of the TLS machinery.
"""

from __future__ import annotations

import enum
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from mailio_trio.config._validators import ConfigError

if TYPE_CHECKING:
    import os

__all__ = ["TLSConfig", "TLSVersion"]


class TLSVersion(enum.Enum):
    """The lowest protocol version a client may negotiate."""

    TLS_1_2 = "TLSv1.2"
    TLS_1_3 = "TLSv1.3"

    @property
    def ssl_version(self) -> ssl.TLSVersion:
        return ssl.TLSVersion.TLSv1_2 if self is TLSVersion.TLS_1_2 else ssl.TLSVersion.TLSv1_3


def _version(value: str | TLSVersion) -> TLSVersion:
    if isinstance(value, TLSVersion):
        return value
    for member in TLSVersion:
        if str(value).replace(" ", "").lower() in (member.value.lower(), member.value[4:]):
            return member
    allowed = ", ".join(repr(m.value) for m in TLSVersion)
    raise ConfigError(f"tls.minimum_version = {value!r}: must be one of {allowed}")


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None or value == "" else Path(value)


@attrs.frozen(kw_only=True)
class TLSConfig:
    """Where the server's certificate lives and what clients must offer.

    Example:
      >>> TLSConfig(cert="/etc/mail/cert.pem", key="/etc/mail/key.pem").enabled
      True
    """

    _section = "tls"

    cert: Path | None = attrs.field(default=None, converter=_optional_path)
    """PEM certificate chain (leaf first). Without it STARTTLS and SMTPS are off."""
    key: Path | None = attrs.field(default=None, converter=_optional_path)
    """PEM private key; may be omitted when ``cert`` holds the key too."""
    ca: Path | None = attrs.field(default=None, converter=_optional_path)
    """PEM CA bundle used to verify client certificates (with ``request_client_cert``)."""
    request_client_cert: bool = False
    """Ask clients for a certificate; one that fails verification fails the handshake.
    A client without one is still served (MTAs rarely have one)."""
    minimum_version: TLSVersion = attrs.field(default=TLSVersion.TLS_1_2, converter=_version)
    ciphers: str | None = None
    """An OpenSSL cipher string for TLS 1.2; ``None`` keeps OpenSSL's defaults."""

    def __attrs_post_init__(self) -> None:
        if self.key is not None and self.cert is None:
            raise ConfigError(f"tls.key = {str(self.key)!r}: needs tls.cert as well")
        if self.request_client_cert and self.ca is None:
            raise ConfigError(
                "tls.request_client_cert = true: needs tls.ca, "
                "the CAs that sign client certificates"
            )

    @property
    def enabled(self) -> bool:
        return self.cert is not None
