"""A small authoritative DNS server for tests: real packets over UDP and TCP on loopback.

Public test infrastructure, like :mod:`mailio_trio.testing`: aim a
:class:`~mailio_trio.dns.DnsResolver` (or a whole server, with
``Config(dns=DnsConfig(nameservers=["127.0.0.1"], port=running.port))``) at
it and every lookup is a real DNS message built and parsed by dnspython.

Names are answered from a :class:`Zone`; a name not in it is NXDOMAIN, a
name in it without records of the asked type is NODATA. A name can also be
made to answer SERVFAIL, never answer (to test timeouts), or always set the
TC bit over UDP (to force the TCP retry). Answers bigger than a UDP datagram
may carry (512 octets, or the client's EDNS size) are truncated with TC as a
real server does (RFC 1035 §4.2.1, RFC 7766), so TCP fallback is exercised.

Example::

    zone = Zone()
    zone.mx("example.com", (10, "mx.example.com"))
    zone.a("mx.example.com", "192.0.2.25")
    zone.servfail("broken.example")
    dns_server = DnsServer(zone)
    address = await nursery.start(dns_server.serve)      # ("127.0.0.1", port)
    resolver = DnsResolver(DnsConfig(nameservers=[address[0]], port=address[1]))

``Zone.from_dict`` builds the same from plain data::

    Zone.from_dict({
        "example.com": {"MX": [(10, "mx.example.com")], "TXT": ["v=spf1 -all"]},
        "gone.example": "NXDOMAIN", "broken.example": "SERVFAIL",
        "slow.example": "SILENT",
    })
"""

from __future__ import annotations

import enum
import errno
import logging
import struct
from typing import TYPE_CHECKING, Any

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import trio

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["Behaviour", "DnsServer", "Query", "Transport", "Zone"]

logger = logging.getLogger("mailio_trio.testing.dns")

# RFC 1035 §4.2.1: without EDNS, a UDP message is at most 512 octets.
UDP_LIMIT = 512
_DEFAULT_TTL = 300


class Behaviour(enum.Enum):
    """How a name answers whatever is asked of it."""

    NXDOMAIN = "NXDOMAIN"
    SERVFAIL = "SERVFAIL"
    SILENT = "SILENT"
    """Never answer (the query is read and dropped), so the client times out."""


class Transport(enum.Enum):
    UDP = "udp"
    TCP = "tcp"


@attrs.frozen
class Query:
    """One question the server received."""

    name: str
    rdtype: str
    transport: Transport


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def _reverse(ip_or_name: str) -> dns.name.Name:
    import dns.reversename

    try:
        return dns.reversename.from_address(ip_or_name)
    except (ValueError, dns.exception.SyntaxError):
        return _name(ip_or_name)


def _absolute(host: str) -> str:
    return host if host.endswith(".") else host + "."


