"""DKIM signatures (RFC 6376) with RSA and Ed25519 (RFC 8463): verify, sign, make keys.

dkimpy does the cryptography and the canonicalisation. This module decides what is
verified, fetches the keys through our :class:`~mailio_trio.dns.Resolver`, keeps
dkimpy's CPU work off the event loop (a worker thread), and names each outcome
with its RFC 8601 §2.7.1 result:

- ``pass``: the signature verifies.
- ``fail``: it does not: the body hash or the header hash (``b=``) differs, i.e.
  the message was changed after signing.
- ``permerror``: the signature can never verify: malformed or missing tags, ``h=``
  without From (RFC 6376 §6.1.1), ``i=`` outside ``d=``, ``x=`` past; no key
  (NXDOMAIN/NODATA), a revoked or malformed key, a key whose type does not match
  ``a=``, an RSA key shorter than ``min_rsa_bits`` (RFC 8301 §3.2).
- ``temperror``: the key lookup timed out or the server failed (SERVFAIL).
- ``policy``: ``a=rsa-sha1``, which verifiers must not accept (RFC 8301 §3.1).

A message with no DKIM-Signature gives an **empty list**; whoever writes the
Authentication-Results header writes ``dkim=none`` for it (RFC 8601 §2.7.1).

Security: a hostile message can carry hundreds of signatures, each a DNS lookup and
a pass over the body; only the topmost ``max_signatures`` are verified, the rest
ignored (and logged). The header block is read only up to ``max_header_bytes``.

Example::

    results = await verify(spool_path, resolver=resolver, config=DkimVerifyConfig())
    header = sign(message, domain="example.com", selector="s1", private_key_pem=pem)
"""

from __future__ import annotations

import base64
import enum
import functools
import logging
import os
import re
from typing import TYPE_CHECKING, Any

import attrs
import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailio_trio.config import ConfigError
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
from mailio_trio.mailauth._offload import PROCESS_ABOVE, run_heavy

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mailio_trio.dns import Resolver

__all__ = [
    "SIGNED_HEADERS",
    "DkimAlgorithm",
    "DkimResult",
    "DkimSignConfig",
    "DkimSigningKey",
    "DkimVerdict",
    "DkimVerifyConfig",
    "dns_record_for",
    "generate_key",
    "sign",
    "sign_for_domain",
    "sign_keys",
    "verify",
    "write_private_key",
]

logger = logging.getLogger("mailio_trio.mailauth.dkim")


class DkimVerdict(enum.Enum):
    """A DKIM result as Authentication-Results spells it (RFC 8601 §2.7.1)."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"
    POLICY = "policy"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class DkimAlgorithm(enum.Enum):
    """The signing algorithms we sign with (``a=``)."""

    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"
    """RFC 8463; receivers that do not know it ignore the signature, so sign with RSA too."""


@attrs.frozen(kw_only=True)
class DkimResult:
    """The outcome for one DKIM-Signature, with what Authentication-Results reports.

    Text fields are the signature's own (hostile) values, decoded leniently: escape
    them before they go into a header or a log line.
    """

    result: DkimVerdict
    domain: str
    """``d=``: the signing domain (what DMARC aligns with)."""
    selector: str
    """``s=``."""
    identity: str
    """``i=``, or its default ``@`` + ``d=`` (RFC 6376 §3.5)."""
    algorithm: str
    """``a=`` as written (``rsa-sha256``, ``ed25519-sha256``, ...)."""
    reason: str = ""
    """Why it is not a pass, in words (for the AR comment or a log line)."""
    header_b: str = ""
    """The shortest prefix of ``b=`` (at least 8 characters) that tells this
    signature apart from the message's others: ``header.b`` (RFC 6008)."""


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"dkim.{attribute.name} = {value!r}: must be a positive number")


