"""pytest fixtures for tests that need a real SMTP server (entry point ``pytest11``).

Only fixtures live here; the logic is in :mod:`mailio_trio.testing`, imported
inside the fixtures so that loading the plugin costs nothing for test suites
that never use it — and pytest-trio is never imported here: the Trio fixture
asks for its ``nursery`` fixture by name.

Options come from a marker, the closest one winning::

    @pytest.mark.mailio(domains=["example.com"], size_limit=10_000)
    def test_big_mail_is_refused(mailio_server_thread): ...

or from indirect parametrization (``request.param``, a dict of the same
options), which is merged over the marker's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import trio

    from mailio_trio.testing import CaptureOptions, RunningServer, ThreadedServer

MARKER = "mailio"
OPTIONS_HELP = (
    "mailio(domains=None, size_limit=None, auth_users=None, tls=False, hostname='mx.test'): "
    "options of the mailio_server and mailio_server_thread fixtures"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", OPTIONS_HELP)


def _options(request: pytest.FixtureRequest) -> CaptureOptions:
    from mailio_trio.testing import CaptureOptions

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
    try:
        return CaptureOptions.from_mapping(options, where=f"@pytest.mark.{MARKER}")
    except (TypeError, ValueError) as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
async def mailio_server(
    nursery: trio.Nursery, request: pytest.FixtureRequest
) -> AsyncIterator[RunningServer]:
    """A capturing SMTP server on 127.0.0.1 and a free port, in the test's nursery (Trio tests).

    ``.host``/``.port`` to connect; ``.messages`` (each with ``envelope.sender``,
    ``envelope.recipients``, ``raw``, ``message``); ``await .wait_for(n, timeout=...)``;
    ``.clear()``; ``.find(recipient=..., subject=...)``; faults with
    ``.fail_next("rcpt", 452)``, ``.drop_next("message")``, ``.delay_next("mail", 1.0)``.
    Options: ``@pytest.mark.mailio(...)``. Needs pytest-trio.
    """
    from mailio_trio.testing import start_capturing_server

    running = await start_capturing_server(nursery, options=_options(request))
    yield running
    running.server.shutdown()


@pytest.fixture
def mailio_server_thread(request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    """The same capturing SMTP server on a background thread, for ordinary (sync) tests.

    Started before the test once its port is bound, stopped and joined after
    it. Same API as ``mailio_server`` but ``.wait_for(n, timeout=...)`` blocks
    and ``.messages`` is a snapshot. Options: ``@pytest.mark.mailio(...)``.
    """
    from mailio_trio.testing import serve_in_thread

    with serve_in_thread(options=_options(request)) as running:
        yield running
