"""mail-io's README example, ported line by line, run over a real socket with smtplib.

The JavaScript (``/work/shared/seed/mail-io-README.txt``, "usage")::

    const server = new mio.Server({ ... options ... });
    server.on('session', (session) => {
        session.on('auth', (req, res) => {
            if (req.user && req.user.username === 'john' && req.user.password === 'doe') {
                return res.accept(250, 'OK');
            } else {
                return res.reject(535, 'Authentication failed');
            }
        });
    });
    server.addHandler('rcpt', {
        name: 'my-rcpt-handler',
        before: 'dnsbl',
        handler: (req, res) => {
            if (req.to.split('@')[1] === 'foo.com') { res.accept(); }
            else { res.reject(502, 'We only accept mail for the "foo.com" domain'); }
        }
    });
    server.listen(25);

Run twice: without ``rcpt/dnsbl`` (mail-io always has it; here ``before="dnsbl"``
is then ignored) and with it, aimed at the loopback DNS server, which lists
the client's address 127.0.0.2 — so the order is visible: the 502 of
``my-rcpt-handler`` comes before dnsbl ever asks DNS.
"""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
import trio

from mailio_trio import Config, DnsConfig, Handler, Request, Response, Server, Session
from mailio_trio.dns import reverse_name
from mailio_trio.plugins.auth import AuthConfig
from mailio_trio.testing import start_capturing_server
from mailio_trio.testing.dns import DnsServer, Zone

CLIENT = "127.0.0.2"  # listed on bl.test when rcpt/dnsbl is on
MESSAGE = b"Subject: hello\r\nFrom: john@example.com\r\n\r\nHi.\r\n"


def build_server(options: Config) -> Server:
    # Create a new SMTP server
    server = Server(options)

    # Listen for new client connections
    @server.on_session
    def on_session(session: Session) -> None:
        # Register a custom authentication handler
        @session.handler("auth")
        async def auth(req: Request, res: Response) -> None:
            # Only accept user "john" with password "doe"
            if req.user and req.user.username == "john" and req.user.password == "doe":
                return res.accept(250, "OK")
            else:
                return res.reject(535, "Authentication failed")

    # Register a global handler to reject all recipients that do not belong
    # to "foo.com" domain
    async def my_rcpt_handler(req: Request, res: Response) -> None:
        assert req.to is not None
        if req.to.domain == "foo.com":
            res.accept()
        else:
            res.reject(502, 'We only accept mail for the "foo.com" domain')

    server.add_handler(
        Handler(command="rcpt", name="my-rcpt-handler", before="dnsbl", func=my_rcpt_handler)
    )
    return server


def session_with(host: str, port: int) -> dict[str, Any]:
    """What a client sees: login as john/doe and wrong, RCPT to foo.com and bar.com."""
    out: dict[str, Any] = {}
    with smtplib.SMTP(host, port, source_address=(CLIENT, 0)) as client:
        client.ehlo("client.test")
        out["wrong"] = client.docmd("AUTH", "PLAIN AGpvaG4Ad3Jvbmc=")  # john / wrong
        out["login"] = client.login("john", "doe")
        client.mail("john@example.com")
        out["bar"] = client.rcpt("someone@bar.com")
        out["foo"] = client.rcpt("someone@foo.com")
        if out["foo"][0] == 250:
            out["data"] = client.data(MESSAGE)
    return out


@pytest.mark.parametrize("dnsbl", [False, True], ids=["without-dnsbl", "with-dnsbl"])
async def test_the_mailio_readme_example_runs_as_written(
    nursery: trio.Nursery, dnsbl: bool
) -> None:
    zone = Zone()
    zone.a("bl.test", "192.0.2.53")
    zone.a(reverse_name(CLIENT, "bl.test"), "127.0.0.2")
    dns_server = DnsServer(zone)
    dns_host, dns_port = await nursery.start(dns_server.serve)
    plugins: dict[str, Any] = {"connect/rdns": False}
    if dnsbl:
        plugins["rcpt/dnsbl"] = {
            "lists": ["bl.test"],
            "skip_loopback": False,  # our client is on loopback, as every test's is
            "skip_authenticated": False,  # john is authenticated: check him all the same
        }
    options = Config(
        hostname="mx.test",
        auth=AuthConfig(allow_insecure=True),  # no TLS in this example
        dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=5.0),
        plugins=plugins,
    )
    server = build_server(options)
    order = [h.name for h in server.chain.handlers("rcpt")]
    assert ("dnsbl" in order) == dnsbl
    if dnsbl:
        assert order.index("my-rcpt-handler") < order.index("dnsbl")
    running = await start_capturing_server(nursery, server=server)

    with trio.fail_after(20):
        seen = await trio.to_thread.run_sync(session_with, running.host, running.port)

    assert seen["wrong"] == (535, b"5.0.0 Authentication failed")
    assert seen["login"] == (235, b"2.7.0 OK")  # RFC 4954's 235, not the 250 written
    assert seen["bar"] == (502, b'5.0.0 We only accept mail for the "foo.com" domain')
    if dnsbl:
        # foo.com passes my-rcpt-handler, then dnsbl finds the client listed.
        assert seen["foo"][0] == 550
        assert b"bl.test" in seen["foo"][1]
        # One lookup, for foo.com only: bar.com was refused before dnsbl ran.
        assert dns_server.count(reverse_name(CLIENT, "bl.test"), "A") == 1
        assert running.messages == []
    else:
        assert seen["foo"][0] == 250
        assert seen["data"][0] == 250
        [message] = running.messages
        assert [str(r) for r in message.envelope.recipients] == ["someone@foo.com"]
        assert message.user.username == "john"
        assert dns_server.queries == []  # nothing asks DNS without dnsbl
