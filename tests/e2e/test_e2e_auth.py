"""AUTH over real loopback sockets: mechanisms, where AUTH may be used, brute-force cut-off."""

from __future__ import annotations

import base64
import logging
import smtplib
from typing import TYPE_CHECKING, Any

import pytest
import trio

from mailio_trio import Config, Limits, Request, Response, Server, Session
from mailio_trio.passwords import hash_password
from mailio_trio.plugins.auth import AuthConfig, Credentials, Mechanism
from mailio_trio.testing import RawConnection, RunningServer, start_capturing_server

if TYPE_CHECKING:
    import ssl

MESSAGE = b"Subject: hello\r\nFrom: alice@example.com\r\n\r\nHi there.\r\n"
PASSWORD = "correct horse battery staple"
# ln=4: a cheap hash keeps the suite fast; the format and the check are the same.
USERS = {"alice": hash_password(PASSWORD, log_n=4)}


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}")


async def start(
    nursery: trio.Nursery,
    tls_context: ssl.SSLContext | None,
    *,
    auth: AuthConfig | None = None,
    **limits: float,
) -> RunningServer:
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        limits=Limits(**limits),  # type: ignore[arg-type]  # test-chosen limits
        auth=auth if auth is not None else AuthConfig(users=USERS),
    )
    return await start_capturing_server(nursery, server=Server(config, tls_context=tls_context))


async def secure(conn: RawConnection, client: ssl.SSLContext) -> list[str]:
    """Greeting, EHLO, STARTTLS, handshake, EHLO again; returns the EHLO keywords over TLS."""
    await conn.read_reply()
    await conn.command("EHLO client.test")
    assert (await conn.command("STARTTLS")).code == 220
    await conn.start_tls(client, "mx.test")
    reply = await conn.command("EHLO client.test")
    assert reply.code == 250
    return reply.text.split("\n")[1:]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_smtplib_starttls_then_login_sends_as_esmtpsa(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    mechanism: str,
) -> None:
    running = await start(
        nursery, server_tls_context, auth=AuthConfig(users=USERS, mechanisms=[mechanism])
    )

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP(running.host, running.port) as client:
            client.starttls(context=client_tls_context)
            reply = client.login("alice", PASSWORD)
            client.sendmail("alice@example.com", ["b@example.org"], MESSAGE)
            return reply

    code, text = await trio.to_thread.run_sync(send)
    assert code == 235
    assert text.startswith(b"2.7.0 ")
    [captured] = await running.outbox.wait_for(1)
    assert isinstance(captured.user, Credentials)
    assert captured.user.username == "alice"
    assert captured.user.mechanism is Mechanism(mechanism)
    assert "with ESMTPSA id" in captured.message["Received"]


