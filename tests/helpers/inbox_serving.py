"""``mailio-trio serve --capture --web`` run in-process, for the API and browser tests.

The CLI's own pieces (its parser, ``prepared_config``, ``install_capture``,
``_serve``) in the test's nursery, so a test talks to what ``serve`` runs:
real SMTP and real HTTP over loopback.
"""

from __future__ import annotations

import contextlib
import email.message
import functools
import re
import smtplib
from typing import TYPE_CHECKING

import attrs
import httpx
import trio

from mailio_trio.cli._capture import open_capture_inbox
from mailio_trio.cli._chaos import chaos_settings
from mailio_trio.cli._main import build_parser
from mailio_trio.cli._serve import _serve, build_server, prepared_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from mailio_trio.inbox import Inbox
    from mailio_trio.testing import Faults

LISTENING = re.compile(
    r"^mailio-trio: listening on 127\.0\.0\.1:(\d+), web inbox (http://127\.0\.0\.1:\d+)/; "
)


@attrs.frozen
class Serving:
    smtp_port: int
    url: str
    inbox: Inbox
    faults: Faults | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    async def send(self, message: email.message.EmailMessage, to: list[str] | None = None) -> None:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="client.test") as smtp:
                smtp.send_message(message, to_addrs=to)

        await trio.to_thread.run_sync(send)


def message(
    subject: str,
    *,
    sender: str = "Dev App <app@dev.example>",
    to: str = "Alice <alice@example.com>",
    text: str = "Hello there.",
    html: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        name, data = attachment
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg


@contextlib.asynccontextmanager
async def serve_inbox(tmp_path: Path, *flags: str) -> AsyncIterator[Serving]:
    """Run ``serve --capture --web 127.0.0.1:0`` for the block; the store is in ``tmp_path``."""
    args = build_parser().parse_args(
        [
            "serve",
            "--capture",
            "--listen",
            "127.0.0.1:0",
            "--web",
            "127.0.0.1:0",
            "--spool",
            str(tmp_path / "spool"),
            "--capture-db",
            str(tmp_path / "capture.sqlite"),
            *flags,
        ]
    )
    config = prepared_config(args)
    inbox = open_capture_inbox(args)
    assert inbox is not None
    server, faults = build_server(args, config, inbox, chaos_settings(args, None, capturing=True))
    try:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(_serve, faults=faults)
            line: str = await nursery.start(serve, server, config, (), inbox, args.web)
            match = LISTENING.match(line)
            assert match, line
            try:
                yield Serving(
                    smtp_port=int(match.group(1)), url=match.group(2), inbox=inbox, faults=faults
                )
            finally:
                server.shutdown()  # _serve returns once the server stopped, web and all
    finally:
        inbox.close()
