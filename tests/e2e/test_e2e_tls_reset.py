"""STARTTLS forgets an AUTH done in plaintext (RFC 3207 §4.2), on a raw socket (#19, spot 2).

RFC 3207 §4.2: after the TLS handshake the server "MUST discard any knowledge
obtained from the client ... which was not obtained from the TLS negotiation
itself" — the AUTH identity included. A server that kept only the identity
would not offer AUTH again, answer a new AUTH ``503 Already authenticated``,
and let the plaintext login relay over TLS. With insecure AUTH allowed and a
user table, each of those is checked after the upgrade.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import trio

from mailio_trio import Config, Server
from mailio_trio.config import DnsConfig, RelayConfig
from mailio_trio.passwords import hash_password
from mailio_trio.plugins.auth import AuthConfig
from mailio_trio.testing import start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    import ssl
    from pathlib import Path

    from mailio_trio.testing import RawConnection, RunningServer

PASSWORD = "correct horse battery staple"
USERS = {"alice": hash_password(PASSWORD, log_n=4)}  # cheap hash: the check is the same
WAIT = 20  # seconds: an upper bound for anything to happen, never expected


def auth_plain(user: str, password: str) -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def keywords(ehlo_text: str) -> list[str]:
    return ehlo_text.split("\n")[1:]


async def start(nursery: trio.Nursery, tmp_path: Path, tls: ssl.SSLContext) -> RunningServer:
    # The relay only decides who may send to a foreign domain here; nothing is sent.
    dns_host, dns_port = await nursery.start(DnsServer(Zone()).serve)
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        auth=AuthConfig(users=USERS, allow_insecure=True),
        relay=RelayConfig(enabled=True, spool_dir=tmp_path / "spool"),
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
    )
    return await start_capturing_server(nursery, server=Server(config, tls_context=tls))


async def authenticate_then_upgrade(conn: RawConnection, client: ssl.SSLContext) -> list[str]:
    """EHLO, AUTH (235), STARTTLS, handshake, EHLO; returns the EHLO keywords over TLS."""
    assert (await conn.read_reply()).code == 220
    assert "AUTH PLAIN LOGIN" in keywords((await conn.command("EHLO client.test")).text)
    reply = await conn.command(auth_plain("alice", PASSWORD))
    assert (reply.code, reply.enhanced) == (235, "2.7.0")
    # Authenticated, in plaintext: this client may relay (the control for the end).
    assert (await conn.command("MAIL FROM:<alice@example.com>")).code == 250
    assert (await conn.command("RCPT TO:<b@remote.test>")).code == 250
    assert (await conn.command("RSET")).code == 250
    assert (await conn.command("STARTTLS")).code == 220
    await conn.start_tls(client, "mx.test")
    ehlo = await conn.command("EHLO client.test")
    assert ehlo.code == 250
    return keywords(ehlo.text)


async def test_auth_offered_again_over_tls(
    nursery: trio.Nursery,
    tmp_path: Path,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    running = await start(nursery, tmp_path, server_tls_context)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            over_tls = await authenticate_then_upgrade(conn, client_tls_context)
    assert "AUTH PLAIN LOGIN" in over_tls


async def test_new_auth_over_tls_is_not_already_authenticated(
    nursery: trio.Nursery,
    tmp_path: Path,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    running = await start(nursery, tmp_path, server_tls_context)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await authenticate_then_upgrade(conn, client_tls_context)
            again = await conn.command(auth_plain("alice", PASSWORD))
    assert (again.code, again.enhanced) == (235, "2.7.0")


async def test_foreign_rcpt_over_tls_is_refused_as_anonymous(
    nursery: trio.Nursery,
    tmp_path: Path,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    running = await start(nursery, tmp_path, server_tls_context)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await authenticate_then_upgrade(conn, client_tls_context)
            assert (await conn.command("MAIL FROM:<alice@example.com>")).code == 250
            foreign = await conn.command("RCPT TO:<b@remote.test>")
            local = await conn.command("RCPT TO:<bob@example.com>")
        # The same refusal an anonymous client gets, on a connection of its own.
        async with running.open_raw() as anonymous:
            await anonymous.read_reply()
            await anonymous.command("EHLO client.test")
            await anonymous.command("MAIL FROM:<alice@example.com>")
            baseline = await anonymous.command("RCPT TO:<b@remote.test>")
    assert (baseline.code, baseline.enhanced, baseline.text) == (
        550,
        "5.7.1",
        "Relay access denied",
    )
    assert (foreign.code, foreign.enhanced, foreign.text) == (
        baseline.code,
        baseline.enhanced,
        baseline.text,
    )
    assert local.code == 250
