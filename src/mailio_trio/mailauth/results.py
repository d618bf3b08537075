"""The ``Authentication-Results`` header field (RFC 8601): ours out, forged ones gone.

Three jobs, all sans-I/O:

- :func:`format_header` builds the one field we add, from our authserv-id and
  :class:`MethodResult` values (``spf``, ``dkim``, ``dmarc``, ``arc``), folded at 78
  columns, every value quoted exactly where the grammar requires it.
- :func:`parse_header_value` reads the authserv-id (and version) at the start of
  a field someone else wrote; :func:`is_forged` says whether it claims to be ours.
- :class:`AuthResStripper` (and :func:`strip_forged`, its one-shot form) removes
  those fields from a header block as it streams past, folded lines included,
  leaving every other byte as it was.

Why strip: RFC 8601 §5 — an MUA trusts A-R fields carrying its ADMD's
authserv-id, so an MTA "MUST" not let a message in with one it did not write.
Only the plain field is stripped; ``ARC-Authentication-Results`` is part of a
sealed ARC set and is judged by ARC, never removed here.

The grammar (RFC 8601 §2.2, values from RFC 2045 §5.1)::

    authres-payload = [CFWS] authserv-id [ CFWS authres-version ]
                      ( no-result / 1*resinfo ) [CFWS] CRLF
    authserv-id     = value            ; token / quoted-string
    resinfo         = [CFWS] ";" methodspec [ CFWS reasonspec ] [ CFWS 1*propspec ]
    propspec        = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
    pvalue          = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS]
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "AuthResHeader",
    "AuthResParseError",
    "AuthResStripper",
    "MethodResult",
    "format_header",
    "is_forged",
    "parse_header_value",
    "strip_forged",
]

FIELD_NAME = "Authentication-Results"

# RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, CRLF excluded.
LINE_WIDTH = 78
# Continuation lines start with a TAB (as OpenDKIM/OpenDMARC write them); it is
# counted as 8 columns so the header also fits 78 columns on a terminal.
_INDENT = "\t"
_INDENT_WIDTH = 8

# RFC 5321 Keyword (Let-dig [Ldh-str]): methods, results, ptypes, properties.
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_PROPERTY = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z"
)
# RFC 2045 §5.1: token = 1*<any CHAR except SPACE, CTLs, or tspecials ()<>@,;:\"/[]?=>.
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
# pvalue's second form: [[local-part] "@"] domain-name, local-part as a dot-atom.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"(?:{_ATEXT}(?:\.{_ATEXT})*)?@{_LABEL}(?:\.{_LABEL})*\.?\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# RFC 8601 §2.7 and RFC 8617 §10.2: the results each registered method may report.
KNOWN_RESULTS: Mapping[str, frozenset[str]] = {
    "spf": frozenset({"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}),
    "dkim": frozenset({"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}),
    "dmarc": frozenset({"none", "pass", "fail", "temperror", "permerror"}),
    "arc": frozenset({"none", "pass", "fail"}),
}


# -- building -----------------------------------------------------------------


def _keyword(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _KEYWORD.match(value):
        raise ValueError(f"{attribute.name} {value!r} is not an RFC 8601 keyword")


def _lower(value: str) -> str:
    return str(value).lower()


def _properties(
    value: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    pairs = tuple(value.items() if isinstance(value, dict) else value)
    for name, _ in pairs:
        if not _PROPERTY.match(name):
            raise ValueError(f"property {name!r} is not ptype.property (RFC 8601 §2.2)")
    return tuple((name.lower(), str(text)) for name, text in pairs)


@attrs.frozen
class MethodResult:
    """One method's verdict: ``spf=pass smtp.mailfrom=example.com``.

    Args:
      method: ``spf``, ``dkim``, ``dmarc``, ``arc`` or another registered method.
      result: One of the results RFC 8601 §2.7 allows for that method (checked
        for the four above).
      reason: Free text for ``reason="..."``; quoted as needed.
      properties: ``(ptype.property, value)`` pairs in order, e.g.
        ``(("smtp.mailfrom", "example.com"),)``; a dict works too.
      comment: Free text shown in parentheses after the result.

    Example:
      >>> format_header("mx.example.net", [MethodResult.spf("pass", mailfrom="example.com")])
      'Authentication-Results: mx.example.net;\\r\\n\\tspf=pass smtp.mailfrom=example.com\\r\\n'
    """

    method: str = attrs.field(converter=_lower, validator=_keyword)
    result: str = attrs.field(converter=_lower, validator=_keyword)
    reason: str | None = attrs.field(default=None, kw_only=True)
    properties: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_properties, kw_only=True
    )
    comment: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        allowed = KNOWN_RESULTS.get(self.method)
        if allowed is not None and self.result not in allowed:
            raise ValueError(f"{self.method}={self.result} is not a result RFC 8601 defines")

    @classmethod
    def spf(
        cls,
        result: str,
        *,
        mailfrom: str | None = None,
        helo: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
    ) -> MethodResult:
        """SPF (RFC 7208 §9.1): ``smtp.mailfrom`` for the MAIL FROM check, ``smtp.helo`` for HELO.

        Example:
          >>> MethodResult.spf("pass", helo="mx.example.com").properties
          (('smtp.helo', 'mx.example.com'),)
        """
        props = [("smtp.mailfrom", mailfrom), ("smtp.helo", helo)]
        return cls(
            "spf",
            result,
            reason=reason,
            comment=comment,
            properties=[(k, v) for k, v in props if v is not None],
        )

    @classmethod
    def dkim(
        cls,
        result: str,
        *,
        domain: str | None = None,
        selector: str | None = None,
        signature: str | None = None,
        identity: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
    ) -> MethodResult:
        """DKIM: ``header.d``, ``header.i``, ``header.s``, and ``header.b`` (RFC 6008).

        ``signature`` is the ``b=`` value or its start; only the first 8 characters
        are written, enough to tell signatures apart (RFC 6008 §4 suggests at least 8).
        """
        props = [
            ("header.d", domain),
            ("header.i", identity),
            ("header.s", selector),
            ("header.b", signature[:8] if signature else None),
        ]
        return cls(
            "dkim",
            result,
            reason=reason,
            comment=comment,
            properties=[(k, v) for k, v in props if v],
        )

    @classmethod
    def dmarc(
        cls,
        result: str,
        *,
        header_from: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
    ) -> MethodResult:
        """DMARC (RFC 7489 §11.2): ``header.from`` is the RFC 5322.From domain."""
        props = [("header.from", header_from)] if header_from else []
        return cls("dmarc", result, reason=reason, comment=comment, properties=props)

    @classmethod
    def arc(
        cls,
        result: str,
        *,
        oldest_pass: int | None = None,
        remote_ip: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
    ) -> MethodResult:
        """ARC (RFC 8617 §10.2): the chain result, ``header.oldest-pass``, ``smtp.remote-ip``."""
        props = [
            ("header.oldest-pass", None if oldest_pass is None else str(oldest_pass)),
            ("smtp.remote-ip", remote_ip),
        ]
        return cls(
            "arc",
            result,
            reason=reason,
            comment=comment,
            properties=[(k, v) for k, v in props if v is not None],
        )

    def _atoms(self) -> list[str]:
        """The words of this resinfo; folding may break the line between any two."""
        atoms = [f"{self.method}={self.result}"]
        if self.comment:
            atoms.extend(_comment_words(self.comment))
        if self.reason is not None:
            atoms.append(f"reason={_quoted(self.reason)}")
        atoms.extend(f"{name}={_pvalue(text)}" for name, text in self.properties)
        return atoms


def _clean(text: str) -> str:
    # No control character may reach the header: a CR or LF taken from a hostile
    # HELO or MAIL FROM would otherwise start a header field of the sender's choosing.
    return _CONTROL.sub("?", text)


def _quoted(text: str) -> str:
    """RFC 5322 quoted-string (UTF-8 allowed inside, RFC 6532 §3.2)."""
    escaped = _clean(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _value(text: str) -> str:
    """RFC 2045 value: the bare token when it is one, else a quoted-string."""
    return text if _TOKEN.match(text) else _quoted(text)


def _pvalue(text: str) -> str:
    """A property value: token, ``local@domain`` or ``@domain`` bare, else quoted."""
    return text if _TOKEN.match(text) or _ADDRESS.match(text) else _quoted(text)


def _comment_words(text: str) -> list[str]:
    escaped = re.sub(r"([()\\])", r"\\\1", _clean(text))
    words = escaped.split() or [""]
    words[0] = "(" + words[0]
    words[-1] += ")"
    return words


def _fold(first: str, atoms_per_line: list[list[str]]) -> str:
    """Lay out ``first`` then each group of atoms from a fresh continuation line.

    Atoms are joined by one space and a line is broken before an atom that would
    pass :data:`LINE_WIDTH`; an atom longer than a line stands alone (RFC 5322
    allows up to 998 octets, and splitting a quoted-string would change it).
    """
    lines = [first]
    for atoms in atoms_per_line:
        line, width = _INDENT, _INDENT_WIDTH
        for atom in atoms:
            if line == _INDENT:
                line, width = line + atom, width + len(atom)
            elif width + 1 + len(atom) > LINE_WIDTH:
                lines.append(line)
                line, width = _INDENT + atom, _INDENT_WIDTH + len(atom)
            else:
                line, width = f"{line} {atom}", width + 1 + len(atom)
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def format_header(authserv_id: str, results: Iterable[MethodResult]) -> str:
    """The whole ``Authentication-Results:`` field, folded, ending in CRLF.

    Args:
      authserv_id: Our ADMD's id, usually the host name (RFC 8601 §2.5); it is
        what :func:`is_forged` compares incoming fields against.
      results: In the order they should appear; none gives ``; none``.

    Returns:
      ``str`` with CRLF line ends (encode as UTF-8: non-ASCII appears only where
      RFC 6532 allows it). The version is left out, meaning 1 (RFC 8601 §2.2).

    Example:
      >>> format_header("mx.example.net", [])
      'Authentication-Results: mx.example.net; none\\r\\n'
    """
    results = list(results)
    head = f"{FIELD_NAME}: {_value(authserv_id)};"
    if not results:
        return f"{head} none\r\n"
    groups = [r._atoms() for r in results]
    for group in groups[:-1]:
        group[-1] += ";"
    return _fold(head, groups)


# -- reading ------------------------------------------------------------------


class AuthResParseError(Exception):
    """The field value does not start as RFC 8601 §2.2 says it must."""


@attrs.frozen
class AuthResHeader:
    """What we read of someone's ``Authentication-Results`` field."""

    authserv_id: str
    version: int | None = None
    """``None`` when absent, which means 1."""


