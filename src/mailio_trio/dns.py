"""A thin async DNS layer over dnspython, on the Trio backend.

Everything the server looks up (reverse DNS at connect, DNSBL, MX for the
relay) goes through one :class:`DnsResolver`, so the nameservers, the
per-lookup deadline and the cache are configured once (:class:`DnsConfig`).
Plugins and the relay code against the small :class:`Resolver` protocol, so a
test can aim them at a DNS server on loopback
(``mailio_trio.testing.dns``).

Errors are two kinds, because callers act differently on them:

- :class:`DNSNotFound`: the name does not exist (NXDOMAIN) or has no records
  of that type (NODATA). A definitive answer: not listed, no PTR, fall back
  from MX to A/AAAA (RFC 5321 §5.1).
- :class:`DNSTemporaryError`: timeout, SERVFAIL, REFUSED, network errors. Try
  again later (relay) or fail open (DNSBL, reverse DNS).

A null MX (RFC 7505: one MX record ``0 .``) raises :class:`NullMX`, which is
*not* a :class:`DNSNotFound`: the domain says it accepts no mail, and a caller
that falls back to A/AAAA on "no MX" must not do so here (RFC 7505 §3).

Example::

    resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=5353))
    for preference, host in await resolver.mx("example.com"):
        addresses = await resolver.addresses(host)
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Protocol

import attrs
import dns._asyncbackend
import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename
import trio

from mailio_trio.config import DnsConfig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dns.rdtypes.ANY.MX import MX
    from dns.rdtypes.ANY.PTR import PTR
    from dns.rdtypes.ANY.TXT import TXT

__all__ = [
    "DNSError",
    "DNSNotFound",
    "DNSTemporaryError",
    "DnsConfig",
    "DnsResolver",
    "NullMX",
    "Resolver",
    "reverse_name",
]

logger = logging.getLogger("mailio_trio.dns")


class DNSError(Exception):
    """A lookup gave no usable answer; see the subclasses."""


class DNSNotFound(DNSError):
    """NXDOMAIN or no records of the asked type: a definitive "no".

    Attributes:
      nxdomain: ``True`` when the name itself does not exist, ``False`` for NODATA.
    """

    def __init__(self, message: str, *, nxdomain: bool = False) -> None:
        super().__init__(message)
        self.nxdomain = nxdomain


class DNSTemporaryError(DNSError):
    """Timeout, SERVFAIL, REFUSED or a network error: the answer may come later."""


class NullMX(DNSError):
    """The domain publishes a null MX (RFC 7505): it accepts no mail at all."""


class Resolver(Protocol):
    """What plugins and the relay need from DNS; :class:`DnsResolver` is the real one.

    Each lookup ends within the configured timeout; a caller that needs less
    wraps the call in its own cancel scope (``with trio.move_on_after(1):``), as
    reverse DNS at connect does.
    """

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """``(preference, host)`` pairs sorted by preference; hosts without the trailing dot.

        Raises:
          NullMX: The domain has a null MX (RFC 7505).
          DNSNotFound: No such domain, or no MX (fall back to A/AAAA, RFC 5321 §5.1).
          DNSTemporaryError: Try again later.
        """
        ...

    async def addresses(self, host: str) -> list[str]:
        """The A then AAAA addresses of ``host`` (both looked up at once)."""
        ...

    async def a(self, name: str) -> list[str]:
        """The IPv4 addresses of ``name``."""
        ...

    async def aaaa(self, name: str) -> list[str]:
        """The IPv6 addresses of ``name`` (SPF asks for exactly one family, RFC 7208 §5)."""
        ...

    async def ptr(self, ip: str) -> list[str]:
        """The names in the PTR records of address ``ip``, without the trailing dot."""
        ...

    async def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name``, its character-strings joined (RFC 7208 §3.3)."""
        ...


def reverse_name(ip: str, zone: str = "in-addr.arpa") -> str:
    """The name to query under ``zone`` for ``ip``: reversed octets or IPv6 nibbles.

    Example:
      >>> reverse_name("192.0.2.1", "zen.example")
      '1.2.0.192.zen.example'
      >>> reverse_name("2001:db8::1", "bl.example")[:12]
      '1.0.0.0.0.0.'
    """
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        labels = reversed(str(address).split("."))
    else:
        labels = reversed(address.exploded.replace(":", ""))  # RFC 3596 §2.5: nibbles
    return ".".join((*labels, zone.rstrip(".")))


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


