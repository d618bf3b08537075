"""DKIM sign → verify with our own code, keys served by the loopback DNS server.

The other side of the proof, an independent implementation (Mail::DKIM), is in
``test_dkim_perl.py``.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio.mailauth.dkim import (
    DkimAlgorithm,
    DkimSignConfig,
    DkimVerdict,
    DkimVerifyConfig,
    dns_record_for,
    generate_key,
    sign,
    sign_for_domain,
    verify,
    write_private_key,
)

from .support import MESSAGE

if TYPE_CHECKING:
    from pathlib import Path

    from .support import Dns, Keys


async def test_rsa_signature_verifies(keys: Keys, dns: Dns) -> None:
    key = keys.rsa
    header = sign(
        MESSAGE, domain=key.domain, selector=key.selector, private_key_pem=key.private_key_pem
    )
    with trio.fail_after(10):
        results = await verify(header + MESSAGE, resolver=dns.resolver)
    [result] = results
    assert result.result is DkimVerdict.PASS, result.reason
    assert (result.domain, result.selector, result.algorithm) == (
        "example.com",
        "rsa",
        "rsa-sha256",
    )
    assert result.identity == "@example.com"
    assert len(result.header_b) == 8
    assert header.replace(b"\r\n ", b"").find(b"b=" + result.header_b.encode()) > 0
    assert dns.server.count("rsa._domainkey.example.com", "TXT") == 1


async def test_ed25519_signature_verifies(keys: Keys, dns: Dns) -> None:
    key = keys.ed25519
    header = sign(
        MESSAGE,
        domain=key.domain,
        selector=key.selector,
        private_key_pem=key.private_key_pem,
        algorithm=DkimAlgorithm.ED25519_SHA256,
    )
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS, result.reason
    assert result.algorithm == "ed25519-sha256"


async def test_both_keys_sign_at_once_ed25519_first(keys: Keys, dns: Dns) -> None:
    config = DkimSignConfig(keys=(keys.rsa, keys.ed25519))
    headers = sign_for_domain(MESSAGE, config=config, domain="Example.COM.")
    assert headers.count(b"DKIM-Signature:") == 2
    with trio.fail_after(10):
        results = await verify(headers + MESSAGE, resolver=dns.resolver)
    assert [(r.selector, r.result) for r in results] == [
        ("ed", DkimVerdict.PASS),
        ("rsa", DkimVerdict.PASS),
    ]
    assert sign_for_domain(MESSAGE, config=config, domain="example.org") == b""


def test_signature_is_relaxed_and_oversigns_from(keys: Keys) -> None:
    message = b"Received: by relay.test\r\nX-Mailer: ours\r\n" + MESSAGE
    key = keys.rsa
    header = sign(
        message, domain=key.domain, selector=key.selector, private_key_pem=key.private_key_pem
    )
    unfolded = header.replace(b"\r\n ", b" ")
    assert b"c=relaxed/relaxed;" in unfolded
    signed = unfolded.split(b" h=")[1].split(b";")[0].replace(b" ", b"").split(b":")
    assert signed.count(b"from") == 2  # one more than present: a second From breaks it
    assert set(signed) == {
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
    }
    assert header.endswith(b"\r\n")


async def test_body_tampered_fails(keys: Keys, dns: Dns) -> None:
    signed = sign_for_domain(
        MESSAGE, config=DkimSignConfig(keys=(keys.rsa, keys.ed25519)), domain="example.com"
    )
    tampered = (signed + MESSAGE).replace(b"noon", b"nine")
    with trio.fail_after(10):
        results = await verify(tampered, resolver=dns.resolver)
    assert [r.result for r in results] == [DkimVerdict.FAIL, DkimVerdict.FAIL]
    assert all("body hash" in r.reason for r in results)


async def test_header_tampered_fails(keys: Keys, dns: Dns) -> None:
    signed = sign_for_domain(
        MESSAGE, config=DkimSignConfig(keys=(keys.rsa, keys.ed25519)), domain="example.com"
    )
    tampered = (signed + MESSAGE).replace(b"Subject: Lunch", b"Subject: Dinner")
    with trio.fail_after(10):
        results = await verify(tampered, resolver=dns.resolver)
    assert [r.result for r in results] == [DkimVerdict.FAIL, DkimVerdict.FAIL]
    assert all("header" in r.reason for r in results)


async def test_added_from_fails_because_from_is_oversigned(keys: Keys, dns: Dns) -> None:
    key = keys.ed25519
    header = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(key,)), domain="example.com")
    forged = header + b"From: Mallory <ceo@example.com>\r\n" + MESSAGE
    with trio.fail_after(10):
        [result] = await verify(forged, resolver=dns.resolver)
    assert result.result is DkimVerdict.FAIL


async def test_missing_key_is_permerror(keys: Keys, dns: Dns) -> None:
    key = keys.rsa
    header = sign(MESSAGE, domain=key.domain, selector="gone", private_key_pem=key.private_key_pem)
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PERMERROR
    assert "no key" in result.reason
    assert dns.server.count("gone._domainkey.example.com", "TXT") == 1


async def test_silent_dns_is_temperror(keys: Keys, dns: Dns) -> None:
    dns.zone.silent("rsa._domainkey.example.com")
    key = keys.rsa
    header = sign(
        MESSAGE, domain=key.domain, selector=key.selector, private_key_pem=key.private_key_pem
    )
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.TEMPERROR
    assert dns.server.count("rsa._domainkey.example.com", "TXT") >= 1


async def test_our_own_deadline_bounds_all_lookups(keys: Keys, dns: Dns) -> None:
    dns.zone.silent("rsa._domainkey.example.com")
    key = keys.rsa
    header = sign(
        MESSAGE, domain=key.domain, selector=key.selector, private_key_pem=key.private_key_pem
    )
    config = DkimVerifyConfig(dns_timeout=0.1)
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver, config=config)
    assert result.result is DkimVerdict.TEMPERROR
    assert "timed out" in result.reason


async def test_servfail_is_temperror(keys: Keys, dns: Dns) -> None:
    dns.zone.servfail("ed._domainkey.example.com")
    header = sign_for_domain(
        MESSAGE, config=DkimSignConfig(keys=(keys.ed25519,)), domain="example.com"
    )
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.TEMPERROR


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("v=DKIM1; k=rsa; p=", "key unusable"),  # RFC 6376 §3.6.1: an empty p= is a revoked key
        ("v=DKIM1; k=rsa; p=bm90IGEga2V5", "key unusable"),
        ("v=DKIM2; k=rsa; p=AAAA", "key unusable"),
    ],
)
async def test_unusable_key_is_permerror(keys: Keys, dns: Dns, record: str, why: str) -> None:
    dns.zone.remove("rsa._domainkey.example.com")
    dns.zone.txt("rsa._domainkey.example.com", record)
    key = keys.rsa
    header = sign(
        MESSAGE, domain=key.domain, selector=key.selector, private_key_pem=key.private_key_pem
    )
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PERMERROR
    assert why in result.reason


async def test_key_of_the_wrong_type_is_permerror(keys: Keys, dns: Dns) -> None:
    dns.zone.remove("rsa._domainkey.example.com")
    dns.zone.txt("rsa._domainkey.example.com", keys.ed25519_record)
    key = keys.rsa
    header = sign(
        MESSAGE, domain=key.domain, selector=key.selector, private_key_pem=key.private_key_pem
    )
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PERMERROR
    assert "does not match" in result.reason


async def test_short_rsa_key_is_permerror(dns: Dns) -> None:
    pem, record = generate_key(rsa_bits=1024)
    dns.zone.txt("short._domainkey.example.com", record)
    header = sign(MESSAGE, domain="example.com", selector="short", private_key_pem=pem)
    config = DkimVerifyConfig(min_rsa_bits=2048)
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver, config=config)
    assert result.result is DkimVerdict.PERMERROR
    assert "1024 bits" in result.reason
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS


@pytest.mark.parametrize(
    ("signature", "verdict", "why"),
    [
        (b"v=1; a=rsa-sha256; d=example.com; s=rsa", DkimVerdict.PERMERROR, "missing"),
        (b"this is no tag list", DkimVerdict.PERMERROR, "do not parse"),
        (
            b"v=1; a=rsa-sha256; d=example.com; s=rsa; h=to:subject; bh=AAAA; b=AAAA",
            DkimVerdict.PERMERROR,
            "From is not signed",
        ),
        (
            b"v=1; a=rsa-sha1; d=example.com; s=rsa; h=from; bh=AAAA; b=AAAA",
            DkimVerdict.POLICY,
            "rsa-sha1",
        ),
        (
            b"v=1; a=rsa-sha256; d=example.com; i=@evil.test; s=rsa; h=from; bh=AAAA; b=AAAA",
            DkimVerdict.PERMERROR,
            "i= domain",
        ),
        (
            b"v=1; a=rsa-sha256; d=example.com; s=rsa; x=1000; h=from; bh=AAAA; b=AAAA",
            DkimVerdict.PERMERROR,
            "x= value is past",
        ),
    ],
)
async def test_malformed_signatures_need_no_dns(
    dns: Dns, signature: bytes, verdict: DkimVerdict, why: str
) -> None:
    message = b"DKIM-Signature: " + signature + b"\r\n" + MESSAGE
    with trio.fail_after(10):
        [result] = await verify(message, resolver=dns.resolver)
    assert result.result is verdict
    assert why in result.reason
    assert dns.server.queries == []


async def test_unsigned_message_gives_no_results(dns: Dns) -> None:
    with trio.fail_after(10):
        assert await verify(MESSAGE, resolver=dns.resolver) == []
        assert await verify(b"", resolver=dns.resolver) == []


async def test_only_the_topmost_signatures_are_verified(keys: Keys, dns: Dns) -> None:
    key = keys.ed25519
    headers = b"".join(
        sign(
            MESSAGE,
            domain="example.com",
            selector=f"s{i}",
            private_key_pem=key.private_key_pem,
            algorithm=DkimAlgorithm.ED25519_SHA256,
        )
        for i in range(30)
    )
    with trio.fail_after(10):
        results = await verify(
            headers + MESSAGE, resolver=dns.resolver, config=DkimVerifyConfig(max_signatures=3)
        )
    assert [r.selector for r in results] == ["s0", "s1", "s2"]
    assert len(dns.server.queries) == 3
    # Every b= prefix tells its signature apart from the others.
    assert len({r.header_b for r in results}) == 3


async def test_verifies_from_a_spool_file(keys: Keys, dns: Dns, tmp_path: Path) -> None:
    headers = sign_for_domain(
        MESSAGE, config=DkimSignConfig(keys=(keys.rsa, keys.ed25519)), domain="example.com"
    )
    path = tmp_path / "message.eml"
    path.write_bytes(headers + MESSAGE)
    with trio.fail_after(10):
        results = await verify(path, resolver=dns.resolver)
    assert [r.result for r in results] == [DkimVerdict.PASS, DkimVerdict.PASS]


async def test_lf_line_endings_verify_too(keys: Keys, dns: Dns) -> None:
    header = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(keys.rsa,)), domain="example.com")
    with trio.fail_after(10):
        [result] = await verify((header + MESSAGE).replace(b"\r\n", b"\n"), resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS, result.reason


async def test_ten_mib_message_verifies(keys: Keys, dns: Dns, tmp_path: Path) -> None:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = line * (10 * 1024 * 1024 // len(line) + 1)
    message = MESSAGE + body
    headers = sign_for_domain(
        message, config=DkimSignConfig(keys=(keys.rsa, keys.ed25519)), domain="example.com"
    )
    path = tmp_path / "big.eml"
    path.write_bytes(headers + message)
    del message, body
    with trio.fail_after(60):
        results = await verify(path, resolver=dns.resolver)
    assert [r.result for r in results] == [DkimVerdict.PASS, DkimVerdict.PASS]
    with path.open("r+b") as file:  # one octet changed deep in the body
        file.seek(8 * 1024 * 1024)
        file.write(b"!")
    with trio.fail_after(60):
        results = await verify(path, resolver=dns.resolver)
    assert [r.result for r in results] == [DkimVerdict.FAIL, DkimVerdict.FAIL]


def test_signing_refuses_unusable_keys(keys: Keys) -> None:
    with pytest.raises(ValueError, match="needs an Ed25519 key"):
        sign(
            MESSAGE,
            domain="example.com",
            selector="x",
            private_key_pem=keys.rsa.private_key_pem,
            algorithm=DkimAlgorithm.ED25519_SHA256,
        )
    with pytest.raises(ValueError, match="PEM"):
        sign(MESSAGE, domain="example.com", selector="x", private_key_pem="not a key")
    with pytest.raises(ValueError, match="cannot sign"):
        sign(
            b" folded\r\nFrom: a@b.test\r\n\r\n",
            domain="b.test",
            selector="x",
            private_key_pem=keys.rsa.private_key_pem,
        )
    with pytest.raises(ValueError, match="no From"):
        sign(
            b"To: a@b.test\r\n\r\nhi\r\n",
            domain="example.com",
            selector="x",
            private_key_pem=keys.rsa.private_key_pem,
        )


@pytest.mark.parametrize("algorithm", list(DkimAlgorithm))
def test_generated_keys_and_records(algorithm: DkimAlgorithm) -> None:
    pem, record = generate_key(algorithm)
    kind = "ed25519" if algorithm is DkimAlgorithm.ED25519_SHA256 else "rsa"
    assert record.startswith(f"v=DKIM1; k={kind}; p=")
    assert dns_record_for(pem) == record
    if kind == "rsa":
        assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1: every DKIM tool reads it
        assert len(record) > 255  # needs several character-strings in one TXT record
    else:
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")
        assert len(record) < 100


def test_private_key_file_is_owner_only(tmp_path: Path) -> None:
    pem, _ = generate_key(DkimAlgorithm.ED25519_SHA256)
    path = tmp_path / "example.com.ed.key"
    write_private_key(path, pem)
    assert path.read_text() == pem
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private_key(path, pem)
    path.chmod(0o644)
    write_private_key(path, pem, overwrite=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_header_block_past_the_limit_still_verifies_what_it_holds(
    keys: Keys, dns: Dns, tmp_path: Path
) -> None:
    """Without the blank line in reach, the topmost fields are used and dkimpy parses all."""
    padding = b"".join(b"X-Padding-%d: %s\r\n" % (i, b"x" * 60) for i in range(100))
    message = padding + MESSAGE
    header = sign_for_domain(
        message, config=DkimSignConfig(keys=(keys.ed25519,)), domain="example.com"
    )
    path = tmp_path / "padded.eml"
    path.write_bytes(header + message)
    config = DkimVerifyConfig(max_header_bytes=len(header) + 1000)
    with trio.fail_after(10):
        [from_file] = await verify(path, resolver=dns.resolver, config=config)
        [from_bytes] = await verify(header + message, resolver=dns.resolver, config=config)
    assert from_file.result is from_bytes.result is DkimVerdict.PASS


async def test_a_folded_line_before_any_field_is_permerror(keys: Keys, dns: Dns) -> None:
    header = sign_for_domain(
        MESSAGE, config=DkimSignConfig(keys=(keys.ed25519,)), domain="example.com"
    )
    with trio.fail_after(10):
        [result] = await verify(b" folded\r\n" + header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PERMERROR
    assert "does not parse" in result.reason


async def test_lf_spool_file_verifies(keys: Keys, dns: Dns, tmp_path: Path) -> None:
    header = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(keys.rsa,)), domain="example.com")
    path = tmp_path / "lf.eml"
    path.write_bytes((header + MESSAGE).replace(b"\r\n", b"\n"))
    with trio.fail_after(10):
        [result] = await verify(path, resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS, result.reason


async def test_heavy_work_answers_the_same_in_a_worker_process_and_raises_its_errors() -> None:
    """Above ``process_above`` octets dkimpy runs in a child process (it holds the GIL);
    the 10 MiB verification test above goes that way with the default threshold."""
    from mailio_trio.mailauth import _offload

    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"line of text\r\n" * 200
    in_thread = await _offload.run_heavy(len(big), None, len, big)
    in_process = await _offload.run_heavy(len(big), 10, len, big)
    assert in_thread == in_process == len(big)
    with pytest.raises(ZeroDivisionError):
        await _offload.run_heavy(len(big), 10, divmod, 1, 0)
