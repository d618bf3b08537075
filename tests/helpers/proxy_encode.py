"""A small PROXY protocol encoder, for tests only (the server never sends one)."""

from __future__ import annotations

import ipaddress

from mailio_trio.protocol.proxy import V2_SIGNATURE, TLVType, crc32c


def v1(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    """``PROXY TCP4|TCP6 ...\\r\\n`` for the addresses' family."""
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {destination} {source_port} {destination_port}\r\n".encode()


def v1_unknown(rest: str = "") -> bytes:
    return f"PROXY UNKNOWN{rest}\r\n".encode()


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2) + value


def ssl_tlv(client: int, verify: int, subs: dict[int, str]) -> bytes:
    inner = bytes([client]) + verify.to_bytes(4)
    inner += b"".join(tlv(k, v.encode()) for k, v in subs.items())
    return tlv(TLVType.SSL, inner)


def v2(
    source: str | None = None,
    destination: str | None = None,
    source_port: int = 0,
    destination_port: int = 0,
    *,
    local: bool = False,
    tlvs: bytes = b"",
    crc: bool = False,
    transport: int = 1,
) -> bytes:
    """A v2 header: PROXY with INET/INET6 addresses, or LOCAL/UNSPEC when no source is given."""
    if source is None or destination is None:
        family, block = 0, b""
    else:
        src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
        family = 1 if src.version == 4 else 2
        block = src.packed + dst.packed + source_port.to_bytes(2) + destination_port.to_bytes(2)
    if crc:
        tlvs += tlv(TLVType.CRC32C, b"\x00\x00\x00\x00")
    body = block + tlvs
    command = 0x20 if local else 0x21
    header = V2_SIGNATURE + bytes([command, family << 4 | transport]) + len(body).to_bytes(2) + body
    if crc:
        header = header[:-4] + crc32c(header).to_bytes(4)
    return header