def _skip_cfws(text: str, i: int) -> int:
    """Past whitespace, folding and (nested, quoted-pair escaped) comments."""
    n = len(text)
    while i < n:
        char = text[i]
        if char in " \t\r\n":
            i += 1
        elif char == "(":
            depth = 0
            while True:
                if i >= n:
                    raise AuthResParseError("unterminated comment")
                char = text[i]
                if char == "\\":
                    i += 2
                    continue
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def _read_value(text: str, i: int) -> tuple[str, int]:
    """An RFC 2045 value at ``text[i]``: a quoted-string (unquoted) or a token."""
    n = len(text)
    if i < n and text[i] == '"':
        i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                raise AuthResParseError("unterminated quoted-string")
            char = text[i]
            if char == "\\":
                if i + 1 >= n:
                    raise AuthResParseError("unterminated quoted-string")
                chars.append(text[i + 1])
                i += 2
            elif char == '"':
                return "".join(chars), i + 1
            elif char in "\r\n":
                i += 1  # folding inside the string: unfolding drops the CRLF only
            else:
                chars.append(char)
                i += 1
    start = i
    # Beyond ASCII is let through: RFC 8601 §2.2 allows UTF-8 authserv-ids (RFC 6532).
    while i < n and text[i] not in _TSPECIALS and (ord(text[i]) > 0x20 and text[i] != "\x7f"):
        i += 1
    if i == start:
        raise AuthResParseError("no authserv-id")
    return text[start:i], i


