"""ProxyParser: PROXY protocol v1 and v2 headers, their caps, TLVs, and the bytes after."""

from __future__ import annotations

import ipaddress
import itertools

import proxy_encode as enc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.protocol import Need
from mailio_trio.protocol.proxy import (
    DEFAULT_MAX_V2_LENGTH,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyCommand,
    ProxyError,
    ProxyFamily,
    ProxyHeader,
    ProxyParser,
    ProxySSL,
    ProxyTransport,
    TLVType,
    crc32c,
)


def parse(data: bytes, **kwargs: int) -> tuple[ProxyHeader, bytes]:
    parser = ProxyParser(**kwargs)
    parser.feed(data)
    header = parser.header()
    assert isinstance(header, ProxyHeader)
    return header, parser.take_trailing()


def refusal(data: bytes, **kwargs: int) -> str:
    parser = ProxyParser(**kwargs)
    parser.feed(data)
    with pytest.raises(ProxyError) as info:
        parser.header()
    assert parser.bytes_wanted == 0
    return str(info.value)


# -- version 1 -------------------------------------------------------------------


def test_v1_tcp4_and_the_client_bytes_after_it() -> None:
    header, trailing = parse(b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\nEHLO a.test\r\n")
    assert header == ProxyHeader(
        version=1,
        command=ProxyCommand.PROXY,
        family=ProxyFamily.INET,
        transport=ProxyTransport.STREAM,
        source="192.0.2.1",
        source_port=56324,
        destination="198.51.100.7",
        destination_port=25,
        length=44,
    )
    assert header.client == ("192.0.2.1", 56324)
    assert trailing == b"EHLO a.test\r\n"


def test_v1_tcp6_addresses_are_canonical() -> None:
    header, _ = parse(b"PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 1 65535\r\n")
    assert (header.family, header.source, header.destination) == (
        ProxyFamily.INET6,
        "2001:db8::1",
        "2001:db8::2",
    )
    assert (header.source_port, header.destination_port) == (1, 65535)


@pytest.mark.parametrize("rest", ["", " whatever follows is ignored", " 1.2.3.4 5.6.7.8 1 2"])
def test_v1_unknown_carries_no_address(rest: str) -> None:
    header, _ = parse(enc.v1_unknown(rest))
    assert header.family is ProxyFamily.UNSPEC
    assert header.client is None


def test_v1_longest_possible_header_is_107_octets() -> None:
    ipv6 = "ffff:" * 7 + "ffff"
    line = f"PROXY UNKNOWN {ipv6} {ipv6} 65535 65535\r\n".encode()
    assert len(line) == V1_MAX_LENGTH
    header, trailing = parse(line + b"EHLO")
    assert header.length == V1_MAX_LENGTH
    assert trailing == b"EHLO"


def test_v1_108th_octet_without_crlf_is_refused_and_nothing_more_is_held() -> None:
    parser = ProxyParser()
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 14)
    parser.feed(line[:-1])
    assert parser.header() is Need.DATA
    parser.feed(line[-1:])
    with pytest.raises(ProxyError, match="longer than 107"):
        parser.header()
    parser.feed(b"\r\n" + b"y" * 100_000)  # dropped, not buffered
    assert parser.bytes_wanted == 0
    assert parser.take_trailing() == b""
    with pytest.raises(ProxyError, match="longer than 107"):
        parser.header()


def test_v1_crlf_split_over_the_limit_is_refused() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 15) + b"\r\n"
    assert len(line) == V1_MAX_LENGTH + 1
    assert "longer than 107" in refusal(line)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\n",  # bare LF
        b"PROXY TCP4 192.0.2.1  198.51.100.7 56324 25\r\n",  # two spaces
        b"PROXY TCP4 192.0.2.1 198.51.100.7 56324\r\n",  # a port missing
        b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 25 6\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.7 56324 25\r\n",  # wrong family
        b"PROXY TCP6 192.0.2.1 2001:db8::2 56324 25\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 25\r\n",  # zone index
        b"PROXY TCP4 192.0.2.01 198.51.100.7 56324 25\r\n",  # leading zero: ambiguous
        b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 25\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 -1 25\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 123456 25\r\n",
        b"PROXY UDP4 192.0.2.1 198.51.100.7 56324 25\r\n",
        b"PROXY tcp4 192.0.2.1 198.51.100.7 56324 25\r\n",
        b"PROXY\r\n",
        b"PROXY \r\n",
        b"PROXY TCP4 192.0.2.1\x00 198.51.100.7 56324 25\r\n",
        b"PROXY TCP4 192.0.2.1\r198.51.100.7 56324 25\r\n",
        b"PROXY UNKNOWN \xff\r\n",
        b"proxy TCP4 192.0.2.1 198.51.100.7 56324 25\r\n",
        b"PROXYTCP4 192.0.2.1 198.51.100.7 56324 25\r\n",
    ],
)
def test_v1_malformed_is_refused(line: bytes) -> None:
    refusal(line)


