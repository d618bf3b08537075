"""DMARC (RFC 7489): find the policy, check alignment, say what the sender asked for.

What this module owns: the organizational domain (Public Suffix List, from the
``publicsuffixlist`` package, which ships the list; nothing is downloaded), the
``_dmarc`` TXT record's syntax (:func:`parse_record`, sans-I/O), the author domain
from the RFC 5322 header block (:func:`header_from`, sans-I/O), and the evaluation
(:func:`evaluate`). It never verifies SPF or DKIM itself: it takes their outcomes
as :class:`SpfOutcome` / :class:`DkimOutcome` values, and it never refuses mail —
:class:`DmarcResult` carries the :class:`Action` the configuration picks, and the
caller acts on it.

The evaluation, in RFC 7489's order:

1. §6.6.1: the author domain is the one domain of ``From:``. No usable From is
   ``permerror`` with nothing applied (no domain is being impersonated); several
   distinct domains are ``permerror`` with ``reject`` applied — fail closed, as the
   MUA shows one of them and an attacker picks which (§6.6.1 "typically rejected").
2. §6.6.3: the TXT records at ``_dmarc.<author domain>``, else at
   ``_dmarc.<organizational domain>``; only those starting ``v=DMARC1`` count, and
   more than one means no DMARC (``none``). A record that does not parse is
   ``permerror``; a lookup that times out or fails is ``temperror``.
3. §3.1: SPF is aligned when it passed for a domain matching the author domain,
   DKIM when any signature passed with a ``d=`` matching it; ``s`` means equal,
   ``r`` (the default) means the same organizational domain. Either gives ``pass``.
4. §6.6.4: otherwise ``fail``, and the policy applied is ``sp`` (default ``p``)
   when the record came from the organizational domain for a subdomain, else
   ``p``; with ``pct`` below 100 the messages not sampled get the next milder
   policy (reject → quarantine → none, §6.3 ``pct``).
"""

from __future__ import annotations

import enum
import random
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from mailio_trio.config import ConfigError
from mailio_trio.dns import DNSNotFound, DNSTemporaryError
from mailio_trio.mailauth._dmarc_record import (
    Alignment,
    DmarcRecord,
    DmarcRecordError,
    Policy,
    is_dmarc_record,
    parse_record,
)
from mailio_trio.mailauth._domains import normalize_domain, organizational_domain
from mailio_trio.mailauth._header_from import HeaderFrom, header_from
from mailio_trio.mailauth.results import MethodResult
from mailio_trio.protocol import Reply

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "Action",
    "Alignment",
    "DkimOutcome",
    "DmarcConfig",
    "DmarcRecord",
    "DmarcRecordError",
    "DmarcResult",
    "DmarcStatus",
    "HeaderFrom",
    "Policy",
    "SpfOutcome",
    "TxtResolver",
    "aligned",
    "evaluate",
    "evaluate_message",
    "header_from",
    "organizational_domain",
    "parse_record",
]


