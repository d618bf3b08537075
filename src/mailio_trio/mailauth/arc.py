"""ARC (RFC 8617): verify a message's Authenticated Received Chain, and seal it.

An intermediary that changes a message (a mailing list) breaks its DKIM signatures;
ARC lets it vouch for what it saw: each hop adds a set of three header fields with
instance ``i=``: ARC-Authentication-Results (a copy of its Authentication-Results),
ARC-Message-Signature (a DKIM-like signature over the message) and ARC-Seal (a
signature over all ARC sets so far, with ``cv=`` the chain's state as that hop saw it).

dkimpy verifies and seals; as for DKIM (:mod:`mailio_trio.mailauth.dkim`), the keys
of every set are fetched first through our resolver, and dkimpy runs in a worker
thread with a ``dnsfunc`` that only serves those answers (``_keys.py``).

Results are RFC 8617 §4.4's ``none``, ``pass`` and ``fail``. A key lookup that failed
only for now (timeout, SERVFAIL) also gives ``fail``, with ``temporary`` set: a
caller may tempfail the message rather than seal a broken chain (``cv=fail`` is
final for every hop after).

Security: at most 50 ARC sets (RFC 8617 §4.2.1: a chain past ``i=50`` fails), so
at most 100 key lookups however many header fields a hostile message carries.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

import attrs
import dkim

from mailio_trio.mailauth._keys import (
    KeyLookup,
    KeyStatus,
    MessageSource,
    ServedKeys,
    dkimpy_logger,
    dkimpy_message,
    header_block,
    header_fields,
    key_name,
    parse_tags,
    prefetch_keys,
    source_size,
)
from mailio_trio.mailauth._offload import run_heavy

# Shared with DKIM signing on purpose: the same key handling and header list.
from mailio_trio.mailauth.dkim import DkimAlgorithm, DkimVerifyConfig, _dkimpy_key, _headers_to_sign

if TYPE_CHECKING:
    from mailio_trio.dns import Resolver

__all__ = ["MAX_INSTANCES", "ArcResult", "ArcVerdict", "seal", "verify_arc"]

logger = logging.getLogger("mailio_trio.mailauth.arc")

MAX_INSTANCES = 50
"""RFC 8617 §4.2.1: instance values are 1 to 50; a longer chain fails."""

_ARC_FIELDS = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")


class ArcVerdict(enum.Enum):
    """The chain's validation status (``arc=`` in Authentication-Results, ``cv=`` in a seal)."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"


@attrs.frozen(kw_only=True)
class ArcResult:
    """The outcome of verifying a message's ARC chain."""

    result: ArcVerdict
    instance: int = 0
    """The chain's last instance (highest ``i=``); 0 without a chain."""
    domain: str = ""
    """``d=`` of the last ARC-Seal (``smtp.remote-ip``-like context for the AR header)."""
    selector: str = ""
    """``s=`` of the last ARC-Seal."""
    reason: str = ""
    temporary: bool = False
    """A ``fail`` caused by a key lookup that may work later (timeout, SERVFAIL)."""


@attrs.frozen
class _Chain:
    """What the header block says before any cryptography: the sets and their keys."""

    instance: int
    domain: str
    selector: str
    keys: frozenset[str]


def _chain(fields: list[tuple[bytes, bytes]]) -> _Chain | str:
    """The chain's shape, or why it fails without looking further."""
    instance, domain, selector = 0, "", ""
    names: set[str] = set()
    arc = [(n.lower(), v) for n, v in fields if n.lower() in _ARC_FIELDS]
    if len(arc) > 3 * MAX_INSTANCES:
        return f"{len(arc)} ARC header fields: more than {MAX_INSTANCES} sets (RFC 8617 §4.2.1)"
    for name, value in arc:
        if name == b"arc-authentication-results":
            continue
        tags = parse_tags(value)
        if tags is None:
            continue  # dkimpy fails this set with its own reason
        try:
            i = int(tags.get(b"i", b""))
        except ValueError:
            continue
        if not 1 <= i <= MAX_INSTANCES:
            return f"ARC instance i={i} outside 1..{MAX_INSTANCES} (RFC 8617 §4.2.1)"
        key = key_name(tags.get(b"s", b""), tags.get(b"d", b""))
        if key is not None:
            names.add(key)
        if name == b"arc-seal" and i >= instance:
            instance = i
            domain = tags.get(b"d", b"").decode("utf-8", "replace")
            selector = tags.get(b"s", b"").decode("utf-8", "replace")
    return _Chain(instance, domain, selector, frozenset(names))


def _verify_in_thread(
    source: MessageSource,
    fields: list[tuple[bytes, bytes]],
    body_offset: int | None,
    keys: dict[str, KeyLookup],
    min_rsa_bits: int,
) -> tuple[ArcVerdict, str]:
    """Run in a worker thread: dkimpy checks every set, newest first."""
    try:
        verifier = dkimpy_message(dkim.ARC, source, fields, body_offset, min_rsa_bits=min_rsa_bits)
        cv, _, reason = verifier.verify(dnsfunc=ServedKeys(keys))
    except Exception as exc:  # hostile input: whatever dkimpy raises, the chain does not verify
        return ArcVerdict.FAIL, f"cannot verify: {type(exc).__name__}: {exc}"
    if cv == dkim.CV_Pass:
        return ArcVerdict.PASS, ""
    if cv == dkim.CV_None:
        return ArcVerdict.NONE, str(reason)
    # None: an earlier hop sealed cv=fail, which ends the chain for good (RFC 8617 §5.2).
    return ArcVerdict.FAIL, str(reason)


