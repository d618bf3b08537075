"""The author domain: RFC 5322.From in a header block, as DMARC reads it (RFC 7489 §6.6.1).

Sans-I/O and linear in its input (the header block is the sender's), with its
own small address-list scanner: the stdlib's ``email`` header parser raises
``IndexError`` on inputs such as ``a@`` and has had quadratic cases.
"""

from __future__ import annotations

import re

import attrs

from mailio_trio.mailauth._domains import normalize_domain


@attrs.frozen
class HeaderFrom:
    """The RFC 5322.From of a header block, as DMARC needs it.

    Attributes:
      domains: The distinct author domains in order (A-labels, lower case).
      fields: How many ``From:`` fields there were (RFC 5322 allows one).
      malformed: Some address did not parse; ``domains`` then also holds every
        ``@domain`` seen in the raw field, since an MUA may show what we could not.
    """

    domains: tuple[str, ...]
    fields: int
    malformed: bool = False

    @property
    def domain(self) -> str | None:
        """The author domain when there is exactly one."""
        return self.domains[0] if len(self.domains) == 1 else None


def _field_values(header_block: bytes, name: bytes) -> list[str]:
    """The values of every field called ``name``, unfolded (RFC 5322 §2.2.3)."""
    fields: list[list[bytes]] = []
    open_field: list[bytes] | None = None
    for line in header_block.splitlines():
        if not line:
            break  # the blank line ends the header block
        if line[:1] in (b" ", b"\t"):
            if open_field is not None:
                open_field.append(line)
            continue
        field, colon, value = line.partition(b":")
        open_field = [value] if colon and field.rstrip(b" \t").lower() == name else None
        if open_field is not None:
            fields.append(open_field)
    return [b"".join(parts).decode("utf-8", "surrogateescape") for parts in fields]


def _strip_comments(text: str) -> str | None:
    """``text`` with comments blanked and quoted-strings emptied; ``None`` if unbalanced.

    Linear in the input: the From field comes from the sender and can be long.
    """
    out: list[str] = []
    depth, quoted, i, n = 0, False, 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2  # a quoted-pair: never a delimiter, and its character is not needed
            continue
        if quoted:
            if char == '"':
                quoted = False
                out.append('"')
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == "(":
            depth = 1
            out.append(" ")
        elif char == '"':
            quoted = True
            out.append('"')
        else:
            out.append(char)
        i += 1
    return None if depth or quoted else "".join(out)


def _mailbox_domains(value: str) -> list[str | None]:
    """The domain of each mailbox in an address-list; ``None`` for one without a usable one."""
    text = _strip_comments(value)
    if text is None:
        return [None]
    parts: list[str] = []
    current: list[str] = []
    angle = False
    for char in text:
        if angle:
            current.append(char)
            angle = char != ">"
        elif char == "<":
            angle = True
            current.append(char)
        elif char in ",;":
            parts.append("".join(current))
            current = []
        elif char == ":":
            current = []  # RFC 5322 §3.4 group "name: a@x, b@y;": the name is no address
        else:
            current.append(char)
    parts.append("".join(current))
    domains: list[str | None] = []
    for part in filter(None, (p.strip() for p in parts)):
        if "<" in part:
            if part.count("<") != 1 or not part.endswith(">"):
                domains.append(None)
                continue
            # obs-route "<@relay:a@x>" (RFC 5322 §4.4): the address follows the last ":".
            part = part[part.index("<") + 1 : -1].rpartition(":")[2].strip()
        local, at, domain = part.rpartition("@")
        domains.append(normalize_domain(domain) if at and local.strip() else None)
    return domains


_AT_DOMAIN = re.compile(r"@\s*([^\s<>()\",;:@\[\]\\]+)")


def header_from(header_block: bytes) -> HeaderFrom:
    """Find the author domain(s) in a message's header block (RFC 7489 §6.6.1).

    Args:
      header_block: The header fields as received (CRLF or LF line ends); the
        body, if included after the blank line, is ignored.

    Example:
      >>> header_from(b"From: Alice <alice@Mail.Example.COM>\\r\\nTo: b@x\\r\\n\\r\\n").domain
      'mail.example.com'
    """
    values = _field_values(header_block, b"from")
    found: list[str | None] = []
    for value in values:
        found.extend(_mailbox_domains(value))
    malformed = None in found
    if malformed:
        # Fail closed: what we could not parse may still show a domain to the reader.
        for value in values:
            found.extend(normalize_domain(m) for m in _AT_DOMAIN.findall(value))
    domains = tuple(dict.fromkeys(d for d in found if d is not None))
    return HeaderFrom(domains, len(values), malformed)