@pytest.mark.parametrize("data", [b"EHLO a.test\r\n", b"\x16\x03\x01", b"P\x00", b"\r\n\r\n\x01"])
def test_not_a_proxy_header_is_refused_at_the_first_wrong_octet(data: bytes) -> None:
    assert refusal(data)


def test_eof_before_the_end_is_refused() -> None:
    parser = ProxyParser()
    parser.feed(b"PROXY TCP4 192.0.2.1")
    parser.feed(b"")
    with pytest.raises(ProxyError, match="closed"):
        parser.header()


def test_eof_on_nothing_is_refused() -> None:
    assert "closed" in refusal(b"")


# -- version 2 -------------------------------------------------------------------


def test_v2_inet() -> None:
    header, trailing = parse(enc.v2("192.0.2.1", "198.51.100.7", 56324, 25) + b"EHLO")
    assert header == ProxyHeader(
        version=2,
        command=ProxyCommand.PROXY,
        family=ProxyFamily.INET,
        transport=ProxyTransport.STREAM,
        source="192.0.2.1",
        source_port=56324,
        destination="198.51.100.7",
        destination_port=25,
        length=28,
    )
    assert trailing == b"EHLO"


def test_v2_inet6() -> None:
    header, _ = parse(enc.v2("2001:db8::1", "2001:db8::2", 1, 2))
    assert header.client == ("2001:db8::1", 1)
    assert header.family is ProxyFamily.INET6
    assert header.length == 16 + 36


def test_v2_local_ignores_the_block() -> None:
    header, _ = parse(enc.v2("192.0.2.1", "198.51.100.7", 1, 2, local=True))
    assert header.command is ProxyCommand.LOCAL
    assert header.client is None
    assert header.source is None


def test_v2_local_health_check_has_no_block() -> None:
    header, trailing = parse(enc.v2(local=True) + b"QUIT\r\n")
    assert (header.command, header.family, header.length) == (
        ProxyCommand.LOCAL,
        ProxyFamily.UNSPEC,
        16,
    )
    assert trailing == b"QUIT\r\n"


def test_v2_unix_paths_are_kept_but_no_client_address() -> None:
    block = b"/run/a.sock".ljust(108, b"\x00") + b"/run/b.sock".ljust(108, b"\x00")
    data = V2_SIGNATURE + b"\x21\x31" + len(block).to_bytes(2) + block
    header, _ = parse(data)
    assert (header.family, header.source, header.destination) == (
        ProxyFamily.UNIX,
        "/run/a.sock",
        "/run/b.sock",
    )
    assert header.client is None


def test_v2_tlvs_authority_ssl_unique_id_and_unknown_kept_raw() -> None:
    tlvs = (
        enc.tlv(TLVType.AUTHORITY, b"mx.example.com")
        + enc.tlv(TLVType.ALPN, b"smtp")
        + enc.tlv(TLVType.UNIQUE_ID, b"\x01\x02")
        + enc.ssl_tlv(
            0x07,
            0,
            {TLVType.SSL_VERSION: "TLSv1.3", TLVType.SSL_CN: "client.example", 0x99: "x"},
        )
        + enc.tlv(0xE5, b"custom")
        + enc.tlv(TLVType.NOOP, b"")
    )
    header, _ = parse(enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=tlvs, crc=True))
    assert header.authority == "mx.example.com"
    assert header.alpn == b"smtp"
    assert header.unique_id == b"\x01\x02"
    assert header.ssl == ProxySSL(client=7, verify=0, version="TLSv1.3", cn="client.example")
    assert header.ssl.over_tls
    assert header.ssl.client_certificate_verified
    assert [kind for kind, _ in header.tlvs] == [0x02, 0x01, 0x05, 0x20, 0xE5, 0x04, 0x03]
    assert (0xE5, b"custom") in header.tlvs


def test_v2_crc32c_mismatch_is_refused() -> None:
    good = enc.v2("192.0.2.1", "198.51.100.7", 1, 2, crc=True)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    assert "CRC32c" in refusal(bad)
    tampered = good[:16] + b"\x0a" + good[17:]  # another source address, same checksum
    assert "CRC32c" in refusal(tampered)


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / the CRC catalogue's check value


def test_v2_declaring_65535_is_refused_after_16_octets() -> None:
    parser = ProxyParser()
    parser.feed(V2_SIGNATURE + b"\x21\x11")
    assert parser.bytes_wanted == 2
    parser.feed(b"\xff\xff")
    with pytest.raises(ProxyError, match="65535 octets"):
        parser.header()
    assert parser.bytes_wanted == 0


def test_v2_cap_is_configurable() -> None:
    data = enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(0xE0, b"x" * 100))
    assert "more than 50" in refusal(data, max_v2_length=50)
    assert parse(data, max_v2_length=115)[0].tlvs == ((0xE0, b"x" * 100),)
    assert DEFAULT_MAX_V2_LENGTH >= 216  # two unix paths always fit