async def verify_arc(
    source: MessageSource, *, resolver: Resolver, config: DkimVerifyConfig | None = None
) -> ArcResult:
    """Verify the message's ARC chain (RFC 8617 §5.2).

    Args:
      source: The message as bytes, or the path of its spool file.
      resolver: Where the keys of every set are looked up, all at once, within
        ``config.dns_timeout``.
      config: The DKIM verification limits (its ``max_signatures`` does not apply:
        a chain has at most 50 sets).

    Returns:
      ``none`` without ARC header fields, else ``pass`` or ``fail`` with the last instance.
    """
    config = config or DkimVerifyConfig()
    block, body_offset = await header_block(source, config.max_header_bytes)
    if b"arc-" not in block.lower():
        return ArcResult(result=ArcVerdict.NONE, reason="no ARC header fields")
    try:
        fields = header_fields(block)
    except dkim.DKIMException as exc:
        return ArcResult(result=ArcVerdict.FAIL, reason=f"header block does not parse: {exc}")
    if not any(name.lower() in _ARC_FIELDS for name, _ in fields):
        return ArcResult(result=ArcVerdict.NONE, reason="no ARC header fields")
    chain = _chain(fields)
    if isinstance(chain, str):
        return ArcResult(result=ArcVerdict.FAIL, reason=chain)
    keys = await prefetch_keys(chain.keys, resolver=resolver, within=config.dns_timeout)
    verdict, reason = await run_heavy(
        source_size(source),
        config.process_above,
        _verify_in_thread,
        source,
        fields,
        body_offset,
        keys,
        config.min_rsa_bits,
    )
    temporary = verdict is ArcVerdict.FAIL and any(
        k.status is KeyStatus.TEMPORARY for k in keys.values()
    )
    if temporary:
        reason = "; ".join(k.reason for k in keys.values() if k.status is KeyStatus.TEMPORARY)
    return ArcResult(
        result=verdict,
        instance=chain.instance,
        domain=chain.domain,
        selector=chain.selector,
        reason=reason,
        temporary=temporary,
    )


def _results_value(authserv_id: str, text: str) -> str:
    """``authserv-id; resinfo...``, whether ``text`` is a whole AR value or only its results."""
    value = text.strip()
    if value.lower().startswith("authentication-results:"):
        value = value.split(":", 1)[1].strip()
    head, _, rest = value.partition(";")
    words = head.split()
    if words and words[0].lower() == authserv_id.lower():
        # Respelt as given: dkimpy matches the authserv-id exactly, case included.
        value = rest.strip()
    return f"{authserv_id}; {value}" if value else authserv_id


def seal(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key_pem: str,
    authserv_id: str,
    authentication_results_text: str,
    timestamp: int | None = None,
) -> bytes:
    """The next ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) to prepend.

    CPU-bound: call it through ``trio.to_thread.run_sync`` on the event loop.

    Args:
      message: The message as it leaves us, without the new set.
      domain: ``d=`` of the new set; the key is published at ``selector._domainkey.domain``.
      selector: ``s=``.
      private_key_pem: An RSA key (RFC 8617 §4.1.3 defines only ``rsa-sha256``).
      authserv_id: Ours, as in our Authentication-Results header.
      authentication_results_text: Our Authentication-Results value (with or without
        the leading authserv-id); it is copied into the ARC-Authentication-Results, and
        its ``arc=`` result (from :func:`verify_arc`) becomes the seal's ``cv=``.
        Without ``arc=`` the chain is taken to start here (``cv=none``).
      timestamp: ``t=``; the current time when ``None``.

    Returns:
      The three header fields, each ending in CRLF, ARC-Seal first.

    Raises:
      ValueError: The key is not RSA, the results say ``arc=pass`` for a message with
        no chain, a chain exists but the results carry no ``arc=``, or the chain is
        already 50 sets long.
    """
    key = _dkimpy_key(private_key_pem, DkimAlgorithm.RSA_SHA256)
    value = _results_value(authserv_id, authentication_results_text)
    sealer = dkim.ARC(message, logger=dkimpy_logger(), signature_algorithm=b"rsa-sha256")
    # dkimpy takes the results from the message's own Authentication-Results fields that
    # carry our authserv-id. Hand it exactly ours, as a parsed field (rather than copying
    # the whole message to prepend one), and drop the others: one with our id that came
    # from outside would be forged, and no AR field is signed by ARC-Message-Signature.
    sealer.headers = [h for h in sealer.headers if h[0].lower() != b"authentication-results"]
    sealer.headers.insert(0, [b"Authentication-Results", b" " + value.encode("utf-8") + b"\r\n"])
    include = _headers_to_sign(name for name, _ in sealer.headers)
    try:
        headers: list[bytes] = sealer.sign(
            selector.encode("ascii"),
            domain.lower().rstrip(".").encode("ascii"),
            key,
            authserv_id.encode("utf-8"),
            include_headers=include,
            timestamp=timestamp,
        )
    except dkim.DKIMException as exc:
        raise ValueError(f"cannot seal: {exc}") from None
    if not headers:
        raise ValueError(
            "cannot seal: the message has an ARC chain but the results have no arc= for it"
        )
    return b"".join(headers)
