"""ARC (RFC 8617): our seal verifies in ours and in Mail::DKIM's ARC verifier, and back.

Sealing hops are ``relay.test`` (key ``arc._domainkey.relay.test``) and
``list.test``; the keys are the session's RSA key, published by the loopback DNS
server. The Perl side skips without Mail::DKIM unless ``MAILIO_REQUIRE_PERL_DKIM=1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio.mailauth.arc import ArcVerdict, seal, verify_arc
from mailio_trio.mailauth.dkim import write_private_key

from .support import MESSAGE, run_perl

if TYPE_CHECKING:
    from pathlib import Path

    from .support import Dns, Keys


@pytest.fixture
def arc_dns(dns: Dns, keys: Keys) -> Dns:
    dns.zone.txt("arc._domainkey.relay.test", keys.rsa_record)
    dns.zone.txt("arc._domainkey.list.test", keys.rsa_record)
    return dns


def first_hop(keys: Keys, message: bytes = MESSAGE) -> bytes:
    """``message`` as relay.test passes it on: sealed at i=1."""
    headers = seal(
        message,
        domain="relay.test",
        selector="arc",
        private_key_pem=keys.rsa.private_key_pem,
        authserv_id="mx.relay.test",
        authentication_results_text="mx.relay.test; dkim=pass header.d=example.com; arc=none",
    )
    return headers + message


def second_hop(keys: Keys, message: bytes) -> bytes:
    """A mailing list at list.test changes the subject, then seals at i=2 (it saw arc=pass)."""
    changed = message.replace(b"Subject: Lunch", b"Subject: [team] Lunch")
    headers = seal(
        changed,
        domain="list.test",
        selector="arc",
        private_key_pem=keys.rsa.private_key_pem,
        authserv_id="lists.list.test",
        authentication_results_text="dkim=pass header.d=example.com; arc=pass",
    )
    return headers + changed


def test_seal_is_three_fields_seal_first(keys: Keys) -> None:
    sealed = first_hop(keys)
    names = [
        line.split(b":")[0] for line in sealed.split(b"\r\n") if line and line[:1] not in b" \t"
    ]
    assert names[:3] == [b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"]
    unfolded = sealed.replace(b"\r\n ", b" ")
    assert b"ARC-Authentication-Results: i=1; mx.relay.test;" in unfolded
    assert b"dkim=pass header.d=example.com" in unfolded
    assert b" cv=none;" in unfolded


async def test_our_seal_passes_ours(keys: Keys, arc_dns: Dns) -> None:
    with trio.fail_after(10):
        result = await verify_arc(first_hop(keys), resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.PASS, result.reason
    assert (result.instance, result.domain, result.selector) == (1, "relay.test", "arc")
    assert arc_dns.server.count("arc._domainkey.relay.test", "TXT") == 1


async def test_two_hops_pass_though_the_list_changed_the_message(keys: Keys, arc_dns: Dns) -> None:
    message = second_hop(keys, first_hop(keys))
    with trio.fail_after(10):
        result = await verify_arc(message, resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.PASS, result.reason
    assert (result.instance, result.domain) == (2, "list.test")
    assert b"i=2; lists.list.test;" in message.replace(b"\r\n ", b" ")


async def test_changed_after_the_last_seal_fails(keys: Keys, arc_dns: Dns) -> None:
    message = first_hop(keys).replace(b"noon", b"nine")
    with trio.fail_after(10):
        result = await verify_arc(message, resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.FAIL
    assert not result.temporary


async def test_no_arc_fields_is_none(arc_dns: Dns) -> None:
    with trio.fail_after(10):
        result = await verify_arc(MESSAGE, resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.NONE
    assert arc_dns.server.queries == []


async def test_silent_dns_fails_as_temporary(keys: Keys, arc_dns: Dns) -> None:
    arc_dns.zone.silent("arc._domainkey.relay.test")
    with trio.fail_after(10):
        result = await verify_arc(first_hop(keys), resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.FAIL
    assert result.temporary


async def test_missing_key_fails(keys: Keys, dns: Dns) -> None:
    with trio.fail_after(10):
        result = await verify_arc(first_hop(keys), resolver=dns.resolver)
    assert result.result is ArcVerdict.FAIL
    assert not result.temporary


async def test_more_than_fifty_sets_fail_without_dns(keys: Keys, arc_dns: Dns) -> None:
    sealed = first_hop(keys)
    message = sealed.replace(b"i=1;", b"i=51;")
    with trio.fail_after(10):
        result = await verify_arc(message, resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.FAIL
    assert "1..50" in result.reason
    assert arc_dns.server.queries == []


async def test_verifies_from_a_spool_file(keys: Keys, arc_dns: Dns, tmp_path: Path) -> None:
    path = tmp_path / "sealed.eml"
    path.write_bytes(first_hop(keys))
    with trio.fail_after(10):
        result = await verify_arc(path, resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.PASS, result.reason


async def test_a_forged_results_field_with_our_id_is_not_sealed(keys: Keys, arc_dns: Dns) -> None:
    forged = b"Authentication-Results: mx.relay.test; dkim=pass header.d=bank.test\r\n" + MESSAGE
    sealed = first_hop(keys, forged)
    aar = sealed.replace(b"\r\n ", b" ").split(b"ARC-Authentication-Results:")[1].split(b"\r\n")[0]
    assert b"bank.test" not in aar
    assert b"header.d=example.com" in aar


def test_seal_refuses_what_it_cannot_do(keys: Keys) -> None:
    def attempt(pem: str, results: str, message: bytes = MESSAGE) -> bytes:
        return seal(
            message,
            domain="relay.test",
            selector="arc",
            private_key_pem=pem,
            authserv_id="mx.relay.test",
            authentication_results_text=results,
        )

    with pytest.raises(ValueError, match="needs an RSA key"):
        attempt(keys.ed25519.private_key_pem, "arc=none")
    with pytest.raises(ValueError, match="cv should be none"):
        attempt(keys.rsa.private_key_pem, "arc=pass")  # no chain yet to have passed
    with pytest.raises(ValueError, match="no arc="):
        attempt(keys.rsa.private_key_pem, "dkim=pass header.d=example.com", first_hop(keys))


# -- Mail::DKIM's ARC ------------------------------------------------------------


@pytest.mark.usefixtures("perl_dkim")
async def test_our_seal_passes_perl(keys: Keys, arc_dns: Dns) -> None:
    out = await run_perl("dkim_verify.pl", arc_dns.port, "--arc", stdin=first_hop(keys))
    assert out.startswith("arc=pass"), out
    assert arc_dns.server.count("arc._domainkey.relay.test", "TXT") >= 1  # Perl asked our server


@pytest.mark.usefixtures("perl_dkim")
async def test_our_two_hops_pass_perl(keys: Keys, arc_dns: Dns) -> None:
    message = second_hop(keys, first_hop(keys))
    out = await run_perl("dkim_verify.pl", arc_dns.port, "--arc", stdin=message)
    assert out.startswith("arc=pass"), out


@pytest.mark.usefixtures("perl_dkim")
async def test_perl_fails_our_seal_on_a_changed_message(keys: Keys, arc_dns: Dns) -> None:
    message = first_hop(keys).replace(b"noon", b"nine")
    out = await run_perl("dkim_verify.pl", arc_dns.port, "--arc", stdin=message)
    assert out.startswith("arc=fail"), out


@pytest.mark.usefixtures("perl_dkim")
async def test_perl_seal_passes_ours(keys: Keys, arc_dns: Dns, tmp_path: Path) -> None:
    key_file = tmp_path / "arc.key"
    write_private_key(key_file, keys.rsa.private_key_pem)
    received = (
        b"Authentication-Results: mx.relay.test; dkim=pass header.d=example.com; arc=none\r\n"
        + MESSAGE
    )
    headers = await run_perl(
        "arc_seal.pl", key_file, "relay.test", "arc", "mx.relay.test", stdin=received
    )
    assert headers.startswith("ARC-Seal:"), headers
    with trio.fail_after(10):
        result = await verify_arc(headers.encode() + received, resolver=arc_dns.resolver)
    assert result.result is ArcVerdict.PASS, result.reason
    assert (result.instance, result.domain) == (1, "relay.test")
    # And we can seal on top of Perl's chain, which Perl then accepts too.
    message = second_hop(keys, headers.encode() + received)
    with trio.fail_after(10):
        result = await verify_arc(message, resolver=arc_dns.resolver)
    assert (result.result, result.instance) == (ArcVerdict.PASS, 2), result.reason
    out = await run_perl("dkim_verify.pl", arc_dns.port, "--arc", stdin=message)
    assert out.startswith("arc=pass"), out