def test_v2_bytes_wanted_never_reads_past_the_header() -> None:
    data = enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(0xE0, b"abc"))
    parser = ProxyParser()
    taken = 0
    while parser.header() is Need.DATA:
        want = parser.bytes_wanted
        assert 0 < want <= len(data) - taken
        parser.feed(data[taken : taken + want])
        taken += want
    assert taken == len(data)
    assert parser.bytes_wanted == 0


@pytest.mark.parametrize(
    ("octets", "reason"),
    [
        (b"\x11\x11", "version 1"),
        (b"\x31\x11", "version 3"),
        (b"\x22\x11", "command 2"),
        (b"\x2f\x11", "command 15"),
        (b"\x21\x41", "family octet 0x41"),
        (b"\x21\x13", "family octet 0x13"),
    ],
)
def test_v2_unknown_version_command_family_is_refused(octets: bytes, reason: str) -> None:
    assert reason in refusal(V2_SIGNATURE + octets + b"\x00\x0c" + b"\x00" * 12)


@pytest.mark.parametrize(
    "data",
    [
        V2_SIGNATURE + b"\x21\x11\x00\x08" + b"\x00" * 8,  # too short for INET
        V2_SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12,  # too short for INET6
        V2_SIGNATURE + b"\x21\x31\x00\x0c" + b"\x00" * 12,  # too short for UNIX
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=b"\xe0\x00"),  # TLV cut in its length
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=b"\xe0\x00\x05abc"),  # runs past
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(TLVType.SSL, b"\x01")),
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(TLVType.SSL, b"\x01" * 5 + b"\x22")),
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(TLVType.AUTHORITY, b"\xff")),
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(TLVType.CRC32C, b"\x00")),
        enc.v2("192.0.2.1", "198.51.100.7", 1, 2, tlvs=enc.tlv(TLVType.UNIQUE_ID, b"u" * 129)),
    ],
)
def test_v2_malformed_block_is_refused(data: bytes) -> None:
    refusal(data)


def test_v2_signature_mismatch_is_refused_early() -> None:
    assert "not a PROXY" in refusal(V2_SIGNATURE[:7] + b"X")


# -- properties --------------------------------------------------------------------


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def outcome(chunks: list[bytes], close: bool = False) -> tuple[object, bytes]:
    parser = ProxyParser()
    for chunk in chunks:
        if chunk:  # b"" would mean the peer closed
            parser.feed(chunk)
    if close:
        parser.feed(b"")
    try:
        result: object = parser.header()
    except ProxyError as exc:
        result = ("error", str(exc))
    return result, parser.take_trailing()


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["v1", "v1-unknown", "v2", "v2-local"]))
    if kind == "v1-unknown":
        return enc.v1_unknown()
    if kind == "v2-local":
        return enc.v2(local=True)
    addresses = draw(st.sampled_from([ipv4, ipv6]))
    source, destination = draw(addresses), draw(addresses)
    if kind == "v1":
        return enc.v1(source, destination, draw(ports), draw(ports))
    tlvs = b"".join(
        enc.tlv(k, v)
        for k, v in draw(
            st.lists(st.tuples(st.integers(0xE0, 0xEF), st.binary(max_size=20)), max_size=4)
        )
    )
    return enc.v2(source, destination, draw(ports), draw(ports), tlvs=tlvs, crc=draw(st.booleans()))


@given(headers(), st.binary(max_size=40), st.lists(st.integers(0, 400), max_size=8))
def test_any_chunking_gives_the_same_result(header: bytes, after: bytes, cuts: list[int]) -> None:
    data = header + after
    whole = outcome([data])
    assert outcome(chunked(data, cuts)) == whole
    assert isinstance(whole[0], ProxyHeader)
    assert whole[1] == after


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_arbitrary_bytes_raise_only_proxy_error(data: bytes, cuts: list[int], close: bool) -> None:
    assert outcome(chunked(data, cuts), close) == outcome([data], close)


@given(st.binary(max_size=300), st.booleans())
def test_bytes_after_a_valid_prefix_raise_only_proxy_error(data: bytes, v2: bool) -> None:
    prefix = V2_SIGNATURE + b"\x21\x11" if v2 else b"PROXY TCP4 "
    outcome([prefix + data], close=True)  # no exception but ProxyError escapes


@given(st.sampled_from([ipv4, ipv6]).flatmap(lambda s: st.tuples(s, s)), ports, ports)
def test_round_trip(addresses: tuple[str, str], sport: int, dport: int) -> None:
    source, destination = addresses
    for data in (
        enc.v1(source, destination, sport, dport),
        enc.v2(source, destination, sport, dport),
    ):
        header, _ = parse(data)
        assert header.client == (str(ipaddress.ip_address(source)), sport)
        assert (header.destination, header.destination_port) == (destination, dport)
        assert header.length == len(data)
