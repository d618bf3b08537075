"""SPF records and macros (RFC 7208 §4.5-§7), sans-I/O: text in, values out.

This module parses one SPF record into :class:`Record` (mechanisms with
their qualifiers, the ``redirect``/``exp`` modifiers) and expands macro
strings against a :class:`MacroContext`. It never does DNS: a ``%{p}`` macro
needs the client's validated domain name, which the evaluator
(:mod:`mailio_trio.mailauth.spf`) looks up first when
:attr:`MacroString.needs_validated_name` says so.

Every syntax error raises :class:`PermError` and nothing else, whatever the
text (RFC 7208 §4.6: "If there are any syntax errors anywhere in the record,
check_host() returns immediately with the result "permerror"").

Grammar notes that are easy to get wrong, each backed by the RFC 7208 test
suite:

- Terms are separated by spaces only (§4.6.1); any other control character
  or a non-ASCII octet anywhere in the record is a syntax error (§3.1).
- ``name=`` makes a term a modifier only when ``name`` is
  ``ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )``; ``redirect:x`` is an
  unknown *mechanism*, hence an error (§4.6.1, §12).
- A domain-spec must end in a macro or in ``"." toplabel ["."]``; a toplabel
  is not all digits and does not start or end with ``-`` (§7.1, RFC 1123).
- CIDR lengths have no leading zeros and are at most 32 / 128 (§5.6).
- ``c``, ``r`` and ``t`` macros are allowed in explanation text only (§7.2).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import urllib.parse

import attrs

__all__ = [
    "Kind",
    "Macro",
    "MacroContext",
    "MacroString",
    "Mechanism",
    "PermError",
    "Qualifier",
    "Record",
    "domain_problem",
    "expand",
    "expand_domain",
    "is_spf_record",
    "parse_domain_spec",
    "parse_explanation",
    "parse_macro_string",
    "parse_record",
]

# RFC 7208 §7.3: a target name longer than 253 octets loses labels on the left.
MAX_DOMAIN_LENGTH = 253
# RFC 1035 §2.3.4.
MAX_LABEL_LENGTH = 63


class PermError(ValueError):
    """The record (or a macro string in it) breaks RFC 7208's grammar: result ``permerror``."""


class Qualifier(enum.Enum):
    """A directive's qualifier (RFC 7208 §4.6.2); the value is its character."""

    PASS = "+"
    FAIL = "-"
    SOFTFAIL = "~"
    NEUTRAL = "?"


class Kind(enum.Enum):
    """The eight mechanisms of RFC 7208 §5."""

    ALL = "all"
    INCLUDE = "include"
    A = "a"
    MX = "mx"
    PTR = "ptr"
    IP4 = "ip4"
    IP6 = "ip6"
    EXISTS = "exists"


# RFC 7208 §4.6.4: the terms that cost one of the ten DNS lookups (and redirect).
DNS_KINDS = frozenset({Kind.INCLUDE, Kind.A, Kind.MX, Kind.PTR, Kind.EXISTS})

_MACRO_LETTERS = frozenset("slodiphv")
_EXPLANATION_LETTERS = _MACRO_LETTERS | frozenset("crt")
_DELIMITERS = frozenset(".-+,/_=")
_MACRO_RE = re.compile(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)")
_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)", re.DOTALL)
_MECHANISM_RE = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9]*)(.*)", re.DOTALL)
_DUAL_CIDR_RE = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?\Z")
_IP4_RE = re.compile(r"([0-9.]+)(?:/([0-9]+))?")
_IP6_RE = re.compile(r"([0-9A-Fa-f:.]+)(?:/([0-9]+))?")
_CIDR_DIGITS_RE = re.compile(r"0|[1-9][0-9]*")
_TOPLABEL_RE = re.compile(
    r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9]"
)


@attrs.frozen
class Macro:
    """One ``%{...}`` expansion (RFC 7208 §7.1).

    Attributes:
      letter: The macro letter, lower case.
      digits: Keep this many right-hand parts (``None``: all).
      reverse: Reverse the parts first (the ``r`` transformer).
      delimiters: Split on these (default ``"."``); the parts are joined with ``"."``.
      escape: An upper-case letter: URL-escape the result (§7.3).
    """

    letter: str
    digits: int | None = None
    reverse: bool = False
    delimiters: str = "."
    escape: bool = False


