"""Greylisting (``rcpt/greylist``): a first delivery attempt is told to come back later.

A real MTA retries a ``451`` after a few minutes; much spamware never does.
Each (client, sender, recipient) triplet is answered ``451 4.7.1`` until
``delay`` seconds after it was first seen; a retry between ``delay`` and
``retry_window`` passes, and from then on the triplet passes at once for
``pass_ttl``. A client network whose triplets passed ``allowlist_after``
times is allowlisted whole for ``allowlist_ttl`` (a real MTA that keeps
coming back need not wait again). The client is its /24 (IPv4) or /64
(IPv6) — large senders retry from another address of their pool — or its
exact address with ``exact_ip``.

Not greylisted: authenticated clients (``skip_authenticated``) and
``exempt`` networks (loopback by default: local submission). The state is
in Redis when ``[redis] url`` is set, so a retry may reach any server of
the fleet; otherwise in this process. Redis down fails open: the recipient
is accepted (``_shared.py`` logs it), never refused for our outage.

Config (``Config.plugins["rcpt/greylist"]``), enabled by the key's presence::

    {"delay": 300, "retry_window": 14400, "pass_ttl": 3110400,
     "allowlist_after": 5, "allowlist_ttl": 3110400, "exact_ip": False,
     "exempt": ["127.0.0.0/8", "::1/128"], "skip_authenticated": True}
"""

from __future__ import annotations

import ipaddress
import math
import weakref
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.config import ConfigError, networks
from mailio_trio.networks import in_networks, parse_networks
from mailio_trio.plugins._settings import Settings, positive

if TYPE_CHECKING:
    from mailio_trio._shared import RedisState

__all__ = ["GreylistConfig", "LocalGreylist", "register"]

KEY = "rcpt/greylist"
_DAY = 86400.0

GREYLISTED, PASSED, ALLOWLISTED = 0, 1, 2
"""What a store answers for a triplet."""


def _exempt(value: Any) -> tuple[str, ...]:
    return networks(value, f"plugins.{KEY}.exempt")


def _count(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        from mailio_trio.config import ConfigError

        raise ConfigError(
            f"plugins.{KEY}.{attribute.name} = {value!r}: must be a whole number >= 0"
        )


@attrs.frozen(kw_only=True)
class GreylistConfig:
    delay: float = attrs.field(default=300.0, validator=positive(KEY))
    """Seconds from the first attempt before a retry is accepted."""
    retry_window: float = attrs.field(default=4 * 3600.0, validator=positive(KEY))
    """Seconds from the first attempt during which a retry counts; later, it starts over."""
    pass_ttl: float = attrs.field(default=36 * _DAY, validator=positive(KEY))
    """Seconds a passed triplet is remembered (renewed by each use)."""
    allowlist_after: int = attrs.field(default=5, validator=_count)
    """Passed triplets after which the client network is allowlisted; 0: never."""
    allowlist_ttl: float = attrs.field(default=36 * _DAY, validator=positive(KEY))
    exact_ip: bool = False
    """Key on the client's exact address instead of its /24 or /64."""
    exempt: tuple[str, ...] = attrs.field(default=("127.0.0.0/8", "::1/128"), converter=_exempt)
    """Client networks never greylisted (local submission, partners)."""
    skip_authenticated: bool = True

    def __attrs_post_init__(self) -> None:
        if self.retry_window <= self.delay:
            raise ConfigError(
                f"plugins.{KEY}.retry_window = {self.retry_window!r}: must be longer than "
                f"delay ({self.delay!r}), or no retry could ever pass"
            )


def client_key(ip: str, exact: bool) -> str:
    """The client part of the triplet: its /24 or /64 network, or its address."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if exact:
        return str(address)
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@attrs.define(eq=False)
class _Triplet:
    first: float
    expires: float
    passed: bool = False


@attrs.define(eq=False)
class LocalGreylist:
    """The in-process store (no ``[redis]``): the same rules on Trio's clock."""

    triplets: dict[str, _Triplet] = attrs.field(factory=dict)
    passes: dict[str, tuple[int, float]] = attrs.field(factory=dict)
    """Client -> (passed triplets, expiry)."""
    allowed: dict[str, float] = attrs.field(factory=dict)
    """Allowlisted client -> expiry."""
    _since_sweep: int = 0

    def check(self, client: str, triplet: str, cfg: GreylistConfig, now: float) -> int:
        self._maybe_sweep(now)
        if self.allowed.get(client, -math.inf) > now:
            return ALLOWLISTED
        entry = self.triplets.get(triplet)
        if entry is not None and entry.expires <= now:
            entry = None
        if entry is None:
            self.triplets[triplet] = _Triplet(first=now, expires=now + cfg.retry_window)
            return GREYLISTED
        if entry.passed:
            entry.expires = now + cfg.pass_ttl
            return PASSED
        if now - entry.first < cfg.delay:
            return GREYLISTED
        entry.passed, entry.expires = True, now + cfg.pass_ttl
        count, expires = self.passes.get(client, (0, 0.0))
        count = (count if expires > now else 0) + 1
        self.passes[client] = (count, now + cfg.allowlist_ttl)
        if cfg.allowlist_after and count >= cfg.allowlist_after:
            self.allowed[client] = now + cfg.allowlist_ttl
        return PASSED

    def _maybe_sweep(self, now: float) -> None:
        # Memory bounded by the triplets of the last retry window, not since start.
        self._since_sweep += 1
        if self._since_sweep < 1000:
            return
        self._since_sweep = 0
        for key in [k for k, t in self.triplets.items() if t.expires <= now]:
            del self.triplets[key]
        for key in [k for k, (_, e) in self.passes.items() if e <= now]:
            del self.passes[key]
        for key in [k for k, e in self.allowed.items() if e <= now]:
            del self.allowed[key]


_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 2
end
local pass_ms = math.ceil(tonumber(ARGV[3]) * 1000)
local first = redis.call('HGET', KEYS[1], 'first')
if first and redis.call('HGET', KEYS[1], 'passed') then
  redis.call('PEXPIRE', KEYS[1], pass_ms)
  return 1
end
if not first then
  redis.call('HSET', KEYS[1], 'first', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
  return 0
end
if now - tonumber(first) < tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'passed', '1')
redis.call('PEXPIRE', KEYS[1], pass_ms)
local allow_ms = math.ceil(tonumber(ARGV[5]) * 1000)
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], allow_ms)
local after = tonumber(ARGV[4])
if after > 0 and n >= after then
  redis.call('SET', KEYS[3], '1', 'PX', allow_ms)
