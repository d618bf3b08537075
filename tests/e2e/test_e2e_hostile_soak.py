"""A small soak: 200 short sessions, polite and hostile mixed, all at once on loopback.

Afterwards nothing may be left behind: no session (``Server.statistics``), no
spool file, no ERROR record; and every polite client's message has arrived.
Sessions come from 20 loopback addresses, at most 40 at a time, so the
connection limits (100 in all, 50 per address) never refuse a polite one.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import trio
from hostile_clients import (
    WAIT,
    connect_from,
    errors,
    half_close,
    into_data,
    read_until_closed,
    reset_on_close,
    send_message,
    send_until_cut_off,
    smtplib_sends,
    start,
    wait_idle,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    import pytest

    from mailio_trio.testing import RawConnection, RunningServer

SESSIONS = 200
AT_ONCE = 40


async def polite_raw(conn: RawConnection, subject: str) -> None:
    assert (await conn.read_reply()).code == 220
    assert (await conn.command("EHLO good.test")).code == 250
    assert await send_message(conn, subject) == 250
    assert (await conn.command("QUIT")).code == 221


async def polite_pipelined(conn: RawConnection, subject: str) -> None:
    """RFC 2920: the whole transaction's commands in one write, then the body."""
    assert (await conn.read_reply()).code == 220
    assert (await conn.command("EHLO good.test")).code == 250
    await conn.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<good@example.com>\r\nDATA\r\n")
    assert [(await conn.read_reply()).code for _ in range(3)] == [250, 250, 354]
    reply = await conn.command(f"Subject: {subject}\r\n\r\nHello.\r\n.\r\nQUIT".encode())
    assert reply.code == 250
    assert (await conn.read_reply()).code == 221


async def garbage(conn: RawConnection, subject: str) -> None:
    await conn.read_reply()
    await send_until_cut_off(conn, b"GET / HTTP/1.1\r\nHost: x\r\n" * 2000, 4)
    assert (await read_until_closed(conn))[-1] == (421, "4.7.0")


async def binary_noise(conn: RawConnection, subject: str) -> None:
    await conn.read_reply()
    await send_until_cut_off(conn, random.Random(subject).randbytes(256 * 1024), 1)


async def vanish_mid_data(conn: RawConnection, subject: str, *, reset: bool) -> None:
    await into_data(conn)
    await conn.send(b"Subject: never\r\n\r\n" + b"half a message\r\n" * 1000)
    if reset:
        reset_on_close(conn)
    else:
        await half_close(conn)
        await read_until_closed(conn)


async def reset_mid_command(conn: RawConnection, subject: str) -> None:
    await conn.read_reply()
    reset_on_close(conn)
    await conn.send(b"EHLO bad.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@exa")


async def overlong_line(conn: RawConnection, subject: str) -> None:
    await conn.read_reply()
    assert (await conn.command(b"EHLO " + b"x" * 200_000)).code == 500


async def silent(conn: RawConnection, subject: str) -> None:
    assert await read_until_closed(conn) == [(220, None), (421, "4.4.2")]


async def rcpt_flood(conn: RawConnection, subject: str) -> None:
    await conn.read_reply()
    await conn.command("EHLO bulk.test")
    await conn.command("MAIL FROM:<bulk@example.org>")
    await conn.send(b"".join(f"RCPT TO:<r{i}@example.com>\r\n".encode() for i in range(200)))
    codes = [(await conn.read_reply()).code for _ in range(200)]
    assert codes == [250] * 10 + [452] * 190
    assert (await conn.command("QUIT")).code == 221


async def test_soak_of_mixed_clients_leaves_nothing_behind(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    running = await start(
        nursery, spool, idle_timeout=2.0, unrecognized_commands=3, max_recipients=10
    )
    raw_kinds: list[Callable[[RawConnection, str], Awaitable[None]]] = [
        polite_raw,
        garbage,
        polite_pipelined,
        binary_noise,
        lambda conn, subject: vanish_mid_data(conn, subject, reset=True),
        reset_mid_command,
        lambda conn, subject: vanish_mid_data(conn, subject, reset=False),
        overlong_line,
        silent,
        rcpt_flood,
    ]
    kinds = len(raw_kinds) + 1  # the last kind is smtplib
    polite = {0, 2, len(raw_kinds)}
    limiter = trio.CapacityLimiter(AT_ONCE)

    async def one_session(i: int, running: RunningServer) -> None:
        kind, source, subject = i % kinds, f"127.0.2.{i % 20 + 1}", f"soak {i}"
        async with limiter:
            if kind == len(raw_kinds):
                await smtplib_sends(running, subject, source=source)
                return
            async with connect_from(source, running) as conn:
                await raw_kinds[kind](conn, subject)

    with trio.fail_after(WAIT * 2):
        async with trio.open_nursery() as clients:
            for i in range(SESSIONS):
                clients.start_soon(one_session, i, running)
        await wait_idle(running)

    expected = {f"soak {i}" for i in range(SESSIONS) if i % kinds in polite}
    assert {m.message["Subject"] for m in running.messages} == expected
    stats = running.server.statistics()
    assert (stats.active_sessions, stats.sessions_total, stats.refused_over_limit) == (
        0,
        SESSIONS,
        0,
    )
    assert list(spool.iterdir()) == []
    assert errors(caplog) == []
