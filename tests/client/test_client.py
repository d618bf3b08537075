"""The SMTP client against our server and against aiosmtpd, over loopback sockets."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import pytest
import trio
import trustme
from smtp_peers import PeerHandler, run_aiosmtpd

from mailio_trio import Config, Limits, Server
from mailio_trio.chain import Handler, Request, Response
from mailio_trio.client import (
    SMTPConnectionLost,
    SMTPError,
    SMTPReplyError,
    SMTPTimeout,
    TLSMode,
    open_smtp_client,
    send,
)
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.testing import RunningServer

BODY = b"Subject: hi\r\nFrom: a@example.org\r\n\r\n.leading dot\r\nline\r\n..two\r\n"


async def test_send_delivers_body_byte_identical(mailio_server: RunningServer) -> None:
    result = await send(
        mailio_server.host, mailio_server.port, "a@example.org", ["b@example.com"], BODY
    )
    assert result.accepted == ["b@example.com"]
    assert result.data_reply is not None
    assert result.data_reply.code == 250
    [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.raw.endswith(b"\r\n" + BODY)
    assert str(captured.envelope.sender) == "a@example.org"
    assert captured.helo == "localhost"


async def test_body_streamed_from_file_with_bare_lf_normalised(
    mailio_server: RunningServer, tmp_path: Path
) -> None:
    path = tmp_path / "m.eml"
    big = b"Subject: big\n\n" + b"".join(b".%d line\n" % i for i in range(20000))
    path.write_bytes(big)
    await send(mailio_server.host, mailio_server.port, "a@example.org", ["b@example.com"], path)
    [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.raw.endswith(big.replace(b"\n", b"\r\n"))


async def test_refused_recipient_does_not_fail_the_others(nursery: trio.Nursery) -> None:
    server = Server(Config(hostname="mx.test", domains=["example.com"]))

    async def refuse_bob(req: Request, res: Response) -> None:
        assert req.to is not None
        if req.to.local_part == "bob":
            res.reject(550, "5.1.1 No such user")
        else:
            res.accept()

    server.add_handler(Handler(command="rcpt", name="users", func=refuse_bob))
    running = await start_capturing_server(nursery, server=server)
    async with open_smtp_client(running.host, running.port) as smtp:
        assert smtp.supports("PIPELINING")
        result = await smtp.send_message(
            "a@example.org", ["amy@example.com", "bob@example.com", "cy@example.com"], BODY
        )
    assert result.accepted == ["amy@example.com", "cy@example.com"]
    refusal = result.refused["bob@example.com"]
    assert (refusal.code, refusal.enhanced, refusal.text) == (550, "5.1.1", "No such user")
    [captured] = await running.outbox.wait_for(1)
    assert [str(r) for r in captured.envelope.recipients] == ["amy@example.com", "cy@example.com"]


async def test_all_recipients_refused_sends_no_data(nursery: trio.Nursery) -> None:
    server = Server(Config(hostname="mx.test", domains=["example.com"]))

    async def refuse(req: Request, res: Response) -> None:
        res.reject(550, "5.1.1 No such user")

    server.add_handler(Handler(command="rcpt", name="users", func=refuse))
    running = await start_capturing_server(nursery, server=server)
    result = await send(running.host, running.port, "a@example.org", ["x@example.com"], BODY)
    assert result.data_reply is None
    assert result.refused["x@example.com"].code == 550
    assert len(running.outbox) == 0


async def test_size_over_server_limit_fails_before_sending(nursery: trio.Nursery) -> None:
    config = Config(hostname="mx.test", domains=["example.com"], limits=Limits(message_size=100))
    running = await start_capturing_server(nursery, config)
    with pytest.raises(SMTPError) as info:
        await send(running.host, running.port, "a@example.org", ["b@example.com"], b"x" * 200)
    assert (info.value.code, info.value.enhanced, info.value.permanent) == (552, "5.3.4", True)
    assert "limit of 100" in info.value.text


async def test_smtputf8_needed_but_not_offered_is_permanent(nursery: trio.Nursery) -> None:
    config = Config(hostname="mx.test", domains=["example.com"], smtputf8=False)
    running = await start_capturing_server(nursery, config)
    with pytest.raises(SMTPError) as info:
        await send(running.host, running.port, "a@example.org", ["jörg@example.com"], BODY)
    assert (info.value.code, info.value.enhanced) == (553, "5.6.7")
    assert info.value.permanent
    assert "SMTPUTF8" in info.value.text


async def test_smtputf8_and_8bitmime_negotiated(mailio_server: RunningServer) -> None:
    body = "Subject: grüße\r\n\r\nhällo\r\n".encode()
    await send(mailio_server.host, mailio_server.port, "jörg@example.org", ["b@example.com"], body)
    [captured] = await mailio_server.outbox.wait_for(1)
    assert captured.envelope.smtputf8
    assert captured.envelope.body == "8BITMIME"
    assert captured.raw.endswith(body)


async def test_helo_fallback_when_ehlo_unknown(nursery: trio.Nursery) -> None:
    config = Config(hostname="mx.test", domains=["example.com"], plugins={"ehlo/core": False})
    running = await start_capturing_server(nursery, config)
    async with open_smtp_client(running.host, running.port, ehlo_name="c.test") as smtp:
        assert not smtp.esmtp
        await smtp.send_message("a@example.org", ["b@example.com"], BODY)
    [captured] = await running.outbox.wait_for(1)
    assert captured.helo == "c.test"


async def test_mail_refused_raises_with_reply(nursery: trio.Nursery) -> None:
    server = Server(Config(hostname="mx.test", domains=["example.com"]))

    async def refuse(req: Request, res: Response) -> None:
        res.reject(451, "4.7.1 Try later")

    server.add_handler(Handler(command="mail", name="grey", func=refuse))
    running = await start_capturing_server(nursery, server=server)
    with pytest.raises(SMTPReplyError) as info:
        await send(running.host, running.port, "a@example.org", ["b@example.com"], BODY)
    assert (info.value.code, info.value.enhanced, info.value.command) == (451, "4.7.1", "MAIL")
    assert not info.value.permanent


async def test_nothing_listening_is_connection_lost() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(SMTPConnectionLost) as info:
        await send("127.0.0.1", port, "a@example.org", ["b@example.com"], BODY)
    assert not info.value.permanent


async def test_silent_server_times_out(nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    accepted: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    nursery.start_soon(trio.serve_listeners, hold, listeners)
    with pytest.raises(SMTPTimeout):
        await send("127.0.0.1", port, "a@x.org", ["b@x.org"], BODY, connect_timeout=0.2)
    for stream in accepted:
        await stream.aclose()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_starttls_and_auth_against_aiosmtpd(ca: trustme.CA) -> None:
    async with (
        run_aiosmtpd(tls_context=server_tls(ca), users={"u": "secret"}) as peer,
        open_smtp_client(
            "localhost",
            peer.port,
            connect_address=peer.host,
            ssl_context=client_tls(ca),
            username="u",
            password="secret",
        ) as smtp,
    ):
        assert smtp.secure
        result = await smtp.send_message("a@example.org", ["b@example.net"], BODY)
    assert result.accepted == ["b@example.net"]
    [received] = peer.handler.received
    assert received.content == BODY
    assert (received.sender, received.recipients) == ("a@example.org", ["b@example.net"])


async def test_wrong_password_is_permanent(ca: trustme.CA) -> None:
    async with run_aiosmtpd(tls_context=server_tls(ca), users={"u": "secret"}) as peer:
        with pytest.raises(SMTPReplyError) as info:
            await send(
                "localhost",
                peer.port,
                "a@example.org",
                ["b@example.net"],
                BODY,
                connect_address=peer.host,
                ssl_context=client_tls(ca),
                username="u",
                password="wrong",
            )
    assert info.value.command == "AUTH"
    assert info.value.code == 535


async def test_certificate_not_trusted_fails_when_verifying(ca: trustme.CA) -> None:
    async with run_aiosmtpd(tls_context=server_tls(ca)) as peer:
        with pytest.raises(SMTPConnectionLost, match="TLS handshake"):
            await send(
                "localhost",
                peer.port,
                "a@example.org",
                ["b@example.net"],
                BODY,
                connect_address=peer.host,
            )
        # Opportunistic TLS without verification still encrypts (RFC 7435).
        async with open_smtp_client(
            "localhost", peer.port, connect_address=peer.host, verify_tls=False
        ) as smtp:
            assert smtp.secure
            await smtp.send_message("a@example.org", ["b@example.net"], BODY)
    assert len(peer.handler.received) == 1


async def test_require_tls_without_starttls_fails(mailio_server: RunningServer) -> None:
    with pytest.raises(SMTPError) as info:
        await send(
            mailio_server.host,
            mailio_server.port,
            "a@example.org",
            ["b@example.com"],
            BODY,
            tls=TLSMode.REQUIRE,
        )
    assert (info.value.code, info.value.enhanced) == (451, "4.7.10")
    assert len(mailio_server.outbox) == 0


async def test_auth_refused_in_clear_unless_allowed(mailio_server: RunningServer) -> None:
    with pytest.raises(SMTPError) as info:
        await send(
            mailio_server.host,
            mailio_server.port,
            "a@example.org",
            ["b@example.com"],
            BODY,
            username="u",
            password="p",
        )
    assert (info.value.code, info.value.enhanced) == (530, "5.7.11")


async def test_per_recipient_results_against_aiosmtpd() -> None:
    handler = PeerHandler(rcpt_reply=lambda a: "550 5.1.1 unknown" if a.startswith("x") else None)
    async with run_aiosmtpd(handler=handler) as peer:
        result = await send(
            peer.host, peer.port, "a@example.org", ["x@example.net", "y@example.net"], BODY
        )
    assert result.accepted == ["y@example.net"]
    assert result.refused["x@example.net"].enhanced == "5.1.1"
    assert handler.received[0].recipients == ["y@example.net"]