@attrs.frozen(kw_only=True)
class DkimVerifyConfig:
    """Limits for :func:`verify` (and for ARC's :func:`~mailio_trio.mailauth.arc.verify_arc`)."""

    max_signatures: int = attrs.field(default=10, validator=_positive)
    """Topmost signatures verified; the rest are ignored (hostile messages carry hundreds)."""
    dns_timeout: float = attrs.field(default=5.0, validator=_positive)
    """Seconds for all key lookups of one message together; late ones are a temperror."""
    min_rsa_bits: int = attrs.field(default=1024, validator=_positive)
    """RFC 8301 §3.2: verifiers must not accept RSA keys below 1024 bits."""
    max_header_bytes: int = attrs.field(default=1024 * 1024, validator=_positive)
    """How much of a message is searched for its header block."""
    process_above: int | None = PROCESS_ABOVE
    """Octets above which verification runs in a worker process, not a thread: dkimpy
    holds the GIL while it canonicalises a body (see ``_offload``); ``None``: always threads."""


# -- verification --------------------------------------------------------------


@attrs.frozen
class _Plan:
    """One signature to verify: its index for dkimpy, its key name, or an early verdict."""

    index: int
    result: DkimResult
    key: str | None
    done: bool


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def _plan(index: int, value: bytes) -> _Plan:
    tags = parse_tags(value)
    if tags is None:
        empty = DkimResult(
            result=DkimVerdict.PERMERROR, domain="", selector="", identity="", algorithm=""
        )
        return _Plan(index, attrs.evolve(empty, reason="signature tags do not parse"), None, True)
    domain, selector = tags.get(b"d", b""), tags.get(b"s", b"")
    result = DkimResult(
        result=DkimVerdict.NONE,
        domain=_text(domain),
        selector=_text(selector),
        identity=_text(tags.get(b"i") or b"@" + domain),
        algorithm=_text(tags.get(b"a")),
        header_b=re.sub(r"\s+", "", _text(tags.get(b"b"))),
    )

    def early(verdict: DkimVerdict, reason: str) -> _Plan:
        return _Plan(index, attrs.evolve(result, result=verdict, reason=reason), None, True)

    try:
        dkim.validate_signature_fields(tags)
    except dkim.ValidationError as exc:
        return early(DkimVerdict.PERMERROR, str(exc))
    signed = {h.strip().lower() for h in tags[b"h"].split(b":")}
    if b"from" not in signed:
        return early(DkimVerdict.PERMERROR, "From is not signed (RFC 6376 §6.1.1)")
    if tags[b"a"] == b"rsa-sha1":
        return early(DkimVerdict.POLICY, "rsa-sha1 is not accepted (RFC 8301 §3.1)")
    if (name := key_name(selector, domain)) is None:
        return early(DkimVerdict.PERMERROR, "s= and d= do not form a DNS name")
    return _Plan(index, result, name, False)


def _after_lookup(plan: _Plan, keys: dict[str, KeyLookup]) -> _Plan:
    if plan.done or plan.key is None:
        return plan
    lookup = keys[plan.key]
    if lookup.status is KeyStatus.FOUND:
        return plan
    verdict = DkimVerdict.PERMERROR if lookup.status is KeyStatus.MISSING else DkimVerdict.TEMPERROR
    return attrs.evolve(
        plan, result=attrs.evolve(plan.result, result=verdict, reason=lookup.reason), done=True
    )


def _check_key(plan: _Plan, record: bytes, min_rsa_bits: int) -> str | None:
    """Why the published key cannot verify this signature, or ``None`` if it can."""
    try:
        pk, bits, ktag, _ = dkim.evaluate_pk(plan.key, record)
    except Exception as exc:  # hostile DNS data: anything dkimpy's key parser may raise
        return f"key unusable: {exc}"
    if pk is None:
        return "key is not for email (s= tag)"
    wanted = b"ed25519" if plan.result.algorithm == "ed25519-sha256" else b"rsa"
    if ktag != wanted:
        return f"key type {_text(ktag)} does not match a={plan.result.algorithm}"
    if ktag == b"rsa" and bits < min_rsa_bits:
        return f"RSA key of {bits} bits is shorter than {min_rsa_bits} (RFC 8301 §3.2)"
    return None