async def test_auth_offered_only_after_tls(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await conn.read_reply()
        clear = (await conn.command("EHLO client.test")).text.split("\n")[1:]
        refused = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
        assert (await conn.command("STARTTLS")).code == 220
        await conn.start_tls(client_tls_context, "mx.test")
        over_tls = (await conn.command("EHLO client.test")).text.split("\n")[1:]
    assert not any(k.startswith("AUTH") for k in clear)
    assert (refused.code, refused.enhanced) == (538, "5.7.11")
    assert "AUTH PLAIN LOGIN" in over_tls


async def test_auth_in_clear_text_allowed_when_configured(nursery: trio.Nursery) -> None:
    running = await start(nursery, None, auth=AuthConfig(users=USERS, allow_insecure=True))
    async with running.open_raw() as conn:
        await conn.read_reply()
        keywords = (await conn.command("EHLO client.test")).text.split("\n")[1:]
        reply = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
    assert "AUTH PLAIN LOGIN" in keywords
    assert (reply.code, reply.enhanced) == (235, "2.7.0")


async def test_auth_not_offered_without_a_credentials_check(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context, auth=AuthConfig())
    async with running.open_raw() as conn:
        keywords = await secure(conn, client_tls_context)
        reply = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
    assert not any(k.startswith("AUTH") for k in keywords)
    assert (reply.code, reply.enhanced) == (502, "5.5.1")


async def test_plain_without_initial_response(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        challenge = await conn.command("AUTH PLAIN")
        reply = await conn.command(plain("alice", PASSWORD))
    assert (challenge.code, challenge.text) == (334, "")
    assert (reply.code, reply.enhanced) == (235, "2.7.0")


async def test_login_prompts_and_star_cancels(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        user_prompt = await conn.command("AUTH LOGIN")
        password_prompt = await conn.command(b64("alice"))
        cancelled = await conn.command("*")
        after = await conn.command("NOOP")
    assert (user_prompt.code, user_prompt.text) == (334, b64("Username:"))
    assert (password_prompt.code, password_prompt.text) == (334, b64("Password:"))
    assert (cancelled.code, cancelled.enhanced) == (501, "5.0.0")
    assert after.code == 250


async def test_wrong_password_and_unknown_user_are_535(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        wrong = await conn.command(f"AUTH PLAIN {plain('alice', 'guess')}")
        unknown = await conn.command(f"AUTH PLAIN {plain('mallory', PASSWORD)}")
        other_authzid = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD, 'bob')}")
    for reply in (wrong, unknown, other_authzid):
        assert (reply.code, reply.enhanced) == (535, "5.7.8")


async def test_malformed_base64_is_501(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        reply = await conn.command("AUTH PLAIN not*base64!")
        prompt = await conn.command("AUTH LOGIN")
        in_exchange = await conn.command("%%%")
    assert (reply.code, reply.enhanced) == (501, "5.5.2")
    assert prompt.code == 334
    assert (in_exchange.code, in_exchange.enhanced) == (501, "5.5.2")


async def test_unknown_mechanism_is_504(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        reply = await conn.command("AUTH CRAM-MD5")  # not enabled: the table holds only hashes
    assert (reply.code, reply.enhanced) == (504, "5.5.4")


async def test_failures_past_the_limit_close_with_421(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context, auth_failures=3)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        for _ in range(3):
            reply = await conn.command(f"AUTH PLAIN {plain('alice', 'guess')}")
            assert (reply.code, reply.enhanced) == (535, "5.7.8")
        # Even the right password is too late now.
        final = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
        assert await conn.at_eof(timeout=10)
    assert (final.code, final.enhanced) == (421, "4.7.0")


async def test_auth_inside_transaction_is_503(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        assert (await conn.command("MAIL FROM:<alice@example.com>")).code == 250
        reply = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
    assert (reply.code, reply.enhanced) == (503, "5.5.1")


async def test_second_auth_after_success_is_503(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        first = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
        keywords = (await conn.command("EHLO client.test")).text.split("\n")[1:]
        second = await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")
    assert first.code == 235
    assert not any(k.startswith("AUTH") for k in keywords)
    assert (second.code, second.enhanced) == (503, "5.5.1")


async def test_own_auth_handler_checks_credentials_mail_io_style(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    config = Config(hostname="mx.test", domains=["example.com"])
    server = Server(config, tls_context=server_tls_context)
    seen: list[Any] = []

    @server.handler("auth")
    async def check(req: Request, res: Response) -> None:
        seen.append(req.user)
        if req.user.username == "bob" and req.user.check_secret("hunter2"):
            res.accept()
        else:
            res.reject(535, "5.7.8 Go away")

    running = await start_capturing_server(nursery, server=server)
    async with running.open_raw() as conn:
        keywords = await secure(conn, client_tls_context)
        bad = await conn.command(f"AUTH PLAIN {plain('bob', 'nope')}")
        good = await conn.command(f"AUTH PLAIN {plain('bob', 'hunter2', 'bob')}")
    assert "AUTH PLAIN LOGIN" in keywords
    assert (bad.code, bad.enhanced, bad.text) == (535, "5.7.8", "Go away")
    assert (good.code, good.enhanced) == (235, "2.7.0")
    assert [(u.username, u.authzid) for u in seen] == [("bob", None), ("bob", "bob")]


async def test_cram_md5_with_a_handler_that_knows_secrets(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    config = Config(hostname="mx.test", auth=AuthConfig(mechanisms=["CRAM-MD5", "PLAIN"]))
    server = Server(config, tls_context=server_tls_context)
    secrets = {"carol": "tanstaafl"}
    mechanisms: list[Mechanism] = []

    @server.handler("auth")
    async def check(req: Request, res: Response) -> None:
        mechanisms.append(req.user.mechanism)
        assert req.user.password is None  # CRAM-MD5 never carries the password
        secret = secrets.get(req.user.username)
        if secret is not None and req.user.check_secret(secret):
            res.accept()
        else:
            res.reject(535, "5.7.8 Authentication credentials invalid")

    running = await start_capturing_server(nursery, server=server)

    def login(password: str) -> int:
        with smtplib.SMTP(running.host, running.port) as client:
            client.starttls(context=client_tls_context)
            client.ehlo()
            assert "CRAM-MD5" in client.esmtp_features["auth"]
            # Only CRAM-MD5, so a failure is not retried with PLAIN.
            client.esmtp_features["auth"] = "CRAM-MD5"
            try:
                return client.login("carol", password)[0]
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code

    assert await trio.to_thread.run_sync(login, "tanstaafl") == 235
    assert await trio.to_thread.run_sync(login, "wrong") == 535
    assert mechanisms == [Mechanism.CRAM_MD5, Mechanism.CRAM_MD5]


async def test_secrets_never_reach_the_logs_even_at_debug(
    nursery: trio.Nursery,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    running = await start(nursery, server_tls_context)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        assert (await conn.command(f"AUTH PLAIN {plain('alice', 'guess')}")).code == 535
        assert (await conn.command("AUTH LOGIN")).code == 334
        assert (await conn.command(b64("alice"))).code == 334
        assert (await conn.command(b64(PASSWORD))).code == 235
        # A malformed line (a control character) is refused before AUTH runs: still redacted.
        malformed = await conn.command(f"AUTH PLAIN {plain('alice', 'guess')}\x01")
        assert (malformed.code, malformed.enhanced) == (501, "5.5.2")
    logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert "authenticated as 'alice'" in logged  # the log did record the exchange
    for secret in ("guess", plain("alice", "guess"), PASSWORD, b64(PASSWORD)):
        assert secret not in logged


async def test_disabled_users_check_means_no_auth(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    """A users table nobody checks must not let everyone in."""
    config = Config(hostname="mx.test", auth=AuthConfig(users=USERS), plugins={"auth/users": False})
    running = await start_capturing_server(
        nursery, server=Server(config, tls_context=server_tls_context)
    )
    async with running.open_raw() as conn:
        keywords = await secure(conn, client_tls_context)
        reply = await conn.command(f"AUTH PLAIN {plain('alice', 'anything')}")
    assert not any(k.startswith("AUTH") for k in keywords)
    assert (reply.code, reply.enhanced) == (502, "5.5.1")


async def test_session_records_user_and_accepted_auth(
    nursery: trio.Nursery, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    config = Config(hostname="mx.test", auth=AuthConfig(users=USERS))
    server = Server(config, tls_context=server_tls_context)
    sessions: list[Session] = []
    server.on_session(sessions.append)
    running = await start_capturing_server(nursery, server=server)
    async with running.open_raw() as conn:
        await secure(conn, client_tls_context)
        assert (await conn.command(f"AUTH PLAIN {plain('alice', PASSWORD)}")).code == 235
    [session] = sessions
    assert session.accepted["auth"] == 235
    assert isinstance(session.user, Credentials)
    assert session.user.username == "alice"
    assert PASSWORD not in repr(session.user)
