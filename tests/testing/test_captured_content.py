"""CapturedMessage's assertion helpers: text, html, attachments, links, unsubscribe, DKIM.

Messages go over a real socket to the capturing server; DKIM keys are served
by the loopback DNS server (``mailio_trio.testing.dns``).
"""

from __future__ import annotations

import email.message
import smtplib
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio.dns import DnsConfig, DnsResolver
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from mailio_trio.testing import RunningServer

PDF = b"%PDF-1.4 \x00\xff"


async def _send(server: RunningServer, raw: bytes) -> None:
    def send() -> None:
        with smtplib.SMTP(server.host, server.port, timeout=30) as client:
            client.sendmail("app@dev.example", ["reader@example.com"], raw)

    await trio.to_thread.run_sync(send)


async def test_a_text_only_message(mailio_server: RunningServer) -> None:
    raw = (
        b"From: app@dev.example\r\nSubject: Reset\r\n\r\n"
        b"Reset here: https://app.example/reset?t=1. Or write to mailto:help@app.example!\r\n"
    )
    with trio.fail_after(30):
        await _send(mailio_server, raw)
        [m] = await mailio_server.wait_for(1)
    assert m.text.startswith("Reset here:")
    assert m.html == ""
    assert m.attachments == []
    assert m.links == ["https://app.example/reset?t=1", "mailto:help@app.example"]
    assert not m.has_list_unsubscribe
    assert not m.has_one_click_unsubscribe


async def test_html_attachments_and_unsubscribe(mailio_server: RunningServer) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "app@dev.example"
    msg["Subject"] = "Weekly ünïcode"
    msg["List-Unsubscribe"] = "<https://app.example/u?x=1>"  # no List-Unsubscribe-Post
    msg.set_content("Plain: héllo")
    msg.add_alternative(
        '<p><a href="https://app.example/a">A</a> <a href="https://app.example/a">again</a>'
        ' <a name="anchor">no href</a></p>',
        subtype="html",
    )
    msg.add_attachment(
        b"%PDF-1.4 \x00\xff", maintype="application", subtype="pdf", filename="a.pdf"
    )
    msg.add_attachment("a,b\r\n1,2\r\n", subtype="csv", filename="données.csv")
    with trio.fail_after(30):
        await _send(mailio_server, msg.as_bytes())
        [m] = await mailio_server.wait_for(1)
    assert m.text.strip() == "Plain: héllo"
    assert "no href" in m.html
    assert m.links == ["https://app.example/a"]
    assert [(a.filename, a.content_type) for a in m.attachments] == [
        ("a.pdf", "application/pdf"),
        ("données.csv", "text/csv"),
    ]
    assert m.attachments[0].content == PDF
    assert m.attachments[1].content.replace(b"\r\n", b"\n") == b"a,b\n1,2\n"
    assert m.has_list_unsubscribe
    assert m.list_unsubscribe == ["https://app.example/u?x=1"]
    assert not m.has_one_click_unsubscribe


async def test_dkim_valid_against_the_loopback_dns(
    mailio_server: RunningServer, nursery: trio.Nursery
) -> None:
    dkim = pytest.importorskip("mailio_trio.mailauth.dkim")
    pem, record = dkim.generate_key(dkim.DkimAlgorithm.ED25519_SHA256)
    message = b"From: app@dev.example\r\nTo: reader@example.com\r\nSubject: Signed\r\n\r\nHi.\r\n"
    header = dkim.sign(
        message,
        domain="dev.example",
        selector="s1",
        private_key_pem=pem,
        algorithm=dkim.DkimAlgorithm.ED25519_SHA256,
    )
    zone = Zone()
    zone.txt("s1._domainkey.dev.example", record)
    host, port = await nursery.start(DnsServer(zone).serve)
    resolver = DnsResolver(DnsConfig(nameservers=[host], port=port, timeout=0.5, cache_size=0))
    with trio.fail_after(30):
        await _send(mailio_server, header + message)
        await _send(mailio_server, header + message.replace(b"Hi.", b"Hi!"))  # tampered
        signed, tampered = await mailio_server.wait_for(2)
        assert await signed.dkim_valid(resolver)
        [result] = await tampered.dkim_results(resolver)
        assert result.result is dkim.DkimVerdict.FAIL
        assert not await tampered.dkim_valid(resolver)
