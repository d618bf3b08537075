"""Email authentication on receipt, over real sockets with a loopback DNS server.

The DNS server publishes SPF, DKIM (RSA and Ed25519) and DMARC records for the
test domains; clients connect from 127.0.0.2 (allowed by SPF) or 127.0.0.3 (not),
and ``mailauth.trusted_networks`` is emptied so loopback clients are checked.
"""

from __future__ import annotations

import email
import email.policy
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hostile_clients import connect_from

from mailio_trio import Config, DnsConfig
from mailio_trio.config import MailauthConfig, MaildirConfig
from mailio_trio.mailauth import arc
from mailio_trio.mailauth.dkim import DkimAlgorithm, generate_key, sign
from mailio_trio.testing import RunningServer, start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio import Reply

PASSING_IP, FAILING_IP = "127.0.0.2", "127.0.0.3"


@lru_cache
def key(algorithm: DkimAlgorithm) -> tuple[str, str]:
    """One key pair per algorithm for the whole module (RSA-2048 generation is slow)."""
    return generate_key(algorithm)


def message(
    author: str = "alice@example.org", subject: str = "Lunch", body: str = "Noon?"
) -> bytes:
    return (
        f"From: Alice <{author}>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 12:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def signed(data: bytes, domain: str = "example.org", *, ed25519: bool = False) -> bytes:
    algorithm = DkimAlgorithm.ED25519_SHA256 if ed25519 else DkimAlgorithm.RSA_SHA256
    selector = "ed" if ed25519 else "rsa"
    pem, _ = key(algorithm)
    return sign(data, domain=domain, selector=selector, private_key_pem=pem, algorithm=algorithm)


def zone() -> Zone:
    z = Zone()
    z.txt("example.org", f"v=spf1 ip4:{PASSING_IP} -all")
    z.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    z.txt("rsa._domainkey.example.org", key(DkimAlgorithm.RSA_SHA256)[1])
    z.txt("ed._domainkey.example.org", key(DkimAlgorithm.ED25519_SHA256)[1])
    z.txt("soft.example", "v=spf1 ~all")
    z.txt("loop.example", "v=spf1 include:loop.example -all")
    for i in range(11):  # eleven chained includes: one past RFC 7208's ten lookups
        z.txt(f"l{i}.many.example", f"v=spf1 include:l{i + 1}.many.example -all")
    z.txt("l11.many.example", "v=spf1 -all")
    z.txt("many.example", "v=spf1 include:l0.many.example -all")
    z.silent("slow.example")
    z.txt("quarantine.example", f"v=spf1 ip4:{PASSING_IP} -all")
    z.txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine")
    z.txt("forwarder.example", f"v=spf1 ip4:{PASSING_IP} -all")
    z.txt("arc._domainkey.forwarder.example", key(DkimAlgorithm.RSA_SHA256)[1])
    return z


async def start(
    nursery: trio.Nursery, plugins: dict[str, Any] | None = None, **config: Any
) -> RunningServer:
    dns_server = DnsServer(zone())
    dns_host, dns_port = await nursery.start(dns_server.serve)
    settings: dict[str, Any] = {
        "hostname": "mx.test",
        "domains": ["example.com"],
        "dns": DnsConfig(nameservers=[dns_host], port=dns_port, timeout=1.0, cache_size=0),
        "mailauth": MailauthConfig(trusted_networks=()),
        "plugins": {"connect/rdns": False, **(plugins or {})},
        **config,
    }
    return await start_capturing_server(nursery, Config(**settings))


async def send_from(
    source: str, running: RunningServer, sender: str, data: bytes
) -> tuple[Reply, Reply]:
    """MAIL's reply and the reply after the final dot (or to RCPT/DATA if one refused)."""
    with trio.fail_after(20):
        async with connect_from(source, running) as conn:
            assert (await conn.read_reply()).code == 220
            assert (await conn.command("EHLO client.example.org")).code == 250
            mail = await conn.command(f"MAIL FROM:<{sender}>")
            if mail.code != 250:
                return mail, mail
            for reply in (
                await conn.command("RCPT TO:<bob@example.com>"),
                await conn.command("DATA"),
            ):
                if reply.code >= 400:
                    return mail, reply
            await conn.send(data.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            return mail, await conn.read_reply()


def auth_results(raw: bytes) -> list[str]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return [" ".join(str(v).split()) for v in parsed.get_all("Authentication-Results") or []]


async def only_header(running: RunningServer) -> str:
    [captured] = await running.wait_for(1, timeout=10)
    [header] = auth_results(captured.raw)
    assert header.startswith("mx.test;")
    return header


@pytest.mark.parametrize(
    ("sender", "source", "expected"),
    [
        ("alice@example.org", PASSING_IP, "spf=pass"),
        ("alice@example.org", FAILING_IP, "spf=fail"),
        ("alice@soft.example", FAILING_IP, "spf=softfail"),
        ("alice@norecord.example", FAILING_IP, "spf=none"),
        ("alice@loop.example", FAILING_IP, "spf=permerror"),
        ("alice@many.example", FAILING_IP, "spf=permerror"),
        ("alice@slow.example", FAILING_IP, "spf=temperror"),
    ],
)
async def test_spf_result_is_recorded_and_refuses_nothing_by_default(
    nursery: trio.Nursery, sender: str, source: str, expected: str
) -> None:
    running = await start(nursery, plugins={"queue/mailauth": {"dmarc": False}})
    _, final = await send_from(source, running, sender, message(author=sender))
    assert (final.code, final.enhanced) == (250, "2.0.0")
    header = await only_header(running)
    domain = sender.partition("@")[2]
    assert f"{expected} " in header + " "
    assert f"smtp.mailfrom={domain}" in header
    [captured] = running.outbox.messages
    verdict = captured.auth
    assert verdict is not None
    assert verdict.spf.result.value == expected.partition("=")[2]


async def test_spf_fail_refuses_when_configured(nursery: trio.Nursery) -> None:
    running = await start(nursery, plugins={"mail/spf": {"on_fail": "reject"}})
    mail, _ = await send_from(FAILING_IP, running, "alice@example.org", message())
    assert (mail.code, mail.enhanced) == (550, "5.7.23")
    assert running.outbox.messages == []


async def test_null_sender_checks_the_helo_identity(nursery: trio.Nursery) -> None:
    running = await start(nursery, plugins={"queue/mailauth": {"dmarc": False}})
    _, final = await send_from(PASSING_IP, running, "", message())
    assert final.code == 250
    header = await only_header(running)
    assert "smtp.helo=client.example.org" in header


@pytest.mark.parametrize("ed25519", [False, True], ids=["rsa", "ed25519"])
async def test_dkim_signature_passes(nursery: trio.Nursery, ed25519: bool) -> None:
    running = await start(nursery)
    data = message()
    _, final = await send_from(
        PASSING_IP, running, "alice@example.org", signed(data, ed25519=ed25519) + data
    )
    assert final.code == 250
    header = await only_header(running)
    selector = "ed" if ed25519 else "rsa"
    assert f"dkim=pass header.d=example.org header.s={selector}" in header


async def test_rsa_and_ed25519_signatures_both_pass(nursery: trio.Nursery) -> None:
    running = await start(nursery)
    data = message()
    both = signed(data, ed25519=True) + signed(data) + data
    _, final = await send_from(PASSING_IP, running, "alice@example.org", both)
    assert final.code == 250
    header = await only_header(running)
    assert header.count("dkim=pass") == 2


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda d: d.replace(b"Noon?", b"Midnight?"), "dkim=fail"),
        (lambda d: d.replace(b"Subject: Lunch", b"Subject: Dinner"), "dkim=fail"),
    ],
    ids=["body", "header"],
)
async def test_tampered_signature_fails(nursery: trio.Nursery, tamper: Any, expected: str) -> None:
    running = await start(nursery, plugins={"queue/mailauth": {"dmarc": False}})
    data = message()
    _, final = await send_from(
        PASSING_IP, running, "alice@example.org", tamper(signed(data) + data)
    )
    assert final.code == 250
    assert expected in await only_header(running)


