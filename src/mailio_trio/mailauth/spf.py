"""SPF: is this client allowed to send mail for this domain? (RFC 7208).

:func:`check_host` is RFC 7208's ``check_host()`` over the Trio DNS layer
(:class:`mailio_trio.dns.Resolver`); :func:`check_helo` checks the HELO
identity (RFC 7208 §2.3). Parsing and macro expansion are sans-I/O, in
:mod:`mailio_trio.mailauth._spf_record`; this module owns the lookups and
their limits.

Limits (:class:`SpfConfig`), because a record is hostile input that makes us
send DNS queries (RFC 7208 §4.6.4, §11.1):

- at most 10 terms that cost a DNS lookup (``include a mx ptr exists`` and
  ``redirect``) per check, includes and redirects included; the 11th is a
  ``permerror``;
- at most 2 *void* lookups (NXDOMAIN or no records): counted once per term,
  for the query the term itself makes (the A/AAAA of ``a``, the MX of ``mx``,
  the PTR of ``ptr``, the A of ``exists``), not for the address lookups of MX
  hosts or PTR names, which have their own limit; the 3rd is a ``permerror``;
- at most 10 MX hosts looked up per ``mx`` (one more is a ``permerror``) and
  10 PTR names per ``ptr`` or ``%{p}`` (the rest are ignored);
- one overall deadline (RFC 7208 §4.6.4 asks for at least 20 s); past it the
  result is ``temperror``.

DNS errors: :class:`~mailio_trio.dns.DNSNotFound` is a void lookup and
matches nothing; :class:`~mailio_trio.dns.DNSTemporaryError` makes the whole
check ``temperror`` (RFC 7208 §5), except in ``ptr`` and ``%{p}``, where a
failed lookup only skips that name (§5.5), and for ``exp=``, which is then
ignored (§6.2).

Only TXT records are read: the SPF RR type (99) is obsolete (RFC 7208 §3.1,
§14.1) and never queried.

Example::

    result = await check_host(
        "192.0.2.1", "example.com", "alice@example.com",
        helo="mail.example.com", resolver=DnsResolver(),
    )
    if result.result is SpfResult.FAIL:
        reply = f"550 5.7.23 {result.explanation or result.reason}"
"""

from __future__ import annotations

import enum
import ipaddress
import time
from typing import TYPE_CHECKING, ClassVar

import attrs
import trio

