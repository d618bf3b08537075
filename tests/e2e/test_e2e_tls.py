"""STARTTLS and implicit TLS over real loopback sockets, with trustme certificates."""

from __future__ import annotations

import logging
import shutil
import smtplib
import ssl
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from mailio_trio import Config, Limits, Server, Session
from mailio_trio.testing import RawConnection, RunningServer, start_capturing_server

if TYPE_CHECKING:
    import trustme

MESSAGE = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nHi there.\r\n"


async def start(
    nursery: trio.Nursery, tls_context: ssl.SSLContext | None, **limits: float
) -> RunningServer:
    config = Config(hostname="mx.test", domains=["example.com"], limits=Limits(**limits))  # type: ignore[arg-type]  # test-chosen limits
    return await start_capturing_server(nursery, server=Server(config, tls_context=tls_context))


async def start_tls(conn: RawConnection, client: ssl.SSLContext) -> None:
    """Greeting, EHLO, STARTTLS, handshake: a connection ready for its post-TLS EHLO."""
    await conn.read_reply()
    assert (await conn.command("EHLO client.test")).code == 250
    reply = await conn.command("STARTTLS")
    assert (reply.code, reply.enhanced) == (220, "2.0.0")
    await conn.start_tls(client, "mx.test")


def ehlo_keywords(text: str) -> list[str]:
    return text.split("\n")[1:]


async def test_starttls_not_offered_without_certificate(nursery: trio.Nursery) -> None:
    running = await start(nursery, None)
    async with running.open_raw() as conn:
        await conn.read_reply()
        ehlo = await conn.command("EHLO client.test")
        reply = await conn.command("STARTTLS")
    assert "STARTTLS" not in ehlo_keywords(ehlo.text)
    assert (reply.code, reply.enhanced) == (502, "5.5.1")