async def test_missing_key_is_permerror(nursery: trio.Nursery) -> None:
    running = await start(nursery, plugins={"queue/mailauth": {"dmarc": False}})
    data = message(author="alice@nokey.example")
    _, final = await send_from(
        PASSING_IP, running, "alice@example.org", signed(data, "nokey.example") + data
    )
    assert final.code == 250
    header = await only_header(running)
    assert "dkim=permerror" in header
    assert "header.d=nokey.example" in header


async def test_dmarc_passes_by_spf_alignment_alone(nursery: trio.Nursery) -> None:
    running = await start(nursery)
    _, final = await send_from(PASSING_IP, running, "bounce@example.org", message())
    assert final.code == 250
    header = await only_header(running)
    assert "dkim=none" in header
    assert "dmarc=pass" in header
    assert "header.from=example.org" in header


async def test_dmarc_passes_by_dkim_alignment_alone(nursery: trio.Nursery) -> None:
    running = await start(nursery)
    data = message()
    _, final = await send_from(FAILING_IP, running, "alice@example.org", signed(data) + data)
    assert final.code == 250
    header = await only_header(running)
    assert "spf=fail" in header
    assert "dmarc=pass" in header


async def test_dmarc_reject_refuses_and_stores_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    running = await start(nursery, spool_dir=tmp_path)
    _, final = await send_from(FAILING_IP, running, "alice@example.org", message())
    assert (final.code, final.enhanced) == (550, "5.7.1")
    assert "example.org" in final.text
    assert running.outbox.messages == []
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240  # a test's look at its own tmp dir


