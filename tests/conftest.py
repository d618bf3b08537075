"""Shared fixtures: a throw-away CA (trustme) and TLS contexts signed by it."""

from __future__ import annotations

import ssl

import pytest
import trustme

# pytester runs pytest as a user would (tests/test_pytest_plugin.py, tests/test_sample_app.py).
# The mailio fixtures come from the pytest11 entry point, not from here.
pytest_plugins = ["pytester"]


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
