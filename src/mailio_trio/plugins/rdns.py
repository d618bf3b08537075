"""Reverse DNS of the client at connect, forward-confirmed (``connect/rdns``).

The client's address is looked up (PTR), and each name found is looked up
forward (A or AAAA); the first name whose addresses include the client's is
the *confirmed* name (FCrDNS, "forward-confirmed reverse DNS"), stored in
``session.client.hostname`` and shown in our ``Received:`` line
(RFC 5321 §4.4: ``from helo (name [address])``). An unconfirmed PTR name is
anyone's to claim, so it is never used; ``hostname`` stays ``None``.

The lookup runs before the greeting (as mail-io did), so a slow or broken
DNS must not hold the client: the whole check is bounded by ``timeout``
seconds, after which the client is greeted without a name. Nothing is ever
refused here; policy on the result (Postfix's
``reject_unknown_reverse_client_hostname``) is another handler's to make, from
``res.get("connect/rdns")``: ``{"ptr": [names], "hostname": name or None,
"error": "temporary" | "not-found" | "timeout" | None}``.

On by default when the server has a resolver (``Config.dns``); switched off
with ``plugins={"connect/rdns": False}``.

Config (``Config.plugins["connect/rdns"]``): ``timeout`` (seconds, default 3),
``max_names`` (PTR names checked, default 5 — a PTR set is attacker-chosen).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.dns import DNSError, DNSNotFound
from mailio_trio.plugins._settings import Settings, positive

if TYPE_CHECKING:
    from mailio_trio.dns import Resolver


KEY = "connect/rdns"


@attrs.frozen(kw_only=True)
class RdnsConfig:
    timeout: float = attrs.field(default=3.0, validator=positive(KEY))
    """Seconds the whole check (PTR and forward lookups) may delay the greeting."""
    max_names: int = attrs.field(default=5, validator=positive(KEY))


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


async def confirmed_name(
    resolver: Resolver, ip: str, max_names: int = 5
) -> tuple[list[str], str | None]:
    """The PTR names of ``ip`` and the first one that resolves back to it (or ``None``).

    Raises:
      DNSError: The PTR lookup itself failed (forward lookup failures just
        leave that name unconfirmed).
    """
    names = await resolver.ptr(ip)
    for name in names[:max_names]:
        try:
            addresses = await resolver.addresses(name)
        except DNSError:
            continue
        if any(_same_address(ip, a) for a in addresses):
            return names, name
    return names, None


async def lookup(req: Request, res: Response) -> None:
    cfg = req.config_as(RdnsConfig)
    session = req.session
    resolver = session.context.resolver
    if resolver is None:
        res.accept()
        return
    ip = session.client.address
    if ":" in ip and (mapped := ipaddress.IPv6Address(ip.split("%")[0]).ipv4_mapped):
        ip = str(mapped)  # a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d
    result: dict[str, Any] = {"ptr": [], "hostname": None, "error": "timeout"}
    with trio.move_on_after(cfg.timeout):
        try:
            result["ptr"], result["hostname"] = await confirmed_name(resolver, ip, cfg.max_names)
            result["error"] = None
        except DNSNotFound:
            result["error"] = "not-found"
        except DNSError as exc:
            result["error"] = "temporary"
            res.log.info("reverse DNS of %s failed: %s", ip, exc)
    if result["error"] == "timeout":
        res.log.info("reverse DNS of %s took over %ss; greeting without it", ip, cfg.timeout)
    session.client.hostname = result["hostname"]
    res.set(result)
    res.accept()


SETTINGS = Settings(KEY, RdnsConfig)


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    chain.add(Handler(command="connect", name="rdns", func=lookup))
