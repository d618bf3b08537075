"""A pytest plugin: every Trio test body runs under a deadline on the *real* clock.

A test that waits on the server and never gets its answer must fail, not
stall the run (with ``-x`` nothing after it would run, and only
``faulthandler_timeout`` — 120 s in pyproject.toml — would say anything, as a
stack dump). So each Trio test (pytest-trio's ``trio`` marker, which
``trio_mode`` puts on every ``async def`` test) gets a deadline, by default
:data:`DEFAULT_SECONDS`; the ``trio_deadline`` ini option (``-o
trio_deadline=N``) changes it for a run, and ``@pytest.mark.trio_deadline(N)``
for one test.

Why not ``trio.fail_after``: under ``autojump_clock`` or any ``MockClock``,
Trio's clock is virtual. An autojump clock leaps to the next deadline as soon
as every task is blocked, so a ``fail_after(60)`` around a test that waits on
a socket would fire at once; a ``MockClock`` that does not run would never
fire it. The deadline here is a :class:`threading.Timer`: real seconds,
whatever clock the run uses. When it expires, the timer thread asks the run
(:meth:`trio.lowlevel.TrioToken.run_sync_soon`, the thread-safe entry) to
cancel a cancel scope around the test body, and the test fails, naming the
deadline. It is invisible to the virtual clock: no Trio task waits on it, so
autojump never sees a deadline of ours.

Limits: only the test body is covered (a fixture's own waits need their own
bound); a test stuck in a blocking call with no checkpoint cannot be
cancelled, and ``faulthandler_timeout`` still catches that; Hypothesis tests
(one ``trio.run`` per example) are left alone.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any

import pytest
import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator

DEFAULT_SECONDS = 60.0
"""Well under ``faulthandler_timeout`` (120 s), far over any test's real run time."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "trio_deadline",
        "Real-time seconds a Trio test body may run before it fails (tests/trio_deadline.py)",
        default=str(DEFAULT_SECONDS),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "trio_deadline(seconds): this Trio test's real-time deadline"
    )


def _seconds(item: pytest.Function) -> float:
    marker = item.get_closest_marker("trio_deadline")
    if marker is not None:
        return float(marker.args[0])
    return float(item.config.getini("trio_deadline"))


def under_deadline(
    test: Callable[..., Coroutine[Any, Any, None]], seconds: float
) -> Callable[..., Coroutine[Any, Any, None]]:
    """``test``, failing if it has not finished after ``seconds`` of real time."""

    @functools.wraps(test)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        token = trio.lowlevel.current_trio_token()
        expired = threading.Event()
        with trio.CancelScope() as scope:

            def expire() -> None:
                expired.set()
                with contextlib.suppress(trio.RunFinishedError):  # the test ended a moment ago
                    token.run_sync_soon(scope.cancel)

            timer = threading.Timer(seconds, expire)
            timer.name = "trio-test-deadline"
            timer.daemon = True
            timer.start()
            try:
                await test(*args, **kwargs)
            finally:
                timer.cancel()
                timer.join()
                if expired.is_set():
                    # Replaces whatever the cancellation turned into inside the test.
                    pytest.fail(
                        f"did not finish within its {seconds:g} s real-time deadline "
                        "(tests/trio_deadline.py): something it waited for never came",
                        pytrace=False,
                    )

    return guarded


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    # tryfirst: the outermost wrapper, so this runs before pytest-trio swaps
    # item.obj for the function that calls trio.run, and wraps the test itself.
    if (
        isinstance(item, pytest.Function)
        and item.get_closest_marker("trio") is not None
        and inspect.iscoroutinefunction(item.obj)
        and not hasattr(item.obj, "hypothesis")
    ):
        item.obj = under_deadline(item.obj, _seconds(item))
    yield