def _verify_in_thread(
    source: MessageSource,
    fields: list[tuple[bytes, bytes]],
    body_offset: int | None,
    plans: list[_Plan],
    keys: dict[str, KeyLookup],
    min_rsa_bits: int,
) -> list[DkimResult]:
    """Run in a worker thread: load the message once, verify each pending signature."""
    served = ServedKeys(keys)
    results: list[DkimResult] = []
    try:
        verifier = dkimpy_message(dkim.DKIM, source, fields, body_offset, min_rsa_bits=min_rsa_bits)
    except dkim.DKIMException as exc:
        reason = f"message does not parse: {exc}"
        return [
            p.result
            if p.done
            else attrs.evolve(p.result, result=DkimVerdict.PERMERROR, reason=reason)
            for p in plans
        ]
    for plan in plans:
        if plan.done or plan.key is None:
            results.append(plan.result)
            continue
        verdict, reason = _verify_one(verifier, plan, keys[plan.key].record, served, min_rsa_bits)
        results.append(attrs.evolve(plan.result, result=verdict, reason=reason))
    return results


def _verify_one(
    verifier: dkim.DKIM, plan: _Plan, record: bytes, served: ServedKeys, min_rsa_bits: int
) -> tuple[DkimVerdict, str]:
    if (problem := _check_key(plan, record, min_rsa_bits)) is not None:
        return DkimVerdict.PERMERROR, problem
    try:
        ok = verifier.verify(idx=plan.index, dnsfunc=served)
    except dkim.ValidationError as exc:
        # Raised for a body hash mismatch: the body changed after signing.
        if "body hash mismatch" in str(exc):
            return DkimVerdict.FAIL, "body hash mismatch (the body was changed)"
        return DkimVerdict.FAIL, str(exc)
    except Exception as exc:  # hostile input: whatever dkimpy raises, this one cannot verify
        return DkimVerdict.PERMERROR, f"cannot verify: {type(exc).__name__}: {exc}"
    if ok:
        return DkimVerdict.PASS, ""
    return DkimVerdict.FAIL, "signature does not verify (signed header fields were changed)"


def _short_b(results: list[DkimResult]) -> list[DkimResult]:
    """Cut each ``b=`` to the shortest prefix of 8 or more that no other signature shares."""
    full = [r.header_b for r in results]
    out = []
    for i, result in enumerate(results):
        others = full[:i] + full[i + 1 :]
        n = 8
        while n < len(full[i]) and any(o.startswith(full[i][:n]) for o in others):
            n += 1
        out.append(attrs.evolve(result, header_b=full[i][:n]))
    return out


async def verify(
    source: MessageSource, *, resolver: Resolver, config: DkimVerifyConfig | None = None
) -> list[DkimResult]:
    """Verify the message's DKIM signatures, the topmost ``config.max_signatures`` of them.

    Args:
      source: The message as bytes, or the path of its spool file (then read from
        disk twice, the header block here and the body in the thread; held once).
      resolver: Where the keys are looked up, all at once under ``config.dns_timeout``.
      config: Limits; the defaults when ``None``.

    Returns:
      One result per verified signature, topmost first; an empty list when the
      message has no DKIM-Signature (report ``dkim=none``).

    Cancellation:
      The key lookups are cancellable; the verification thread, once started, is
      waited for (it only hashes and checks signatures).
    """
    config = config or DkimVerifyConfig()
    block, body_offset = await header_block(source, config.max_header_bytes)
    if b"dkim-signature" not in block.lower():
        return []
    try:
        fields = header_fields(block)
    except dkim.DKIMException as exc:
        unparsed = DkimResult(
            result=DkimVerdict.PERMERROR, domain="", selector="", identity="", algorithm=""
        )
        return [attrs.evolve(unparsed, reason=f"header block does not parse: {exc}")]
    signatures = [value for name, value in fields if name.lower() == b"dkim-signature"]
    if len(signatures) > config.max_signatures:
        logger.info("verifying %d of %d DKIM signatures", config.max_signatures, len(signatures))
    plans = [_plan(i, value) for i, value in enumerate(signatures[: config.max_signatures])]
    names = {p.key for p in plans if not p.done and p.key is not None}
    keys = await prefetch_keys(names, resolver=resolver, within=config.dns_timeout) if names else {}
    plans = [_after_lookup(p, keys) for p in plans]
    if all(p.done for p in plans):
        results = [p.result for p in plans]
    else:
        results = await run_heavy(
            source_size(source),
            config.process_above,
            _verify_in_thread,
            source,
            fields,
            body_offset,
            plans,
            keys,
            config.min_rsa_bits,
        )
    return _short_b(results)


