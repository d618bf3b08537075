"""Hostile clients over real loopback sockets: each attack is answered or cut off, and
a well-behaved client connected at the same time is still served.

The charter: "Hostile clients are normal. Smuggling attempts, pipelined garbage,
10 MB lines, slow drips, floods of connections: the server answers or cuts them
off within its limits and keeps serving everyone else." Every test here attacks a
running in-process server and asserts both halves of that sentence, plus what the
attack must not leave behind: ERROR log records (client misbehaviour is not our
error), spool files, sessions.

Memory is measured in-process with :mod:`tracemalloc` (see ``hostile_clients``).
Every loop is bounded in count, and every wait in time.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import smtplib
import socket
import threading
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from hostile_clients import (
    MB,
    MEMORY_BOUND,
    WAIT,
    b64_plain,
    bystander,
    connect_from,
    errors,
    half_close,
    into_data,
    read_until_closed,
    reset_on_close,
    send_until_cut_off,
    server_memory,
    smtplib_sends,
    start,
    wait_idle,
)

from mailio_trio import Config, Server
from mailio_trio.passwords import hash_password
from mailio_trio.plugins.auth import AuthConfig
from mailio_trio.protocol.catalogue import LINE_TOO_LONG
from mailio_trio.testing import RawConnection

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from pathlib import Path


# -- long lines and garbage ----------------------------------------------------


async def test_10mb_command_line_is_refused_in_bounded_memory(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool")
    half = b"MAIL FROM:<" + b"a" * (5 * MB)
    rest = b"a" * (5 * MB) + b">\r\n"
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        with server_memory() as peak:
            await attacker.send(half)
            await good("during a 10 MB command line")
            await attacker.send(rest)
            reply = await attacker.read_reply()
            grown = peak()
        assert reply == LINE_TOO_LONG
        assert grown < MEMORY_BOUND, grown
        # Refused and forgotten: the connection goes on.
        assert (await attacker.command("NOOP")).code == 250
    assert errors(caplog) == []


async def test_10mb_data_line_is_refused_in_bounded_memory(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    running = await start(nursery, spool)
    first = b"Subject: long\r\n\r\n" + b"x" * (5 * MB)
    rest = b"x" * (5 * MB) + b"\r\n.\r\n"
    async with bystander(running) as good, running.open_raw() as attacker:
        await into_data(attacker)
        with server_memory() as peak:
            await attacker.send(first)
            await good("during a 10 MB DATA line")
            await attacker.send(rest)
            reply = await attacker.read_reply()
            grown = peak()
        # RFC 5321 §4.5.3.1.6: 1000 octets per line; the whole message is refused.
        assert (reply.code, reply.enhanced) == (550, "5.6.0")
        assert grown < MEMORY_BOUND, grown
        assert (await attacker.command("NOOP")).code == 250
    assert running.find(subject="long") == []
    await wait_idle(running)
    assert list(spool.iterdir()) == []
    assert errors(caplog) == []


async def test_megabytes_of_pipelined_garbage_commands_end_with_421(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool", unrecognized_commands=5)
    chunk = b"XYZZY plugh\r\n" * 5000  # 65 kB a send, up to 4 MB in all
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        with server_memory() as peak, trio.fail_after(WAIT):
            async with trio.open_nursery() as attack:
                attack.start_soon(send_until_cut_off, attacker, chunk, 64)
                replies = await read_until_closed(attacker)
            grown = peak()
        await good("after pipelined garbage")
    assert replies == [(500, "5.5.1")] * 5 + [(421, "4.7.0")]
    assert grown < MEMORY_BOUND, grown
    assert errors(caplog) == []


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"\x00" * 300 + b"\r\n", id="nul-lines"),
        pytest.param(b"\xff\xfe\xfd garbage\r\n", id="invalid-utf8"),
        pytest.param(b"NOOP \x1b[31m\r\n", id="control-chars"),
    ],
)
async def test_binary_line_flood_counts_toward_the_unrecognized_limit(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture, line: bytes
) -> None:
    """Lines that are not commands at all count as unrecognized ones (a port scan, TLS
    to the plain port); answered forever they would keep a slot and our CPU busy."""
    running = await start(nursery, tmp_path / "spool", unrecognized_commands=3)
    flood = line * (64 * 1024 // len(line))
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as attack:
                attack.start_soon(send_until_cut_off, attacker, flood, 32)
                replies = await read_until_closed(attacker)
        await good("after a binary flood")
    assert len(replies) == 4
    assert all(code == 501 for code, _ in replies[:3]), replies
    assert replies[3] == (421, "4.7.0")
    assert errors(caplog) == []


async def test_nul_flood_without_line_end_is_one_overlong_line(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool")
    rng = random.Random(9)
    noise = bytes(4 * MB) + rng.randbytes(MB).replace(b"\n", b"\x00")
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        with server_memory() as peak:
            await attacker.send(noise)
            await good("during a NUL flood")
            reply = await attacker.command(b"")
            grown = peak()
        assert reply == LINE_TOO_LONG
        assert grown < MEMORY_BOUND, grown
    assert errors(caplog) == []


async def test_smuggled_end_of_data_does_not_start_a_second_message(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SMTP smuggling (CVE-2023-51766 and friends): only CRLF.CRLF ends DATA here."""
    running = await start(nursery, tmp_path / "spool")
    smuggled = b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    body = b"Subject: carrier\r\n\r\nhi\r\n"
    for fake_end in (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r"):
        body += fake_end + smuggled + b"Subject: smuggled\r\n\r\nx\r\n"
    async with bystander(running) as good, running.open_raw() as attacker:
        await into_data(attacker)
        assert (await attacker.command(body + b".")).code == 250
        assert (await attacker.command("NOOP")).code == 250
        await good("next to a smuggler")
    [carrier] = running.find(subject="carrier")
    assert carrier.recipients == ["b@example.com"]
    assert running.find(recipient="victim@example.com") == []
    assert errors(caplog) == []


# -- slow drips and clients that stop reading ----------------------------------


async def test_slow_drip_during_a_command_is_cut_by_the_idle_timer(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The idle timer counts from the last complete command, not the last byte."""
    running = await start(nursery, tmp_path / "spool", idle_timeout=1.0)
    async with running.open_raw() as attacker:
        await attacker.read_reply()
        dripped = 0
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as drip:

                async def one_byte_at_a_time() -> None:
                    nonlocal dripped
                    for octet in b"MAIL FROM:<slow@example.org" * 100:
                        try:
                            await attacker.send(bytes([octet]))
                        except trio.BrokenResourceError:
                            return
                        dripped += 1
                        await trio.sleep(0.1)

                drip.start_soon(one_byte_at_a_time)
                # A polite client never idles that long between its commands.
                drip.start_soon(smtplib_sends, running, "during a slow drip")
                replies = await read_until_closed(attacker)
        assert running.find(subject="during a slow drip")
    assert replies == [(421, "4.4.2")]
    assert dripped < 100  # cut off long before the drip would have ended
    assert errors(caplog) == []


async def test_slow_drip_during_data_is_cut_by_the_data_timeout(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    running = await start(nursery, spool, data_timeout=1.0)
    async with bystander(running) as good, running.open_raw() as attacker:
        await into_data(attacker)
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as drip:

                async def one_line_at_a_time() -> None:
                    for _ in range(1000):
                        try:
                            await attacker.send(b"Subject: drip\r\n")
                        except trio.BrokenResourceError:
                            return
                        await trio.sleep(0.05)

                drip.start_soon(one_line_at_a_time)
                replies = await read_until_closed(attacker)
                drip.cancel_scope.cancel()
        await good("next to a DATA drip")
    assert replies == [(421, "4.4.2")]
    assert running.find(subject="drip") == []
    await wait_idle(running)
    assert list(spool.iterdir()) == []
    assert errors(caplog) == []


async def test_client_that_never_reads_replies_is_freed_by_the_flush_timeout(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailio_trio.session")
    running = await start(nursery, tmp_path / "spool", idle_timeout=1.0)
    # EHLO's reply is ~20 times its command: the socket buffers fill fast.
    chunk = b"EHLO flood.test\r\n" * 4000
    async with connect_from("127.0.0.2", running, receive_buffer=4096) as attacker:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as both:
                both.start_soon(smtplib_sends, running, "next to a client that never reads")
                sent = await send_until_cut_off(attacker, chunk, 10_000)
        assert sent < 10_000  # it was cut off, not served to the end
        await wait_idle(running)
    assert "client stopped reading replies" in caplog.text
    assert errors(caplog) == []


async def test_reset_while_a_reply_is_written_is_not_our_error(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a client resetting the connection while we wrote a reply used to be
    logged as "session failed" with a traceback at ERROR."""
    running = await start(nursery, tmp_path / "spool")
    running.delay_next("mail", 0.5)  # the reply is written after the reset arrives
    async with bystander(running) as good:
        async with running.open_raw() as attacker:
            reset_on_close(attacker)
            await attacker.read_reply()
            await attacker.command("EHLO bad.test")
            await attacker.send(b"MAIL FROM:<a@example.org>\r\n")
        await wait_idle(running, sessions=1)
        await good("next to a reset")
    assert errors(caplog) == []


# -- half-closed and vanishing clients -----------------------------------------


async def test_half_close_mid_command_stores_nothing(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool")
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        # Complete commands before the half-close are still answered (RFC 2920).
        await attacker.send(b"EHLO bad.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@e")
        await half_close(attacker)
        with trio.fail_after(WAIT):
            replies = await read_until_closed(attacker)
        await good("next to a half-close")
    assert [code for code, _ in replies] == [250, 250]
    assert len(running.messages) == 1
    assert errors(caplog) == []


@pytest.mark.parametrize("how", ["half-close", "reset", "close"])
async def test_vanishing_mid_data_stores_nothing_and_leaves_no_spool_file(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    spool = tmp_path / "spool"
    running = await start(nursery, spool)
    async with bystander(running) as good:
        async with running.open_raw() as attacker:
            await into_data(attacker)
            await attacker.send(b"Subject: cut\r\n\r\n" + b"body line\r\n" * 10_000)
            with trio.fail_after(WAIT):
                # The body is being spooled (a file appears: nothing to wait on).
                while not list(spool.iterdir()):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            if how == "half-close":
                await half_close(attacker)
                with trio.fail_after(WAIT):
                    assert await read_until_closed(attacker) == []
            elif how == "reset":
                reset_on_close(attacker)
        await wait_idle(running, sessions=1)
        assert list(spool.iterdir()) == []
        await good(f"next to a {how} mid-DATA")
    assert running.find(subject="cut") == []
    assert errors(caplog) == []


# -- TLS garbage ----------------------------------------------------------------


async def test_garbage_instead_of_a_tls_handshake_on_the_smtps_port(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    running = await start(nursery, tmp_path / "spool", tls_context=server_tls_context)
    [(host, port)] = await nursery.start(running.server.serve_tls, "127.0.0.1", 0)
    noise = [
        random.Random(1).randbytes(64 * 1024),  # not TLS at all
        b"EHLO plain.test\r\n",  # SMTP spoken to the TLS port
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(1000),  # a ClientHello gone bad
    ]

    def smtps_client() -> None:
        with smtplib.SMTP_SSL(host, port, context=client_tls_context) as client:
            assert client.ehlo("good.test")[0] == 250
            trio.from_thread.run(attack)  # connected and secure while the garbage flies
            message = b"Subject: over SMTPS\r\n\r\nHello.\r\n"
            client.sendmail("sender@example.org", ["good@example.com"], message)

    async def attack() -> None:
        for garbage in noise:
            async with connect_from("127.0.0.2", running, port=port) as attacker:
                with trio.fail_after(WAIT):
                    await send_until_cut_off(attacker, garbage, 1)
                    assert await read_until_closed(attacker) == []  # cut off, no plaintext

    await trio.to_thread.run_sync(smtps_client)
    [captured] = running.find(subject="over SMTPS")
    assert captured.secure
    await wait_idle(running)
    assert errors(caplog) == []


@pytest.mark.parametrize("when", ["instead-of-handshake", "after-handshake"])
async def test_garbage_after_starttls(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    when: str,
) -> None:
    running = await start(nursery, tmp_path / "spool", tls_context=server_tls_context)
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        await attacker.command("EHLO bad.test")
        assert (await attacker.command("STARTTLS")).code == 220
        raw = attacker.stream
        assert isinstance(raw, trio.SocketStream)
        if when == "after-handshake":
            await attacker.start_tls(client_tls_context, "mx.test")
            assert (await attacker.command("EHLO bad.test")).code == 250
        # A forged application-data record: the server cannot decrypt it.
        with trio.fail_after(WAIT):
            await send_until_cut_off(
                RawConnection(raw), b"\x17\x03\x03\x01\x00" + bytes(256) + b"QUIT\r\n", 1
            )
            while await raw.receive_some(65536):
                pass
        await good(f"next to TLS garbage {when}")
    await wait_idle(running)
    assert errors(caplog) == []


# -- AUTH brute force, early talkers ------------------------------------------


async def test_auth_brute_force_is_cut_off_with_421(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    users = {"alice": hash_password("the right one", log_n=4)}
    auth = AuthConfig(users=users, allow_insecure=True)
    running = await start(nursery, tmp_path / "spool", auth=auth, auth_failures=3)
    guesses = [f"AUTH PLAIN {b64_plain('alice', f'guess{i}')}\r\n".encode() for i in range(100)]
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        await attacker.command("EHLO bad.test")
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as attack:
                attack.start_soon(send_until_cut_off, attacker, b"".join(guesses), 1)
                replies = await read_until_closed(attacker)
        await good("next to a password guesser")
    assert replies == [(535, "5.7.8")] * 3 + [(421, "4.7.0")]
    assert errors(caplog) == []


async def test_early_talker_is_refused_when_pregreet_is_on(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool", plugins={"connect/pregreet": {"delay": 0.5}})
    async with connect_from("127.0.0.2", running) as attacker:
        await attacker.send(b"EHLO eager.test\r\nMAIL FROM:<spam@example.org>\r\n")
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as both:
                both.start_soon(smtplib_sends, running, "next to an early talker")
                replies = await read_until_closed(attacker)
    assert replies == [(554, "5.5.1")]
    assert errors(caplog) == []


# -- floods ----------------------------------------------------------------------


async def test_connection_flood_above_max_connections(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool", max_connections=10)
    async with bystander(running) as good, trio.open_nursery() as flood:
        holding = trio.Semaphore(0)
        done = trio.Event()
        refused: list[tuple[int, str | None]] = []

        async def hold_a_slot(source: str) -> None:
            async with connect_from(source, running) as conn:
                assert (await conn.read_reply()).code == 220
                holding.release()
                await done.wait()

        for i in range(9):  # the bystander holds the tenth
            flood.start_soon(hold_a_slot, f"127.0.0.{10 + i}")
        with trio.fail_after(WAIT):
            for _ in range(9):
                await holding.acquire()
            for i in range(30):
                async with connect_from(f"127.0.1.{10 + i}", running) as extra:
                    refused += await read_until_closed(extra)
        await good("during a connection flood")
        done.set()
    assert refused == [(421, "4.7.0")] * 30
    assert running.server.statistics().refused_over_limit == 30
    await wait_idle(running)
    await smtplib_sends(running, "after the flood")  # every slot came back
    assert errors(caplog) == []


async def test_connection_flood_above_connections_per_ip_spares_other_addresses(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool", connections_per_ip=3)
    async with trio.open_nursery() as flood:
        holding = trio.Semaphore(0)
        done = trio.Event()

        async def hold_a_slot() -> None:
            async with connect_from("127.0.0.2", running) as conn:
                assert (await conn.read_reply()).code == 220
                holding.release()
                await done.wait()

        for _ in range(3):
            flood.start_soon(hold_a_slot)
        with trio.fail_after(WAIT):
            for _ in range(3):
                await holding.acquire()
            refused = []
            for _ in range(20):
                async with connect_from("127.0.0.2", running) as extra:
                    refused += await read_until_closed(extra)
        await smtplib_sends(running, "from another address", source="127.0.0.3")
        done.set()
    assert refused == [(421, "4.7.0")] * 20
    await wait_idle(running)
    await smtplib_sends(running, "from the flooder, later", source="127.0.0.2")
    assert errors(caplog) == []


async def test_rcpt_flood_gets_452_past_max_recipients(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start(nursery, tmp_path / "spool", max_recipients=5)
    flood = b"".join(f"RCPT TO:<r{i}@example.com>\r\n".encode() for i in range(5000))
    async with bystander(running) as good, running.open_raw() as attacker:
        await attacker.read_reply()
        await attacker.command("EHLO bulk.test")
        await attacker.command("MAIL FROM:<bulk@example.org>")
        with trio.fail_after(WAIT), server_memory() as peak:
            async with trio.open_nursery() as attack:
                attack.start_soon(attacker.send, flood)
                # Counted, not kept: the test's own memory is traced too.
                seen: collections.Counter[tuple[int, str | None]] = collections.Counter()
                for _ in range(5000):
                    reply = await attacker.read_reply()
                    seen[reply.code, reply.enhanced] += 1
            grown = peak()
        assert seen == {(250, "2.1.5"): 5, (452, "4.5.3"): 4995}
        assert grown < MEMORY_BOUND, grown
        assert (await attacker.command("DATA")).code == 354
        assert (await attacker.command(b"Subject: bulk\r\n\r\nx\r\n.")).code == 250
        await good("next to a recipient flood")
    [bulk] = running.find(subject="bulk")
    assert bulk.recipients == [f"r{i}@example.com" for i in range(5)]
    assert errors(caplog) == []


async def test_a_client_that_never_pauses_does_not_outlive_cancellation() -> None:
    """Regression: after each reply the fast path yielded without a cancellation point,
    so a client whose next commands were always already waiting kept its session
    through the server's cancellation (an embedding application stopping it, the
    shutdown grace running out): the session never reached a cancellable wait.

    The client runs in two threads of its own, one writing NOOPs without pause and
    one reading the replies as fast as they come, so the server never waits on it.
    """
    server = Server(Config(hostname="mx.test"))
    scope = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        with scope:
            await server.serve("127.0.0.1", 0, task_status=task_status)

    async with trio.open_nursery() as nursery:
        [(host, port)] = await nursery.start(serve)
        sock = socket.create_connection((host, port))
        try:
            replied = await busy_client_until_closed(sock, after_start=scope.cancel)
        finally:
            sock.close()
    assert replied > 0  # it was served before the cancellation ended it


async def busy_client_until_closed(sock: socket.socket, after_start: Callable[[], None]) -> int:
    """Write NOOPs and read replies flat out; ``after_start`` once it runs. Returns octets read."""
    ended = threading.Event()

    def write() -> None:
        batch = b"NOOP\r\n" * 10_000
        with contextlib.suppress(OSError):
            while not ended.is_set():
                sock.sendall(batch)

    def read() -> int:
        total = 0
        with contextlib.suppress(OSError):
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
        ended.set()
        return total

    result: list[int] = []

    async def reader() -> None:
        result.append(await trio.to_thread.run_sync(read, abandon_on_cancel=True))

    try:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as client:
                client.start_soon(partial(trio.to_thread.run_sync, write, abandon_on_cancel=True))
                client.start_soon(reader)
                await trio.sleep(0.3)  # in full swing
                after_start()
    finally:
        ended.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # frees both threads if the server never closed
    return result[0]