from mailio_trio.dns import DNSError, DNSNotFound, DNSTemporaryError, NullMX
from mailio_trio.mailauth._spf_record import (
    DNS_KINDS,
    Kind,
    MacroContext,
    MacroString,
    Mechanism,
    PermError,
    Record,
    domain_problem,
    expand,
    expand_domain,
    is_spf_record,
    parse_explanation,
    parse_record,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailio_trio.dns import Resolver

__all__ = ["Result", "SpfConfig", "SpfResult", "check_helo", "check_host"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Result(enum.Enum):
    """The seven results of RFC 7208 §2.6; values as Authentication-Results spells them."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@attrs.frozen(kw_only=True)
class SpfConfig:
    """Limits of one SPF check (RFC 7208 §4.6.4); the defaults are the RFC's.

    Attributes:
      lookup_limit: Terms that cost a DNS lookup, per check.
      void_lookup_limit: Terms whose lookup found nothing, per check.
      mx_limit: MX hosts whose addresses one ``mx`` may look up.
      ptr_limit: PTR names one ``ptr`` or ``%{p}`` considers.
      timeout: Seconds for the whole check, on Trio's clock.
      receiver: The ``%{r}`` macro in explanations: our own domain.
    """

    lookup_limit: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    void_lookup_limit: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    mx_limit: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    ptr_limit: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    timeout: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    receiver: str = "unknown"


@attrs.frozen(kw_only=True)
class SpfResult:
    """The outcome of one check.

    ``SpfResult.PASS`` and the other :class:`Result` members are reachable here
    too, so ``result.result is SpfResult.FAIL`` reads as it should.

    Attributes:
      result: What RFC 7208 says to make of it.
      domain: The domain checked (the MAIL FROM domain, or the HELO name).
      sender: The identity checked, ``local-part@domain``.
      mechanism: The term that decided (``"-all"``, ``"include:_spf.example.com"``),
        ``None`` when none did.
      explanation: The ``exp=`` text of a ``fail``, expanded; ``None`` without one.
      reason: A short human-readable why, for an Authentication-Results comment.
    """

    PASS: ClassVar[Result] = Result.PASS
    FAIL: ClassVar[Result] = Result.FAIL
    SOFTFAIL: ClassVar[Result] = Result.SOFTFAIL
    NEUTRAL: ClassVar[Result] = Result.NEUTRAL
    NONE: ClassVar[Result] = Result.NONE
    TEMPERROR: ClassVar[Result] = Result.TEMPERROR
    PERMERROR: ClassVar[Result] = Result.PERMERROR

    result: Result
    domain: str
    sender: str
    mechanism: str | None = None
    explanation: str | None = None
    reason: str = ""


class _TempError(Exception):
    """A DNS lookup a mechanism depends on failed: the check's result is ``temperror``."""


@attrs.frozen
class _Verdict:
    """One record's evaluation, before the top level words it."""

    result: Result
    mechanism: str | None = None
    explanation: str | None = None
    reason: str = ""


_MATCH = {
    "+": Result.PASS,
    "-": Result.FAIL,
    "~": Result.SOFTFAIL,
    "?": Result.NEUTRAL,
}


def _client_address(ip: str | IPAddress) -> IPAddress:
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    # RFC 7208 §5: an IPv4-mapped IPv6 address "MUST still be considered an IPv4 address".
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _under(name: str, domain: str) -> bool:
    """``name`` is ``domain`` or a subdomain of it, ignoring case and a trailing dot."""
    name, domain = name.lower().removesuffix("."), domain.lower().removesuffix(".")
    return name == domain or name.endswith("." + domain)


@attrs.define(eq=False)
class _Check:
    """The state one check_host() shares with its includes and redirects."""

    ip: IPAddress
    sender: str
    local_part: str
    sender_domain: str
    helo: str
    resolver: Resolver
    config: SpfConfig
    lookups: int = 0
    voids: int = 0

    # -- counting -----------------------------------------------------------

    def _count_lookup(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > self.config.lookup_limit:
            raise PermError(f"more than {self.config.lookup_limit} DNS lookups (at {term!r})")

    async def _query(
        self, lookup: Callable[[str], Awaitable[list[str]]], name: str, *, void: bool
    ) -> list[str]:
        """``lookup(name)``; "not found" is ``[]`` (and a void lookup when ``void``)."""
        try:
            found = await lookup(name)
        except DNSNotFound:
            found = []
        except DNSTemporaryError as exc:
            raise _TempError(str(exc)) from None
        if not found and void:
            self.voids += 1
            if self.voids > self.config.void_lookup_limit:
                raise PermError(f"more than {self.config.void_lookup_limit} void lookups")
        return found

    def _addresses(self, name: str, *, void: bool) -> Awaitable[list[str]]:
        # RFC 7208 §5: A records for an IPv4 client, AAAA for an IPv6 one, never both.
        lookup = self.resolver.a if self.ip.version == 4 else self.resolver.aaaa
        return self._query(lookup, name, void=void)

    # -- records ------------------------------------------------------------

    async def check(self, domain: str, *, explain: bool) -> _Verdict:
        """check_host() for ``domain``: fetch, select and evaluate its record."""
        domain = domain.removesuffix(".")
        # RFC 7208 §4.3: a malformed or single-label domain is "none", without a query.
        if problem := domain_problem(domain, fqdn=True):
            return _Verdict(Result.NONE, reason=f"{domain!r}: {problem}")
        try:
            texts = await self.resolver.txt(domain)
        except DNSNotFound:
            return _Verdict(Result.NONE, reason=f"{domain}: no SPF record")
        except DNSTemporaryError as exc:
            return _Verdict(Result.TEMPERROR, reason=str(exc))
        # RFC 7208 §4.5: exactly one TXT record starting "v=spf1"; two are an error.
        records = [text for text in texts if is_spf_record(text)]
        if not records:
            return _Verdict(Result.NONE, reason=f"{domain}: no SPF record")
        if len(records) > 1:
            return _Verdict(Result.PERMERROR, reason=f"{domain}: {len(records)} SPF records")
        try:
            record = parse_record(records[0])
        except PermError as exc:
            return _Verdict(Result.PERMERROR, reason=f"{domain}: {exc}")
        try:
            return await self._evaluate(record, domain, explain=explain)
        except PermError as exc:
            return _Verdict(Result.PERMERROR, reason=f"{domain}: {exc}")
        except _TempError as exc:
            return _Verdict(Result.TEMPERROR, reason=str(exc))

    def _context(self, domain: str) -> MacroContext:
        return MacroContext(
            sender=self.sender,
            local_part=self.local_part,
            sender_domain=self.sender_domain,
            domain=domain,
            ip=self.ip,
            helo=self.helo,
            receiver=self.config.receiver,
        )

    async def _evaluate(self, record: Record, domain: str, *, explain: bool) -> _Verdict:
        ctx = self._context(domain)
        for mechanism in record.mechanisms:
            if mechanism.kind in DNS_KINDS:
                self._count_lookup(mechanism.text)
            if not await self._matches(mechanism, ctx):
                continue
            result = _MATCH[mechanism.qualifier.value]
            explanation = None
            if result is Result.FAIL and explain and record.exp is not None:
                explanation = await self._explain(record.exp, ctx)
            return _Verdict(result, mechanism.text, explanation)
        if record.redirect is not None:
            # RFC 7208 §6.1: the target's result is ours, its exp= too, never our own.
            self._count_lookup("redirect=" + record.redirect.text)
            target = await self._expand(record.redirect, ctx)
            verdict = await self.check(target, explain=explain)
            if verdict.result is Result.NONE:
                raise PermError(f"redirect={target}: {verdict.reason}")
            return verdict
        # RFC 7208 §4.7: no match and no redirect is "neutral".
        return _Verdict(Result.NEUTRAL, reason="no mechanism matched")

    # -- mechanisms ---------------------------------------------------------

    async def _expand(self, spec: MacroString, ctx: MacroContext) -> str:
        if spec.needs_validated_name:
            ctx = attrs.evolve(ctx, validated_name=await self._validated_name(ctx.domain))
        return expand_domain(spec, ctx)

    async def _matches(self, mechanism: Mechanism, ctx: MacroContext) -> bool:
        kind = mechanism.kind
        if kind is Kind.ALL:
            return True
        if kind in (Kind.IP4, Kind.IP6):
            assert mechanism.network is not None  # the parser sets it for ip4/ip6
            return self.ip in mechanism.network
        spec = mechanism.domain_spec
        target = ctx.domain if spec is None else await self._expand(spec, ctx)
        if kind is Kind.INCLUDE:
            return await self._include(target)
        # An expanded name DNS cannot carry (empty or long labels) matches nothing: RFC 7208
        # leaves it undefined, and §4.3 treats such a <domain> as nonexistent.
        if domain_problem(target):
            return False
        if kind is Kind.A:
            found = await self._addresses(target, void=True)
            return self._in_any(found, mechanism)
        if kind is Kind.MX:
            return await self._mx(target, mechanism)
        if kind is Kind.PTR:
            return await self._ptr(target)
        assert kind is Kind.EXISTS
        # RFC 7208 §5.7: always an A query, whatever the client's address family.
        return bool(await self._query(self.resolver.a, target, void=True))

    def _in_any(self, addresses: list[str], mechanism: Mechanism) -> bool:
        prefix = mechanism.cidr4 if self.ip.version == 4 else mechanism.cidr6
        for text in addresses:
            try:
                network = ipaddress.ip_network((text, prefix), strict=False)
            except ValueError:
                continue
            if self.ip in network:
                return True
        return False

    async def _include(self, target: str) -> bool:
        # RFC 7208 §5.2's table; the included record's exp= is never used.
        verdict = await self.check(target, explain=False)
        match verdict.result:
            case Result.PASS:
                return True
            case Result.FAIL | Result.SOFTFAIL | Result.NEUTRAL:
                return False
            case Result.TEMPERROR:
                raise _TempError(f"include:{target}: {verdict.reason}")
            case Result.PERMERROR | Result.NONE:
                raise PermError(f"include:{target}: {verdict.result.value}: {verdict.reason}")

    async def _mx(self, target: str, mechanism: Mechanism) -> bool:
        try:
            hosts = await self._query(self._mx_hosts, target, void=True)
        except NullMX:
            hosts = []  # RFC 7505: "no mail here" is an answer, and lists no host
        for index, host in enumerate(hosts):
            # RFC 7208 §4.6.4: more than 10 MX address lookups make "mx" a permerror.
            if index >= self.config.mx_limit:
                raise PermError(f"{mechanism.text}: more than {self.config.mx_limit} MX hosts")
            if self._in_any(await self._addresses(host, void=False), mechanism):
                return True
        return False

    async def _mx_hosts(self, name: str) -> list[str]:
        return [host for _, host in await self.resolver.mx(name)]

    async def _ptr_names(self, *, void: bool) -> list[str]:
        """The client's first PTR names (§4.6.4: the rest are ignored); a DNS error: none."""
        try:
            names = await self._query(self.resolver.ptr, str(self.ip), void=void)
        except _TempError:
            return []  # RFC 7208 §5.5: a PTR lookup error makes "ptr" not match
        return names[: self.config.ptr_limit]

    async def _validates(self, name: str) -> bool:
        """``name``'s addresses include the client's (forward-confirmed reverse DNS)."""
        if domain_problem(name):
            return False
        try:
            found = await self._addresses(name, void=False)
        except _TempError:
            return False  # RFC 7208 §5.5: skip this name, go on with the next
        return any(ipaddress.ip_address(a) == self.ip for a in found if _is_ip(a))

    async def _ptr(self, target: str) -> bool:
        # Only names under the target can match, so only those are validated (§5.5 allows it).
        for name in await self._ptr_names(void=True):
            if _under(name, target) and await self._validates(name):
                return True
        return False

    async def _validated_name(self, domain: str) -> str | None:
        """``%{p}``: a validated name of the client, the domain or a subdomain first (§7.3)."""
        # Not a term, so not a void lookup either (RFC 7208 §4.6.4 counts terms).
        names = await self._ptr_names(void=False)
        exact = [n for n in names if n.lower() == domain.lower()]
        below = [n for n in names if _under(n, domain) and n not in exact]
        rest = [n for n in names if n not in exact and n not in below]
        for name in (*exact, *below, *rest):
            if await self._validates(name):
                return name
        return None

    # -- explanation --------------------------------------------------------

    async def _explain(self, exp: MacroString, ctx: MacroContext) -> str | None:
        """The ``exp=`` text (RFC 7208 §6.2); any problem means no explanation."""
        try:
            name = await self._expand(exp, ctx)
            if domain_problem(name):
                return None
            texts = await self.resolver.txt(name)
        except (DNSError, _TempError, PermError):
            return None
        if len(texts) != 1:
            return None
        try:
            explanation = parse_explanation(texts[0])
        except PermError:
            return None
        # Wall clock on purpose: %{t} is a timestamp shown to people, not a duration.
        ctx = attrs.evolve(ctx, timestamp=int(time.time()))
        if explanation.needs_validated_name:
            ctx = attrs.evolve(ctx, validated_name=await self._validated_name(ctx.domain))
        return expand(explanation, ctx)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _reason(verdict: _Verdict, sender: str, ip: IPAddress) -> str:
    match verdict.result:
        case Result.PASS:
            return f"domain of {sender} designates {ip} as permitted sender"
        case Result.FAIL | Result.SOFTFAIL:
            return f"domain of {sender} does not designate {ip} as permitted sender"
        case Result.NEUTRAL:
            return f"{ip} is neither permitted nor denied by domain of {sender}"
        case _:
            return verdict.reason


async def check_host(
    ip: str | IPAddress,
    domain: str,
    sender: str,
    *,
    helo: str,
    resolver: Resolver,
    config: SpfConfig | None = None,
) -> SpfResult:
    """RFC 7208 §4's check_host(): may ``ip`` send mail for ``domain``?

    Args:
      ip: The SMTP client's address; an IPv4-mapped IPv6 address counts as IPv4.
      domain: The domain to check: the MAIL FROM domain, or the HELO name.
      sender: The MAIL FROM address (``local-part@domain``); without a local
        part, ``postmaster`` stands in (§4.3). For a null reverse-path pass
        ``postmaster@<helo>``, or use :func:`check_helo`.
      helo: The HELO/EHLO name, for the ``%{h}`` macro.
      resolver: Where the DNS queries go.
      config: Limits and the deadline; ``None`` means RFC 7208's defaults.

    Returns:
      The result; DNS trouble and broken records are results too, never raised.

    Raises:
      ValueError: ``ip`` is not an IP address (a caller's bug, not the peer's).

    Cancellation:
      The check ends by :attr:`SpfConfig.timeout` with ``temperror``; an outer
      cancel scope cancels it like any Trio call.
    """
    config = config or SpfConfig()
    address = _client_address(ip)
    local, at, sender_domain = sender.rpartition("@")
    if not at:
        sender_domain = sender or domain
    local = local or "postmaster"
    sender = f"{local}@{sender_domain}"
    check = _Check(
        ip=address,
        sender=sender,
        local_part=local,
        sender_domain=sender_domain,
        helo=helo,
        resolver=resolver,
        config=config,
    )
    verdict = _Verdict(Result.TEMPERROR, reason=f"SPF check took over {config.timeout}s")
    with trio.move_on_after(config.timeout):
        verdict = await check.check(domain, explain=True)
    return SpfResult(
        result=verdict.result,
        domain=domain.removesuffix("."),
        sender=sender,
        mechanism=verdict.mechanism,
        explanation=verdict.explanation,
        reason=_reason(verdict, sender, address),
    )


async def check_helo(
    ip: str | IPAddress, helo: str, *, resolver: Resolver, config: SpfConfig | None = None
) -> SpfResult:
    """Check the HELO identity (RFC 7208 §2.3): check_host() of ``postmaster@<helo>``.

    A HELO that is an address literal or a single label gives ``none``.
    """
    return await check_host(
        ip, helo, f"postmaster@{helo}", helo=helo, resolver=resolver, config=config
    )
