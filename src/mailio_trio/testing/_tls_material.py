"""The throw-away TLS material of a capturing server with ``tls=True`` (trustme)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import ssl
    from pathlib import Path

__all__ = ["TLSMaterial"]


@attrs.frozen(kw_only=True)
class TLSMaterial:
    """A throw-away CA (trustme) and the server certificate it signed for this test.

    ``client_context()`` trusts exactly this CA; ``ca_path`` is the CA as a
    PEM file for clients that want one (the fixtures write it under pytest's
    per-worker temporary directory); ``ca_pem`` is its bytes.
    """

    ca: Any
    """The ``trustme.CA``."""
    server_context: ssl.SSLContext
    ca_path: Path | None = None
    """The CA certificate as a PEM file, when a directory was given to write it in."""

    @property
    def ca_pem(self) -> bytes:
        return bytes(self.ca.cert_pem.bytes())

    def client_context(self) -> ssl.SSLContext:
        import ssl

        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    @classmethod
    def create(cls, *names: str, directory: Path | None = None) -> TLSMaterial:
        import ssl

        try:
            import trustme
        except ImportError:
            raise RuntimeError(
                "mailio_trio.testing: tls=True needs trustme (pip install trustme)"
            ) from None
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*(names or ("localhost", "127.0.0.1", "::1"))).configure_cert(context)
        ca_path = None
        if directory is not None:
            ca_path = directory / "mailio-test-ca.pem"
            ca.cert_pem.write_to_path(str(ca_path))
        return cls(ca=ca, server_context=context, ca_path=ca_path)
