"""The ``_dmarc`` TXT record (RFC 7489 §6.3, §6.4): sans-I/O parsing."""

from __future__ import annotations

import enum
import re

import attrs


class Policy(enum.StrEnum):
    """What a domain asks receivers to do with mail that fails DMARC (``p=``, ``sp=``)."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    def milder(self) -> Policy:
        """The policy for messages ``pct`` leaves out (RFC 7489 §6.3)."""
        return Policy.QUARANTINE if self is Policy.REJECT else Policy.NONE


class Alignment(enum.StrEnum):
    """``adkim=`` / ``aspf=``: relaxed (same organizational domain) or strict (equal)."""

    RELAXED = "r"
    STRICT = "s"


class DmarcRecordError(Exception):
    """A ``v=DMARC1`` record that RFC 7489 §6.3 does not accept."""


_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")
_FO = frozenset({"0", "1", "d", "s"})
_WSP = " \t\r\n"


@attrs.frozen(kw_only=True)
class DmarcRecord:
    """A parsed ``_dmarc`` TXT record (RFC 7489 §6.3); unset tags hold their defaults."""

    policy: Policy
    subdomain_policy: Policy | None = None
    """``sp=``; ``None`` when absent, meaning ``policy``."""
    pct: int = 100
    adkim: Alignment = Alignment.RELAXED
    aspf: Alignment = Alignment.RELAXED
    fo: tuple[str, ...] = ("0",)
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    rf: tuple[str, ...] = ("afrf",)
    ri: int = 86400

    def policy_for(self, *, subdomain: bool) -> Policy:
        """``sp`` for a subdomain of the record's (organizational) domain, else ``p``."""
        if subdomain and self.subdomain_policy is not None:
            return self.subdomain_policy
        return self.policy


def _tags(text: str) -> list[tuple[str, str]]:
    """The DKIM tag-list syntax (RFC 6376 §3.2), which RFC 7489 §6.4 reuses."""
    tags: list[tuple[str, str]] = []
    for spec in text.split(";"):
        if not spec.strip(_WSP):
            continue  # the trailing ";" (and, leniently, an empty spec between two)
        name, eq, value = spec.partition("=")
        name = name.strip(_WSP)
        if not eq or not _TAG_NAME.match(name):
            raise DmarcRecordError(f"not a tag=value pair: {spec.strip(_WSP)[:40]!r}")
        tags.append((name.lower(), value.strip(_WSP)))
    names = [name for name, _ in tags]
    if len(set(names)) != len(names):
        raise DmarcRecordError("a tag appears twice (RFC 6376 §3.2)")
    return tags


def is_dmarc_record(text: str) -> bool:
    """Whether a TXT record is a DMARC record at all: it starts ``v=DMARC1`` (§6.6.3 step 4)."""
    name, eq, rest = text.partition("=")
    if not eq or name.strip(_WSP).lower() != "v":
        return False
    return rest.split(";", 1)[0].strip(_WSP) == "DMARC1"


def _uris(value: str) -> tuple[str, ...]:
    return tuple(u.strip(_WSP) for u in value.split(",") if u.strip(_WSP))


def _valid_uri(uri: str) -> bool:
    # §6.4: a URI, optionally "!" and a size limit (which a URI itself cannot contain).
    return bool(_URI.match(uri.rsplit("!", 1)[0]))


def _int(value: str, low: int, high: int) -> int | None:
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        return None
    number = int(value)
    return number if low <= number <= high else None


def parse_record(text: str) -> DmarcRecord:
    """Parse one DMARC TXT record (its character-strings already joined).

    ``v=DMARC1`` must come first and match exactly (§6.3 ``v``). ``p`` is
    required; a missing or unknown ``p`` (or an unknown ``sp``) is an error unless
    ``rua`` names a valid URI, in which case the record is read as ``p=none``
    (§6.6.3 step 6: the domain still gets its reports). Other tags with values
    outside their syntax fall back to their defaults and unknown tags are
    ignored (§6.3: "syntax errors in the remainder ... SHOULD be discarded").

    Raises:
      DmarcRecordError: Nothing but this, whatever ``text`` holds.

    Example:
      >>> parse_record("v=DMARC1; p=reject; sp=none; pct=50; adkim=s").subdomain_policy
      <Policy.NONE: 'none'>
    """
    tags = _tags(text)
    if not tags or tags[0] != ("v", "DMARC1"):
        raise DmarcRecordError("the record does not start with v=DMARC1")
    values = dict(tags[1:])
    rua = _uris(values.get("rua", ""))
    policy = _policy(values.get("p"))
    sp = values.get("sp")
    subdomain_policy = _policy(sp)
    if policy is None or (sp is not None and subdomain_policy is None):
        if not any(_valid_uri(uri) for uri in rua):
            raise DmarcRecordError(f"p={values.get('p')!r} sp={sp!r}: not a valid policy")
        policy, subdomain_policy = Policy.NONE, None
    fo = tuple(f.strip(_WSP) for f in values.get("fo", "0").split(":"))
    pct = _int(values.get("pct", "100"), 0, 100)
    ri = _int(values.get("ri", "86400"), 0, 2**32 - 1)
    return DmarcRecord(
        policy=policy,
        subdomain_policy=subdomain_policy,
        pct=100 if pct is None else pct,
        adkim=_alignment(values.get("adkim")),
        aspf=_alignment(values.get("aspf")),
        fo=fo if fo and all(f in _FO for f in fo) else ("0",),
        rua=rua,
        ruf=_uris(values.get("ruf", "")),
        rf=tuple(f.strip(_WSP).lower() for f in values.get("rf", "afrf").split(":")),
        ri=86400 if ri is None else ri,
    )


def _policy(value: str | None) -> Policy | None:
    try:
        return None if value is None else Policy(value.lower())
    except ValueError:
        return None


def _alignment(value: str | None) -> Alignment:
    try:
        return Alignment(value.lower()) if value is not None else Alignment.RELAXED
    except ValueError:
        return Alignment.RELAXED
