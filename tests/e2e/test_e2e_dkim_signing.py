"""DKIM signing and ARC sealing of relayed mail, end to end over real sockets.

Our server relays to an aiosmtpd peer (the remote MX, on 127.0.0.2) found in
the loopback DNS server, which also publishes our keys; what the peer received
is verified by ``mailauth.dkim.verify`` against that DNS and by Perl's
Mail::DKIM (``tests/mailauth/dkim_verify.pl``; skipped without it unless
``MAILIO_REQUIRE_PERL_DKIM=1``, as in ``tests/mailauth``).
"""

from __future__ import annotations

import email
import email.policy
import importlib.util
import re
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from smtp_peers import PeerHandler, free_port_on, run_aiosmtpd

from mailio_trio import Config
from mailio_trio.client import send
from mailio_trio.config import ConfigError, DnsConfig, RelayConfig
from mailio_trio.dns import DnsResolver
from mailio_trio.mailauth.arc import ArcVerdict, verify_arc
from mailio_trio.mailauth.dkim import DkimAlgorithm, DkimVerdict, generate_key, verify
from mailio_trio.passwords import hash_password
from mailio_trio.relay.spool import Spool
from mailio_trio.testing import RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import ModuleType

    from smtp_peers import Peer


def _mailauth_support() -> ModuleType:
    """tests/mailauth/support.py (the Perl runner) by path: tests/ is not a package."""
    path = Path(__file__).parents[1] / "mailauth" / "support.py"
    spec = importlib.util.spec_from_file_location("_mailauth_support", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


support = _mailauth_support()

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@remote.test>\r\n"
    b"Subject: signed on the way out\r\n"
    b"Date: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <dkim-e2e-1@example.com>\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"body\r\n"
)


@attrs.frozen
class KeyFiles:
    rsa: Path
    ed25519: Path
    rsa_record: str
    ed25519_record: str


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    directory = tmp_path_factory.mktemp("dkim")
    rsa_pem, rsa_record = generate_key(DkimAlgorithm.RSA_SHA256)
    ed_pem, ed_record = generate_key(DkimAlgorithm.ED25519_SHA256)
    (directory / "rsa.pem").write_text(rsa_pem)
    (directory / "ed.pem").write_text(ed_pem)
    return KeyFiles(directory / "rsa.pem", directory / "ed.pem", rsa_record, ed_record)


@attrs.define
class Setup:
    running: RunningServer
    peer: Peer
    dns: DnsServer
    resolver: DnsResolver
    dns_port: int

    async def received(self, count: int = 1) -> list[bytes]:
        return [r.content for r in await self.peer.handler.wait_for(count)]


def zone_for(keys: KeyFiles) -> Zone:
    zone = Zone()
    for domain in ("remote.test", "sender.test"):
        zone.mx(domain, (10, f"mx.{domain}"))
        zone.a(f"mx.{domain}", "127.0.0.2")
    zone.txt("rsa._domainkey.example.com", keys.rsa_record)
    zone.txt("ed._domainkey.example.com", keys.ed25519_record)
    return zone


def config_for(
    tmp_path: Path, dns: tuple[str, int], port: int, keys: list[dict[str, Any]], **options: Any
) -> Config:
    mailauth = options.pop("mailauth", {})
    relay: dict[str, Any] = {
        "enabled": True,
        "spool_dir": tmp_path / "spool",
        "port": port,
        "retry_base_interval": 0.05,
        "connect_timeout": 5.0,
    }
    relay.update(options.pop("relay", {}))
    return Config(
        hostname="mx.example.com",
        domains=["example.com"],
        relay=RelayConfig(**relay),
        dns=DnsConfig(nameservers=[dns[0]], port=dns[1], timeout=2.0),
        auth={"allow_insecure": True, "users": {"alice": hash_password("secret", log_n=10)}},
        dkim={"keys": {"example.com": keys}, **options},
        mailauth=mailauth,
    )


def both(keys: KeyFiles) -> list[dict[str, Any]]:
    return [{"selector": "rsa", "key": str(keys.rsa)}, {"selector": "ed", "key": str(keys.ed25519)}]


@asynccontextmanager
async def dkim_setup(
    nursery: trio.Nursery,
    tmp_path: Path,
    keys: KeyFiles,
    *,
    selectors: list[dict[str, Any]] | None = None,
    handler: PeerHandler | None = None,
    **options: Any,
) -> AsyncIterator[Setup]:
    dns = DnsServer(zone_for(keys))
    dns_host, dns_port = await nursery.start(dns.serve)
    resolver = DnsResolver(DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0))
    port = free_port_on("127.0.0.2")
    config = config_for(
        tmp_path, (dns_host, dns_port), port, both(keys) if selectors is None else selectors,
        **options,
    )  # fmt: skip
    async with run_aiosmtpd("127.0.0.2", port=port, handler=handler) as peer:
        running = await start_capturing_server(nursery, config)
        yield Setup(running, peer, dns, resolver, dns_port)


