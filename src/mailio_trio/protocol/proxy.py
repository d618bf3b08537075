"""The PROXY protocol header, versions 1 and 2 (HAProxy's ``proxy-protocol.txt``), sans-I/O.

A TCP load balancer (HAProxy, nginx's stream module, a cloud's network load
balancer) accepts the client's connection and opens its own to us; to tell us
who the client is, it sends one header before the client's first byte:

- **Version 1**, a text line: ``PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\\r\\n``
  (``TCP6`` with IPv6 addresses, or ``UNKNOWN`` and anything up to the CRLF).
  At most 107 octets with its CRLF: ``PROXY UNKNOWN`` and two full-length IPv6
  addresses and ports (§2.1).
- **Version 2**, binary: the 12-octet signature ``\\r\\n\\r\\n\\0\\r\\nQUIT\\n``, a
  version/command octet (``0x20`` LOCAL, ``0x21`` PROXY), a family/transport
  octet, a 2-octet length of what follows, then the addresses and ports and
  type-length-value records (TLVs: the TLS SNI, TLS facts, a unique id, ...).

``LOCAL`` (v2) is the balancer speaking for itself, its health checks: the
connection's own endpoints stand. ``UNKNOWN`` (v1) and the ``UNSPEC`` family
(v2) carry no usable address either.

Memory: nothing here holds more than the header. A v1 line without CRLF in its
first 107 octets, a byte that is not printable ASCII in it, or a v2 length over
``max_v2_length`` is refused at once, the length as soon as the 16-octet fixed
part is in, before anything of the rest is buffered. :attr:`ProxyParser.bytes_wanted`
says how much a reader may ask for without reading past a v2 header (a v1 line's
end cannot be known before it comes). What arrived after the header is the
client's own first bytes and must not be lost: :meth:`ProxyParser.take_trailing`.

Strictness: a receiver "must not try to guess" (§2.1): no header, a header of
the wrong shape, an unknown version, command or family, a TLV running past the
end, a CRC32c that does not match: each is a :class:`ProxyError`, and the
connection is closed. This module never does I/O, reads a clock or imports trio.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import struct

import attrs

from mailio_trio.protocol.lines import Need

__all__ = [
    "DEFAULT_MAX_V2_LENGTH",
    "V1_MAX_LENGTH",
    "V2_SIGNATURE",
    "ProxyCommand",
    "ProxyError",
    "ProxyFamily",
    "ProxyHeader",
    "ProxyParser",
    "ProxySSL",
    "ProxyTransport",
    "TLVType",
    "crc32c",
]

# §2.1: "PROXY UNKNOWN" + two 39-character IPv6 addresses + two 5-digit ports,
# single spaces, CRLF: 5 + 1 + 7 + 1 + 39 + 1 + 39 + 1 + 5 + 1 + 5 + 2 = 107.
V1_MAX_LENGTH = 107
V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = 16  # signature, version/command, family/transport, length
# The addresses' block is at most 216 octets (two AF_UNIX paths, §2.2); the rest
# is TLVs. HAProxy's own with TLS facts, a unique id and the SNI stays well under
# 1 KiB, and so do the cloud balancers'; a peer declaring more than this (up to
# 65,535) is refused before we hold any of it.
DEFAULT_MAX_V2_LENGTH = 1024

_V1_PORT = re.compile(rb"[0-9]{1,5}\Z")
# §2.2: address lengths by family for the PROXY command: two addresses, two ports.
_INET_BLOCK = struct.Struct("!4s4sHH")
_INET6_BLOCK = struct.Struct("!16s16sHH")
_UNIX_PATH = 108
_UNIX_BLOCK = 2 * _UNIX_PATH


class ProxyError(Exception):
    """The peer sent no valid PROXY header; the connection must be closed unanswered."""


class ProxyCommand(enum.Enum):
    LOCAL = "local"
    """The balancer's own connection, such as a health check; the socket's endpoints stand."""
    PROXY = "proxy"
    """Relayed for a client whose endpoints the header carries."""


class ProxyFamily(enum.Enum):
    UNSPEC = "unspec"
    """No address (v1 ``UNKNOWN``, v2 ``AF_UNSPEC``)."""
    INET = "inet"
    INET6 = "inet6"
    UNIX = "unix"


class ProxyTransport(enum.Enum):
    UNSPEC = "unspec"
    STREAM = "stream"
    DGRAM = "dgram"


class TLVType(enum.IntEnum):
    """v2 TLV types (§2.2.1 to §2.2.7); others are kept in :attr:`ProxyHeader.tlvs` as sent."""

    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    SSL_VERSION = 0x21
    SSL_CN = 0x22
    SSL_CIPHER = 0x23
    SSL_SIG_ALG = 0x24
    SSL_KEY_ALG = 0x25
    NETNS = 0x30


# PP2_TYPE_SSL's client field (§2.2.5).
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04


@attrs.frozen(kw_only=True)
class ProxySSL:
    """What the balancer says of the client's TLS connection to it (``PP2_TYPE_SSL``)."""

    client: int
    """Bit field of ``PP2_CLIENT_SSL`` (1), ``PP2_CLIENT_CERT_CONN`` (2) and
    ``PP2_CLIENT_CERT_SESS`` (4)."""
    verify: int
    """0 when the client presented a certificate and it was verified."""
    version: str | None = None
    """``PP2_SUBTYPE_SSL_VERSION``, e.g. ``"TLSv1.3"``."""
    cn: str | None = None
    """``PP2_SUBTYPE_SSL_CN``: the client certificate's Common Name."""
    cipher: str | None = None
    sig_alg: str | None = None
    key_alg: str | None = None

    @property
    def over_tls(self) -> bool:
        """The client spoke TLS to the balancer."""
        return bool(self.client & PP2_CLIENT_SSL)

    @property
    def client_certificate_verified(self) -> bool:
        """A client certificate was presented (on this connection or session) and verified."""
        presented = self.client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)
        return bool(presented) and self.verify == 0