@attrs.define(eq=False)
class DnsResolver:
    """The real resolver: dnspython's async stub resolver on Trio, with a TTL cache.

    Args:
      config: Nameservers (empty: the system's ``resolv.conf``, read on first
        use), port, the per-lookup deadline and the cache size.
    """

    config: DnsConfig = attrs.field(factory=DnsConfig)
    _resolver: dns.asyncresolver.Resolver | None = attrs.field(default=None, init=False)
    _backend: dns._asyncbackend.Backend = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # dnspython detects the running library with sniffio; naming Trio is cheaper and sure.
        self._backend = dns.asyncbackend.get_backend("trio")

    def _stub(self) -> dns.asyncresolver.Resolver:
        if self._resolver is not None:
            return self._resolver
        config = self.config
        if config.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(config.nameservers)
        else:
            try:
                resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration as exc:
                raise DNSTemporaryError(f"no DNS resolver configured: {exc}") from None
        # Plain addresses are paired with this port when each query is sent.
        resolver.port = config.port
        # One deadline for the whole lookup; dnspython splits it over retries and servers.
        resolver.lifetime = config.timeout
        resolver.timeout = config.timeout
        # Names we are given are absolute: never append the host's search domains.
        resolver.use_search_by_default = False
        if config.cache_size:
            resolver.cache = dns.resolver.LRUCache(config.cache_size)
        self._resolver = resolver
        return resolver

    async def _resolve(
        self, name: str | dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.resolver.Answer:
        lifetime = self.config.timeout
        try:
            qname = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            # A hostile PTR or HELO name can be anything; one that is no DNS name has no records.
            raise DNSNotFound(f"{name!r} is not a valid DNS name: {exc}") from None
        what = f"{rdtype.name} {_text(qname)}"
        resolver = self._stub()
        # dnspython keeps its own deadline with time.time(); this one is on Trio's clock
        # and bounds the lookup even if dnspython's accounting went wrong.
        with trio.move_on_after(lifetime):
            try:
                return await resolver.resolve(
                    qname, rdtype, lifetime=lifetime, search=False, backend=self._backend
                )
            except dns.resolver.NXDOMAIN:
                raise DNSNotFound(f"{what}: no such domain", nxdomain=True) from None
            except dns.resolver.NoAnswer:
                raise DNSNotFound(f"{what}: no records of that type") from None
            except dns.exception.Timeout:
                raise DNSTemporaryError(f"{what}: timed out after {lifetime}s") from None
            except dns.resolver.NoNameservers as exc:
                # Every server answered SERVFAIL/REFUSED or could not be reached.
                raise DNSTemporaryError(f"{what}: {exc}") from None
            except (dns.exception.DNSException, OSError) as exc:
                raise DNSTemporaryError(f"{what}: {type(exc).__name__}: {exc}") from None
        raise DNSTemporaryError(f"{what}: timed out after {lifetime}s")

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        answer = await self._resolve(domain, dns.rdatatype.MX)
        records: list[MX] = list(answer)
        if len(records) == 1 and records[0].exchange == dns.name.root:
            raise NullMX(f"{domain} accepts no mail (null MX, RFC 7505)")
        # RFC 7505 §3: a null MX beside real ones is a misconfiguration; use the real ones.
        pairs = [(r.preference, _text(r.exchange)) for r in records if r.exchange != dns.name.root]
        return sorted(pairs)

    async def a(self, name: str) -> list[str]:
        answer = await self._resolve(name, dns.rdatatype.A)
        return [r.to_text() for r in answer]

    async def aaaa(self, name: str) -> list[str]:
        answer = await self._resolve(name, dns.rdatatype.AAAA)
        return [r.to_text() for r in answer]

    async def addresses(self, host: str) -> list[str]:
        results: dict[str, list[str] | DNSError] = {}

        async def one(kind: str) -> None:
            try:
                results[kind] = await (self.a if kind == "A" else self.aaaa)(host)
            except DNSError as exc:
                results[kind] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A")
            nursery.start_soon(one, "AAAA")
        found = [ip for kind in ("A", "AAAA") if isinstance(r := results[kind], list) for ip in r]
        if found:
            return found
        errors = [e for e in results.values() if isinstance(e, DNSError)]
        if temporary := [e for e in errors if isinstance(e, DNSTemporaryError)]:
            raise temporary[0]
        nxdomain = any(isinstance(e, DNSNotFound) and e.nxdomain for e in errors)
        raise DNSNotFound(f"{host}: no A or AAAA records", nxdomain=nxdomain)

    async def ptr(self, ip: str) -> list[str]:
        try:
            name = dns.reversename.from_address(ip)
        except (ValueError, dns.exception.DNSException):
            raise DNSNotFound(f"{ip!r} is not an IP address") from None
        answer = await self._resolve(name, dns.rdatatype.PTR)
        records: Sequence[PTR] = list(answer)
        return [_text(r.target) for r in records]

    async def txt(self, name: str) -> list[str]:
        answer = await self._resolve(name, dns.rdatatype.TXT)
        records: Sequence[TXT] = list(answer)
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]
