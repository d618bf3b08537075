"""DKIM, ARC and DMARC after DATA, and one Authentication-Results header (``queue/mailauth``).

Runs first among the ``queue`` handlers, before anything reads or keeps the
message: every DKIM signature is verified (RFC 6376, RFC 8463), the ARC chain
(RFC 8617), then DMARC (RFC 7489) from those and ``mail/spf``'s result. The
verdicts become one ``Authentication-Results`` header (RFC 8601) with our
authserv-id (``mailauth.authserv_id``, else the hostname), written at the top
of the stored message; any A-R header from the client that claims our
authserv-id is removed in the same pass (RFC 8601 §5: it is a forgery). The
verdicts are also a value for handlers: ``res.get("queue/mailauth")`` is a
:class:`MailauthVerdict`.

What may refuse: a domain's published DMARC policy, as the large receivers
honour it — ``p=reject`` failing is ``550 5.7.1`` and nothing is stored,
``p=quarantine`` goes to the recipient's ``.Junk`` folder (``verdict.junk``).
``honour_reject = false`` records instead (a trial period). An ARC chain
sealed by a domain in ``arc_trusted_sealers`` that passes overrides a DMARC
failure (a mailing list the operator trusts, RFC 8617 §7.2).

Authenticated clients and ``mailauth.trusted_networks`` are not checked, and
their mail gets no header (it would carry the user's name out with it).

DKIM, ARC and DMARC need the ``mailauth`` extra (``pip install
'mailio-trio[mailauth]'``); without it, the header records SPF alone and the
server says so once at start.

On by default wherever the server has a resolver (``Config.dns``); switched
off with ``plugins={"queue/mailauth": False}``.

Config (``Config.plugins["queue/mailauth"]``): ``dkim``, ``arc``, ``dmarc``
(each ``true``/``false``), ``max_signatures`` (10: hostile messages carry
hundreds), ``dns_timeout`` (seconds for one message's key lookups, 5),
``dmarc_on_reject`` (``"reject"``, ``"junk"`` or ``"record"``),
``dmarc_on_quarantine`` (``"junk"``), ``dmarc_on_none`` (``"record"``),
``honour_reject`` (true), ``arc_trusted_sealers`` (domains, empty).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.mailauth.results import AuthResStripper, MethodResult, format_header
from mailio_trio.plugins._settings import Settings, positive
from mailio_trio.plugins.spf import trusted_client

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.mailauth.arc import ArcResult
    from mailio_trio.mailauth.dkim import DkimResult, DkimVerifyConfig
    from mailio_trio.mailauth.dmarc import DmarcConfig, DmarcResult
    from mailio_trio.mailauth.spf import SpfResult

__all__ = ["MailauthPolicy", "MailauthVerdict", "register"]

KEY = "queue/mailauth"
logger = logging.getLogger("mailio_trio.plugins.mailauth")

try:  # the mailauth extra: dkimpy, publicsuffixlist
    from mailio_trio.mailauth import arc, dkim, dmarc
except ImportError as exc:  # pragma: no cover - exercised where the extra is missing
    EXTRA_MISSING: str | None = str(exc)
else:
    EXTRA_MISSING = None

_COPY = 256 * 1024


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    return tuple(str(v).strip().lower().rstrip(".") for v in value)


@attrs.frozen(kw_only=True)
class MailauthPolicy:
    dkim: bool = True
    arc: bool = True
    dmarc: bool = True
    max_signatures: int = attrs.field(default=10, validator=positive(KEY))
    dns_timeout: float = attrs.field(default=5.0, validator=positive(KEY))
    dmarc_on_reject: str = "reject"
    dmarc_on_quarantine: str = "junk"
    dmarc_on_none: str = "record"
    honour_reject: bool = True
    arc_trusted_sealers: tuple[str, ...] = attrs.field(default=(), converter=_names)

    def __attrs_post_init__(self) -> None:
        if EXTRA_MISSING is None:
            self.dmarc_config  # noqa: B018  # an unknown action is refused at start, not per message

    @property
    def dmarc_config(self) -> DmarcConfig:
        return dmarc.DmarcConfig(
            on_reject=self.dmarc_on_reject,
            on_quarantine=self.dmarc_on_quarantine,
            on_none=self.dmarc_on_none,
            honour_reject=self.honour_reject,
        )

    @property
    def dkim_config(self) -> DkimVerifyConfig:
        return dkim.DkimVerifyConfig(
            max_signatures=self.max_signatures, dns_timeout=self.dns_timeout
        )


@attrs.frozen(kw_only=True)
class MailauthVerdict:
    """What ``queue/mailauth`` found, for later handlers (``res.get("queue/mailauth")``).

    Attributes:
      spf: ``mail/spf``'s result, ``None`` when it did not run (trusted client, off).
      dkim: One result per verified signature, topmost first; empty without any.
      arc: The ARC chain's result, ``None`` when not checked.
      dmarc: The DMARC verdict, ``None`` when not checked.
      trusted: The client was authenticated or in ``mailauth.trusted_networks``.
      junk: DMARC asks for the junk folder (``p=quarantine`` failed).
      rejected: DMARC refused the message (``550 5.7.1``).
      header_value: The ``Authentication-Results`` value we wrote (after the colon).
      forged_removed: How many A-R headers claiming our authserv-id were removed.
    """

    spf: SpfResult | None = None
    dkim: tuple[DkimResult, ...] = ()
    arc: ArcResult | None = None
    dmarc: DmarcResult | None = None
    trusted: bool = False
    junk: bool = False
    rejected: bool = False
    header_value: str = ""
    forged_removed: int = 0


def _spf_method(spf: SpfResult | None, *, helo: bool) -> list[MethodResult]:
    if spf is None:
        return []
    if helo:  # MAIL FROM was <>: mail/spf checked the HELO identity (RFC 7208 §2.4)
        return [MethodResult.spf(spf.result.value, helo=spf.domain, comment=spf.reason)]
    return [MethodResult.spf(spf.result.value, mailfrom=spf.domain, comment=spf.reason)]


def _rewrite(path: Path, header: bytes, authserv_id: str) -> tuple[int, int]:
    """Put ``header`` on top of the stored message and drop forged A-R fields. Blocking.

    Returns:
      The new size, and how many forged fields were removed.
    """
    stripper = AuthResStripper(authserv_id)
    tmp = path.with_name(path.name + ".authres")
    size = len(header)
    try:
        with path.open("rb") as src, tmp.open("wb") as dst:
            dst.write(header)
            while chunk := src.read(_COPY):
                out = stripper.feed(chunk)
                dst.write(out)
                size += len(out)
            out = stripper.close()
            dst.write(out)
            size += len(out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, stripper.removed


async def _verify(
    req: Request, policy: MailauthPolicy, spf: SpfResult | None
) -> tuple[list[MethodResult], dict[str, Any]]:
    """Run DKIM, ARC and DMARC; the A-R entries and the verdict's fields."""
    message = req.message
    resolver = req.session.context.resolver
    assert message is not None
    assert resolver is not None
    helo = message.envelope.sender is None
    methods = _spf_method(spf, helo=helo)
    found: dict[str, Any] = {}
    if EXTRA_MISSING is not None:
        return methods, found
    # One read of the header block for all three: most mail has no ARC set and
    # much none of our interest, so neither verifier is even started then.
    block = await _header_block(message.path)
    lowered = block.lower()
    dkim_results: list[DkimResult] = []
    if policy.dkim and b"dkim-signature" in lowered:
        dkim_results = await dkim.verify(message.path, resolver=resolver, config=policy.dkim_config)
    if policy.dkim:
        found["dkim"] = tuple(dkim_results)
        methods += [
            MethodResult.dkim(
                r.result.value,
                domain=r.domain,
                selector=r.selector,
                signature=r.header_b,
                comment=r.reason or None,
            )
            for r in dkim_results
        ] or [MethodResult("dkim", "none")]
    arc_result = None
    if policy.arc:
        if b"arc-" in lowered:
            arc_result = await arc.verify_arc(
                message.path, resolver=resolver, config=policy.dkim_config
            )
        else:
            arc_result = arc.ArcResult(result=arc.ArcVerdict.NONE, reason="no ARC header fields")
        found["arc"] = arc_result
    if policy.dmarc:
        outcome = None
        if spf is not None:
            scope = "helo" if helo else "mailfrom"
            outcome = dmarc.SpfOutcome(spf.result.value, spf.domain, scope=scope)
        verdict = await dmarc.evaluate_message(
            block,
            outcome,
            [
                dmarc.DkimOutcome(
                    result=r.result.value,
                    domain=r.domain,
                    selector=r.selector,
                    signature=r.header_b,
                )
                for r in dkim_results
            ],
            resolver=resolver,
            config=policy.dmarc_config,
        )
        if (
            verdict.action is not dmarc.Action.RECORD
            and arc_result is not None
            and arc_result.result is arc.ArcVerdict.PASS
            and arc_result.domain.lower() in policy.arc_trusted_sealers
        ):
            # RFC 8617 §7.2: a trusted intermediary vouches for what it forwarded.
            verdict = attrs.evolve(
                verdict,
                action=dmarc.Action.RECORD,
                reason=f"{verdict.reason}; overridden by ARC from {arc_result.domain}",
            )
        found["dmarc"] = verdict
        methods.append(verdict.method_result())
    if arc_result is not None:
        methods.append(
            MethodResult.arc(
                arc_result.result.value,
                remote_ip=req.session.client.address,
                comment=arc_result.reason or None,
            )
        )
    return methods, found


