"""SPF (RFC 7208) for MAIL FROM, or for the HELO name when MAIL FROM is ``<>`` (``mail/spf``).

The check runs at MAIL, once the core handler parsed the reverse-path, with
the evaluator of :mod:`mailio_trio.mailauth.spf` on the server's resolver. The
:class:`~mailio_trio.mailauth.spf.SpfResult` is stored for later handlers
(``res.get("mail/spf")``): ``queue/mailauth`` puts it in the
``Authentication-Results`` header and hands it to DMARC.

By default every result is only recorded: SPF alone breaks forwarding, and
DMARC decides on it together with DKIM. Each result may refuse instead, with
RFC 7372's codes — ``fail`` (and ``softfail``) ``550 5.7.23``, ``permerror``
``550 5.7.24``, ``temperror`` ``451 4.7.24`` (try again later).

Authenticated clients and ``mailauth.trusted_networks`` (loopback by default)
are not checked: they submit, they do not relay to us.

On by default wherever the server has a resolver (``Config.dns``); switched
off with ``plugins={"mail/spf": False}``.

Config (``Config.plugins["mail/spf"]``): ``on_fail``, ``on_softfail``,
``on_permerror`` (``"record"`` or ``"reject"``), ``on_temperror``
(``"record"`` or ``"defer"``), ``timeout`` (seconds for the whole check,
default 20, RFC 7208 §4.6.4's 20 s), ``lookup_limit`` (10) and
``void_lookup_limit`` (2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.config import ConfigError
from mailio_trio.mailauth.spf import Result, SpfConfig, check_helo, check_host
from mailio_trio.networks import in_networks, parse_networks
from mailio_trio.plugins._settings import Settings, positive

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession

KEY = "mail/spf"

_RECORD, _REJECT, _DEFER = "record", "reject", "defer"


def _choice(*allowed: str) -> Any:
    def validate(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in allowed:
            raise ConfigError(
                f"plugins.{KEY}.{attribute.name} = {value!r}: must be "
                + " or ".join(repr(a) for a in allowed)
            )

    return validate


@attrs.frozen(kw_only=True)
class SpfPolicy:
    on_fail: str = attrs.field(default=_RECORD, validator=_choice(_RECORD, _REJECT))
    on_softfail: str = attrs.field(default=_RECORD, validator=_choice(_RECORD, _REJECT))
    on_permerror: str = attrs.field(default=_RECORD, validator=_choice(_RECORD, _REJECT))
    on_temperror: str = attrs.field(default=_RECORD, validator=_choice(_RECORD, _DEFER))
    timeout: float = attrs.field(default=20.0, validator=positive(KEY))
    lookup_limit: int = attrs.field(default=10, validator=positive(KEY))
    void_lookup_limit: int = attrs.field(default=2, validator=positive(KEY))

    @property
    def limits(self) -> SpfConfig:
        return SpfConfig(
            lookup_limit=self.lookup_limit,
            void_lookup_limit=self.void_lookup_limit,
            timeout=self.timeout,
        )


def trusted_client(session: HandlerSession) -> bool:
    """Whether ``session``'s client submits rather than relays to us: no SPF or DMARC for it."""
    if session.user is not None:
        return True
    trusted = session.config.mailauth.trusted_networks
    return bool(trusted) and in_networks(session.client.address, parse_networks(trusted))


def _refusal(policy: SpfPolicy, result: Result, text: str) -> tuple[int, str, str] | None:
    # RFC 7372 §3.2: X.7.23 "SPF validation failed", X.7.24 "SPF validation error".
    if result is Result.FAIL and policy.on_fail == _REJECT:
        return 550, text, "5.7.23"
    if result is Result.SOFTFAIL and policy.on_softfail == _REJECT:
        return 550, text, "5.7.23"
    if result is Result.PERMERROR and policy.on_permerror == _REJECT:
        return 550, text, "5.7.24"
    if result is Result.TEMPERROR and policy.on_temperror == _DEFER:
        return 451, text, "4.7.24"
    return None


def _printable(text: str) -> str:
    """An explanation is the domain owner's text: one line of printable ASCII in a reply."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]


async def spf(req: Request, res: Response) -> None:
    session = req.session
    resolver = session.context.resolver
    if resolver is None or trusted_client(session):
        res.accept()
        return
    policy = req.config_as(SpfPolicy)
    helo = session.helo_name or ""
    if req.sender is None:  # the null reverse-path: the HELO identity stands in (§2.4)
        result = await check_helo(
            session.client.address, helo, resolver=resolver, config=policy.limits
        )
    else:
        result = await check_host(
            session.client.address,
            req.sender.domain,
            str(req.sender),
            helo=helo,
            resolver=resolver,
            config=policy.limits,
        )
    res.set(result)
    res.log.debug("spf=%s %s: %s", result.result.value, result.domain, result.reason)
    text = f"SPF {result.result.value} for {result.domain}"
    if result.explanation:
        text += ": " + _printable(result.explanation)
    refusal = _refusal(policy, result.result, text)
    if refusal is not None:
        res.log.info("refused by SPF: %s", text)
        res.reject(*refusal)
        return
    res.accept()


SETTINGS = Settings(KEY, SpfPolicy)


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    chain.add(Handler(command="mail", name="spf", func=spf, after=("limits",), if_present=True))