def parse_header_value(value: str) -> AuthResHeader:
    """Read the authserv-id and optional version at the start of a field value.

    Args:
      value: What follows ``Authentication-Results:``, folding included.

    Raises:
      AuthResParseError: Nothing but this, whatever ``value`` holds.

    Example:
      >>> parse_header_value(' (ours?) "mx.example.net" (v) 1 ; spf=pass')
      AuthResHeader(authserv_id='mx.example.net', version=1)
    """
    i = _skip_cfws(value, 0)
    authserv_id, i = _read_value(value, i)
    j = _skip_cfws(value, i)
    version = None
    if j > i and j < len(value) and value[j].isascii() and value[j].isdigit():
        end = j
        while end < len(value) and value[end].isascii() and value[end].isdigit():
            end += 1
        version = int(value[j:end])
        j = _skip_cfws(value, end)
    if j < len(value) and value[j] != ";":
        raise AuthResParseError(f"expected ';' after the authserv-id, found {value[j]!r}")
    return AuthResHeader(authserv_id, version)


def _same_id(a: str, b: str) -> bool:
    return a.rstrip(".").casefold() == b.rstrip(".").casefold()


def is_forged(header_value: str, our_authserv_id: str) -> bool:
    """Whether an incoming field claims our authserv-id (RFC 8601 §5), case-insensitively.

    A field whose start does not parse counts as forged when our id appears
    anywhere in it: an MUA's parser may be more lenient than ours, and dropping
    a broken field that names us costs nothing.

    Example:
      >>> is_forged(" MX.Example.NET (trust me); dkim=pass", "mx.example.net")
      True
    """
    try:
        claimed = parse_header_value(header_value).authserv_id
    except AuthResParseError:
        return our_authserv_id.rstrip(".").casefold() in header_value.casefold()
    return _same_id(claimed, our_authserv_id)


