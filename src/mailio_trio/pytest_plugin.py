"""pytest fixtures for tests that need a real SMTP server (entry point ``pytest11``).

Only fixtures live here; the logic is in :mod:`mailio_trio.testing`, imported
inside the fixtures so that loading the plugin costs nothing for test suites
that never use it — and pytest-trio is never imported here: the Trio fixture
asks for its ``nursery`` fixture by name.

Options come from a marker, the closest one winning::

    @pytest.mark.mailio(domains=["example.com"], size_limit=10_000)
    def test_big_mail_is_refused(mailio_server_thread): ...

or from indirect parametrization (``request.param``, a dict of the same
options), which is merged over the marker's. ``mailio_server_factory`` starts
as many servers as a test wants, each with its own options.

Safe under pytest-xdist: every server listens on port 0 (the system picks a
free one), keeps its mail in memory, and writes its one file (the TLS CA)
under ``tmp_path_factory``, which is per worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    import trio

    from mailio_trio.testing import CaptureOptions, RunningServer, ThreadedServer

MARKER = "mailio"
OPTIONS_HELP = (
    "mailio(domains=None, size_limit=None, auth_users=None, tls=False, hostname='mx.test', "
    "auth=False, web=False, faults=(), fault_probability=(), rate_limit=None, chaos_seed=0): "
    "options of the mailio_server and mailio_server_thread fixtures"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", OPTIONS_HELP)


def _options(request: pytest.FixtureRequest) -> CaptureOptions:
    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = {}
    if marker is not None:
        if marker.args:
            pytest.fail(
                f"@pytest.mark.{MARKER} takes keyword options only, not {marker.args!r}",
                pytrace=False,
            )
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        options.update(param)
    return _build(options, f"@pytest.mark.{MARKER}")


def _build(options: dict[str, Any], where: str) -> CaptureOptions:
    from mailio_trio.testing import CaptureOptions

    try:
        return CaptureOptions.from_mapping(options, where=where)
    except (TypeError, ValueError) as exc:
        pytest.fail(
            f"{where}: {exc}" if not str(exc).startswith(where) else str(exc), pytrace=False
        )


def _workdir(factory: pytest.TempPathFactory, options: CaptureOptions) -> Path | None:
    # Only TLS writes a file (the CA); one directory per server, under the worker's base.
    return factory.mktemp("mailio") if options.tls else None


@pytest.fixture
async def mailio_server(
    nursery: trio.Nursery, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    """A capturing SMTP server on 127.0.0.1 and a free port, in the test's nursery (Trio tests).

    ``.host``/``.port`` to connect; ``.messages`` (each with ``envelope.sender``,
    ``envelope.recipients``, ``raw``, ``message``); ``await .wait_for(n, timeout=...)``;
    ``.clear()``; ``.find(recipient=..., subject=...)``; faults with
    ``.fail_next("rcpt", 452)``, ``.drop_next("message")``, ``.delay_next("mail", 1.0)``.
    Options: ``@pytest.mark.mailio(...)``. Needs pytest-trio.
    """
    from mailio_trio.testing import start_capturing_server

    options = _options(request)
    running = await start_capturing_server(
        nursery, options=options, workdir=_workdir(tmp_path_factory, options)
    )
    yield running
    running.server.shutdown()


@pytest.fixture
def mailio_server_thread(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    """The same capturing SMTP server on a background thread, for ordinary (sync) tests.

    Started before the test once its port is bound, stopped and joined after
    it. Same API as ``mailio_server`` but ``.wait_for(n, timeout=...)`` blocks
    and ``.messages`` is a snapshot. Options: ``@pytest.mark.mailio(...)``.
    """
    from mailio_trio.testing import serve_in_thread

    options = _options(request)
    with serve_in_thread(options=options, workdir=_workdir(tmp_path_factory, options)) as running:
        yield running


@pytest.fixture
def mailio_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ThreadedServer]]:
    """A function that starts a capturing SMTP server per call, each stopped after the test.

    ``make(web=True, tls=True, auth=True)`` takes the marker's options as
    keywords and returns a server like ``mailio_server_thread``'s (on its own
    thread, so a Trio test may use it too: ``await trio.to_thread.run_sync(server.wait_for, 1)``).
    """
    import contextlib

    from mailio_trio.testing import serve_in_thread

    with contextlib.ExitStack() as stack:

        def make(**options: Any) -> ThreadedServer:
            built = _build(options, "mailio_server_factory")
            workdir = _workdir(tmp_path_factory, built)
            return stack.enter_context(serve_in_thread(options=built, workdir=workdir))

        yield make