async def test_starttls_offered_with_certificate_and_not_after_tls(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await conn.read_reply()
        before = await conn.command("EHLO client.test")
        assert (await conn.command("STARTTLS")).code == 220
        await conn.start_tls(client_tls_context, "mx.test")
        after = await conn.command("EHLO client.test")
    assert "STARTTLS" in ehlo_keywords(before.text)
    assert after.code == 250
    assert "STARTTLS" not in ehlo_keywords(after.text)


async def test_smtplib_starttls_sends_and_received_records_tls(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)

    def send() -> None:
        with smtplib.SMTP(running.host, running.port) as client:
            client.starttls(context=client_tls_context)
            client.sendmail("a@example.org", ["b@example.com"], MESSAGE)

    await trio.to_thread.run_sync(send)
    [captured] = await running.outbox.wait_for(1)
    assert captured.secure
    received = captured.message["Received"]
    assert "with ESMTPS id" in received
    assert "(using TLSv1." in received
    assert " with cipher " in received


async def test_pipelined_command_after_starttls_is_never_answered(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CVE-2011-0411 / CVE-2024-34083: plaintext pipelined behind STARTTLS must not
    be executed as if it had come over TLS."""
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        await conn.send(b"STARTTLS\r\nNOOP\r\n")  # one write: one segment on loopback
        reply = await conn.read_reply()
        assert (reply.code, reply.enhanced) == (220, "2.0.0")
        await conn.start_tls(client_tls_context, "mx.test")
        with trio.move_on_after(0.5) as quiet:
            unexpected = await conn.read_reply()
            pytest.fail(f"server answered the injected NOOP: {unexpected}")
        assert quiet.cancelled_caught
        # The first reply over TLS is the one to the first command sent over TLS.
        first = await conn.command("EHLO client.test")
    assert first.code == 250
    assert first.text.startswith("mx.test Hello client.test")
    assert "discarded 6 octets pipelined after STARTTLS" in caplog.text


async def test_state_is_reset_after_tls(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await start_tls(conn, client_tls_context)
        # RFC 3207 §4.2: the EHLO before TLS is forgotten.
        reply = await conn.command("MAIL FROM:<a@example.org>")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")


async def test_starttls_twice_is_503(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await start_tls(conn, client_tls_context)
        await conn.command("EHLO client.test")
        reply = await conn.command("STARTTLS")
        still = await conn.command("NOOP")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")
    assert still.code == 250


async def test_starttls_inside_transaction_is_refused(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
        reply = await conn.command("STARTTLS")
        rcpt = await conn.command("RCPT TO:<b@example.com>")  # still plaintext, still in MAIL
    assert (reply.code, reply.enhanced) == (503, "5.5.1")
    assert rcpt.code == 250


async def test_starttls_with_argument_is_501(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await conn.read_reply()
        reply = await conn.command("STARTTLS now")
    assert (reply.code, reply.enhanced) == (501, "5.5.4")


async def test_failed_handshake_closes_only_that_connection(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as bystander, running.open_raw() as conn:
        await bystander.read_reply()
        await conn.read_reply()
        assert (await conn.command("STARTTLS")).code == 220
        await conn.send(b"GET / HTTP/1.0\r\n\r\n")  # not a TLS ClientHello
        assert await conn.at_eof(timeout=10)
        reply = await bystander.command("NOOP")
    assert reply.code == 250
    [record] = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert record.levelno == logging.INFO


async def test_session_tls_has_version_and_cipher(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    server = Server(Config(hostname="mx.test"), tls_context=server_tls_context)
    sessions: list[Session] = []
    server.on_session(sessions.append)
    running = await start_capturing_server(nursery, server=server)
    async with running.open_raw() as conn:
        await start_tls(conn, client_tls_context)
        assert (await conn.command("EHLO client.test")).code == 250
    [session] = sessions
    assert session.secure
    assert session.tls is not None
    assert session.tls.version in ("TLSv1.2", "TLSv1.3")
    assert session.tls.cipher
    assert session.tls.peer_certificate is None  # no client certificate was asked for


# -- implicit TLS (SMTPS, RFC 8314) --------------------------------------------


async def start_smtps(nursery: trio.Nursery, server: Server) -> tuple[str, int]:
    addresses: list[tuple[str, int]] = await nursery.start(server.serve_tls, "127.0.0.1", 0)
    return addresses[0]


async def test_smtps_listener_accepts_smtp_ssl(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    host, port = await start_smtps(nursery, running.server)

    def send() -> list[str]:
        with smtplib.SMTP_SSL(host, port, context=client_tls_context) as client:
            code, features = client.ehlo("client.test")
            assert code == 250
            client.sendmail("a@example.org", ["b@example.com"], MESSAGE)
            return features.decode().split("\n")

    features = await trio.to_thread.run_sync(send)
    assert "STARTTLS" not in features
    [captured] = await running.outbox.wait_for(1)
    assert captured.secure
    assert "with ESMTPS id" in captured.message["Received"]
    # The plain listener keeps working next to it.
    async with running.open_raw() as conn:
        assert (await conn.read_reply()).code == 220


async def test_smtps_client_that_never_handshakes_is_cut_off_and_costs_others_nothing(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    running = await start(nursery, server_tls_context, tls_handshake_timeout=1.0)
    host, port = await start_smtps(nursery, running.server)
    silent = RawConnection(await trio.open_tcp_stream(host, port))
    try:

        def other_client() -> int:
            with smtplib.SMTP_SSL(host, port, context=client_tls_context) as client:
                return client.noop()[0]

        assert await trio.to_thread.run_sync(other_client) == 250
        assert await silent.at_eof(timeout=30)
    finally:
        await silent.aclose()
    assert "TLS handshake with 127.0.0.1" in caplog.text
    assert "timed out" in caplog.text


async def test_reload_swaps_certificate_for_new_connections_only(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    import trustme

    running = await start(nursery, server_tls_context)
    host, port = await start_smtps(nursery, running.server)
    old = RawConnection(await trio.open_tcp_stream(host, port))
    try:
        await old.start_tls(client_tls_context, "mx.test")
        assert (await old.read_reply()).code == 220

        renewed_ca = trustme.CA()
        new_server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        renewed_ca.issue_cert("mx.test").configure_cert(new_server)
        running.server.reload_tls(new_server)

        new_client = ssl.create_default_context()
        renewed_ca.configure_trust(new_client)
        fresh = RawConnection(await trio.open_tcp_stream(host, port))
        try:
            await fresh.start_tls(new_client, "mx.test")
            assert (await fresh.read_reply()).code == 220
        finally:
            await fresh.aclose()
        # The connection made before the reload is still served.
        assert (await old.command("NOOP")).code == 250
    finally:
        await old.aclose()


# -- a real TLS client other than Python's -------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
async def test_openssl_s_client_starttls_completes(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    tls_ca: trustme.CA,
    tmp_path: trio.Path,
) -> None:
    running = await start(nursery, server_tls_context)
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    command = [
        "openssl",
        "s_client",
        "-starttls",
        "smtp",
        "-connect",
        f"{running.host}:{running.port}",
        "-CAfile",
        str(ca_file),
        "-verify_return_error",
        "-verify_hostname",
        "mx.test",
        "-crlf",
        "-quiet",  # no interactive Q/R commands, no certificate dump
    ]
    with trio.fail_after(60):
        done = await trio.run_process(
            command,
            stdin=b"EHLO client.test\nQUIT\n",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "250-mx.test Hello client.test" in out
    assert "221 2.0.0" in out


async def test_starttls_client_that_never_handshakes_is_cut_off(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context, tls_handshake_timeout=1.0)
    async with running.open_raw() as silent, running.open_raw() as other:
        await silent.read_reply()
        assert (await silent.command("STARTTLS")).code == 220
        assert await silent.at_eof(timeout=30)
        await other.read_reply()
        assert (await other.command("NOOP")).code == 250


async def test_shutdown_stops_plain_and_tls_listeners_together(
    server_tls_context: ssl.SSLContext,
) -> None:
    server = Server(Config(hostname="mx.test"), tls_context=server_tls_context)
    # Both serve calls must return for the nursery to close: one forgotten accept
    # loop (a single accept scope, overwritten) would hang here.
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, "127.0.0.1", 0)
            await nursery.start(server.serve_tls, "127.0.0.1", 0)
            await server.aclose()


async def test_stalled_smtps_handshakes_count_toward_max_connections(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context, max_connections=1)
    host, port = await start_smtps(nursery, running.server)
    stalled = RawConnection(await trio.open_tcp_stream(host, port))
    try:
        # Until the server has taken the first connection into its handshake.
        await trio.testing.wait_all_tasks_blocked()
        assert running.server.statistics().tls_handshakes == 1
        async with running.open_raw() as refused:
            reply = await refused.read_reply()
            assert await refused.at_eof(timeout=10)
    finally:
        await stalled.aclose()
    assert (reply.code, reply.enhanced) == (421, "4.7.0")