class DmarcStatus(enum.StrEnum):
    """The ``dmarc=`` result (RFC 8601 §2.7.6 via RFC 7489 §11.2)."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Action(enum.StrEnum):
    """What the server does with the message, picked by :class:`DmarcConfig`."""

    REJECT = "reject"
    """``550 5.7.1`` at the end of DATA (:meth:`DmarcResult.reject_reply`)."""
    JUNK = "junk"
    """Accept, and mark or file it as spam."""
    RECORD = "record"
    """Accept; the verdict goes into ``Authentication-Results`` only."""


# -- inputs -------------------------------------------------------------------

SPF_RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"})
DKIM_RESULTS = frozenset({"pass", "fail", "policy", "neutral", "none", "temperror", "permerror"})


def _result_in(allowed: frozenset[str]) -> Callable[[object, attrs.Attribute[str], str], None]:
    def check(_: object, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in allowed:
            raise ValueError(f"{attribute.name} {value!r} is not one of {sorted(allowed)}")

    return check


def _lower(value: str) -> str:
    return str(value).lower()


def _domain_text(value: str) -> str:
    return str(value).strip().rstrip(".").lower()


@attrs.frozen
class SpfOutcome:
    """The SPF verdict DMARC uses (RFC 7489 §4.1): for MAIL FROM, or HELO when MAIL FROM is ``<>``.

    Args:
      result: ``pass``, ``fail``, ``softfail``, ``neutral``, ``none``, ``temperror``, ``permerror``.
      domain: The domain that was checked: MAIL FROM's, or the HELO name.
      scope: ``"mailfrom"`` or ``"helo"``: which identity ``domain`` is.
    """

    result: str = attrs.field(converter=_lower, validator=_result_in(SPF_RESULTS))
    domain: str = attrs.field(converter=_domain_text)
    scope: str = attrs.field(
        default="mailfrom", kw_only=True, validator=attrs.validators.in_(("mailfrom", "helo"))
    )

    def method_result(self) -> MethodResult:
        """``spf=… smtp.mailfrom=…`` (or ``smtp.helo=…``) for our A-R header."""
        if self.scope == "helo":
            return MethodResult.spf(self.result, helo=self.domain)
        return MethodResult.spf(self.result, mailfrom=self.domain)


@attrs.frozen(kw_only=True)
class DkimOutcome:
    """One DKIM signature's verdict.

    Args:
      result: ``pass``, ``fail``, ``policy``, ``neutral``, ``none``, ``temperror``, ``permerror``.
      domain: The signature's ``d=``.
      selector: Its ``s=`` (for the A-R header only).
      signature: Its ``b=`` or the start of it (``header.b``, RFC 6008).
    """

    result: str = attrs.field(converter=_lower, validator=_result_in(DKIM_RESULTS))
    domain: str = attrs.field(converter=_domain_text)
    selector: str = ""
    signature: str = ""

    def method_result(self) -> MethodResult:
        """``dkim=… header.d=… header.s=… header.b=…`` for our A-R header."""
        return MethodResult.dkim(
            self.result, domain=self.domain, selector=self.selector, signature=self.signature
        )


class TxtResolver(Protocol):
    """The one lookup DMARC needs; :class:`mailio_trio.dns.DnsResolver` is one.

    Raises ``DNSNotFound`` for NXDOMAIN/NODATA and ``DNSTemporaryError`` for
    timeouts and server failures, as :class:`mailio_trio.dns.Resolver` does.
    """

    async def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name``, its character-strings joined."""
        ...


def aligned(identifier: str, author_domain: str, mode: Alignment) -> bool:
    """Whether an SPF or DKIM domain aligns with the author domain (RFC 7489 §3.1).

    Example:
      >>> aligned("bounce.example.com", "example.com", Alignment.RELAXED)
      True
      >>> aligned("bounce.example.com", "example.com", Alignment.STRICT)
      False
    """
    a, b = normalize_domain(identifier), normalize_domain(author_domain)
    if a is None or b is None:
        return False
    if mode is Alignment.STRICT:
        return a == b
    return organizational_domain(a) == organizational_domain(b)


# -- evaluation ---------------------------------------------------------------


