"""Helpers of the mailauth tests: a sample message and the shapes the fixtures return."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from mailio_trio.dns import DnsResolver
    from mailio_trio.mailauth.dkim import DkimSigningKey
    from mailio_trio.testing_dns import DnsServer, Zone

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Lunch\r\n"
    b"Date: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <lunch-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Shall we meet at noon by the fountain?\r\n"
    b"\r\n"
    b"-- \r\nAlice\r\n"
)


@attrs.frozen
class Keys:
    rsa: DkimSigningKey
    ed25519: DkimSigningKey
    rsa_record: str
    ed25519_record: str


@attrs.frozen
class Dns:
    server: DnsServer
    zone: Zone
    resolver: DnsResolver
    port: int
