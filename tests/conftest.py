"""Shared test setup: TLS material (trustme), and both socket I/O paths for e2e suites.

Plain TCP sessions drive their socket directly (``connection.FAST_SOCKET_IO``);
TLS sessions and any other stream go through Trio's stream API. Every test in
the end-to-end modules runs both ways, so the two paths must behave the same.
"""

from __future__ import annotations

import ssl

import pytest
import trustme

from mailio_trio.server import _connection as connection

# pytester runs pytest as a user would (tests/testing/test_pytest_plugin.py and
# tests/testing/test_sample_app.py).
# The mailio fixtures come from the pytest11 entry point, not from here.
# trio_deadline: every Trio test fails after a real-time deadline instead of hanging.
pytest_plugins = ["pytester", "trio_deadline"]


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A CA that exists only for this test run; its certificates name ``mx.test`` and loopback."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("mx.test", "localhost", "127.0.0.1", "::1")


@pytest.fixture
def server_tls_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_server_cert.configure_cert(context)
    return context


@pytest.fixture
def client_tls_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """Verifies the server's certificate against :func:`tls_ca`, as a real client would."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


# Test modules that talk to a real server over sockets.
_BOTH_IO_PATHS = ("test_e2e", "test_workers")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rpartition(".")[2].startswith(_BOTH_IO_PATHS):
        metafunc.fixturenames.append("socket_io_path")
        metafunc.parametrize("socket_io_path", ["fast-io", "trio-stream-io"], indirect=True)


@pytest.fixture(autouse=True)
def _use_socket_io_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixture name pytest_generate_tests adds is parametrized but never set up
    # unless the test names it: before this, the "trio-stream-io" runs of tests
    # that did not name it went over the fast path all the same.
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "socket_io_path" in callspec.params:
        fast = callspec.params["socket_io_path"] == "fast-io"
        monkeypatch.setattr(connection, "FAST_SOCKET_IO", fast)


@pytest.fixture
def socket_io_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which I/O path plain sessions use in this test (``fast-io`` or ``trio-stream-io``)."""
    path: str = request.param
    monkeypatch.setattr(connection, "FAST_SOCKET_IO", path == "fast-io")
    return path