async def _header_block(path: Path) -> bytes:
    from mailio_trio.mailauth._keys import header_block

    block, _ = await header_block(path, 1024 * 1024)
    return block


async def verify(req: Request, res: Response) -> None:
    session = req.session
    message = req.message
    assert message is not None
    if session.context.resolver is None or session.context.discard:
        res.accept()
        return
    policy = req.config_as(MailauthPolicy)
    config = session.config
    authserv_id = config.mailauth.authserv_id or config.hostname
    if trusted_client(session):
        # A submission, not mail relayed to us: nothing to verify, and no header
        # that would carry the user's name out with the message.
        res.set(MailauthVerdict(trusted=True))
        res.accept()
        return
    fields: dict[str, Any] = {"spf": res.get("mail/spf")}
    methods, found = await _verify(req, policy, fields["spf"])
    fields.update(found)
    header = format_header(authserv_id, methods)
    size, removed = await trio.to_thread.run_sync(
        _rewrite, message.path, header.encode("utf-8"), authserv_id
    )
    message.rewritten(size)
    if removed:
        res.log.info(
            "removed %d Authentication-Results header(s) claiming %s", removed, authserv_id
        )
    verdict_dmarc: DmarcResult | None = fields.get("dmarc")
    reply = None if verdict_dmarc is None else verdict_dmarc.reject_reply()
    rejected = reply is not None
    verdict = MailauthVerdict(
        **fields,
        junk=verdict_dmarc is not None and verdict_dmarc.action is dmarc.Action.JUNK,
        rejected=rejected,
        header_value=header.split(":", 1)[1].strip(),
        forged_removed=removed,
    )
    res.set(verdict)
    if reply is not None:
        assert verdict_dmarc is not None
        res.log.info("refused by DMARC: %s", verdict_dmarc.reason)
        res.reject(reply.code, reply.text, reply.enhanced)
        return
    res.accept()


SETTINGS = Settings(KEY, MailauthPolicy)


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    if EXTRA_MISSING is not None:
        logger.warning(
            "DKIM, ARC and DMARC are not verified (%s): pip install 'mailio-trio[mailauth]'; "
            "Authentication-Results records SPF only",
            EXTRA_MISSING,
        )
    else:
        # The Public Suffix List loads on first use (~150 ms): at start, not in a session.
        dmarc.organizational_domain("example.com")
    chain.add(
        Handler(
            command="queue",
            name="mailauth",
            func=verify,
            before=("spamd", "maildir", "relay"),
            if_present=True,
        )
    )
