"""Matching client addresses against configured networks (CIDRs).

Shared by the server (per-address limits) and the plugins (DNSBL and early-talker
exemptions, trusted networks), so it lives below both.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Network", "in_networks", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=64)
def parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; raises ``ValueError`` naming the bad one.

    Cached: dnsbl, pregreet and the limits ask per connection or per RCPT for
    the same configured tuples, which only a new configuration changes.
    """
    return tuple(ipaddress.ip_network(str(v).strip(), strict=False) for v in values)


def in_networks(ip: str, networks: Iterable[Network]) -> bool:
    """Whether ``ip`` is in any of ``networks`` (an IPv4-mapped IPv6 address counts as IPv4)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)