@attrs.frozen(kw_only=True)
class ProxyHeader:
    """One parsed PROXY header.

    The addresses are ``None`` for ``LOCAL``, ``UNKNOWN`` and ``UNSPEC``; for
    ``UNIX`` they are the socket paths and the ports are ``None``. IP addresses
    are in their canonical text form (``ipaddress``).
    """

    version: int
    """1 (text) or 2 (binary)."""
    command: ProxyCommand
    family: ProxyFamily
    transport: ProxyTransport
    source: str | None = None
    source_port: int | None = None
    destination: str | None = None
    destination_port: int | None = None
    authority: str | None = None
    """``PP2_TYPE_AUTHORITY``: the host name the client asked for (TLS SNI)."""
    alpn: bytes | None = None
    unique_id: bytes | None = None
    ssl: ProxySSL | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()
    """Every top-level v2 TLV as sent, in order, the parsed ones too."""
    length: int = 0
    """Octets of the header on the wire."""

    @property
    def client(self) -> tuple[str, int] | None:
        """The client's IP address and port, if the header carries one."""
        if (
            self.command is ProxyCommand.PROXY
            and self.family in (ProxyFamily.INET, ProxyFamily.INET6)
            and self.source is not None
            and self.source_port is not None
        ):
            return self.source, self.source_port
        return None


class _State(enum.Enum):
    START = "start"
    V1 = "v1"
    V2 = "v2"
    DONE = "done"
    FAILED = "failed"


