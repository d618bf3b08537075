"""RFC 8463 Appendix A: the published Ed25519 and RSA example, an independent vector.

Debian's Mail::DKIM 1.20230212 has no Ed25519, so for that algorithm the other side
of the proof is the RFC itself: its signed message (A.3) verifies in ours against its
key records (A.2) served by the loopback DNS server, and its private key (A.1) gives
its published public key through our key handling.
"""

from __future__ import annotations

import trio

from mailio_trio.dns import DnsConfig, DnsResolver
from mailio_trio.mailauth.dkim import DkimVerdict, dns_record_for, verify
from mailio_trio.testing.dns import DnsServer, Zone

# RFC 8463 A.1: the Ed25519 signing key, as PKCS#8 PEM (its seed nWGxne/9WmC6...).
ED25519_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n"
)
# RFC 8463 A.2: the key records.
ED25519_RECORD = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
RSA_RECORD = (
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
    "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
    "Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
)
# RFC 8463 A.3: the signed message.
SIGNED = b"""DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :
 date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
""".replace(b"\n", b"\r\n")


def test_rfc_private_key_gives_the_rfc_public_key() -> None:
    assert dns_record_for(ED25519_PEM) == ED25519_RECORD


async def test_rfc_example_verifies(nursery: trio.Nursery) -> None:
    zone = Zone()
    zone.txt("brisbane._domainkey.football.example.com", ED25519_RECORD)
    zone.txt("test._domainkey.football.example.com", RSA_RECORD)
    server = DnsServer(zone)
    host, port = await nursery.start(server.serve)
    resolver = DnsResolver(DnsConfig(nameservers=[host], port=port, timeout=2.0))
    with trio.fail_after(10):
        results = await verify(SIGNED, resolver=resolver)
    assert [(r.selector, r.algorithm, r.result) for r in results] == [
        ("brisbane", "ed25519-sha256", DkimVerdict.PASS),
        ("test", "rsa-sha256", DkimVerdict.PASS),
    ]
    assert [r.header_b for r in results] == ["/gCrinpc", "F45dVWDf"]
    with trio.fail_after(10):
        tampered = await verify(SIGNED.replace(b"hungry", b"angry"), resolver=resolver)
    assert [r.result for r in tampered] == [DkimVerdict.FAIL, DkimVerdict.FAIL]
