"""DKIM against an independent implementation: Perl's Mail::DKIM (Debian libmail-dkim-perl).

Its verifier asks only our loopback DNS server (``dkim_verify.pl`` sets
``Mail::DKIM::DNS::resolver`` to a Net::DNS resolver on 127.0.0.1 and the server's
port), and each test checks the server counted its query, so a pass is never a
lookup that went elsewhere. Skipped without Mail::DKIM, unless
``MAILIO_REQUIRE_PERL_DKIM=1`` (``.ci/run``), where it fails instead.

Mail::DKIM 1.20230212 (Debian bookworm) has no Ed25519 (RFC 8463; it came in a later
release): those tests skip while it lacks it, whatever the environment says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio.mailauth.dkim import (
    DkimSignConfig,
    DkimVerdict,
    sign_for_domain,
    verify,
    write_private_key,
)

from .support import MESSAGE, perl_has_ed25519, run_perl

if TYPE_CHECKING:
    from pathlib import Path

    from .support import Dns, Keys

pytestmark = pytest.mark.usefixtures("perl_dkim")


needs_perl_ed25519 = pytest.mark.skipif(
    not perl_has_ed25519(), reason="this Mail::DKIM has no Ed25519 (RFC 8463)"
)


async def test_perl_rsa_signature_passes_ours(keys: Keys, dns: Dns, tmp_path: Path) -> None:
    key_file = tmp_path / "rsa.key"
    write_private_key(key_file, keys.rsa.private_key_pem)
    header = await run_perl("dkim_sign.pl", key_file, "example.com", "rsa", stdin=MESSAGE)
    assert header.startswith("DKIM-Signature:")
    with trio.fail_after(10):
        [result] = await verify(header.encode() + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS, result.reason
    assert (result.domain, result.selector, result.algorithm) == (
        "example.com",
        "rsa",
        "rsa-sha256",
    )


@needs_perl_ed25519
async def test_perl_ed25519_signature_passes_ours(keys: Keys, dns: Dns, tmp_path: Path) -> None:
    key_file = tmp_path / "ed.key"
    write_private_key(key_file, keys.ed25519.private_key_pem)
    header = await run_perl(
        "dkim_sign.pl", key_file, "example.com", "ed", "ed25519-sha256", stdin=MESSAGE
    )
    with trio.fail_after(10):
        [result] = await verify(header.encode() + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS, result.reason


async def test_our_rsa_signature_passes_perl(keys: Keys, dns: Dns) -> None:
    signed = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(keys.rsa,)), domain="example.com")
    out = await run_perl("dkim_verify.pl", dns.port, stdin=signed + MESSAGE)
    assert out.startswith("pass d=example.com s=rsa a=rsa-sha256"), out
    assert dns.server.count("rsa._domainkey.example.com", "TXT") >= 1  # Perl asked our server


@needs_perl_ed25519
async def test_our_ed25519_signature_passes_perl(keys: Keys, dns: Dns) -> None:
    signed = sign_for_domain(
        MESSAGE, config=DkimSignConfig(keys=(keys.ed25519,)), domain="example.com"
    )
    out = await run_perl("dkim_verify.pl", dns.port, stdin=signed + MESSAGE)
    assert out.startswith("pass d=example.com s=ed a=ed25519-sha256"), out
    assert dns.server.count("ed._domainkey.example.com", "TXT") >= 1


async def test_perl_fails_our_signatures_on_a_tampered_message(keys: Keys, dns: Dns) -> None:
    """The verifier really checks: the same signature on a changed message does not pass."""
    signed = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(keys.rsa,)), domain="example.com")
    body = await run_perl(
        "dkim_verify.pl", dns.port, stdin=(signed + MESSAGE).replace(b"noon", b"one")
    )
    header = await run_perl(
        "dkim_verify.pl", dns.port, stdin=(signed + MESSAGE).replace(b"Lunch", b"Brunch")
    )
    assert body.startswith("fail d=example.com s=rsa"), body
    assert "body has been altered" in body
    assert header.startswith("fail d=example.com s=rsa"), header


async def test_perl_and_ours_agree_on_a_missing_key(keys: Keys, dns: Dns) -> None:
    dns.zone.nxdomain("rsa._domainkey.example.com")
    signed = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(keys.rsa,)), domain="example.com")
    out = await run_perl("dkim_verify.pl", dns.port, stdin=signed + MESSAGE)
    with trio.fail_after(10):
        [ours] = await verify(signed + MESSAGE, resolver=dns.resolver)
    assert out.startswith("invalid d=example.com"), out  # Mail::DKIM's word for permerror
    assert "public key: not available" in out
    assert ours.result is DkimVerdict.PERMERROR


async def test_perl_verifies_both_of_our_signatures(keys: Keys, dns: Dns) -> None:
    """RSA and Ed25519 at once: RSA passes; Ed25519 passes where Mail::DKIM knows it."""
    config = DkimSignConfig(keys=(keys.rsa, keys.ed25519))
    signed = sign_for_domain(MESSAGE, config=config, domain="example.com")
    lines = (await run_perl("dkim_verify.pl", dns.port, stdin=signed + MESSAGE)).splitlines()
    by_algorithm = {line.split(" a=")[1].split()[0]: line.split()[0] for line in lines}
    assert by_algorithm["rsa-sha256"] == "pass", lines
    if perl_has_ed25519():
        assert by_algorithm["ed25519-sha256"] == "pass", lines


async def test_large_message_passes_perl_and_ours(keys: Keys, dns: Dns, tmp_path: Path) -> None:
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    message = MESSAGE + line * (10 * 1024 * 1024 // len(line))
    signed = sign_for_domain(message, config=DkimSignConfig(keys=(keys.rsa,)), domain="example.com")
    path = tmp_path / "big.eml"
    path.write_bytes(signed + message)
    out = await run_perl("dkim_verify.pl", dns.port, stdin=signed + message)
    del message
    assert out.startswith("pass d=example.com"), out
    with trio.fail_after(60):
        [ours] = await verify(path, resolver=dns.resolver)
    assert ours.result is DkimVerdict.PASS
