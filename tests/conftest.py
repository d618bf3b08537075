"""Shared test setup: end-to-end suites run over both socket I/O paths of a session.

Plain TCP sessions drive their socket directly (``session.FAST_SOCKET_IO``);
TLS sessions and any other stream go through Trio's stream API. Every test in
the end-to-end modules runs both ways, so the two paths must behave the same.
"""

from __future__ import annotations

import pytest

from mailio_trio import session

# Test modules that talk to a real server over sockets.
_BOTH_IO_PATHS = ("test_e2e", "test_workers")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rpartition(".")[2].startswith(_BOTH_IO_PATHS):
        metafunc.fixturenames.append("socket_io_path")
        metafunc.parametrize("socket_io_path", ["fast-io", "trio-stream-io"], indirect=True)


@pytest.fixture
def socket_io_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which I/O path plain sessions use in this test (``fast-io`` or ``trio-stream-io``)."""
    path: str = request.param
    monkeypatch.setattr(session, "FAST_SOCKET_IO", path == "fast-io")
    return path
