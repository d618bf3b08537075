"""``queue/inbox`` in a real server: the session facts it keeps, and only committed mail."""

from __future__ import annotations

import smtplib
import types

import attrs
import pytest
import trio

from mailio_trio import Config, Handler, Request, Response, Server
from mailio_trio.inbox import inbox_handler, open_inbox
from mailio_trio.testing import CaptureOptions, start_capturing_server

MESSAGE = "From: a@app.example\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\nHi.\r\n"


async def _fake_mailauth(req: Request, res: Response) -> None:
    # What queue/mailauth leaves for later handlers; the real one needs DNS.
    res.set(types.SimpleNamespace(header_value="mx.test; spf=pass smtp.mailfrom=app.example"))
    res.accept()


async def _refuse_some(req: Request, res: Response) -> None:
    assert req.message is not None
    subject = await trio.to_thread.run_sync(lambda: str(req.message.email["Subject"]))  # type: ignore[union-attr]  # checked above
    if subject == "refuse me":
        res.reject(554, "Refused by policy", "5.7.1")
    else:
        res.accept()


async def test_the_inbox_keeps_session_facts_and_only_committed_mail(
    nursery: trio.Nursery,
) -> None:
    base = Config(hostname="mx.test", domains=("example.com",))
    config = attrs.evolve(base, auth=attrs.evolve(base.auth, allow_insecure=True))
    server = Server(config)
    inbox = open_inbox()
    server.add_handler(Handler(command="queue", name="mailauth", func=_fake_mailauth))
    server.add_handler(inbox_handler(inbox))
    server.add_handler(
        Handler(command="queue", name="refuse_some", func=_refuse_some, after=("inbox",))
    )
    running = await start_capturing_server(
        nursery, server=server, options=CaptureOptions(auth_users={"alice": "secret"})
    )

    def send() -> None:
        with smtplib.SMTP(running.host, running.port, local_hostname="client.test") as smtp:
            smtp.login("alice", "secret")
            smtp.sendmail("a@app.example", ["b@example.com"], MESSAGE.format(subject="kept"))
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail(
                    "a@app.example", ["b@example.com"], MESSAGE.format(subject="refuse me")
                )
            assert refused.value.smtp_code == 554

    try:
        with trio.fail_after(30):
            await trio.to_thread.run_sync(send)
            messages, total = await inbox.page()
        assert total == 1  # the refused one was rolled back before it was ever shown
        [kept] = messages
        assert kept.summary["Subject"] == "kept"
        assert (kept.sender, kept.recipients) == ("a@app.example", ("b@example.com",))
        assert (kept.client_address, kept.helo, kept.tls) == ("127.0.0.1", "client.test", False)
        assert kept.auth_user == "alice"
        assert kept.auth_results == "mx.test; spf=pass smtp.mailfrom=app.example"
    finally:
        inbox.close()
