"""The PROXY protocol at accept time: read a trusted balancer's header, once.

Behind a TCP load balancer every connection comes from the balancer; with
``[server] proxy_protocol`` it sends a header first (``protocol/proxy.py``)
naming the client, and that client is who the session serves: per-address
limits, reverse DNS, DNSBL, ``Received:`` and the logs all see it.

Only peers in ``proxy_trusted`` are asked for a header: anyone else could
name any address. The header has ``proxy_timeout`` seconds to arrive whole,
in the connection's own task, before the per-address admission (which
counts the carried address) and before the greeting. A refused header, a
late one or a closed connection ends the connection unanswered, with one
rate-limited line in the anti-abuse log.

What the balancer forwarded after the header is the client's own first bytes:
a plain session gets them in its line splitter (both socket paths read from
it first); an implicit-TLS one reads them through :class:`PrefixedStream`,
the start of its handshake.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.abuse import AbuseKind
from mailio_trio.protocol import Need
from mailio_trio.protocol.proxy import ProxyError, ProxyHeader, ProxyParser
from mailio_trio.server._context import ClientInfo

if TYPE_CHECKING:
    from mailio_trio.server._context import ServerContext

__all__ = ["PrefixedStream", "Proxied", "read_proxy_header", "refuse_untrusted"]

logger = logging.getLogger("mailio_trio.server")


@attrs.frozen
class Proxied:
    """A header read: whom it names, and the client's bytes that came after it."""

    header: ProxyHeader
    trailing: bytes

    def client_info(self, peer: tuple[str, int]) -> ClientInfo:
        """The client it names; for LOCAL and address-less headers, the balancer itself."""
        host, port = self.header.client or peer
        return ClientInfo(address=host, port=port, proxy=self.header, proxied_by=peer)


async def read_proxy_header(
    stream: trio.SocketStream, context: ServerContext, peer: tuple[str, int]
) -> Proxied | None:
    """Read one PROXY header within ``proxy_timeout``; ``None``: refused, and closed.

    Reads never go past a v2 header (``ProxyParser.bytes_wanted``) and hold at
    most a v1 line's 107 octets.
    """
    parser = ProxyParser()
    failure: str | None = None
    received = 0
    with trio.move_on_after(context.config.proxy_timeout):
        try:
            while (header := parser.header()) is Need.DATA:
                data = bytes(await stream.receive_some(parser.bytes_wanted))
                received += len(data)
                parser.feed(data)
        except ProxyError as exc:
            failure = f"refused: {exc}"
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            failure = f"lost: {exc}"
        else:
            return Proxied(header, parser.take_trailing())
    if failure is not None and not received:
        # Closed or reset before its first byte: a balancer's bare TCP health
        # check (HAProxy's "check" without "check-send-proxy") every few
        # seconds, not worth the anti-abuse log.
        logger.debug("connection from %s:%s closed before a PROXY header", *peer)
    else:
        context.abuse_log.log(
            AbuseKind.PROXY_HEADER,
            logger,
            logging.INFO,
            "PROXY header from %s:%s %s",
            peer[0],
            peer[1],
            failure or f"not complete after {context.config.proxy_timeout:g} s",
        )
    await trio.aclose_forcefully(stream)
    return None


async def refuse_untrusted(
    stream: trio.SocketStream, context: ServerContext, peer: tuple[str, int]
) -> None:
    """``proxy_untrusted = "refuse"``: close a connection from outside ``proxy_trusted``."""
    context.abuse_log.log(
        AbuseKind.PROXY_UNTRUSTED,
        logger,
        logging.INFO,
        "closed a connection from %s:%s: not in server.proxy_trusted",
        peer[0],
        peer[1],
    )
    await trio.aclose_forcefully(stream)


class PrefixedStream(trio.abc.Stream):
    """A stream that first gives back ``prefix`` (bytes already read), then its own.

    For implicit TLS after a v1 header: the read that found the header's end
    may have taken the start of the client's handshake with it.
    """

    def __init__(self, transport_stream: trio.SocketStream, prefix: bytes) -> None:
        self.transport_stream = transport_stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._prefix:
            return bytes(await self.transport_stream.receive_some(max_bytes))
        await trio.lowlevel.checkpoint()
        size = len(self._prefix) if max_bytes is None else max_bytes
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.transport_stream.aclose()