# -- stripping ----------------------------------------------------------------


class _Field(enum.Enum):
    PASS = "pass"
    HOLD = "hold"
    """An A-R field is being collected until we know where it ends."""
    DROP = "drop"


_NAME = FIELD_NAME.lower().encode()
# Longer than any field name we could care about: past it without a colon, a
# line is passed through as it is (it is no A-R field, and no field at all).
_NAME_LIMIT = 256


@attrs.define(eq=False)
class AuthResStripper:
    """Remove A-R fields that claim ``authserv_id`` from a streaming header block.

    Feed the message bytes in chunks of any size; each :meth:`feed` returns the
    bytes that are already safe to write. An A-R field is held back until the
    next line shows it has ended (no leading whitespace), then dropped whole,
    continuation lines included, or written unchanged. Everything after the
    blank line that ends the header block passes straight through.

    Args:
      authserv_id: Ours.
      max_field: Most bytes of one A-R field held back; past it the decision is
        made on what was seen (the authserv-id comes first), bounding memory.

    Example:
      >>> s = AuthResStripper("mx.test")
      >>> s.feed(b"Authentication-Results: mx.test; spf=pass\\r\\n\\tsmtp.mailfrom=x\\r\\nSubj")
      b''
      >>> s.feed(b"ect: hi\\r\\n\\r\\nbody") + s.close(), s.removed
      (b'Subject: hi\\r\\n\\r\\nbody', 1)
    """

    authserv_id: str
    max_field: int = 65536
    removed: int = attrs.field(default=0, init=False)
    """How many fields were dropped so far."""
    _pending: bytearray = attrs.field(factory=bytearray, init=False)
    _held: bytearray = attrs.field(factory=bytearray, init=False)
    _field: _Field = attrs.field(default=_Field.PASS, init=False)
    _mid_line: bool = attrs.field(default=False, init=False)
    _body: bool = attrs.field(default=False, init=False)

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes; return those that can be written now."""
        out = bytearray()
        buf = bytes(self._pending) + data if self._pending else data
        pos, n = 0, len(buf)
        while pos < n:
            if self._body:
                out += buf[pos:]
                pos = n
            elif self._mid_line:
                lf = buf.find(b"\n", pos)
                end = n if lf < 0 else lf + 1
                self._take(buf[pos:end], out)
                pos = end
                self._mid_line = lf < 0
            elif (step := self._start_line(buf, pos, out)) is None:
                break  # the start of a line is not yet enough to tell what it is
            else:
                pos = step
        # Only an undecided line start stays here: at most _NAME_LIMIT bytes.
        self._pending = bytearray(buf[pos:])
        return bytes(out)

    def close(self) -> bytes:
        """The input has ended: decide on what is still held and return the rest."""
        out = bytearray()
        self._finish(out)  # the last field ends with the input
        out += self._pending  # an undecided line start: no A-R field, so it stays
        self._pending.clear()
        return bytes(out)

    def _start_line(self, buf: bytes, pos: int, out: bytearray) -> int | None:
        """Classify the line starting at ``pos``; ``None`` until enough of it is here."""
        first = buf[pos : pos + 1]
        if first in (b" ", b"\t"):
            self._mid_line = True  # a continuation line: it belongs to the current field
            return pos
        # Not a continuation: the field before it has ended and can be decided.
        self._finish(out)
        if first == b"\r" and len(buf) - pos < 2:
            return None
        if first == b"\n" or buf[pos : pos + 2] == b"\r\n":
            self._body = True  # the blank line: the header block ends here
            return pos
        window = buf[pos : pos + _NAME_LIMIT]
        colon, lf = window.find(b":"), window.find(b"\n")
        if colon < 0 and lf < 0 and len(window) < _NAME_LIMIT:
            return None
        is_ar = (
            colon >= 0
            and (lf < 0 or colon < lf)
            # RFC 5322 §4.5.3 (obsolete syntax): whitespace may precede the colon.
            and window[:colon].rstrip(b" \t").lower() == _NAME
        )
        self._field = _Field.HOLD if is_ar else _Field.PASS
        self._mid_line = True
        return pos

    def _take(self, chunk: bytes, out: bytearray) -> None:
        if self._field is _Field.PASS:
            out += chunk
        elif self._field is _Field.HOLD:
            self._held += chunk
            if len(self._held) > self.max_field:
                self._field = _Field.PASS if self._decide(out) else _Field.DROP

    def _decide(self, out: bytearray) -> bool:
        """Write the held field unless it is forged; whether it was kept."""
        value = bytes(self._held).partition(b":")[2].decode("utf-8", "surrogateescape")
        forged = is_forged(value, self.authserv_id)
        if forged:
            self.removed += 1
        else:
            out += self._held
        self._held.clear()
        return not forged

    def _finish(self, out: bytearray) -> None:
        if self._field is _Field.HOLD:
            self._decide(out)
        self._field = _Field.PASS


def strip_forged(header_block: bytes, authserv_id: str) -> bytes:
    """``header_block`` without the A-R fields that claim ``authserv_id``.

    Example:
      >>> strip_forged(b"A: 1\\nAuthentication-Results: MX.test; none\\nB: 2\\n", "mx.test")
      b'A: 1\\nB: 2\\n'
    """
    stripper = AuthResStripper(authserv_id)
    return stripper.feed(header_block) + stripper.close()
