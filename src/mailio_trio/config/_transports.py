"""Per-domain transports (``[relay.transports]``), as Postfix's ``transport_maps``.

A domain listed here is delivered only through its transport, from the relay
spool and by its worker (retries, bounces, DSNs), never to the maildir:
``"example.com" = "lmtp:unix:/run/dovecot/lmtp"`` or
``"example.com" = "lmtp:inet:127.0.0.1:24"`` (an IPv6 address in brackets,
``lmtp:inet:[::1]:24``). Only LMTP (RFC 2033) exists so far.
"""

from __future__ import annotations

from typing import Any

import attrs

from mailio_trio.config._validators import ConfigError, show

__all__ = ["Transport", "parse_transport", "transports"]

_FORMS = '"lmtp:unix:/path/to/socket" or "lmtp:inet:host:port"'


@attrs.frozen
class Transport:
    """Where one domain's mail goes.

    Attributes:
      protocol: ``"lmtp"``.
      unix_path: The Unix socket to connect to, or ``None`` for TCP.
      host: The TCP host (no brackets), or ``None`` for a Unix socket.
      port: The TCP port, or 0 for a Unix socket.
    """

    protocol: str
    unix_path: str | None = None
    host: str | None = None
    port: int = 0

    @property
    def name(self) -> str:
        """For logs and DSNs' ``Remote-MTA``: the socket path or ``host:port``."""
        return self.unix_path if self.unix_path is not None else f"{self.host}:{self.port}"


def parse_transport(value: str, where: str = "transport") -> Transport:
    """Parse ``lmtp:unix:<path>`` or ``lmtp:inet:<host>:<port>``.

    Raises:
      ConfigError: One line naming ``where``, the value and the allowed forms.

    Example:
      >>> parse_transport("lmtp:inet:127.0.0.1:24")
      Transport(protocol='lmtp', unix_path=None, host='127.0.0.1', port=24)
    """
    if not isinstance(value, str):
        raise ConfigError(f"{where} = {show(value)}: must be a string, {_FORMS}")
    protocol, _, rest = value.partition(":")
    kind, _, address = rest.partition(":")
    problem = None
    if protocol.lower() != "lmtp":
        problem = f"unknown transport {protocol!r}: only lmtp exists"
    elif kind == "unix":
        if not address.startswith("/"):
            problem = "the Unix socket must be an absolute path"
        else:
            return Transport("lmtp", unix_path=address)
    elif kind == "inet":
        host, _, port = address.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            problem = "needs host:port with a port from 1 to 65535"
        else:
            return Transport("lmtp", host=host, port=int(port))
    else:
        problem = "the second part must be unix or inet"
    raise ConfigError(f"{where} = {show(value)}: {problem} ({_FORMS})")


def transports(value: Any) -> dict[str, str]:
    """The ``relay.transports`` converter: domains lower-cased, every value checked."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"relay.transports = {show(value)}: must be a table of domain = transport"
        )
    out: dict[str, str] = {}
    for domain, transport in value.items():
        if not isinstance(domain, str) or not domain or "@" in domain:
            raise ConfigError(f"relay.transports: {show(domain)} is not a domain")
        parse_transport(transport, f'relay.transports."{domain}"')
        out[domain.lower().rstrip(".")] = transport
    return out
