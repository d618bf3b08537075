"""Reject recipients while the client is listed on a DNS blocklist (``rcpt/dnsbl``).

RFC 5782: the client's address is looked up under each list's zone — IPv4 as
reversed octets (``2.0.0.127.zen.example``), IPv6 as 32 reversed nibbles
(§2.4) — and an A answer means "listed". Answers are checked against the
list's documented listing range (``listed``, default ``127.0.0.0/24``):

- inside it: listed; the RCPT gets ``550 5.7.1`` with the list's TXT reason;
- ``127.255.255.0/24``: the list refuses *us* (Spamhaus answers this to
  queries through public resolvers or over quota) — logged as a warning,
  never a reason to block a client;
- anything else: not a listing (a misconfigured or hijacked zone), ignored.

Lists are asked concurrently, once per session (the verdict is cached for
the connection). Timeouts and DNS errors fail open: mail is accepted and a
warning logged, as mail-io did, since a blocklist outage must not become a
mail outage. Authenticated clients, loopback clients and ``allowlist``
networks are not checked.

The verdict is also stored for later handlers (``res.get("rcpt/dnsbl")``):
``{"listed": bool, "zone": str | None, "reason": str | None}``.

Config (``Config.plugins["rcpt/dnsbl"]``), enabled by the key's presence::

    {"lists": ["zen.spamhaus.org",
               {"zone": "bl.example", "listed": ["127.0.0.2/32", "127.0.0.4/30"]}],
     "allowlist": ["192.0.2.0/24"], "skip_loopback": True,
     "skip_authenticated": True, "timeout": 3.0}

Needs a resolver (``Config.dns``); without one the handler accepts and warns once.

Listings and lookup problems are logged once per connection, rate-limited
(``limits.abuse_log_burst`` per ``limits.abuse_log_interval``, then a summary
line): a listed botnet or a blocklist outage must not flood the log.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.abuse import AbuseKind, RateLimitedLog
from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.config import ConfigError, networks
from mailio_trio.dns import DNSError, DNSNotFound, reverse_name
from mailio_trio.networks import in_networks, parse_networks
from mailio_trio.plugins._settings import Settings, positive

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession
    from mailio_trio.dns import Resolver

KEY = "rcpt/dnsbl"

# Spamhaus's "your query was refused" answers (127.255.255.252/254/255) and kin.
REFUSED_RANGE = ipaddress.ip_network("127.255.255.0/24")

# A TXT reason goes into our reply: printable ASCII only, and not too long for one line.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_MAX_REASON = 200


def _listed_networks(value: Any) -> tuple[str, ...]:
    return networks(value, f"plugins.{KEY}.lists.listed")


def _zone(value: Any) -> str:
    return str(value).strip().rstrip(".").lower()


@attrs.frozen(kw_only=True)
class DnsblList:
    """One blocklist: its zone and the answers that mean "listed"."""

    zone: str = attrs.field(converter=_zone)
    listed: tuple[str, ...] = attrs.field(default=("127.0.0.0/24",), converter=_listed_networks)

    def __attrs_post_init__(self) -> None:
        if not self.zone or " " in self.zone:
            raise ConfigError(f"plugins.{KEY}.lists: {self.zone!r} is not a DNS zone")


def _lists(value: Any) -> tuple[DnsblList, ...]:
    if isinstance(value, str | Mapping | DnsblList):
        value = (value,)
    elif not isinstance(value, list | tuple):
        raise ConfigError(f"plugins.{KEY}.lists = {value!r}: must be zone names or tables")
    out = []
    for item in value:
        if isinstance(item, DnsblList):
            out.append(item)
        elif isinstance(item, str):
            out.append(DnsblList(zone=item))
        elif isinstance(item, Mapping):
            try:
                out.append(DnsblList(**item))
            except TypeError:
                raise ConfigError(
                    f"plugins.{KEY}.lists = {item!r}: a list is a zone name or "
                    "a table with 'zone' and optional 'listed'"
                ) from None
        else:
            raise ConfigError(f"plugins.{KEY}.lists = {item!r}: must be zone names or tables")
    return tuple(out)


def _allowlist(value: Any) -> tuple[str, ...]:
    return networks(value, f"plugins.{KEY}.allowlist")


@attrs.frozen(kw_only=True)
class DnsblConfig:
    lists: tuple[DnsblList, ...] = attrs.field(
        default=(DnsblList(zone="zen.spamhaus.org"),), converter=_lists
    )
    allowlist: tuple[str, ...] = attrs.field(default=(), converter=_allowlist)
    """Client networks (CIDRs) never checked."""
    skip_loopback: bool = True
    skip_authenticated: bool = True
    timeout: float = attrs.field(default=3.0, validator=positive(KEY))
    """Seconds for all lists together (TXT reason included); then the client passes."""


@attrs.frozen
class Verdict:
    listed: bool
    zone: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "zone": self.zone, "reason": self.reason}


NOT_LISTED = Verdict(listed=False)

# One verdict per connection: the client's address does not change within it.
_verdicts: weakref.WeakKeyDictionary[HandlerSession, Verdict] = weakref.WeakKeyDictionary()


def _client_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _clean_reason(texts: list[str]) -> str | None:
    text = _UNPRINTABLE.sub(" ", " ".join(texts)).strip()
    return text[:_MAX_REASON] or None


def _trouble(abuse: RateLimitedLog, res: Response, level: int, msg: str, *args: object) -> None:
    """Log a lookup problem; an outage is one line per connection, so rate-limited."""
    abuse.log(AbuseKind.DNSBL_TROUBLE, res.log, level, msg, *args)


async def _ask(
    resolver: Resolver, ip: str, blocklist: DnsblList, res: Response, abuse: RateLimitedLog
) -> Verdict:
    name = reverse_name(ip, blocklist.zone)
    try:
        answers = await resolver.a(name)
    except DNSNotFound:
        return NOT_LISTED
    except DNSError as exc:
        _trouble(
            abuse,
            res,
            logging.WARNING,
            "DNSBL %s lookup failed, letting %s through: %s",
            blocklist.zone,
            ip,
            exc,
        )
        return NOT_LISTED
    listed_in = parse_networks(blocklist.listed)
    hits = [a for a in answers if in_networks(a, listed_in)]
    if not hits:
        if any(in_networks(a, (REFUSED_RANGE,)) for a in answers):
            _trouble(
                abuse,
                res,
                logging.WARNING,
                "DNSBL %s refuses our queries (answered %s); check the resolver and "
                "the list's terms of use",
                blocklist.zone,
                ", ".join(answers),
            )
        else:
            _trouble(
                abuse,
                res,
                logging.INFO,
                "DNSBL %s gave answers outside its range: %s",
                blocklist.zone,
                answers,
            )
        return NOT_LISTED
    try:
        reason = _clean_reason(await resolver.txt(name))
    except DNSError:
        reason = None
    return Verdict(listed=True, zone=blocklist.zone, reason=reason)


async def _verdict(
    cfg: DnsblConfig, resolver: Resolver, ip: str, res: Response, abuse: RateLimitedLog
) -> Verdict:
    results: list[Verdict] = [NOT_LISTED] * len(cfg.lists)

    async def one(index: int) -> None:
        results[index] = await _ask(resolver, ip, cfg.lists[index], res, abuse)

    with trio.move_on_after(cfg.timeout) as scope:
        async with trio.open_nursery() as nursery:
            for index in range(len(cfg.lists)):
                nursery.start_soon(one, index)
    if scope.cancelled_caught:
        _trouble(
            abuse,
            res,
            logging.WARNING,
            "DNSBL lookups for %s took over %ss; failing open",
            ip,
            cfg.timeout,
        )
    # The first list (in configured order) that lists the client is the one we name.
    return next((v for v in results if v.listed), NOT_LISTED)


def _skip(cfg: DnsblConfig, session: HandlerSession) -> bool:
    if cfg.skip_authenticated and session.user is not None:
        return True
    ip = _client_ip(session.client.address)
    if ip is None:
        return True
    if cfg.skip_loopback and ip.is_loopback:
        return True
    return in_networks(str(ip), parse_networks(cfg.allowlist))


async def dnsbl(req: Request, res: Response) -> None:
    cfg = req.config_as(DnsblConfig)
    session = req.session
    resolver = session.context.resolver
    if resolver is None:
        res.log.warning("rcpt/dnsbl is configured but the server has no resolver (Config.dns)")
        res.accept()
        return
    if _skip(cfg, session):
        res.accept()
        return
    verdict = _verdicts.get(session)
    if verdict is None:
        ip = str(_client_ip(session.client.address))
        verdict = _verdicts[session] = await _verdict(
            cfg, resolver, ip, res, session.context.abuse_log
        )
        if verdict.listed:
            session.context.abuse_log.log(
                AbuseKind.DNSBL_LISTED,
                res.log,
                logging.INFO,
                "client %s is listed on %s: %s",
                ip,
                verdict.zone,
                verdict.reason,
            )
    res.set(verdict.as_dict())
    if verdict.listed:
        ip = session.client.address
        reason = f": {verdict.reason}" if verdict.reason else ""
        # Postfix's wording, which operators and list maintainers recognise.
        res.reject(
            550, f"Service unavailable; client [{ip}] blocked using {verdict.zone}{reason}", "5.7.1"
        )
        return
    res.accept()


# mail-io's option names, for the error that says what ours are.
SETTINGS = Settings(KEY, DnsblConfig, {"blacklist": "lists", "resolver": "[dns] nameservers"})


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    chain.add(Handler(command="rcpt", name="dnsbl", func=dnsbl))