# -- signing -------------------------------------------------------------------

SIGNED_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
    "list-owner", "list-archive", "resent-date", "resent-from", "resent-sender",
    "resent-to", "resent-cc", "resent-message-id",
)  # fmt: skip
"""Header fields signed when present (RFC 6376 §5.4.1's list, plus RFC 8058's
List-Unsubscribe-Post). Trace fields (Received, Return-Path) are never signed: relays add them."""


def _domain(value: str) -> str:
    return value.lower().rstrip(".")


@attrs.frozen(kw_only=True)
class DkimSigningKey:
    """One signing key of one domain: ``selector._domainkey.domain`` publishes its public half."""

    domain: str = attrs.field(converter=_domain)
    selector: str
    private_key_pem: str = attrs.field(repr=False)
    """PEM: PKCS#1 or PKCS#8 for RSA, PKCS#8 for Ed25519 (as :func:`generate_key` writes)."""
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA_SHA256


def _key_tuple(value: Iterable[DkimSigningKey]) -> tuple[DkimSigningKey, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class DkimSignConfig:
    """The signing keys of every local domain; one or two (RSA and Ed25519) per domain."""

    keys: tuple[DkimSigningKey, ...] = attrs.field(default=(), converter=_key_tuple)

    def keys_for(self, domain: str) -> tuple[DkimSigningKey, ...]:
        """The keys that sign for ``domain``, Ed25519 first (it is the newer, shorter one)."""
        wanted = domain.lower().rstrip(".")
        mine = [k for k in self.keys if k.domain == wanted]
        return tuple(sorted(mine, key=lambda k: k.algorithm is not DkimAlgorithm.ED25519_SHA256))


@functools.lru_cache(maxsize=64)
def _dkimpy_key(pem: str, algorithm: DkimAlgorithm) -> bytes:
    """The private key as dkimpy takes it: PKCS#1 PEM for RSA, the base64 seed for Ed25519."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ValueError(f"not a usable unencrypted PEM private key: {exc}") from None
    if algorithm is DkimAlgorithm.ED25519_SHA256:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{algorithm.value} needs an Ed25519 key, not {type(key).__name__}")
        return base64.b64encode(key.private_bytes_raw())
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{algorithm.value} needs an RSA key, not {type(key).__name__}")
    if key.key_size < 1024:
        raise ValueError(f"RSA key of {key.key_size} bits: RFC 8301 §3.2 wants at least 1024")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _headers_to_sign(names: Iterable[bytes]) -> list[bytes]:
    """Each present field of :data:`SIGNED_HEADERS` once per occurrence, From once more.

    The extra From is "oversigning" (RFC 6376 §8.15): a From added later breaks the
    signature instead of being shown to the reader above the signed one.
    """
    wanted = {h.encode("ascii") for h in SIGNED_HEADERS}
    present = [n.lower() for n in names if n.lower() in wanted]
    if b"from" not in present:
        raise ValueError("the message has no From header field (RFC 6376 §5.4)")
    return [*present, b"from"]


def _sign_with(signer: dkim.DKIM, include: list[bytes], key: DkimSigningKey) -> bytes:
    header: bytes = signer.sign(
        key.selector.encode("ascii"),
        key.domain.encode("ascii"),
        _dkimpy_key(key.private_key_pem, key.algorithm),
        signature_algorithm=key.algorithm.value.encode("ascii"),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=include,
    )
    return header


def sign_keys(message: bytes, keys: Sequence[DkimSigningKey]) -> bytes:
    """One DKIM-Signature per key, concatenated, to prepend to ``message``.

    CPU-bound (RSA, hashing the body): call it through ``trio.to_thread.run_sync``.

    Raises:
      ValueError: A key is not usable, or the message has no From or does not parse.
    """
    if not keys:
        return b""
    try:
        signer = dkim.DKIM(message, logger=dkimpy_logger())
        include = _headers_to_sign(name for name, _ in signer.headers)
        return b"".join(_sign_with(signer, include, key) for key in keys)
    except (dkim.DKIMException, IndexError) as exc:  # IndexError: a folded first line
        raise ValueError(f"cannot sign: {exc or type(exc).__name__}") from None


def sign(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key_pem: str,
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA_SHA256,
) -> bytes:
    """The ``DKIM-Signature: ...\\r\\n`` header to prepend; relaxed/relaxed, From oversigned.

    CPU-bound: call it through ``trio.to_thread.run_sync`` on the event loop.

    Example::

        pem, txt = generate_key(DkimAlgorithm.ED25519_SHA256)   # publish txt at s1._domainkey
        signed = sign(message, domain="example.com", selector="s1",
                      private_key_pem=pem, algorithm=DkimAlgorithm.ED25519_SHA256) + message
    """
    key = DkimSigningKey(
        domain=domain, selector=selector, private_key_pem=private_key_pem, algorithm=algorithm
    )
    return sign_keys(message, [key])


def sign_for_domain(message: bytes, *, config: DkimSignConfig, domain: str) -> bytes:
    """Every signature ``config`` has for ``domain`` (``b""`` when it has no key)."""
    return sign_keys(message, config.keys_for(domain))


# -- keys ----------------------------------------------------------------------


def dns_record_for(private_key_pem: str) -> str:
    """The TXT record text (``v=DKIM1; k=...; p=...``) publishing this key's public half.

    An RSA-2048 record is longer than 255 octets: zone files split it into several
    quoted character-strings of one TXT record (RFC 6376 §3.6.2.2).
    """
    key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes_raw()
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raise ValueError(f"no DKIM algorithm for a {type(key).__name__}")


def generate_key(
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA_SHA256, *, rsa_bits: int = 2048
) -> tuple[str, str]:
    """A new key pair: ``(private key PEM, DNS TXT record text)``.

    RSA keys are written as PKCS#1 (``BEGIN RSA PRIVATE KEY``), which OpenDKIM,
    Mail::DKIM and dkimpy all read; Ed25519 keys as PKCS#8 (its only PEM form).
    Nothing is run outside Python (dkimpy's ``dknewkey`` shells out to openssl).
    """
    if algorithm is DkimAlgorithm.ED25519_SHA256:
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    else:
        if rsa_bits < 1024:
            raise ValueError(f"rsa_bits = {rsa_bits}: RFC 8301 §3.2 wants at least 1024")
        pem = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    text = pem.decode("ascii")
    return text, dns_record_for(text)


def write_private_key(path: str | os.PathLike[str], pem: str, *, overwrite: bool = False) -> None:
    """Write ``pem`` to ``path`` readable by its owner only (mode 0600), durably.

    The file is created with mode 0600 from the start, so the key is never readable
    by others even for a moment; an existing file is refused unless ``overwrite``.

    Raises:
      FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_CREAT; tighten it
        file.write(pem)
        file.flush()
        os.fsync(fd)
