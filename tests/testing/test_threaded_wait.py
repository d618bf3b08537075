"""The threaded server's waits end: for a late message, and at a stuck stop (#19, 7 and 8).

Every other test sends first and waits after, so a ``wait_for`` that only
looked once (or raised ``TimeoutError`` at once) passed them all. Here the
sender thread starts only once the test thread is blocked inside the wait:
the outbox's condition is swapped for one that says when it is waited on.
And ``stop()`` (the ``with`` block's exit) has a timeout too, so a server
thread that cannot be stopped fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import smtplib
import threading
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config
from mailio_trio.config import MaildirConfig
from mailio_trio.testing import ThreadedServer, serve_in_thread
from mailio_trio.testing._threaded import THREAD_NAME

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.protocol import Address

WAIT = 20.0  # seconds: an upper bound for anything to happen, never expected


class WaitedOn(threading.Condition):
    """A condition that sets ``waiting`` whenever a thread starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_wait_for_returns_a_message_sent_after_the_wait_began() -> None:
    with serve_in_thread() as server:
        condition = WaitedOn()
        server.outbox._cond = condition  # before any message: nothing else holds it
        sent: list[dict[str, tuple[int, bytes]]] = []

        def send_once_waited_on() -> None:
            if not condition.waiting.wait(WAIT):
                return  # the test failed already; nothing to send
            with smtplib.SMTP(server.host, server.port, timeout=WAIT) as client:
                sent.append(
                    client.sendmail("a@example.org", ["b@example.com"], b"Subject: late\r\n\r\nx")
                )

        sender = threading.Thread(target=send_once_waited_on, name="late sender")
        sender.start()
        try:
            [captured] = server.wait_for(1, timeout=WAIT)
        finally:
            condition.waiting.set()  # let the sender go on (and end) whatever happened
            sender.join(WAIT)
        assert not sender.is_alive()
    assert sent == [{}]
    assert captured.message["Subject"] == "late"


def test_stop_raises_instead_of_hanging_on_a_stuck_server_thread(tmp_path: Path) -> None:
    """A handler stuck where cancellation cannot reach (a thread it waits on) must not hang
    the test at exit: ``stop()`` gives up after ``stop_timeout`` with ``TimeoutError``."""
    entered, release = threading.Event(), threading.Event()

    async def stuck(address: Address) -> list[Address]:
        entered.set()
        # Not abandon_on_cancel: Trio must wait for the thread, cancelled or not.
        await trio.to_thread.run_sync(release.wait, WAIT)
        return [address]

    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path / "mail", extend=stuck),
    )
    replies: list[tuple[int, bytes]] = []
    servers: list[ThreadedServer] = []
    senders: list[threading.Thread] = []

    def client(server: ThreadedServer) -> None:
        with (
            contextlib.suppress(smtplib.SMTPException, OSError),
            smtplib.SMTP(server.host, server.port, timeout=WAIT) as smtp,
        ):
            smtp.ehlo("client.test")
            smtp.mail("a@example.org")
            replies.append(smtp.rcpt("bob@example.com"))

    def serve_until_stuck() -> None:
        with serve_in_thread(config, stop_grace=0.1, stop_timeout=0.5) as server:
            servers.append(server)
            senders.append(threading.Thread(target=client, args=(server,), name="stuck client"))
            senders[0].start()
            assert entered.wait(WAIT)

    try:
        with pytest.raises(TimeoutError, match=r"did not stop within 0\.6s"):
            serve_until_stuck()
    finally:
        release.set()
    [server], [sender] = servers, senders
    server.stop()  # now the thread ends: joined, and nothing it died of is hidden
    sender.join(WAIT)
    assert not sender.is_alive()
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]
