"""pytest fixtures for tests that need a real SMTP server (entry point ``pytest11``).

Only fixtures live here; the logic is in :mod:`mailio_trio.testing`, imported
inside the fixtures so that loading the plugin costs nothing for test suites
that never use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import trio

    from mailio_trio.testing import RunningServer


@pytest.fixture
async def mailio_server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    """A capturing mailio_trio server on 127.0.0.1 and a free port (Trio tests).

    ``mailio_server.host`` / ``.port`` to connect, ``.messages`` for what it
    accepted, ``await mailio_server.outbox.wait_for(n)`` to wait for mail.
    """
    from mailio_trio.testing import start_capturing_server

    running = await start_capturing_server(nursery)
    yield running
    running.server.shutdown()
