"""The capturing server on a thread of its own, for synchronous tests.

The thread runs its own ``trio.run``; :func:`serve_in_thread` returns only
once the port is bound (a :class:`threading.Event` set by the server thread,
never a sleep) and, on exit, shuts the server down, joins the thread and
re-raises anything the server died of. Trio closes its own descriptors when
``trio.run`` returns, so nothing is left behind: no thread, no socket, no
listening port (``tests/testing/test_threaded_server.py`` measures all three).

Calls from the test thread touch only thread-safe state: the outbox (a
:class:`threading.Condition`) and the fault table (a :class:`threading.Lock`);
stopping goes through the Trio token (``run_sync_soon`` is thread-safe).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mailio_trio.config import Config
    from mailio_trio.testing import (
        CapturedMessage,
        CaptureOptions,
        Outbox,
        RunningServer,
        TLSMaterial,
    )
    from mailio_trio.testing._faults import Faults, Stage

__all__ = ["ThreadedServer", "serve_in_thread"]

DEFAULT_WAIT = 10.0
"""Seconds ``wait_for`` waits by default: far longer than loopback delivery ever takes."""

# Threads are named so a test (or a person with py-spy) can tell ours apart.
THREAD_NAME = "mailio-trio-test-server"


@attrs.define(eq=False)
class _Box:
    """What the server thread hands back to the thread that started it."""

    ready: threading.Event = attrs.field(factory=threading.Event)
    running: RunningServer | None = None
    token: trio.lowlevel.TrioToken | None = None
    stop: trio.Event | None = None
    error: BaseException | None = None


@attrs.define(eq=False)
class ThreadedServer:
    """A capturing server running on its own thread; every method is for the test thread."""

    running: RunningServer
    _box: _Box
    _thread: threading.Thread
    _stop_timeout: float = 30.0

    @property
    def host(self) -> str:
        return self.running.host

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def outbox(self) -> Outbox:
        return self.running.outbox

    @property
    def faults(self) -> Faults:
        return self.running.faults

    @property
    def tls(self) -> TLSMaterial | None:
        return self.running.tls

    @property
    def credentials(self) -> tuple[str, str] | None:
        return self.running.credentials

    @property
    def web_url(self) -> str | None:
        return self.running.web_url

    @property
    def messages(self) -> list[CapturedMessage]:
        """A snapshot of the captured messages, in order."""
        return self.running.outbox.snapshot()

    def wait_for(self, count: int, timeout: float = DEFAULT_WAIT) -> list[CapturedMessage]:
        """Block until ``count`` messages are in, then return all; ``TimeoutError`` if not."""
        return self.running.outbox.wait_for_blocking(count, timeout)

    def clear(self) -> None:
        self.running.clear()

    def find(
        self, *, recipient: str | None = None, subject: str | None = None, sender: str | None = None
    ) -> list[CapturedMessage]:
        return self.running.find(recipient=recipient, subject=subject, sender=sender)

    def fail_next(
        self, stage: Stage | str, code: int, text: str | None = None, *, count: int = 1
    ) -> None:
        self.running.fail_next(stage, code, text, count=count)

    def drop_next(self, stage: Stage | str, *, count: int = 1) -> None:
        self.running.drop_next(stage, count=count)

    def delay_next(self, stage: Stage | str, seconds: float, *, count: int = 1) -> None:
        self.running.delay_next(stage, seconds, count=count)

    def clear_faults(self) -> None:
        self.running.clear_faults()

    def fail_randomly(
        self, stage: Stage | str, code: int, probability: float, text: str | None = None
    ) -> None:
        self.running.fail_randomly(stage, code, probability, text)

    def drop_randomly(self, stage: Stage | str, probability: float) -> None:
        self.running.drop_randomly(stage, probability)

    def delay_randomly(self, stage: Stage | str, seconds: float, probability: float) -> None:
        self.running.delay_randomly(stage, seconds, probability)

    def rate_limit(self, messages: int, per: float) -> None:
        self.running.rate_limit(messages, per)

    def seed_chaos(self, seed: int | None) -> None:
        self.running.seed_chaos(seed)

    def stop(self) -> None:
        """Shut down, join the thread, and raise what the server died of, if anything.

        Raises:
          TimeoutError: The server thread was still running ``stop_timeout``
            seconds after it was told to stop (a handler stuck where
            cancellation cannot reach it); a test fails instead of hanging.
        """
        box = self._box
        if self._thread.is_alive():
            assert box.token is not None
            assert box.stop is not None
            with suppress(trio.RunFinishedError):  # the server already ended: join and report
                box.token.run_sync_soon(box.stop.set)
            self._thread.join(self._stop_timeout)
            if self._thread.is_alive():
                raise TimeoutError(
                    f"the test SMTP server thread did not stop within {self._stop_timeout}s"
                )
        if box.error is not None:
            error, box.error = box.error, None
            raise error


def _unwrap(error: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (the nurseries' wrapping)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@contextmanager
def serve_in_thread(
    config: Config | None = None,
    *,
    options: CaptureOptions | None = None,
    host: str = "127.0.0.1",
    start_timeout: float = 30.0,
    stop_grace: float = 5.0,
    stop_timeout: float = 30.0,
    workdir: Path | None = None,
) -> Iterator[ThreadedServer]:
    """Run a capturing server on a background thread for the ``with`` block.

    Example::

        with serve_in_thread() as running:
            with smtplib.SMTP(running.host, running.port) as client:
                client.sendmail("a@example.org", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nHi")
            [captured] = running.wait_for(1)

    Args:
      config: As for :func:`~mailio_trio.testing.start_capturing_server`.
      options: As for :func:`~mailio_trio.testing.start_capturing_server`.
      host: The loopback address to listen on.
      start_timeout: Seconds to wait for the port to be bound before giving up
        (a safety net for a wedged machine, not a delay: start-up is signalled).
      stop_grace: Seconds a transaction still in DATA at exit may take to
        finish before the server is cancelled.
      stop_timeout: Seconds to wait for the server thread to end at exit,
        beyond ``stop_grace``, before raising ``TimeoutError`` (a safety net,
        as ``start_timeout`` is: the thread's end is joined, never slept on).
      workdir: As for :func:`~mailio_trio.testing.start_capturing_server`.

    Raises:
      OSError: The port could not be bound (and whatever else start-up raised).
    """
    # Imported here: mailio_trio.testing imports this module at its top.
    from mailio_trio.testing import start_capturing_server

    box = _Box()

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            box.running = await start_capturing_server(
                nursery, config, host=host, options=options, workdir=workdir
            )
            box.token = trio.lowlevel.current_trio_token()
            box.stop = trio.Event()
            box.ready.set()
            await box.stop.wait()
            box.running.server.shutdown()
            with trio.move_on_after(stop_grace):
                await box.running.server.wait_stopped()
            nursery.cancel_scope.cancel()

    def run() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # handed to the test thread, raised there
            box.error = exc
        finally:
            box.ready.set()

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    if not box.ready.wait(start_timeout):
        raise TimeoutError(f"the test SMTP server did not start within {start_timeout}s")
    if box.running is None:
        thread.join()
        assert box.error is not None
        error, box.error = _unwrap(box.error), None
        raise error
    threaded = ThreadedServer(box.running, box, thread, stop_grace + stop_timeout)
    try:
        yield threaded
    finally:
        threaded.stop()