@attrs.frozen
class MacroString:
    """A parsed macro-string: literal text and :class:`Macro` parts, in order."""

    text: str
    parts: tuple[str | Macro, ...]

    @property
    def needs_validated_name(self) -> bool:
        """Whether expanding needs the ``%{p}`` name, which costs PTR and A lookups."""
        return any(isinstance(p, Macro) and p.letter == "p" for p in self.parts)


@attrs.frozen(kw_only=True)
class Mechanism:
    """One directive: a qualifier and a mechanism with its arguments.

    Attributes:
      qualifier: What a match means.
      kind: Which mechanism.
      text: The term as the record spells it (``"-ip4:192.0.2.0/24"``), for reports.
      domain_spec: The target (``include``, ``exists``; optional for ``a``, ``mx``, ``ptr``).
      network: The network of ``ip4``/``ip6``.
      cidr4: Prefix length for IPv4 addresses of ``a``/``mx``.
      cidr6: Prefix length for IPv6 addresses of ``a``/``mx``.
    """

    qualifier: Qualifier
    kind: Kind
    text: str
    domain_spec: MacroString | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@attrs.frozen(kw_only=True)
class Record:
    """A parsed SPF record.

    Attributes:
      mechanisms: The directives, evaluated left to right.
      redirect: The ``redirect=`` target, used when no directive matches.
      exp: The ``exp=`` domain whose TXT record explains a ``fail``.
      unknown_modifiers: Names of other modifiers; they are ignored (§6).
    """

    mechanisms: tuple[Mechanism, ...] = ()
    redirect: MacroString | None = None
    exp: MacroString | None = None
    unknown_modifiers: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class MacroContext:
    """What the macro letters expand to (RFC 7208 §7.2).

    Attributes:
      sender: ``s``: the whole identity, ``local-part@domain``.
      local_part: ``l``.
      sender_domain: ``o``.
      domain: ``d``: the domain whose record is being evaluated.
      ip: ``i``, ``c`` and ``v`` derive from it (IPv4-mapped addresses already unmapped).
      helo: ``h``.
      validated_name: ``p``; ``None`` expands to ``"unknown"``.
      receiver: ``r``: the receiving host's domain.
      timestamp: ``t``: seconds since the epoch.
    """

    sender: str
    local_part: str
    sender_domain: str
    domain: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str
    validated_name: str | None = None
    receiver: str = "unknown"
    timestamp: int = 0


# -- macro strings -------------------------------------------------------------


def _parse(text: str, *, letters: frozenset[str], spaces: bool) -> tuple[list[str | Macro], str]:
    """The parts of ``text`` and the literal tail after its last macro-expand."""
    parts: list[str | Macro] = []
    literal: list[str] = []
    tail_start = 0  # index in text where the literal tail begins
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "%":
            # RFC 7208 §7.1: macro-literal = %x21-24 / %x26-7E; explain-string adds SP.
            if not ("!" <= char <= "~" or (spaces and char == " ")):
                raise PermError(f"character {char!r} is not allowed in {text!r}")
            literal.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following in ("%", "_", "-"):
            literal.append({"%": "%", "_": " ", "-": "%20"}[following])
            i += 2
            tail_start = i
            continue
        if following != "{":
            raise PermError(f"'%' must be followed by '{{', '%', '_' or '-' in {text!r}")
        end = text.find("}", i + 2)
        match = _MACRO_RE.fullmatch(text, i + 2, end) if end >= 0 else None
        if match is None:
            raise PermError(f"malformed macro in {text!r}")
        letter, digits, reverse, delimiters = match.groups()
        if letter.lower() not in letters:
            raise PermError(f"unknown macro letter {letter!r} in {text!r}")
        # §7.1: "If a DIGIT is specified, the value MUST be nonzero."
        if digits and int(digits) == 0:
            raise PermError(f"macro transformer 0 in {text!r}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(
            Macro(
                letter=letter.lower(),
                digits=int(digits) if digits else None,
                reverse=bool(reverse),
                delimiters=delimiters or ".",
                escape=letter.isupper(),
            )
        )
        i = end + 1
        tail_start = i
    if literal:
        parts.append("".join(literal))
    return parts, text[tail_start:]


def parse_macro_string(text: str) -> MacroString:
    """Parse a macro-string (the value of an unknown modifier).

    Raises:
      PermError: Bad macro syntax or a character outside ``%x21-7E``.
    """
    parts, _ = _parse(text, letters=_MACRO_LETTERS, spaces=False)
    return MacroString(text, tuple(parts))