end
return 1
"""


async def _check_redis(redis: RedisState, client: str, triplet: str, cfg: GreylistConfig) -> int:
    keys = [
        redis.key("grey", "t", triplet),
        redis.key("grey", "n", client),
        redis.key("grey", "ok", client),
    ]
    args = [cfg.delay, cfg.retry_window, cfg.pass_ttl, cfg.allowlist_after, cfg.allowlist_ttl]
    script = redis.script("greylist", _CHECK)
    answer = await redis.call("greylist", lambda _client: script(keys=keys, args=args))
    return PASSED if answer is None else int(answer)  # Redis down: fail open


# One store per server (its ServerContext), gone with it.
_LOCAL: weakref.WeakKeyDictionary[object, LocalGreylist] = weakref.WeakKeyDictionary()


async def greylist(req: Request, res: Response) -> None:
    session = req.session
    cfg = req.config_as(GreylistConfig)
    if (cfg.skip_authenticated and session.user is not None) or in_networks(
        session.client.address, parse_networks(cfg.exempt)
    ):
        res.accept()
        return
    assert req.to is not None
    client = client_key(session.client.address, cfg.exact_ip)
    sender = session.envelope.sender
    local, domain = req.to.key()
    sender_part = "<>" if sender is None else "@".join(sender.key())
    triplet = f"{client}|{sender_part}|{local}@{domain}"
    context = session.context
    if context.redis is not None:
        verdict = await _check_redis(context.redis, client, triplet, cfg)
    else:
        store = _LOCAL.get(context)
        if store is None:
            store = _LOCAL[context] = LocalGreylist()
        verdict = store.check(client, triplet, cfg, trio.current_time())
    res.set({"greylisted": verdict == GREYLISTED, "allowlisted": verdict == ALLOWLISTED})
    if verdict == GREYLISTED:
        res.log.info("greylisted %s", triplet)
        res.reject(451, f"Greylisted, please try again in {cfg.delay:g} seconds", "4.7.1")
    else:
        res.accept()


SETTINGS = Settings(KEY, GreylistConfig)


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    # After the relay and mailbox checks: an unknown user gets 550 now, not 451 twice.
    chain.add(
        Handler(
            command="rcpt",
            name="greylist",
            func=greylist,
            after=("relay", "local", "dnsbl"),
            if_present=True,
        )
    )
