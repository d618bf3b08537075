"""Delivery status notification parameters (RFC 3461): xtext, RET, ENVID, NOTIFY, ORCPT.

Pure functions over the parameter dicts :func:`~mailio_trio.protocol.parse_mail_from`
and :func:`~mailio_trio.protocol.parse_rcpt_to` return: the session passes
the DSN keywords through as ``extra_params`` and hands the dict here. A
malformed value is the client's mistake, ``501 5.5.4`` (RFC 3461 §4 has no
code of its own; RFC 5321 §4.1.1.11 gives 501 to parameter syntax).

Values are kept decoded (``ENVID``, the ``ORCPT`` address) and encoded again
with :func:`xtext_encode` when passed on to the next hop (RFC 3461 §5.2.1).
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

import attrs

from mailio_trio.protocol.errors import ClientProtocolError
from mailio_trio.protocol.replies import Reply

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DsnMail",
    "DsnRcpt",
    "NotifyOn",
    "Orcpt",
    "Ret",
    "parse_dsn_mail",
    "parse_dsn_rcpt",
    "xtext_decode",
    "xtext_encode",
]

MAIL_KEYWORDS = ("RET", "ENVID")
RCPT_KEYWORDS = ("NOTIFY", "ORCPT")

# RFC 3461 §4: DSN lengthens MAIL by at most 100 characters (RET and ENVID)
# and RCPT by at most 500 (NOTIFY and ORCPT); §4.4 caps ENVID at 100.
ENVID_LIMIT = 100
ORCPT_LIMIT = 500


class NotifyOn(enum.Enum):
    """RFC 3461 §4.1 ``NOTIFY`` values: which DSNs a recipient's client asked for."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


class Ret(enum.Enum):
    """RFC 3461 §4.3 ``RET``: what a failure DSN returns of the message."""

    FULL = "FULL"
    HDRS = "HDRS"


@attrs.frozen
class Orcpt:
    """RFC 3461 §4.2 ``ORCPT``: the recipient as the original sender gave it.

    Attributes:
      addr_type: The address type as sent (``rfc822``; RFC 3464 §2.3.1 lists others).
      address: The xtext-decoded address.
    """

    addr_type: str
    address: str

    def __str__(self) -> str:
        """The RFC 3464 §2.3.1 field value: ``rfc822;bob@example.com``."""
        return f"{self.addr_type};{self.address}"

    def encode(self) -> str:
        """The ``ORCPT=`` parameter value, xtext-encoded again."""
        return f"{self.addr_type};{xtext_encode(self.address)}"


@attrs.frozen
class DsnMail:
    """The DSN parameters of one MAIL command; both ``None`` when not given."""

    ret: Ret | None = None
    envid: str | None = None


@attrs.frozen
class DsnRcpt:
    """The DSN parameters of one RCPT command.

    Attributes:
      notify: The ``NOTIFY`` set; ``None`` when not given (the server's defaults).
      orcpt: The ``ORCPT`` value, if given.
    """

    notify: frozenset[NotifyOn] | None = None
    orcpt: Orcpt | None = None


# RFC 3461 §4: xchar is "!" to "~" except "+" and "="; hexchar is "+" and two
# upper-case hex digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*\Z")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
# RFC 5322 atom, which RFC 3461 §4.2 uses for addr-type.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+\Z")


def _bad_value(key: str) -> ClientProtocolError:
    return ClientProtocolError(Reply(501, f"Bad value for parameter {key}", "5.5.4"))


def xtext_encode(text: str) -> str:
    """Encode ``text`` (printable ASCII and space) as RFC 3461 §4 xtext.

    Example:
      >>> xtext_encode("a+b=c d")
      'a+2Bb+3Dc+20d'
    """
    return "".join(c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}" for c in text)


def xtext_decode(value: str) -> str | None:
    """Decode RFC 3461 §4 xtext; ``None`` if ``value`` is not xtext.

    Example:
      >>> xtext_decode("a+2Bb")
      'a+b'
    """
    if not _XTEXT.match(value):
        return None
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), value)


def _printable(text: str, *, space: bool) -> bool:
    # RFC 3461 §4.2 (ORCPT: graphic and white space) and §4.4 (ENVID: graphic)
    # US-ASCII only; a decoded control character would break the report's headers.
    low = " " if space else "!"
    return all(low <= c <= "~" for c in text)


def parse_dsn_mail(params: Mapping[str, str | None]) -> DsnMail:
    """Read ``RET`` and ``ENVID`` from MAIL's parameters (keys upper-case).

    Raises:
      ClientProtocolError: ``501 5.5.4`` for a missing or malformed value.
    """
    ret: Ret | None = None
    envid: str | None = None
    if "RET" in params:
        value = params["RET"]
        try:
            ret = Ret((value or "").upper())
        except ValueError:
            raise _bad_value("RET") from None
    if "ENVID" in params:
        value = params["ENVID"]
        if not value or len(value) > ENVID_LIMIT:
            raise _bad_value("ENVID")
        envid = xtext_decode(value)
        if envid is None or not envid or not _printable(envid, space=False):
            raise _bad_value("ENVID")
    return DsnMail(ret=ret, envid=envid)


def parse_dsn_rcpt(params: Mapping[str, str | None]) -> DsnRcpt:
    """Read ``NOTIFY`` and ``ORCPT`` from RCPT's parameters (keys upper-case).

    Raises:
      ClientProtocolError: ``501 5.5.4`` for a missing or malformed value:
        ``NEVER`` with anything else, an unknown or repeated keyword, an
        ``ORCPT`` without ``;``, with a bad addr-type or xtext, or too long.
    """
    notify: frozenset[NotifyOn] | None = None
    orcpt: Orcpt | None = None
    if "NOTIFY" in params:
        words = (params["NOTIFY"] or "").upper().split(",")
        try:
            values = [NotifyOn(word) for word in words]
        except ValueError:
            raise _bad_value("NOTIFY") from None
        notify = frozenset(values)
        # RFC 3461 §4.1: NEVER stands alone; the others form a list without repeats.
        if len(notify) != len(values) or (NotifyOn.NEVER in notify and len(notify) > 1):
            raise _bad_value("NOTIFY")
    if "ORCPT" in params:
        value = params["ORCPT"] or ""
        addr_type, semicolon, encoded = value.partition(";")
        address = xtext_decode(encoded)
        if (
            not semicolon
            or len(value) > ORCPT_LIMIT
            or not _ATOM.match(addr_type)
            or not address
            or not _printable(address, space=True)
        ):
            raise _bad_value("ORCPT")
        orcpt = Orcpt(addr_type, address)
    return DsnRcpt(notify=notify, orcpt=orcpt)