def parse_explanation(text: str) -> MacroString:
    """Parse the explain-string of an ``exp=`` TXT record (spaces and ``c r t`` allowed).

    Raises:
      PermError: A syntax error; the caller then ignores the explanation (§6.2).
    """
    parts, _ = _parse(text, letters=_EXPLANATION_LETTERS, spaces=True)
    return MacroString(text, tuple(parts))


def parse_domain_spec(text: str) -> MacroString:
    """Parse a domain-spec: a macro-string ending in a macro or ``.toplabel[.]``.

    Raises:
      PermError: Empty, bad macro syntax, or no valid ending.
    """
    if not text:
        raise PermError("empty domain-spec")
    parts, tail = _parse(text, letters=_MACRO_LETTERS, spaces=False)
    if tail:
        label = tail.removesuffix(".")
        dot = label.rfind(".")
        if dot < 0 or not _TOPLABEL_RE.fullmatch(label, dot + 1):
            raise PermError(f"domain-spec {text!r} does not end in a valid top label")
    return MacroString(text, tuple(parts))


def _nibbles(ip: ipaddress.IPv6Address) -> str:
    # RFC 7208 §7.4's example expands %{ir} of 2001:db8::cb01 to lower-case nibbles.
    return ".".join(ip.exploded.replace(":", ""))