async def test_dmarc_reject_is_recorded_only_when_not_honoured(nursery: trio.Nursery) -> None:
    running = await start(nursery, plugins={"queue/mailauth": {"honour_reject": False}})
    _, final = await send_from(FAILING_IP, running, "alice@example.org", message())
    assert final.code == 250
    assert "dmarc=fail" in await only_header(running)


async def test_dmarc_quarantine_goes_to_junk(nursery: trio.Nursery, tmp_path: Path) -> None:
    running = await start(nursery, maildir=MaildirConfig(enabled=True, root=tmp_path / "mail"))
    data = message(author="alice@quarantine.example")
    _, final = await send_from(FAILING_IP, running, "alice@quarantine.example", data)
    assert final.code == 250
    bob = tmp_path / "mail" / "example.com" / "bob"
    [junk] = list((bob / ".Junk" / "new").iterdir())
    assert b"dmarc=fail" in junk.read_bytes()
    assert list((bob / "new").iterdir()) == []


async def test_forged_authentication_results_claiming_us_is_removed(nursery: trio.Nursery) -> None:
    running = await start(nursery)
    forged = (
        b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=example.org;\r\n\tdkim=pass\r\n"
    )
    theirs = b"Authentication-Results: mx.elsewhere.example; spf=pass\r\n"
    _, final = await send_from(
        PASSING_IP, running, "alice@example.org", forged + theirs + message()
    )
    assert final.code == 250
    [captured] = await running.wait_for(1, timeout=10)
    headers = auth_results(captured.raw)
    assert len(headers) == 2
    assert headers[0].startswith("mx.test;")
    assert "dkim=none" in headers[0]
    assert headers[1] == "mx.elsewhere.example; spf=pass"
    assert captured.auth.forged_removed == 1


async def test_arc_sealed_forward_passes(nursery: trio.Nursery) -> None:
    running = await start(nursery, plugins={"queue/mailauth": {"dmarc": False}})
    original = message(author="carol@far.example")
    seal = arc.seal(
        original,
        domain="forwarder.example",
        selector="arc",
        private_key_pem=key(DkimAlgorithm.RSA_SHA256)[0],
        authserv_id="forwarder.example",
        authentication_results_text="forwarder.example; spf=pass smtp.mailfrom=far.example",
    )
    _, final = await send_from(PASSING_IP, running, "list@forwarder.example", seal + original)
    assert final.code == 250
    header = await only_header(running)
    assert "arc=pass" in header


async def test_trusted_networks_and_authenticated_clients_are_not_checked(
    nursery: trio.Nursery,
) -> None:
    running = await start(nursery, mailauth=MailauthConfig(trusted_networks=(FAILING_IP,)))
    _, final = await send_from(FAILING_IP, running, "alice@example.org", message())
    assert final.code == 250  # p=reject would have refused an untrusted client
    [captured] = await running.wait_for(1, timeout=10)
    assert auth_results(captured.raw) == []
    assert captured.auth.trusted