async def send_as_alice(running: RunningServer, message: bytes = MESSAGE) -> None:
    await send(
        running.host, running.port, "alice@example.com", ["bob@remote.test"], message,
        username="alice", password="secret", allow_insecure_auth=True,
    )  # fmt: skip


def field_values(content: bytes, name: str) -> list[str]:
    parsed = email.message_from_bytes(content, policy=email.policy.compat32)
    return [str(v) for v in parsed.get_all(name, [])]


async def test_relayed_mail_carries_rsa_and_ed25519_signatures_that_pass(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    async with dkim_setup(nursery, tmp_path, key_files) as setup:
        await send_as_alice(setup.running)
        [content] = await setup.received()
        with trio.fail_after(10):
            results = await verify(content, resolver=setup.resolver)
    assert content.startswith(b"DKIM-Signature: ")  # written in front of our Received:
    assert content.endswith(b"\r\n.a line that starts with a dot\r\nbody\r\n")
    assert sorted((r.result, r.domain, r.selector, r.algorithm) for r in results) == [
        (DkimVerdict.PASS, "example.com", "ed", "ed25519-sha256"),
        (DkimVerdict.PASS, "example.com", "rsa", "rsa-sha256"),
    ], [r.reason for r in results]


async def test_mail_dkim_verifies_our_signatures(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    support.require_perl_dkim()
    async with dkim_setup(nursery, tmp_path, key_files) as setup:
        await send_as_alice(setup.running)
        [content] = await setup.received()
        out = await support.run_perl("dkim_verify.pl", setup.dns_port, stdin=content)
    lines = out.splitlines()
    assert any(line.startswith("pass d=example.com s=rsa a=rsa-sha256") for line in lines), out
    ed = [line for line in lines if " s=ed " in line]
    assert len(ed) == 1, out
    if support.perl_has_ed25519():
        assert ed[0].startswith("pass d=example.com s=ed a=ed25519-sha256"), out
    assert setup.dns.count("rsa._domainkey.example.com", "TXT") >= 1  # Perl asked our server


async def test_from_domain_key_and_parent_domain_sign_a_bounce(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    """A DSN (``Server.send_mail``, From ``MAILER-DAEMON@mx.example.com``) to a remote
    sender goes through the same queue chain, and example.com's keys sign it."""
    handler = PeerHandler(rcpt_reply=lambda a: "550 5.1.1 no such user" if "remote" in a else None)
    async with dkim_setup(
        nursery, tmp_path, key_files, handler=handler, relay={"open_relay": True}, arc_seal=False
    ) as setup:
        await send(
            setup.running.host, setup.running.port, "x@sender.test", ["b@remote.test"], MESSAGE
        )
        [bounce] = await setup.received()
        with trio.fail_after(10):
            results = await verify(bounce, resolver=setup.resolver)
    assert setup.peer.handler.received[0].recipients == ["x@sender.test"]
    assert "multipart/report" in field_values(bounce, "Content-Type")[0]
    assert {(r.result, r.domain) for r in results} == {(DkimVerdict.PASS, "example.com")}
    assert len(results) == 2


async def test_mail_from_a_non_local_sender_is_not_signed_with_our_key(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    # An open relay passes others' mail on; a From claiming our domain is not ours to vouch for.
    async with dkim_setup(
        nursery, tmp_path, key_files, relay={"open_relay": True}, arc_seal=True
    ) as setup:
        await send(
            setup.running.host, setup.running.port, "x@sender.test", ["bob@remote.test"], MESSAGE
        )
        [content] = await setup.received()
    assert field_values(content, "DKIM-Signature") == []
    assert field_values(content, "ARC-Seal") == []  # no local domain forwarded it either


async def test_sign_false_relays_unsigned(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    async with dkim_setup(nursery, tmp_path, key_files, sign=False) as setup:
        await send_as_alice(setup.running)
        [content] = await setup.received()
    assert field_values(content, "DKIM-Signature") == []


async def test_others_mail_forwarded_for_a_local_domain_is_arc_sealed(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    """A foreign sender's message to a local and a remote recipient: the remote copy is
    sealed by example.com (no queue/mailauth results here: ``cv=none``, AR ``none``)."""
    async with dkim_setup(nursery, tmp_path, key_files, relay={"open_relay": True}) as setup:
        await send(
            setup.running.host, setup.running.port, "x@sender.test",
            ["list@example.com", "bob@remote.test"], MESSAGE,
        )  # fmt: skip
        [content] = await setup.received()
        with trio.fail_after(10):
            arc = await verify_arc(content, resolver=setup.resolver)
    assert field_values(content, "DKIM-Signature") == []
    [seal] = field_values(content, "ARC-Seal")
    tags = {t.split("=", 1)[0].strip(): t.split("=", 1)[1].strip() for t in seal.split(";")}
    assert (tags["i"], tags["cv"], tags["d"], tags["s"]) == ("1", "none", "example.com", "rsa")
    assert field_values(content, "ARC-Authentication-Results")[0].startswith("i=1; mx.example.com")
    assert (arc.result, arc.domain) == (ArcVerdict.PASS, "example.com")


async def test_the_arc_set_copies_queue_mailauth_results(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    """``queue/mailauth`` runs before ``queue/relay``; its Authentication-Results
    value is what the ARC set vouches for (loopback is not trusted here, so the
    message is checked)."""
    async with dkim_setup(
        nursery,
        tmp_path,
        key_files,
        relay={"open_relay": True},
        mailauth={"trusted_networks": []},
    ) as setup:
        await send(
            setup.running.host, setup.running.port, "x@sender.test",
            ["list@example.com", "bob@remote.test"], MESSAGE,
        )  # fmt: skip
        [content] = await setup.received()
        with trio.fail_after(10):
            arc = await verify_arc(content, resolver=setup.resolver)
    [results] = field_values(content, "Authentication-Results")
    [aar] = field_values(content, "ARC-Authentication-Results")
    # dkimpy copies the results without their comments.
    uncommented = re.sub(r"\s*\([^)]*\)", "", " ".join(results.split()))
    assert " ".join(aar.split()) == f"i=1; {uncommented}"
    assert "spf=" in aar
    assert arc.result is ArcVerdict.PASS


async def test_the_signature_is_spooled_with_the_message_and_survives_a_restart(
    nursery: trio.Nursery, tmp_path: Path, key_files: KeyFiles
) -> None:
    dns = DnsServer(zone_for(key_files))
    dns_host, dns_port = await nursery.start(dns.serve)
    closed, port = free_port_on("127.0.0.2"), free_port_on("127.0.0.2")
    # First run: the remote MX does not answer (nothing listens on `closed`), so it stays spooled.
    first = config_for(
        tmp_path, (dns_host, dns_port), closed, both(key_files),
        relay={"retry_base_interval": 3600.0},
    )  # fmt: skip
    async with trio.open_nursery() as first_run:
        running = await start_capturing_server(first_run, first)
        await send_as_alice(running)  # its 250 says the entry is committed
        first_run.cancel_scope.cancel()
    spool = Spool(tmp_path / "spool")
    [entry] = spool.entries_sync()
    spooled = spool.message_path(entry.id).read_bytes()
    assert spooled.startswith(b"DKIM-Signature: ")
    # Second run on the same spool, the peer listening: exactly the spooled bytes arrive.
    second = config_for(tmp_path, (dns_host, dns_port), port, both(key_files))
    async with run_aiosmtpd("127.0.0.2", port=port) as peer:
        saved = attrs.evolve(entry, next_attempt=0.0)
        spool.save_sync(saved)  # due now, rather than after the first run's back-off
        await start_capturing_server(nursery, second)
        [received] = await peer.handler.wait_for(1)
    assert received.content == spooled
    resolver = DnsResolver(DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0))
    with trio.fail_after(10):
        results = await verify(received.content, resolver=resolver)
    assert [r.result for r in results] == [DkimVerdict.PASS, DkimVerdict.PASS]


@pytest.mark.parametrize(
    ("selectors", "message"),
    [
        (
            [{"selector": "s", "key": "/no/such/key.pem"}],
            'dkim.keys."example.com"[0].key = "/no/such/key.pem": cannot read: No such file',
        ),
        (
            "garbage",
            'dkim.keys."example.com"[0].key = "{path}": not an unencrypted PEM private key',
        ),
    ],
)
def test_a_bad_key_file_stops_the_server_at_start(
    tmp_path: Path, selectors: list[dict[str, Any]] | str, message: str
) -> None:
    from mailio_trio import Server

    path = tmp_path / "bad.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    if isinstance(selectors, str):
        selectors = [{"selector": "s", "key": str(path)}]
    config = config_for(tmp_path, ("127.0.0.1", 53), 25, selectors)
    with pytest.raises(ConfigError) as excinfo:
        Server(config)
    assert str(excinfo.value).startswith(message.format(path=path)), str(excinfo.value)
    assert "\n" not in str(excinfo.value)
