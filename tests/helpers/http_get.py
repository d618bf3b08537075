"""A one-shot HTTP/1.1 client for the metrics listener's tests."""

from __future__ import annotations

import trio


async def http_request(host: str, port: int, raw: bytes) -> tuple[int, bytes]:
    """Send ``raw`` as it is, read until the server closes; returns the status and body."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(raw)
        data = bytearray()
        while chunk := await stream.receive_some(65536):
            data += chunk
    finally:
        await trio.aclose_forcefully(stream)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def http_get(host: str, port: int, path: str) -> tuple[int, str]:
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
    status, body = await http_request(host, port, raw)
    return status, body.decode()
