"""Parse SMTP command lines and their arguments: verbs, paths, ESMTP parameters.

Everything here is pure: a line or argument in, a frozen value out, or a
:class:`~mailio_trio.protocol.errors.ClientProtocolError` carrying the reply.
Grammar references are RFC 5321 §4.1.2 (paths, parameters), §4.1.3 (address
literals), §4.5.3.1 (size limits), and RFC 6531 (SMTPUTF8), which widens atext,
qtext, sub-domains and esmtp-value to non-ASCII UTF-8.

Reply texts never echo client input, so nothing the client sends can be
reflected into the reply stream or the logs of whoever reads our replies.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import re
from typing import TYPE_CHECKING

import attrs

from mailio_trio.protocol.errors import ClientProtocolError
from mailio_trio.protocol.replies import Reply

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = [
    "Address",
    "Command",
    "MailFrom",
    "RcptTo",
    "Verb",
    "parse_command",
    "parse_helo_name",
    "parse_mail_from",
    "parse_rcpt_to",
]


class Verb(enum.Enum):
    """The SMTP verbs this package knows; the value is the lower-case verb."""

    HELO = "helo"
    EHLO = "ehlo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    RSET = "rset"
    NOOP = "noop"
    QUIT = "quit"
    VRFY = "vrfy"
    EXPN = "expn"
    HELP = "help"
    STARTTLS = "starttls"
    AUTH = "auth"
    BDAT = "bdat"
    LHLO = "lhlo"  # RFC 2033 §4.1: LMTP's EHLO


_VERBS = {verb.value: verb for verb in Verb}


@attrs.frozen
class Command:
    """One command line, split into verb and argument.

    Attributes:
      verb: The known verb, or None for anything else (the session answers 500).
      name: The verb as sent, lower-cased (``"mail"``, ``"xyzzy"``).
      argument: The rest of the line after the first space, stripped; case kept.
    """

    verb: Verb | None
    name: str
    argument: str


# NUL, bare CR, other C0 controls except TAB, and DEL (RFC 5321 §4.1.1 commands
# are printable text; a CR here is how SMTP smuggling and reply splitting start).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_CONTROL_REPLY = Reply(501, "Syntax error: control characters are not allowed", "5.5.2")
_UTF8_REPLY = Reply(501, "Syntax error: command is not valid UTF-8", "5.5.2")
_EMPTY_REPLY = Reply(500, "Syntax error: empty command", "5.5.2")


# Argument-less command lines as clients send them, parsed once: a Command is
# immutable, so DATA, QUIT, RSET and NOOP can share one each.
_BARE_COMMANDS = {
    spelling: Command(verb=verb, name=verb.value, argument="")
    for verb in (Verb.DATA, Verb.QUIT, Verb.RSET, Verb.NOOP, Verb.STARTTLS)
    for spelling in (verb.value.upper().encode(), verb.value.encode())
}


def parse_command(line: bytes) -> Command:
    """Split a command line (without its terminator) into verb and argument.

    Args:
      line: One line from :class:`~mailio_trio.protocol.lines.LineSplitter`.

    Returns:
      The command; unknown verbs are returned with ``verb=None``.

    Raises:
      ClientProtocolError: Control characters, invalid UTF-8 or an empty line.

    Example:
      >>> parse_command(b"MAIL FROM:<a@b.example>")
      Command(verb=<Verb.MAIL: 'mail'>, name='mail', argument='FROM:<a@b.example>')
    """
    if (bare := _BARE_COMMANDS.get(line)) is not None:
        return bare
    if _CONTROL.search(line):
        raise ClientProtocolError(_CONTROL_REPLY)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientProtocolError(_UTF8_REPLY) from None
    text = text.strip(" \t")
    if not text:
        raise ClientProtocolError(_EMPTY_REPLY)
    name, _, argument = text.partition(" ")
    name = name.lower()
    return Command(verb=_VERBS.get(name), name=name, argument=argument.strip(" \t"))


# --- addresses -------------------------------------------------------------

# RFC 5322 atext as used by RFC 5321 §4.1.2, widened by RFC 6531 §3.3 to any
# non-ASCII character (UTF8-non-ascii).
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
_DOT_STRING = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
# RFC 5321 §4.1.2 Quoted-string: qtextSMTP is %d32-33 / %d35-91 / %d93-126
# (plus UTF-8 under RFC 6531); quoted-pairSMTP is a backslash and %d32-126.
_QUOTED_STRING = re.compile(r'"((?:[ !#-\[\]-~\u0080-\U0010ffff]|\\[ -~])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
# RFC 6531 §3.3 sub-domain =/ U-label; we check the characters are not ASCII
# specials, controls or spaces, and leave IDNA2008 validity to DNS.
_UTF8_LABEL = re.compile(
    r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?\Z"
)


@attrs.frozen
class Address:
    """A mailbox: local part and domain, as the client sent them.

    ``Address("Postmaster", "")`` is the domain-less postmaster of RFC 5321
    §4.5.1. Compare addresses with :meth:`key`, not ``==``, when the domain's
    case should not matter.

    Attributes:
      local_part: Unquoted (quoted-pairs resolved); case kept, RFC 5321 §2.4.
      domain: Domain or address literal (``[192.0.2.1]``) exactly as sent.
    """

    local_part: str
    domain: str

    def __str__(self) -> str:
        local = self.local_part
        if not _DOT_STRING.match(local):
            # RFC 5321 §4.1.2: only '"' and '\' need a backslash inside quotes.
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}" if self.domain else local

    @property
    def is_address_literal(self) -> bool:
        """True for ``[192.0.2.1]`` / ``[IPv6:...]`` domains (RFC 5321 §4.1.3)."""
        return self.domain.startswith("[")

    @property
    def needs_smtputf8(self) -> bool:
        """True if any character is non-ASCII (RFC 6531 §3.2)."""
        return not (self.local_part.isascii() and self.domain.isascii())

    def key(self) -> tuple[str, str]:
        """Return a comparison key: local part as is, domain case-folded.

        U-labels and their A-label forms compare equal where Python's IDNA
        codec can convert them; the local part is case-sensitive (RFC 5321 §2.4).
        """
        domain = self.domain
        if not domain.isascii() and not self.is_address_literal:
            # Python's codec is IDNA 2003; names it cannot convert stay as sent.
            with contextlib.suppress(UnicodeError):
                domain = domain.encode("idna").decode("ascii")
        return (self.local_part, domain.lower())


def _bad(detail: str, *, sender: bool) -> ClientProtocolError:
    if sender:
        return ClientProtocolError(Reply(553, f"Bad sender address syntax: {detail}", "5.1.7"))
    return ClientProtocolError(Reply(553, f"Bad address syntax: {detail}", "5.1.3"))


def _valid_address_literal(literal: str) -> bool:
    """Check ``[1.2.3.4]`` or ``[IPv6:...]`` (RFC 5321 §4.1.3)."""
    if len(literal) < 3 or literal[0] != "[" or literal[-1] != "]":
        return False
    inner = literal[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            addr6 = inner[5:]
            # ipaddress accepts zone ids ("fe80::1%eth0"); RFC 5321 does not.
            if "%" in addr6:
                return False
            ipaddress.IPv6Address(addr6)
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def _valid_domain(domain: str, *, utf8: bool, underscore: bool = False) -> bool:
    """Check dot-separated LDH (or RFC 6531 UTF-8) labels and the RFC 1035 lengths."""
    if not domain or len(domain.encode("utf-8")) > 255:
        return False
    for label in domain.split("."):
        if len(label.encode("utf-8")) > 63:
            return False
        checked = label.replace("_", "a") if underscore else label
        if _LDH_LABEL.match(checked):
            continue
        # isprintable() refuses C1 controls and Unicode separators/spaces.
        if utf8 and not checked.isascii() and checked.isprintable() and _UTF8_LABEL.match(checked):
            continue
        return False
    return True


def _parse_mailbox(text: str, *, sender: bool) -> Address:
    """Parse ``Local-part "@" (Domain / address-literal)`` (RFC 5321 §4.1.2)."""
    if text.startswith('"'):
        quoted = _QUOTED_STRING.match(text)
        if quoted is None:
            raise _bad("unterminated or invalid quoted local part", sender=sender)
        raw_local = quoted.group(0)
        local = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
        rest = text[quoted.end() :]
    else:
        at = text.rfind("@")
        raw_local = local = text if at == -1 else text[:at]
        rest = text[len(raw_local) :]
        if not _DOT_STRING.match(local):
            raise _bad("invalid local part", sender=sender)
    if not local.isascii() and not local.isprintable():
        # RFC 6531 widens atext to all of UTF-8; C1 controls and Unicode line
        # separators would still corrupt headers and logs.
        raise _bad("invalid local part", sender=sender)
    # RFC 5321 §4.5.3.1.1: local part at most 64 octets (measured as sent).
    if len(raw_local.encode("utf-8")) > 64:
        raise _bad("local part longer than 64 octets", sender=sender)
    if not rest.startswith("@"):
        # RFC 5321 §4.5.1: RCPT TO:<Postmaster> without a domain must work.
        if not rest and not sender and local.lower() == "postmaster" and raw_local == local:
            return Address(local, "")
        raise _bad("missing domain", sender=sender)
    domain = rest[1:]
    if domain.startswith("["):
        if not _valid_address_literal(domain):
            raise _bad("invalid address literal", sender=sender)
    elif not _valid_domain(domain, utf8=True):
        raise _bad("invalid domain", sender=sender)
    return Address(local, domain)


# A bracketed path: quoted strings may hold ">" (RFC 5321 §4.1.2 Quoted-string).
_BRACKETED = re.compile(r'<((?:[^<>"]|"(?:[^"\\]|\\.)*")*)>')
# Bracket-less path (mail-io compatibility): up to the first space outside quotes.
_BARE = re.compile(r'(?:[^ <>"]|"(?:[^"\\]|\\.)*")+')


def _split_path(rest: str, *, syntax: Reply) -> tuple[str, str]:
    """Split ``<path> params`` (or ``path params``) into path text and parameter text."""
    match = _BRACKETED.match(rest) if rest.startswith("<") else _BARE.match(rest)
    if match is None:
        raise ClientProtocolError(syntax)
    params = rest[match.end() :]
    if params and not params.startswith(" "):
        raise ClientProtocolError(syntax)
    path = match.group(1) if rest.startswith("<") else match.group(0)
    return path, params.strip(" ")


def _parse_path(path: str, *, sender: bool) -> Address | None:
    """Parse the text inside ``<>``: ``[A-d-l ":"] Mailbox``, or empty for ``<>``."""
    if not path:
        if sender:
            return None
        raise _bad("null path", sender=sender)
    # RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets.
    if len(path.encode("utf-8")) + 2 > 256:
        raise ClientProtocolError(Reply(501, "Path too long", "5.5.4"))
    if path.startswith("@"):
        # Source route: RFC 5321 §4.1.2 and Appendix C say servers SHOULD accept
        # and ignore it. Each at-domain must still be a domain.
        route, colon, path = path.partition(":")
        if not colon:
            raise _bad("invalid source route", sender=sender)
        for hop in route.split(","):
            if not hop.startswith("@") or not _valid_domain(hop[1:], utf8=True):
                raise _bad("invalid source route", sender=sender)
    return _parse_mailbox(path, sender=sender)


# RFC 5321 §4.1.2 esmtp-keyword and esmtp-value (UTF-8 allowed by RFC 6531 §3.3).
_PARAM = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([!-<>-~\u0080-\U0010ffff]+))?\Z")


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    # Split on SP only: str.split() would also split on TAB and Unicode spaces.
    for item in filter(None, text.split(" ")):
        match = _PARAM.match(item)
        if match is None or not item.isprintable():
            raise ClientProtocolError(Reply(501, "Syntax error in parameters", "5.5.4"))
        key = match.group(1).upper()
        if key in params:
            raise ClientProtocolError(Reply(501, f"Duplicate parameter: {key}", "5.5.4"))
        params[key] = match.group(2)
    return params


def _unsupported(key: str) -> ClientProtocolError:
    return ClientProtocolError(Reply(555, f"Unsupported parameter: {key}", "5.5.4"))


def _bad_value(key: str) -> ClientProtocolError:
    return ClientProtocolError(Reply(501, f"Bad value for parameter {key}", "5.5.4"))


def _strip_keyword(argument: str, keyword: str, syntax: Reply) -> str:
    # Lenient on spaces after the colon ("FROM: <a@b>"), as Postfix and
    # Exim are, because Outlook-era clients send them.
    if argument[: len(keyword)].upper() != keyword:
        raise ClientProtocolError(syntax)
    rest = argument[len(keyword) :].lstrip(" ")
    if not rest:
        raise ClientProtocolError(syntax)
    return rest


@attrs.frozen(unsafe_hash=False)
class MailFrom:
    """The parsed argument of ``MAIL FROM:``.

    ``params`` is a plain dict, so instances compare by value but are
    deliberately unhashable (``__hash__`` is None).

    Attributes:
      sender: The reverse-path, or None for the null reverse-path ``<>``.
      size: The SIZE parameter (RFC 1870), if given.
      body: ``"7BIT"`` or ``"8BITMIME"`` (RFC 6152), upper-cased, if given.
      smtputf8: True if the SMTPUTF8 parameter was given (RFC 6531 §3.4).
      params: Every parameter, keys upper-cased, value None when bare.
    """

    sender: Address | None
    size: int | None = None
    body: str | None = None
    smtputf8: bool = False
    params: dict[str, str | None] = attrs.field(factory=dict)


@attrs.frozen(unsafe_hash=False)
class RcptTo:
    """The parsed argument of ``RCPT TO:``; unhashable for the same reason as MailFrom.

    Attributes:
      recipient: The forward-path (``Address("Postmaster", "")`` allowed).
      params: Every parameter, keys upper-cased, value None when bare.
    """

    recipient: Address
    params: dict[str, str | None] = attrs.field(factory=dict)


# The everyday path — an ASCII dot-atom at an LDH domain, bracketed, no
# parameters — in one regex match instead of the general parser's dozen steps.
# It accepts a subset of what the general parser accepts, with the same result
# (a property test checks both); anything else takes the general parser.
_ASCII_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_ASCII_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIMPLE_PATH = re.compile(
    rf"<({_ASCII_ATOM}(?:\.{_ASCII_ATOM})*)@({_ASCII_LABEL}(?:\.{_ASCII_LABEL})*)>\Z"
)


def _simple_path(argument: str, keyword: str) -> Address | None:
    """``keyword<local@domain>`` in its everyday form, or None for the general parser."""
    if argument[: len(keyword)].upper() != keyword:
        return None
    match = _SIMPLE_PATH.match(argument, len(keyword))
    # RFC 5321 §4.5.3.1: local part ≤ 64 octets, path ≤ 256 with its brackets.
    if match is None or match.end(1) - match.start(1) > 64 or match.end() - len(keyword) > 256:
        return None
    return Address(match.group(1), match.group(2))


_MAIL_SYNTAX = Reply(501, "Syntax: MAIL FROM:<address>", "5.5.4")
_RCPT_SYNTAX = Reply(501, "Syntax: RCPT TO:<address>", "5.5.4")
_DIGITS = re.compile(r"[0-9]{1,20}\Z")


def parse_mail_from(
    argument: str,
    *,
    smtputf8: bool = True,
    eight_bit_mime: bool = True,
    extra_params: Collection[str] = (),
) -> MailFrom:
    """Parse ``FROM:<reverse-path> [params]``, the argument of MAIL.

    Args:
      argument: :attr:`Command.argument` of a MAIL command.
      smtputf8: Whether we advertised SMTPUTF8; if not, the parameter is refused.
      eight_bit_mime: Whether we advertised 8BITMIME; if not, BODY=8BITMIME is refused.
      extra_params: Upper-case keywords some extension handles (``AUTH``,
        ``RET``, ``ENVID``); they are kept in ``params`` without checking.

    Returns:
      The reverse-path and parameters.

    Raises:
      ClientProtocolError: 501 for syntax, 553 for a bad address, 555 for an
        unsupported parameter.

    Example:
      >>> str(parse_mail_from("FROM:<a@b.example> SIZE=10").sender)
      'a@b.example'
    """
    if (simple := _simple_path(argument, "FROM:")) is not None:
        return MailFrom(sender=simple)
    return _general_mail_from(argument, smtputf8, eight_bit_mime, extra_params)


def _general_mail_from(
    argument: str, smtputf8: bool, eight_bit_mime: bool, extra_params: Collection[str]
) -> MailFrom:
    rest = _strip_keyword(argument, "FROM:", _MAIL_SYNTAX)
    path, param_text = _split_path(rest, syntax=_MAIL_SYNTAX)
    sender = _parse_path(path, sender=True)
    params = _parse_params(param_text)
    size: int | None = None
    body: str | None = None
    utf8 = False
    for key, value in params.items():
        if key == "SIZE":
            # RFC 1870 §3: size-value = 1*20DIGIT.
            if value is None or not _DIGITS.match(value):
                raise _bad_value(key)
            size = int(value)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise _bad_value(key)
            body = value.upper()
            if body == "8BITMIME" and not eight_bit_mime:
                raise ClientProtocolError(Reply(555, "8BITMIME is not supported", "5.5.4"))
        elif key == "SMTPUTF8":
            # RFC 6531 §3.4: the parameter takes no value.
            if value is not None:
                raise _bad_value(key)
            if not smtputf8:
                raise _unsupported(key)
            utf8 = True
        elif key not in extra_params:
            raise _unsupported(key)
    if sender is not None and sender.needs_smtputf8 and not utf8:
        # RFC 6531 §3.7.4.1 / RFC 6533: non-ASCII addresses need SMTPUTF8.
        raise ClientProtocolError(Reply(553, "Sender address requires SMTPUTF8", "5.6.7"))
    return MailFrom(sender=sender, size=size, body=body, smtputf8=utf8, params=params)


def parse_rcpt_to(
    argument: str,
    *,
    smtputf8_allowed: bool = True,
    extra_params: Collection[str] = (),
) -> RcptTo:
    """Parse ``TO:<forward-path> [params]``, the argument of RCPT.

    Args:
      argument: :attr:`Command.argument` of a RCPT command.
      smtputf8_allowed: True if the transaction's MAIL carried SMTPUTF8; a
        non-ASCII recipient is refused otherwise (RFC 6531 §3.7.4.1).
      extra_params: Upper-case keywords some extension handles (``NOTIFY``,
        ``ORCPT`` for DSN); every other parameter is refused with 555.

    Returns:
      The forward-path and parameters.

    Raises:
      ClientProtocolError: 501 for syntax, 553 for a bad address, 555 for an
        unsupported parameter.
    """
    if (simple := _simple_path(argument, "TO:")) is not None:
        return RcptTo(recipient=simple)
    return _general_rcpt_to(argument, smtputf8_allowed, extra_params)


def _general_rcpt_to(
    argument: str, smtputf8_allowed: bool, extra_params: Collection[str]
) -> RcptTo:
    rest = _strip_keyword(argument, "TO:", _RCPT_SYNTAX)
    path, param_text = _split_path(rest, syntax=_RCPT_SYNTAX)
    recipient = _parse_path(path, sender=False)
    assert recipient is not None  # _parse_path refuses <> when not sender
    params = _parse_params(param_text)
    for key in params:
        if key not in extra_params:
            raise _unsupported(key)
    if recipient.needs_smtputf8 and not smtputf8_allowed:
        raise ClientProtocolError(Reply(553, "Recipient address requires SMTPUTF8", "5.6.7"))
    return RcptTo(recipient=recipient, params=params)


# --- HELO / EHLO -----------------------------------------------------------

_HELO_SYNTAX = Reply(501, "Syntax: EHLO hostname", "5.5.4")
# Characters that would break or forge a Received: header (RFC 5321 §4.4: the
# name goes into "from <name> (...)"; RFC 5322 comments, quoted-strings, ';').
_HELO_UNSAFE = re.compile(r'[\s<>()\[\]"\\;,@]')
_PRINTABLE_ASCII = re.compile(r"[!-~]+\Z")


# LDH labels of at most 63 octets, with the underscores Windows hosts send.
_HELO_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_SIMPLE_HELO = re.compile(rf"{_HELO_LABEL}(?:\.{_HELO_LABEL})*\Z")


def parse_helo_name(argument: str, *, strict: bool = True) -> str:
    """Validate the client's HELO/EHLO name and return it as sent.

    Args:
      argument: :attr:`Command.argument` of HELO or EHLO.
      strict: Require a domain (single labels and underscores allowed, as
        Windows hosts send them) or a valid address literal; otherwise accept
        any printable ASCII token free of header-breaking characters.

    Returns:
      The name, unchanged.

    Raises:
      ClientProtocolError: 501 5.5.4 for an empty or unacceptable name.
    """
    if strict and len(argument) <= 255 and _SIMPLE_HELO.match(argument):
        return argument  # the everyday hostname, in one match (a property test pins it)
    return _general_helo_name(argument, strict=strict)


def _general_helo_name(name: str, *, strict: bool) -> str:
    if not name or len(name) > 255 or not _PRINTABLE_ASCII.match(name):
        raise ClientProtocolError(_HELO_SYNTAX)
    if name.startswith("[") and name.endswith("]"):
        inner = name[1:-1]
        if strict:
            ok = _valid_address_literal(name)
        else:
            ok = bool(inner) and not _HELO_UNSAFE.search(inner)
    else:
        ok = not _HELO_UNSAFE.search(name)
        if ok and strict:
            ok = _valid_domain(name, utf8=False, underscore=True)
    if not ok:
        raise ClientProtocolError(_HELO_SYNTAX)
    return name
