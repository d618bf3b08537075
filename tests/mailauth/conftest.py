"""Fixtures of the mailauth tests: signing keys and the loopback DNS server publishing them.

Keys are made once per run (RSA-2048 takes a moment); the DNS server publishes them
at ``rsa._domainkey.example.com`` and ``ed._domainkey.example.com``, and its resolver
gives up after 0.5 s, so the "DNS is silent" cases end quickly. Nothing asserts time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailio_trio.dns import DnsConfig, DnsResolver
from mailio_trio.mailauth.dkim import DkimAlgorithm, DkimSigningKey, generate_key
from mailio_trio.testing.dns import DnsServer, Zone

from .support import Dns, Keys, require_perl_dkim

if TYPE_CHECKING:
    import trio


@pytest.fixture(scope="session")
def keys() -> Keys:
    rsa_pem, rsa_record = generate_key(DkimAlgorithm.RSA_SHA256)
    ed_pem, ed_record = generate_key(DkimAlgorithm.ED25519_SHA256)
    return Keys(
        rsa=DkimSigningKey(domain="example.com", selector="rsa", private_key_pem=rsa_pem),
        ed25519=DkimSigningKey(
            domain="example.com",
            selector="ed",
            private_key_pem=ed_pem,
            algorithm=DkimAlgorithm.ED25519_SHA256,
        ),
        rsa_record=rsa_record,
        ed25519_record=ed_record,
    )


@pytest.fixture
async def dns(nursery: trio.Nursery, keys: Keys) -> Dns:
    """The loopback DNS server publishing both keys; its resolver gives up after 0.5 s."""
    zone = Zone()
    zone.txt("rsa._domainkey.example.com", keys.rsa_record)
    zone.txt("ed._domainkey.example.com", keys.ed25519_record)
    server = DnsServer(zone)
    host, port = await nursery.start(server.serve)
    resolver = DnsResolver(DnsConfig(nameservers=[host], port=port, timeout=0.5, cache_size=0))
    return Dns(server=server, zone=zone, resolver=resolver, port=port)


@pytest.fixture
def perl_dkim() -> None:
    """Skip without Mail::DKIM (fail instead when ``MAILIO_REQUIRE_PERL_DKIM=1``)."""
    require_perl_dkim()