def _action(value: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        choices = ", ".join(a.value for a in Action)
        raise ConfigError(f"dmarc action {value!r}: must be one of {choices}") from None


@attrs.frozen(kw_only=True)
class DmarcConfig:
    """What to do with each disposition (a plugin's config table maps onto it).

    Args:
      on_reject: For mail whose domain asks ``p=reject``: refuse with ``550 5.7.1``.
      on_quarantine: For ``p=quarantine``: accept and junk.
      on_none: For ``p=none``, passes and errors: record only.
      honour_reject: ``False`` records what ``reject`` would have refused (a
        trial period: see the A-R header before refusing anyone's mail).
    """

    on_reject: Action = attrs.field(default=Action.REJECT, converter=_action)
    on_quarantine: Action = attrs.field(default=Action.JUNK, converter=_action)
    on_none: Action = attrs.field(default=Action.RECORD, converter=_action)
    honour_reject: bool = True

    def action_for(self, disposition: Policy) -> Action:
        """The :class:`Action` for the policy applied to a message."""
        if disposition is Policy.REJECT:
            return self.on_reject if self.honour_reject else Action.RECORD
        if disposition is Policy.QUARANTINE:
            return self.on_quarantine
        return self.on_none


@attrs.frozen(kw_only=True)
class DmarcResult:
    """The verdict on one message, and what to do about it.

    Attributes:
      result: ``pass``, ``fail``, ``none``, ``temperror`` or ``permerror``.
      disposition: The policy applied after ``sp`` and ``pct``: what the
        domain's owner asked for this message.
      action: What :class:`DmarcConfig` says to do with that disposition.
      from_domain: The RFC 5322.From domain (``header.from``), when there is one.
      policy_domain: Where the record was found (author or organizational domain).
      requested: On ``fail``, the ``p`` or ``sp`` that applied before ``pct``
        sampling; ``None`` otherwise.
      record: The record found, if any.
      spf_aligned: SPF passed for an aligned domain.
      dkim_aligned: Some DKIM signature passed for an aligned ``d=``.
      reason: Why, in words, for logs (DNS errors included).
    """

    result: DmarcStatus
    disposition: Policy = Policy.NONE
    action: Action = Action.RECORD
    from_domain: str | None = None
    policy_domain: str | None = None
    requested: Policy | None = None
    record: DmarcRecord | None = None
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""

    def method_result(self) -> MethodResult:
        """``dmarc=… (p=… dis=…) header.from=…`` for our A-R header."""
        comment = None
        if self.record is not None:
            sp = self.record.subdomain_policy
            comment = f"p={self.record.policy}" + (f" sp={sp}" if sp else "")
            comment += f" dis={self.disposition}"
        return MethodResult.dmarc(self.result, header_from=self.from_domain, comment=comment)

    def reject_reply(self) -> Reply | None:
        """``550 5.7.1`` when :attr:`action` is :attr:`Action.REJECT`, else ``None``."""
        if self.action is not Action.REJECT:
            return None
        domain = self.from_domain or "the From domain"
        return Reply(550, f"Message refused by the DMARC policy of {domain}", "5.7.1")


def _verdict(
    config: DmarcConfig,
    result: DmarcStatus,
    *,
    disposition: Policy = Policy.NONE,
    **fields: Any,
) -> DmarcResult:
    action = config.action_for(disposition)
    return DmarcResult(result=result, disposition=disposition, action=action, **fields)


async def _dmarc_records(resolver: TxtResolver, domain: str) -> list[str]:
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except DNSNotFound:
        return []
    return [text for text in texts if is_dmarc_record(text)]


async def evaluate(
    from_domain: str,
    spf: SpfOutcome | None,
    dkim_results: Iterable[DkimOutcome],
    *,
    resolver: TxtResolver,
    config: DmarcConfig | None = None,
    sample: Callable[[], float] = random.random,
) -> DmarcResult:
    """Evaluate DMARC for one message whose author domain is ``from_domain``.

    Args:
      from_domain: The RFC 5322.From domain (:func:`header_from` finds it).
      spf: The SPF outcome for MAIL FROM (HELO's when MAIL FROM was ``<>``), or ``None``.
      dkim_results: One outcome per DKIM signature, in any order.
      resolver: Where the ``_dmarc`` TXT records come from.
      config: Picks the :class:`Action`; the defaults when ``None``.
      sample: Returns a float in [0, 1) for ``pct`` sampling; inject one in tests.

    Returns:
      The verdict; DNS failures are ``temperror`` and bad records ``permerror``,
      never raised.

    Example::

        result = await evaluate(
            "example.com", SpfOutcome("pass", "bounce.example.com"), [],
            resolver=DnsResolver(DnsConfig()),
        )
        if (reply := result.reject_reply()) is not None:
            ...  # answer it at the end of DATA
    """
    config = DmarcConfig() if config is None else config
    domain = normalize_domain(from_domain)
    if domain is None:
        return _verdict(
            config, DmarcStatus.PERMERROR, reason=f"{from_domain!r} is not a DNS domain"
        )
    org = organizational_domain(domain)
    record: DmarcRecord | None = None
    policy_domain = None
    try:
        for candidate in dict.fromkeys((domain, org)):
            texts = await _dmarc_records(resolver, candidate)
            if len(texts) > 1:  # §6.6.3 step 5: more than one record, no DMARC
                reason = f"_dmarc.{candidate} has {len(texts)} DMARC records"
                return _verdict(config, DmarcStatus.NONE, from_domain=domain, reason=reason)
            if texts:
                policy_domain = candidate
                record = parse_record(texts[0])
                break
    except DNSTemporaryError as exc:
        return _verdict(config, DmarcStatus.TEMPERROR, from_domain=domain, reason=str(exc))
    except DmarcRecordError as exc:
        reason = f"_dmarc.{candidate}: {exc}"
        return _verdict(
            config,
            DmarcStatus.PERMERROR,
            from_domain=domain,
            policy_domain=candidate,
            reason=reason,
        )
    if record is None:
        return _verdict(config, DmarcStatus.NONE, from_domain=domain, reason="no DMARC record")
    spf_aligned = (
        spf is not None and spf.result == "pass" and aligned(spf.domain, domain, record.aspf)
    )
    dkim_aligned = any(
        d.result == "pass" and aligned(d.domain, domain, record.adkim) for d in dkim_results
    )
    known: dict[str, Any] = {
        "from_domain": domain,
        "policy_domain": policy_domain,
        "record": record,
    }
    known |= {"spf_aligned": spf_aligned, "dkim_aligned": dkim_aligned}
    if spf_aligned or dkim_aligned:
        how = " and ".join(n for n, ok in (("SPF", spf_aligned), ("DKIM", dkim_aligned)) if ok)
        return _verdict(config, DmarcStatus.PASS, reason=f"{how} aligned", **known)
    requested = record.policy_for(subdomain=policy_domain != domain)
    disposition = requested
    reason = "neither SPF nor DKIM aligned"
    # pct=100 draws nothing, so a test's sample source sees only real sampling.
    if requested is not Policy.NONE and record.pct < 100 and not sample() * 100 < record.pct:
        disposition = requested.milder()
        reason += f"; not sampled (pct={record.pct})"
    return _verdict(
        config,
        DmarcStatus.FAIL,
        requested=requested,
        disposition=disposition,
        reason=reason,
        **known,
    )


async def evaluate_message(
    header_block: bytes,
    spf: SpfOutcome | None,
    dkim_results: Iterable[DkimOutcome],
    *,
    resolver: TxtResolver,
    config: DmarcConfig | None = None,
    sample: Callable[[], float] = random.random,
) -> DmarcResult:
    """:func:`evaluate` for the author domain of ``header_block`` (RFC 7489 §6.6.1).

    No From field, or none with a domain, is ``permerror`` with nothing applied:
    no domain is impersonated. From addresses in several domains are
    ``permerror`` with ``reject`` applied, without a lookup: the reader sees one
    of them, the sender picks which, so we fail closed (§6.6.1 notes such mail
    is "typically rejected"); ``honour_reject=False`` still only records it.
    """
    config = DmarcConfig() if config is None else config
    author = header_from(header_block)
    if author.domain is not None:
        return await evaluate(
            author.domain, spf, dkim_results, resolver=resolver, config=config, sample=sample
        )
    if not author.domains:
        what = "no From field" if not author.fields else "no domain in From"
        return _verdict(config, DmarcStatus.PERMERROR, reason=what)
    return _verdict(
        config,
        DmarcStatus.PERMERROR,
        disposition=Policy.REJECT,
        reason="From names several domains: " + ", ".join(author.domains[:5]),
    )