@attrs.define(eq=False)
class Zone:
    """Records by name and type; mutable while the server runs.

    Host names given without a trailing dot are taken as absolute.
    """

    ttl: int = _DEFAULT_TTL
    """TTL of records added without one."""
    _records: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = attrs.field(
        factory=dict, init=False
    )
    _behaviour: dict[dns.name.Name, Behaviour] = attrs.field(factory=dict, init=False)
    _truncate: set[dns.name.Name] = attrs.field(factory=set, init=False)

    # -- records --------------------------------------------------------------

    def add(
        self, name: str | dns.name.Name, rdtype: str, rdatas: Iterable[str], ttl: int | None = None
    ) -> None:
        """Add records given in zone-file text (``"10 mx.example.com."``)."""
        self.add_rdata(
            name,
            [
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)
                for text in rdatas
            ],
            ttl,
        )

    def add_rdata(
        self, name: str | dns.name.Name, rdatas: list[dns.rdata.Rdata], ttl: int | None = None
    ) -> None:
        owner = name if isinstance(name, dns.name.Name) else _name(name)
        for rdata in rdatas:
            key = (owner, rdata.rdtype)
            rrset = self._records.get(key)
            if rrset is None:
                rrset = self._records[key] = dns.rrset.RRset(owner, dns.rdataclass.IN, rdata.rdtype)
            rrset.add(rdata, self.ttl if ttl is None else ttl)
        self._behaviour.pop(owner, None)

    def a(self, name: str, *addresses: str, ttl: int | None = None) -> None:
        self.add(name, "A", addresses, ttl)

    def aaaa(self, name: str, *addresses: str, ttl: int | None = None) -> None:
        self.add(name, "AAAA", addresses, ttl)

    def mx(self, name: str, *exchanges: tuple[int, str], ttl: int | None = None) -> None:
        self.add(name, "MX", [f"{pref} {_absolute(host)}" for pref, host in exchanges], ttl)

    def null_mx(self, name: str, ttl: int | None = None) -> None:
        """RFC 7505: the domain accepts no mail."""
        self.add(name, "MX", ["0 ."], ttl)

    def ptr(self, ip_or_name: str, *names: str, ttl: int | None = None) -> None:
        """PTR records for an address (its ``in-addr.arpa``/``ip6.arpa`` name is derived)."""
        self.add(_reverse(ip_or_name), "PTR", [_absolute(n) for n in names], ttl)

    def txt(self, name: str, *texts: str | bytes, ttl: int | None = None) -> None:
        """TXT records; each text is split into 255-octet character-strings."""
        rdatas: list[dns.rdata.Rdata] = []
        for text in texts:
            data = text.encode("utf-8") if isinstance(text, str) else text
            chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
            rdatas.append(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks))
        self.add_rdata(name, rdatas, ttl)

    def cname(self, name: str, target: str, ttl: int | None = None) -> None:
        self.add(name, "CNAME", [_absolute(target)], ttl)

    # -- behaviours -----------------------------------------------------------

    def nxdomain(self, name: str) -> None:
        """Answer NXDOMAIN for ``name`` (the default for names never added)."""
        self._set(name, Behaviour.NXDOMAIN)

    def servfail(self, name: str) -> None:
        self._set(name, Behaviour.SERVFAIL)

    def silent(self, name: str) -> None:
        """Never answer queries for ``name`` (over UDP or TCP)."""
        self._set(name, Behaviour.SILENT)

    def truncate(self, name: str) -> None:
        """Always answer ``name`` over UDP with TC set and no records, forcing TCP."""
        self._truncate.add(_name(name))

    def remove(self, name: str) -> None:
        owner = _name(name)
        for key in [k for k in self._records if k[0] == owner]:
            del self._records[key]
        self._behaviour.pop(owner, None)
        self._truncate.discard(owner)

    def _set(self, name: str, behaviour: Behaviour) -> None:
        owner = _name(name)
        for key in [k for k in self._records if k[0] == owner]:
            del self._records[key]
        self._behaviour[owner] = behaviour

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, ttl: int = _DEFAULT_TTL) -> Zone:
        """Build a zone from ``{name: {TYPE: [values]}}`` or ``{name: "NXDOMAIN"|...}``.

        MX values are ``(preference, host)`` pairs (``"NULL"`` for a null MX),
        TXT values strings, the rest zone-file text; PTR names may be IP addresses.
        """
        zone = cls(ttl=ttl)
        for name, spec in data.items():
            if isinstance(spec, str | Behaviour):
                zone._set(name, Behaviour(spec))
                continue
            for rdtype, values in spec.items():
                kind = rdtype.upper()
                if kind == "MX" and values == "NULL":
                    zone.null_mx(name)
                elif kind == "MX":
                    zone.mx(name, *values)
                elif kind == "TXT":
                    zone.txt(name, *values)
                elif kind == "PTR":
                    zone.ptr(name, *values)
                else:
                    zone.add(name, kind, values)
        return zone

    # -- answering ------------------------------------------------------------

    def behaviour(self, name: dns.name.Name) -> Behaviour | None:
        return self._behaviour.get(name)

    def truncates(self, name: dns.name.Name) -> bool:
        return name in self._truncate

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to ``query`` (SILENT names are the caller's business)."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        for _ in range(8):  # follow CNAMEs inside the zone, a few hops at most
            behaviour = self._behaviour.get(name)
            if behaviour is Behaviour.SERVFAIL:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            if behaviour is Behaviour.NXDOMAIN:
                response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            if (rrset := self._records.get((name, rdtype))) is not None:
                response.answer.append(rrset)
                return response
            cname = self._records.get((name, dns.rdatatype.CNAME))
            if cname is None:
                break
            response.answer.append(cname)
            name = next(iter(cname)).target
        if not any(owner == name for owner, _ in self._records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response  # NODATA: NOERROR with an empty answer


@attrs.define(eq=False)
class DnsServer:
    """Serves a :class:`Zone` on one loopback port over UDP and TCP.

    ``queries`` records every question asked, in order, with its transport.
    """

    zone: Zone = attrs.field(factory=Zone)
    queries: list[Query] = attrs.field(factory=list)
    address: tuple[str, int] | None = attrs.field(default=None, init=False)

    def count(self, name: str, rdtype: str | None = None) -> int:
        """How many queries asked for ``name`` (and ``rdtype``, if given)."""
        wanted = _name(name)
        return sum(
            1
            for q in self.queries
            if _name(q.name) == wanted and (rdtype is None or q.rdtype == rdtype.upper())
        )

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer until cancelled; ``await nursery.start(server.serve)`` returns ``(host, port)``.

        Port 0 picks a port free for both UDP and TCP.
        """
        udp, tcp = await _bind_pair(host, port)
        with udp, tcp:
            self.address = udp.getsockname()[:2]
            listener = trio.SocketListener(tcp)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp)
                nursery.start_soon(trio.serve_listeners, self._serve_tcp, [listener])
                task_status.started(self.address)

    def _respond(
        self, wire: bytes, transport: Transport
    ) -> tuple[dns.message.Message, dns.message.Message] | None:
        """The query and our response, or ``None`` when nothing is to be sent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            logger.info("dropping a malformed DNS query")
            return None
        if query.question:
            q = query.question[0]
            self.queries.append(Query(q.name.to_text(), dns.rdatatype.to_text(q.rdtype), transport))
            if self.zone.behaviour(q.name) is Behaviour.SILENT:
                return None
        return query, self.zone.answer(query)

    async def _serve_udp(self, sock: trio.socket.SocketType) -> None:
        while True:
            wire, peer = await sock.recvfrom(65535)
            answered = self._respond(wire, Transport.UDP)
            if answered is None:
                continue
            query, response = answered
            # RFC 6891 §6.2.5: the client's EDNS payload size, never below 512.
            limit = max(UDP_LIMIT, query.payload if query.edns >= 0 else UDP_LIMIT)
            q = response.question[0] if response.question else None
            try:
                if q is not None and self.zone.truncates(q.name):
                    raise dns.exception.TooBig
                data = response.to_wire(max_size=limit)
            except dns.exception.TooBig:
                # RFC 2181 §9: set TC and send what fits; the client asks again over TCP.
                response.answer.clear()
                response.flags |= dns.flags.TC
                data = response.to_wire()
            await sock.sendto(data, peer)

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while len(buffer) < 2 or len(buffer) < 2 + struct.unpack("!H", buffer[:2])[0]:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                (length,) = struct.unpack("!H", buffer[:2])
                wire, buffer = buffer[2 : 2 + length], buffer[2 + length :]
                answered = self._respond(wire, Transport.TCP)
                if answered is None:
                    continue  # SILENT: keep the connection open, say nothing
                data = answered[1].to_wire()
                await stream.send_all(struct.pack("!H", len(data)) + data)
        except trio.BrokenResourceError:
            return
        finally:
            await trio.aclose_forcefully(stream)


async def _bind_pair(host: str, port: int) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """A UDP and a TCP socket bound to the same ``host:port`` (``0``: a free one)."""
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    for _ in range(50):
        udp = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
        try:
            await udp.bind((host, port))
            tcp = trio.socket.socket(family, trio.socket.SOCK_STREAM)
            try:
                tcp.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
                await tcp.bind(udp.getsockname()[:2])
                tcp.listen(16)
            except OSError as exc:
                tcp.close()
                if port != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                udp.close()  # that port's TCP side is taken: try another
                continue
            return udp, tcp
        except BaseException:
            udp.close()
            raise
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")
