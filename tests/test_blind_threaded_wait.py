"""``ThreadedServer.wait_for`` waits for a message that arrives after the wait began (#19, 7).

Every other test sends first and waits after, so a ``wait_for`` that only
looked once (or raised ``TimeoutError`` at once) passed them all. Here the
sender thread starts only once the test thread is blocked inside the wait:
the outbox's condition is swapped for one that says when it is waited on.
"""

from __future__ import annotations

import smtplib
import threading

from mailio_trio.testing import serve_in_thread

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
