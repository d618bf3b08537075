"""An ``auth`` handler written the mail-io way still answers AUTH with ``235 2.7.0``.

mail-io's README accepts with ``res.accept(250, 'OK')``; RFC 4954 §6 makes
``235 2.7.0`` AUTH's success reply, and clients (smtplib) treat anything else
as a failure. The success code of a command is the protocol's.
"""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Request, Response, Server, Session
from mailio_trio.plugins.auth import AuthConfig
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from collections.abc import Callable


def accept_with(how: str) -> Callable[[Response], None]:
    if how == "bare":
        return lambda res: res.accept()
    if how == "250 OK":
        return lambda res: res.accept(250, "OK")
    return lambda res: res.accept(250, "2.0.0 Welcome back")


@pytest.mark.parametrize(
    ("how", "text"),
    [("bare", b"Authentication successful"), ("250 OK", b"OK"), ("250 text", b"Welcome back")],
)
async def test_a_per_session_auth_handler_accepting_with_250_gives_235(
    nursery: trio.Nursery, how: str, text: bytes
) -> None:
    server = Server(
        Config(hostname="mx.test", domains=["example.com"], auth=AuthConfig(allow_insecure=True))
    )
    decide = accept_with(how)

    @server.on_session
    def per_session(session: Session) -> None:
        @session.handler("auth")
        async def check(req: Request, res: Response) -> None:
            if req.user.username == "john" and req.user.password == "doe":
                decide(res)
            else:
                res.reject(535, "Authentication failed")

    running = await start_capturing_server(nursery, server=server)

    def login() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP(running.host, running.port) as client:
            good = client.login("john", "doe")  # raises SMTPAuthenticationError unless 235
            client.sendmail("john@example.com", ["bob@example.com"], b"Subject: hi\r\n\r\nhi\r\n")
        with smtplib.SMTP(running.host, running.port) as client:
            client.ehlo("client.test")
            bad = client.docmd("AUTH", "PLAIN AGpvaG4Ad3Jvbmc=")  # john / wrong
        return good, bad

    with trio.fail_after(10):
        good, bad = await trio.to_thread.run_sync(login)
    assert good == (235, b"2.7.0 " + text)
    assert bad[0] == 535
    [message] = running.messages
    assert message.user.username == "john"