class ProxyParser:
    """Read one PROXY header (v1 or v2, whichever the peer sends) from a byte stream.

    Example:
      >>> parser = ProxyParser()
      >>> parser.feed(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\\r\\nEHLO")
      >>> header = parser.header()
      >>> header.client, parser.take_trailing()
      (('192.0.2.1', 56324), b'EHLO')

    Args:
      max_v2_length: Most octets a v2 header may declare after its fixed 16;
        more is refused as soon as the length is read.
    """

    def __init__(self, *, max_v2_length: int = DEFAULT_MAX_V2_LENGTH) -> None:
        self.max_v2_length = max_v2_length
        self._buffer = bytearray()
        self._state = _State.START
        self._v2_total = 0
        self._result: ProxyHeader | None = None
        self._error: ProxyError | None = None
        self._trailing = b""

    @property
    def bytes_wanted(self) -> int:
        """Octets a reader may ask for next; 0 once the header is parsed or refused.

        Never past a v2 header's end. A v1 line's end is known only when it
        comes, so a read may take some of the client's bytes after it: they
        are kept for :meth:`take_trailing`.
        """
        have = len(self._buffer)
        if self._state is _State.START:
            return V2_FIXED_LENGTH - have  # the v1 minimum "PROXY UNKNOWN\r\n" is 15
        if self._state is _State.V1:
            return V1_MAX_LENGTH - have
        if self._state is _State.V2:
            return (self._v2_total or V2_FIXED_LENGTH) - have
        return 0

    def feed(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means it closed the connection.

        Bytes fed after the header are kept for :meth:`take_trailing`; after a
        refusal they are dropped.
        """
        if self._state is _State.FAILED:
            return
        if self._state is _State.DONE:
            self._trailing += data
            return
        if not data:
            self._fail("the connection closed before the PROXY header ended")
            return
        self._buffer += data
        try:
            self._advance()
        except ProxyError as exc:
            self._error = exc
            self._state = _State.FAILED
            self._buffer.clear()

    def header(self) -> ProxyHeader | Need:
        """The parsed header, or ``Need.DATA`` while it is incomplete.

        Raises:
          ProxyError: The peer's bytes are no valid PROXY header (or it closed
            first); the same error on every later call.
        """
        if self._error is not None:
            raise self._error
        if self._result is not None:
            return self._result
        return Need.DATA

    def take_trailing(self) -> bytes:
        """Return and forget the bytes received after the header (the client's own)."""
        trailing, self._trailing = self._trailing, b""
        return trailing

    # -- parsing ---------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self._error = ProxyError(reason)
        self._state = _State.FAILED
        self._buffer.clear()

    def _advance(self) -> None:
        buf = self._buffer
        if self._state is _State.START:
            if buf[:1] == V1_PREFIX[:1]:
                self._state = _State.V1
            elif buf[:1] == V2_SIGNATURE[:1]:
                self._state = _State.V2
            else:
                raise ProxyError("not a PROXY protocol header")
        if self._state is _State.V1:
            self._advance_v1()
        else:
            self._advance_v2()

    def _advance_v1(self) -> None:
        buf = self._buffer
        if not V1_PREFIX.startswith(bytes(buf[: len(V1_PREFIX)])):
            raise ProxyError("not a PROXY protocol header")
        end = buf.find(b"\n", 0, V1_MAX_LENGTH)
        if end == -1:
            body = bytes(buf[:V1_MAX_LENGTH])
            _check_printable(body[:-1] if body.endswith(b"\r") else body)  # CR: CRLF may follow
            if len(buf) >= V1_MAX_LENGTH:
                raise ProxyError(f"PROXY v1 header longer than {V1_MAX_LENGTH} octets")
            return
        if buf[end - 1] != 0x0D:  # end > 0: the buffer starts with "P"
            raise ProxyError("PROXY v1 header ends in a bare LF, not CRLF")
        body = bytes(buf[: end - 1])
        _check_printable(body)
        self._finish(_parse_v1(body), end + 1)

    def _advance_v2(self) -> None:
        buf = self._buffer
        if not V2_SIGNATURE.startswith(bytes(buf[: len(V2_SIGNATURE)])):
            raise ProxyError("not a PROXY protocol header")
        if len(buf) < V2_FIXED_LENGTH:
            return
        if not self._v2_total:
            version, command = buf[12] >> 4, buf[12] & 0x0F
            if version != 2:
                raise ProxyError(f"PROXY v2 header of unknown version {version}")
            if command > 1:
                raise ProxyError(f"PROXY v2 header with unknown command {command}")
            family, transport = buf[13] >> 4, buf[13] & 0x0F
            if family > 3 or transport > 2:
                raise ProxyError(f"PROXY v2 header with unknown family octet 0x{buf[13]:02x}")
            length = int.from_bytes(buf[14:16])
            if length > self.max_v2_length:
                raise ProxyError(
                    f"PROXY v2 header declares {length} octets, more than {self.max_v2_length}"
                )
            self._v2_total = V2_FIXED_LENGTH + length
        if len(buf) < self._v2_total:
            return
        total = self._v2_total
        self._finish(_parse_v2(bytes(buf[:total])), total)

    def _finish(self, header: ProxyHeader, length: int) -> None:
        self._result = attrs.evolve(header, length=length)
        self._trailing = bytes(self._buffer[length:])
        self._buffer = bytearray()
        self._state = _State.DONE


def _check_printable(text: bytes) -> None:
    if any(b < 0x20 or b > 0x7E for b in text):
        raise ProxyError("PROXY v1 header is not one line of printable ASCII")


def _parse_v1(line: bytes) -> ProxyHeader:
    parts = line.split(b" ")
    if parts[0] != b"PROXY" or len(parts) < 2:
        raise ProxyError("not a PROXY protocol header")
    if parts[1] == b"UNKNOWN":
        # §2.1: "the receiver must ignore anything presented before the CRLF".
        return ProxyHeader(
            version=1,
            command=ProxyCommand.PROXY,
            family=ProxyFamily.UNSPEC,
            transport=ProxyTransport.UNSPEC,
        )
    families = {b"TCP4": ProxyFamily.INET, b"TCP6": ProxyFamily.INET6}
    family = families.get(parts[1])
    if family is None:
        raise ProxyError(f"PROXY v1 header with unknown protocol {parts[1]!r}")
    if len(parts) != 6:
        raise ProxyError("PROXY v1 header needs two addresses and two ports, single-spaced")
    source, destination = (_v1_address(p, family) for p in parts[2:4])
    source_port, destination_port = (_v1_port(p) for p in parts[4:6])
    return ProxyHeader(
        version=1,
        command=ProxyCommand.PROXY,
        family=family,
        transport=ProxyTransport.STREAM,
        source=source,
        source_port=source_port,
        destination=destination,
        destination_port=destination_port,
    )


def _v1_address(text: bytes, family: ProxyFamily) -> str:
    # A zone index (fe80::1%eth0) means nothing to us for a remote client.
    if b"%" not in text:
        try:
            if family is ProxyFamily.INET:
                return str(ipaddress.IPv4Address(text.decode("ascii")))
            return str(ipaddress.IPv6Address(text.decode("ascii")))
        except ValueError:
            pass
    raise ProxyError(f"PROXY v1 header with a bad {family.value} address {text!r}")


def _v1_port(text: bytes) -> int:
    if _V1_PORT.match(text) and int(text) <= 65535:
        return int(text)
    raise ProxyError(f"PROXY v1 header with a bad port {text!r}")


def _parse_v2(data: bytes) -> ProxyHeader:
    command = ProxyCommand.LOCAL if data[12] & 0x0F == 0 else ProxyCommand.PROXY
    family = (ProxyFamily.UNSPEC, ProxyFamily.INET, ProxyFamily.INET6, ProxyFamily.UNIX)[
        data[13] >> 4
    ]
    transport = (ProxyTransport.UNSPEC, ProxyTransport.STREAM, ProxyTransport.DGRAM)[
        data[13] & 0x0F
    ]
    if command is ProxyCommand.LOCAL or family is ProxyFamily.UNSPEC:
        # §2.2: for LOCAL "the receiver must ... discard the protocol block
        # including the family"; for UNSPEC it "should ignore address information".
        return ProxyHeader(version=2, command=command, family=family, transport=transport)
    block = data[V2_FIXED_LENGTH:]
    source: str | None
    destination: str | None
    source_port: int | None = None
    destination_port: int | None = None
    if family is ProxyFamily.INET or family is ProxyFamily.INET6:
        layout = _INET_BLOCK if family is ProxyFamily.INET else _INET6_BLOCK
        if len(block) < layout.size:
            raise ProxyError(f"PROXY v2 header too short for {family.value} addresses")
        raw_source, raw_destination, source_port, destination_port = layout.unpack_from(block)
        source = str(ipaddress.ip_address(raw_source))
        destination = str(ipaddress.ip_address(raw_destination))
        used = layout.size
    else:
        if len(block) < _UNIX_BLOCK:
            raise ProxyError("PROXY v2 header too short for unix addresses")
        source = _unix_path(block[:_UNIX_PATH])
        destination = _unix_path(block[_UNIX_PATH:_UNIX_BLOCK])
        used = _UNIX_BLOCK
    tlvs = _split_tlvs(block[used:], "")
    authority: str | None = None
    alpn: bytes | None = None
    unique_id: bytes | None = None
    ssl: ProxySSL | None = None
    at = V2_FIXED_LENGTH + used  # where each TLV starts in ``data``
    for kind, value in tlvs:
        if kind == TLVType.CRC32C:
            _check_crc(data, at, value)
        elif kind == TLVType.AUTHORITY:
            authority = _text(value, "authority")
        elif kind == TLVType.ALPN:
            alpn = value
        elif kind == TLVType.UNIQUE_ID:
            if len(value) > 128:  # §2.2.5: "at most 128 bytes"
                raise ProxyError("PROXY v2 unique id longer than 128 octets")
            unique_id = value
        elif kind == TLVType.SSL:
            ssl = _parse_ssl(value)
        at += 3 + len(value)
    return ProxyHeader(
        version=2,
        command=command,
        family=family,
        transport=transport,
        source=source,
        source_port=source_port,
        destination=destination,
        destination_port=destination_port,
        authority=authority,
        alpn=alpn,
        unique_id=unique_id,
        ssl=ssl,
        tlvs=tuple(tlvs),
    )


def _unix_path(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "backslashreplace")


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyError(f"PROXY v2 {what} is not UTF-8") from None


def _split_tlvs(data: bytes, within: str) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ProxyError(f"PROXY v2 header ends inside a TLV{within}")
        kind, length = data[at], int.from_bytes(data[at + 1 : at + 3])
        end = at + 3 + length
        if end > len(data):
            raise ProxyError(f"PROXY v2 TLV 0x{kind:02x}{within} runs past the header's end")
        out.append((kind, data[at + 3 : end]))
        at = end
    return out


def _parse_ssl(value: bytes) -> ProxySSL:
    if len(value) < 5:
        raise ProxyError("PROXY v2 SSL TLV shorter than its 5 fixed octets")
    texts: dict[int, str] = {}
    for kind, sub in _split_tlvs(value[5:], " inside the SSL TLV"):
        if TLVType.SSL_VERSION <= kind <= TLVType.SSL_KEY_ALG:
            texts[kind] = _text(sub, f"SSL sub-TLV 0x{kind:02x}")
    return ProxySSL(
        client=value[0],
        verify=int.from_bytes(value[1:5]),
        version=texts.get(TLVType.SSL_VERSION),
        cn=texts.get(TLVType.SSL_CN),
        cipher=texts.get(TLVType.SSL_CIPHER),
        sig_alg=texts.get(TLVType.SSL_SIG_ALG),
        key_alg=texts.get(TLVType.SSL_KEY_ALG),
    )


def _check_crc(data: bytes, at: int, value: bytes) -> None:
    """§2.2.3: CRC32c of the whole header with the checksum's own value zeroed."""
    if len(value) != 4:
        raise ProxyError("PROXY v2 CRC32c TLV is not 4 octets")
    zeroed = data[: at + 3] + b"\x00\x00\x00\x00" + data[at + 7 :]
    if crc32c(zeroed) != int.from_bytes(value):
        raise ProxyError("PROXY v2 CRC32c does not match")


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 §B.4), as the v2 ``PP2_TYPE_CRC32C`` TLV carries it.

    Pure Python: it runs over one header of at most ``max_v2_length`` octets.

    Example:
      >>> hex(crc32c(b"123456789"))
      '0xe3069283'
    """
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
