"""The core protocol over real loopback sockets: every reply the core gives."""

from __future__ import annotations

import smtplib

import pytest
import trio

from mailio_trio import Config, Limits, Server
from mailio_trio.protocol.catalogue import (
    LINE_TOO_LONG,
    MESSAGE_TOO_BIG,
    SHUTTING_DOWN,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_UNRECOGNIZED,
)
from mailio_trio.testing import RunningServer, start_capturing_server

MESSAGE = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nHi there.\r\n"


async def start(nursery: trio.Nursery, **limits: object) -> RunningServer:
    config = Config(hostname="mx.test", domains=["example.com"], limits=Limits(**limits))  # type: ignore[arg-type]  # test-chosen limits
    return await start_capturing_server(nursery, config)


async def test_greeting_names_host_without_enhanced_code(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        greeting = await conn.read_reply()
    assert greeting.code == 220
    assert greeting.enhanced is None
    assert greeting.text.startswith("mx.test ")


async def test_ehlo_lists_enabled_extensions(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        reply = await conn.command("EHLO client.test")
    assert reply.code == 250
    lines = reply.text.split("\n")
    assert lines[0] == "mx.test Hello client.test"
    assert set(lines[1:]) == {
        "PIPELINING",
        f"SIZE {100 * 1024 * 1024}",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
        "ENHANCEDSTATUSCODES",
    }
    # No certificate, no credentials check: neither may be promised.
    assert not any(line.startswith(("STARTTLS", "AUTH")) for line in lines)


async def test_smtplib_sends_and_message_is_captured(mailio_server: RunningServer) -> None:
    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(mailio_server.host, mailio_server.port) as client:
            return client.sendmail("a@example.org", ["b@example.com", "c@example.com"], MESSAGE)

    refused = await trio.to_thread.run_sync(send)
    assert refused == {}
    [captured] = await mailio_server.outbox.wait_for(1)
    assert str(captured.envelope.sender) == "a@example.org"
    assert [str(r) for r in captured.envelope.recipients] == ["b@example.com", "c@example.com"]
    assert captured.message["Subject"] == "hello"
    assert captured.raw.startswith(b"Received: from ")
    assert captured.raw.endswith(b"\r\nHi there.\r\n")
    received = captured.message["Received"]
    assert "by mx.test" in received
    assert "with ESMTP " in received


async def test_helo_client_gets_smtp_in_received(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        assert (await conn.command("HELO client.test")).code == 250
        assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
        assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
        assert (await conn.command("DATA")).code == 354
        reply = await conn.command(b"Subject: x\r\n\r\nbody\r\n.")
    assert (reply.code, reply.enhanced) == (250, "2.0.0")
    [captured] = await mailio_server.outbox.wait_for(1)
    assert "with SMTP id" in captured.message["Received"]
    assert "for <b@example.com>" in captured.message["Received"]


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (["MAIL FROM:<a@example.org>"], (503, "5.5.1")),  # before EHLO
        (["EHLO c.test", "RCPT TO:<b@example.com>"], (503, "5.5.1")),
        (["EHLO c.test", "DATA"], (503, "5.5.1")),
        (["EHLO c.test", "MAIL FROM:<a@example.org>", "DATA"], (503, "5.5.1")),
        (["EHLO c.test", "MAIL FROM:<a@example.org>", "MAIL FROM:<a@example.org>"], (503, "5.5.1")),
        (["EHLO c.test", "MAIL FROM:a@@example.org"], (553, "5.1.7")),
        (["EHLO c.test", "MAIL TO:<a@example.org>"], (501, "5.5.4")),
        (["EHLO c.test", "MAIL FROM:<a@example.org> FROB=1"], (555, "5.5.4")),
        (["EHLO c.test", "MAIL FROM:<a@example.org> SIZE=999999999999"], (552, "5.3.4")),
        (["HELO c.test", "MAIL FROM:<a@example.org> BODY=8BITMIME"], (555, "5.5.4")),
        (["EHLO c.test", "MAIL FROM:<a@example.org>", "RCPT TO:<b@@x>"], (553, "5.1.3")),
        (["EHLO c.test", "MAIL FROM:<a@example.org>", "RCPT TO:<ü@example.com>"], (553, "5.6.7")),
        (["EHLO"], (501, "5.5.4")),
        (["EHLO bad<name>"], (501, "5.5.4")),
        (["EHLO c.test", "RSET now"], (501, "5.5.4")),
        (
            ["EHLO c.test", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.com>", "DATA x"],
            (501, "5.5.4"),
        ),
        (["NOOP anything"], (250, "2.0.0")),
        (["VRFY postmaster"], (252, "2.5.0")),
        (["VRFY"], (501, "5.5.4")),
        (["HELP"], (214, "2.0.0")),
        (["EXPN staff"], (502, "5.5.1")),
        (["STARTTLS"], (502, "5.5.1")),
        (["XYZZY"], (500, "5.5.1")),
        ([b"NOOP \x00"], (501, "5.5.2")),
        ([b"NOOP a\rb"], (501, "5.5.2")),
        ([b"NOOP \xff\xfe"], (501, "5.5.2")),
    ],
)
async def test_reply_codes(
    mailio_server: RunningServer, commands: list[str | bytes], expected: tuple[int, str]
) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        for command in commands[:-1]:
            assert (await conn.command(command)).code < 400, command
        reply = await conn.command(commands[-1])
    assert (reply.code, reply.enhanced) == expected


async def test_smtputf8_sender_and_recipient_accepted(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        assert (await conn.command("MAIL FROM:<jürgen@bücher.example> SMTPUTF8")).code == 250
        assert (await conn.command("RCPT TO:<ünïcode@example.com>")).code == 250
        assert (await conn.command("DATA")).code == 354
        assert (await conn.command(b"Subject: \xc3\xbc\r\n\r\nx\r\n.")).code == 250
    [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.envelope.smtputf8
    assert str(captured.envelope.recipients[0]) == "ünïcode@example.com"


async def test_quit_says_221_and_closes(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        reply = await conn.command("QUIT")
        assert (reply.code, reply.enhanced) == (221, "2.0.0")
        assert await conn.at_eof()


async def test_rset_clears_transaction(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<a@example.org>")
        assert (await conn.command("RSET")).code == 250
        assert (await conn.command("RCPT TO:<b@example.com>")).code == 503
        assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250


async def test_several_transactions_in_one_session(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        for n in range(3):
            assert (await conn.command(f"MAIL FROM:<s{n}@example.org>")).code == 250
            assert (await conn.command(f"RCPT TO:<r{n}@example.com>")).code == 250
            assert (await conn.command("DATA")).code == 354
            reply = await conn.command(f"Subject: {n}\r\n\r\nbody {n}\r\n.".encode())
            assert reply.code == 250
    captured = await mailio_server.outbox.wait_for(3)
    assert [m.message["Subject"] for m in captured] == ["0", "1", "2"]
    assert [str(m.envelope.sender) for m in captured] == [f"s{n}@example.org" for n in range(3)]
    ids = {m.message["Received"].split(" id ")[1].split()[0].rstrip(";") for m in captured}
    assert len(ids) == 3


async def test_duplicate_recipient_is_kept_once(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<a@example.org>")
        assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
        assert (await conn.command("RCPT TO:<b@EXAMPLE.com>")).code == 250
        await conn.command("DATA")
        await conn.command(b"x\r\n.")
    [captured] = await mailio_server.outbox.wait_for(1)
    assert len(captured.envelope.recipients) == 1


async def test_max_recipients_is_452(nursery: trio.Nursery) -> None:
    running = await start(nursery, max_recipients=2)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<a@example.org>")
        assert (await conn.command("RCPT TO:<b1@example.com>")).code == 250
        assert (await conn.command("RCPT TO:<b2@example.com>")).code == 250
        reply = await conn.command("RCPT TO:<b3@example.com>")
    assert (reply.code, reply.enhanced) == (452, "4.5.3")


async def test_pipelined_transaction_all_replies_in_order(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.send(
            b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
            b"RCPT TO:<bad@@x>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
        )
        codes = [(await conn.read_reply()).code for _ in range(5)]
        assert codes == [250, 250, 553, 250, 354]
        # The message and the next commands in one write, too.
        await conn.send(b"Subject: p\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n")
        codes = [(await conn.read_reply()).code for _ in range(3)]
        assert codes == [250, 250, 221]
    [captured] = await mailio_server.outbox.wait_for(1)
    assert [str(r) for r in captured.envelope.recipients] == ["b@example.com", "c@example.com"]


async def test_overlong_command_line_is_500_and_session_goes_on(
    mailio_server: RunningServer,
) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.send(b"NOOP " + b"x" * (10 * 1024 * 1024) + b"\r\n")
        reply = await conn.read_reply()
        assert reply == LINE_TOO_LONG
        assert (await conn.command("NOOP")).code == 250


async def test_oversize_message_is_552_after_reading_it(nursery: trio.Nursery) -> None:
    running = await start(nursery, message_size=1000)
    async with running.open_raw() as conn:
        await conn.read_reply()
        reply = await conn.command("EHLO c.test")
        assert "SIZE 1000" in reply.text.split("\n")
        await conn.command("MAIL FROM:<a@example.org>")
        await conn.command("RCPT TO:<b@example.com>")
        await conn.command("DATA")
        reply = await conn.command(b"Subject: big\r\n\r\n" + b"0123456789\r\n" * 200 + b".")
        assert reply == MESSAGE_TOO_BIG
        # The transaction is over, the session is not.
        assert (await conn.command("RCPT TO:<b@example.com>")).code == 503
        assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
    assert len(running.outbox) == 0


async def test_unrecognized_commands_close_after_limit(nursery: trio.Nursery) -> None:
    running = await start(nursery, unrecognized_commands=2)
    async with running.open_raw() as conn:
        await conn.read_reply()
        assert (await conn.command("GET / HTTP/1.1")).code == 500
        assert (await conn.command("Host: x")).code == 500
        reply = await conn.command("User-Agent: y")
        assert reply == TOO_MANY_UNRECOGNIZED
        assert await conn.at_eof()


async def test_connection_limit_refuses_with_421(nursery: trio.Nursery) -> None:
    running = await start(nursery, max_connections=2)
    async with running.open_raw() as a, running.open_raw() as b:
        assert (await a.read_reply()).code == 220
        assert (await b.read_reply()).code == 220
        async with running.open_raw() as c:
            reply = await c.read_reply()
            assert reply == TOO_MANY_CONNECTIONS
            assert await c.at_eof()
        # Those already in are served as before.
        assert (await a.command("NOOP")).code == 250


async def test_idle_timeout_closes_with_421(nursery: trio.Nursery) -> None:
    running = await start(nursery, idle_timeout=0.2)
    # Its own bound: an idle timer that never fires must fail this test, not hang it.
    with trio.fail_after(10):
        async with running.open_raw() as conn:
            await conn.read_reply()
            await conn.command("EHLO c.test")
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced) == (421, "4.4.2")
            assert await conn.at_eof()


async def test_graceful_shutdown_lets_data_finish(nursery: trio.Nursery) -> None:
    running = await start(nursery)
    async with running.open_raw() as busy, running.open_raw() as idle:
        await busy.read_reply()
        await idle.read_reply()
        await busy.command("EHLO c.test")
        await busy.command("MAIL FROM:<a@example.org>")
        await busy.command("RCPT TO:<b@example.com>")
        assert (await busy.command("DATA")).code == 354
        await busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        running.server.shutdown()
        reply = await idle.read_reply()
        assert reply == SHUTTING_DOWN
        assert await idle.at_eof()
        reply = await busy.command(b"second half\r\n.")
        assert reply.code == 250
        reply = await busy.command("MAIL FROM:<a@example.org>")
        assert reply == SHUTTING_DOWN
    await running.server.wait_stopped()
    [captured] = running.messages
    assert captured.message["Subject"] == "in flight"
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream(running.host, running.port)


async def test_embedded_server_runs_under_trio_run_with_smtplib() -> None:
    """The README's embedding example, end to end: a user handler decides per recipient."""
    server = Server(Config(hostname="mx.test", domains=["example.com"]))

    @server.handler("rcpt")
    async def only_example(req, res):  # type: ignore[no-untyped-def]  # README style
        if req.to.domain == "example.com":
            res.accept()
        else:
            res.reject(550, "5.7.1 We only accept mail for example.com")

    async with trio.open_nursery() as nursery:
        [(host, port), *_] = await nursery.start(server.serve, "127.0.0.1", 0)

        def send() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP(host, port) as client:
                return client.sendmail("a@example.org", ["x@example.com", "y@other.org"], MESSAGE)

        refused = await trio.to_thread.run_sync(send)
        await server.aclose()
    assert refused == {"y@other.org": (550, b"5.7.1 We only accept mail for example.com")}


async def test_shutdown_stops_every_serve_call_of_one_server(nursery: trio.Nursery) -> None:
    server = Server(Config(hostname="mx.test"))
    first: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    second: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.2", 0)
    await server.aclose()
    for host, port in (first[0], second[0]):
        with pytest.raises(OSError, match="connect"):
            await trio.open_tcp_stream(host, port)
