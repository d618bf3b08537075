"""A minimal HTTP/1.1 responder on Trio: GET and HEAD, one request per connection.

Enough for a Prometheus scraper and a load balancer's health check, and no
more: the request line and headers must arrive within ``patience`` seconds and fit in
:data:`MAX_REQUEST`; the body of any request is never read; every response
closes the connection (``Connection: close``), so there is no keep-alive
state to get wrong. At most :data:`MAX_CLIENTS` requests are served at once;
one more is closed at once rather than queued behind slow ones.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["MAX_CLIENTS", "MAX_REQUEST", "serve_http"]

logger = logging.getLogger("mailio_trio.metrics")

MAX_REQUEST = 8192
"""Octets of request line plus headers (a scraper sends a few hundred)."""
MAX_CLIENTS = 32

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _response(status: int, content_type: str, body: bytes, *, head: bool = False) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (b"" if head else body)


def _plain(status: int) -> bytes:
    return _response(status, "text/plain; charset=utf-8", f"{_REASONS[status]}\n".encode())


async def _read_head(stream: trio.abc.Stream) -> bytes | int:
    """The request head up to the blank line, or the status to refuse it with."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_REQUEST:
            return 431
        chunk = await stream.receive_some(MAX_REQUEST + 1 - len(buffer) or 1)
        if not chunk:
            return 400
        buffer += chunk
    head = bytes(buffer).partition(b"\r\n\r\n")[0]
    return head if len(head) <= MAX_REQUEST else 431


async def _one(
    stream: trio.abc.Stream,
    respond: Callable[[str], Awaitable[tuple[int, str, bytes]]],
    patience: float,
) -> None:
    head: bytes | int = 408
    with trio.move_on_after(patience):
        head = await _read_head(stream)
    if isinstance(head, int):
        await stream.send_all(_plain(head))
        return
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        await stream.send_all(_plain(400))
        return
    method, target = parts[0], parts[1].decode("ascii", "replace")
    if method not in (b"GET", b"HEAD"):
        await stream.send_all(_plain(405))
        return
    try:
        status, content_type, body = await respond(target.partition("?")[0])
    except Exception:
        logger.exception("metrics request for %s failed", target[:100])
        status, content_type, body = 500, "text/plain; charset=utf-8", b"Internal Server Error\n"
    with trio.move_on_after(patience):
        await stream.send_all(_response(status, content_type, body, head=method == b"HEAD"))


async def _linger(stream: trio.SocketStream, patience: float) -> None:
    """Half-close, then discard what the client still sends (a lingering close).

    Closing with unread input makes the kernel send a reset, which can destroy
    our response before the client reads it (a refused over-long request).
    """
    await stream.send_eof()
    discarded = 0
    with trio.move_on_after(patience):
        while discarded < 4 * MAX_REQUEST and (chunk := await stream.receive_some(MAX_REQUEST)):
            discarded += len(chunk)


async def serve_http(
    listeners: Sequence[trio.SocketListener],
    respond: Callable[[str], Awaitable[tuple[int, str, bytes]]],
    *,
    patience: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer requests on ``listeners`` until cancelled.

    ``await respond(path)`` gives ``(status, content_type, body)``; an exception
    it raises is logged and answered ``500``.
    """
    slots = trio.Semaphore(MAX_CLIENTS)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            await trio.aclose_forcefully(stream)
            return
        try:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await _one(stream, respond, patience)
                await _linger(stream, patience)
        except Exception:  # serve_listeners would let it stop the listener: log it instead
            logger.exception("metrics connection failed")
        finally:
            slots.release()
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, list(listeners))
        task_status.started()