def _value(letter: str, ctx: MacroContext) -> str:
    match letter:
        case "s":
            return ctx.sender
        case "l":
            return ctx.local_part
        case "o":
            return ctx.sender_domain
        case "d":
            return ctx.domain
        case "i":
            ip = ctx.ip
            return _nibbles(ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
        case "p":
            return ctx.validated_name or "unknown"
        case "v":
            return "in-addr" if ctx.ip.version == 4 else "ip6"
        case "h":
            return ctx.helo
        case "c":
            return str(ctx.ip)
        case "r":
            return ctx.receiver
        case "t":
            return str(ctx.timestamp)
    raise AssertionError(f"macro letter {letter!r} passed parsing")  # pragma: no cover


def expand(macro_string: MacroString, ctx: MacroContext) -> str:
    """Expand ``macro_string`` (RFC 7208 §7.3); explanation text is used as is."""
    out: list[str] = []
    for part in macro_string.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _value(part.letter, ctx)
        pieces = re.split("[" + re.escape(part.delimiters) + "]", value)
        if part.reverse:
            pieces.reverse()
        if part.digits is not None:
            pieces = pieces[-part.digits :]
        value = ".".join(pieces)
        if part.escape:
            # §7.3: upper-case letters escape every character outside RFC 3986 "unreserved";
            # quote() keeps exactly ALPHA, DIGIT and "-._~".
            value = urllib.parse.quote(value, safe="")
        out.append(value)
    return "".join(out)


def expand_domain(macro_string: MacroString, ctx: MacroContext) -> str:
    """Expand a domain-spec into a name to query: no trailing dot, at most 253 octets.

    RFC 7208 §7.3: "if the expanded domain name exceeds 253 characters ... the
    left side is truncated to fit, by removing successive domain labels".
    """
    name = expand(macro_string, ctx).removesuffix(".")
    while len(name) > MAX_DOMAIN_LENGTH and "." in name:
        name = name.split(".", 1)[1]
    return name


def domain_problem(name: str, *, fqdn: bool = False) -> str | None:
    """Why ``name`` cannot be queried, or ``None`` if it can.

    Args:
      name: A domain, with or without the trailing dot.
      fqdn: Also require two labels and no domain literal (RFC 7208 §4.3, for
        the <domain> given to check_host()).
    """
    bare = name.removesuffix(".")
    if not bare:
        return "empty domain"
    if len(bare) > MAX_DOMAIN_LENGTH:
        return "domain longer than 253 octets"
    labels = bare.split(".")
    if any(not label for label in labels):
        return "empty label in domain"
    if any(len(label.encode("utf-8", "replace")) > MAX_LABEL_LENGTH for label in labels):
        return "label longer than 63 octets"
    if fqdn and len(labels) < 2:
        return "not a fully qualified domain name"
    if fqdn and bare.startswith("["):
        return "domain literal"
    return None


# -- records -------------------------------------------------------------------


def is_spf_record(text: str) -> bool:
    """Whether a TXT record is an SPF record: ``v=spf1`` then a space or the end (§4.5)."""
    return text[:6].lower() == "v=spf1" and text[6:7] in ("", " ")


def _cidr(digits: str | None, maximum: int, term: str) -> int | None:
    if digits is None:
        return None
    # §5.6: ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT); no leading zeros.
    if not _CIDR_DIGITS_RE.fullmatch(digits) or int(digits) > maximum:
        raise PermError(f"bad CIDR length /{digits} in {term!r}")
    return int(digits)


def _network(kind: Kind, rest: str, term: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    pattern, maximum = (_IP4_RE, 32) if kind is Kind.IP4 else (_IP6_RE, 128)
    match = pattern.fullmatch(rest[1:]) if rest.startswith(":") else None
    if match is None:
        raise PermError(f"{kind.value} needs ':' and an address: {term!r}")
    try:
        address = (
            ipaddress.IPv4Address(match[1]) if kind is Kind.IP4 else ipaddress.IPv6Address(match[1])
        )
    except ValueError:
        # Python rejects IPv4 leading zeros, as §4.6.1's ip4-network requires.
        raise PermError(f"bad {kind.value} address in {term!r}") from None
    prefix = _cidr(match[2], maximum, term)
    return ipaddress.ip_network((address, maximum if prefix is None else prefix), strict=False)


def _mechanism(term: str) -> Mechanism:
    match = _MECHANISM_RE.fullmatch(term)
    if match is None:
        raise PermError(f"unknown term {term!r}")
    qualifier = Qualifier(match[1] or "+")
    try:
        kind = Kind(match[2].lower())
    except ValueError:
        raise PermError(f"unknown mechanism {match[2]!r}") from None
    rest = match[3]
    if kind is Kind.ALL:
        if rest:
            raise PermError(f"'all' takes no argument: {term!r}")
        return Mechanism(qualifier=qualifier, kind=kind, text=term)
    if kind in (Kind.IP4, Kind.IP6):
        network = _network(kind, rest, term)
        return Mechanism(qualifier=qualifier, kind=kind, text=term, network=network)
    cidr4 = cidr6 = None
    if kind in (Kind.A, Kind.MX):
        cidr = _DUAL_CIDR_RE.search(rest)
        assert cidr is not None  # the pattern matches the empty string at the end
        cidr4 = _cidr(cidr[1], 32, term)
        cidr6 = _cidr(cidr[2], 128, term)
        rest = rest[: cidr.start()]
    if rest.startswith(":"):
        domain_spec: MacroString | None = parse_domain_spec(rest[1:])
    elif rest or kind in (Kind.INCLUDE, Kind.EXISTS):
        raise PermError(f"{kind.value} needs ':' and a domain-spec: {term!r}")
    else:
        domain_spec = None
    return Mechanism(
        qualifier=qualifier,
        kind=kind,
        text=term,
        domain_spec=domain_spec,
        cidr4=32 if cidr4 is None else cidr4,
        cidr6=128 if cidr6 is None else cidr6,
    )


def parse_record(text: str) -> Record:
    """Parse an SPF record (one TXT record, its strings already joined).

    Example:
      >>> record = parse_record("v=spf1 ip4:192.0.2.0/24 -all exp=why.%{d}")
      >>> [m.text for m in record.mechanisms], record.exp.text
      (['ip4:192.0.2.0/24', '-all'], 'why.%{d}')

    Raises:
      PermError: Not an SPF record, or any syntax error anywhere in it.
    """
    if not is_spf_record(text):
        raise PermError(f"not an SPF record: {text[:40]!r}")
    # §3.1 and §4.6.1: 7-bit ASCII; SP is the only separator, so other controls are errors.
    if bad := next((c for c in text if not " " <= c <= "~"), None):
        raise PermError(f"character {bad!r} is not allowed in an SPF record")
    mechanisms: list[Mechanism] = []
    modifiers: dict[str, MacroString] = {}
    unknown: list[str] = []
    for term in text[6:].split(" "):
        if not term:
            continue
        modifier = _MODIFIER_RE.fullmatch(term)
        if modifier is None:
            mechanisms.append(_mechanism(term))
            continue
        name, value = modifier[1].lower(), modifier[2]
        if name in ("redirect", "exp"):
            # §6: "These two modifiers MUST NOT appear in a record more than once each."
            if name in modifiers:
                raise PermError(f"{name}= appears twice")
            modifiers[name] = parse_domain_spec(value)
        else:
            parse_macro_string(value)  # §6: unknown modifiers must still be valid macro-strings
            unknown.append(name)
    return Record(
        mechanisms=tuple(mechanisms),
        redirect=modifiers.get("redirect"),
        exp=modifiers.get("exp"),
        unknown_modifiers=tuple(unknown),
    )
