"""TLS configuration: certificates, the server's ``ssl.SSLContext``, throw-away certificates.

This module owns how a :class:`~mailio_trio.config.TLSConfig` (the ``[tls]``
section, validated in ``mailio_trio.config``) becomes an :class:`ssl.SSLContext`
(for STARTTLS and implicit-TLS listeners alike) and must never let a bad path
or a mismatched key surface as a traceback: every problem an operator can fix
is one :class:`~mailio_trio.ConfigError` line naming the key.

Security defaults:
  * TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1; RFC 8314 §4.1 asks
    for current versions); ``tls.minimum_version = "TLSv1.3"`` raises it.
  * Cipher suites are OpenSSL's defaults unless ``tls.ciphers`` is set: the
    distribution's policy is better maintained than a list frozen here.
  * No private key ships with the package (mail-io bundled one): without a
    certificate STARTTLS is simply not offered. ``--tls-self-signed`` makes a
    throw-away pair for development, with the ``openssl`` command when present
    (no runtime dependency) or ``trustme`` if installed (the ``self-signed``
    extra), never silently.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
from typing import TYPE_CHECKING

from mailio_trio.config import ConfigError, TLSConfig, TLSVersion

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["TLSConfig", "TLSVersion", "build_server_context", "make_self_signed"]

logger = logging.getLogger("mailio_trio.tls")


def _readable(key: str, path: Path) -> None:
    """One line for the operator if ``path`` cannot be read (``ssl`` says only 'No such file')."""
    try:
        with path.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        raise ConfigError(f"{key} = {str(path)!r}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{key} = {str(path)!r}: is a directory, not a PEM file") from None
    except OSError as exc:
        raise ConfigError(f"{key} = {str(path)!r}: cannot read: {exc.strerror or exc}") from None


def build_server_context(config: TLSConfig) -> ssl.SSLContext | None:
    """The server-side context for ``config``; ``None`` when no certificate is configured.

    Reads the files now, so a reload (SIGHUP) picks up renewed certificates.

    Raises:
      ConfigError: A file is missing or unreadable, the key does not match the
        certificate, or the cipher string selects nothing.
    """
    if config.cert is None:
        return None
    _readable("tls.cert", config.cert)
    if config.key is not None:
        _readable("tls.key", config.key)
    if config.ca is not None:
        _readable("tls.ca", config.ca)
    # PROTOCOL_TLS_SERVER with Purpose.CLIENT_AUTH defaults: no compression,
    # single-use DH/ECDH keys, renegotiation off where OpenSSL allows it.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = config.minimum_version.ssl_version
    try:
        context.load_cert_chain(config.cert, config.key)
    except ssl.SSLError as exc:
        keys = "tls.cert/tls.key" if config.key is not None else "tls.cert"
        raise ConfigError(
            f"{keys} = {str(config.cert)!r}: not a usable PEM certificate and matching "
            f"private key ({exc.reason or exc})"
        ) from None
    if config.ca is not None:
        try:
            context.load_verify_locations(cafile=config.ca)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"tls.ca = {str(config.ca)!r}: not a PEM CA bundle ({exc.reason or exc})"
            ) from None
    if config.request_client_cert:
        # CERT_OPTIONAL: verify a certificate when offered, serve clients without one.
        context.verify_mode = ssl.CERT_OPTIONAL
    if config.ciphers is not None:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"tls.ciphers = {config.ciphers!r}: selects no cipher OpenSSL knows"
            ) from None
    return context


class SelfSignedError(RuntimeError):
    """No way to make a throw-away certificate here (no ``openssl``, no ``trustme``)."""


def make_self_signed(directory: Path, hostname: str) -> tuple[Path, Path]:
    """Write a throw-away self-signed certificate for ``hostname`` into ``directory``.

    For development only: clients verify it only when given it as a trust
    anchor (``mailio-trio send --cafile``). Uses the ``openssl``
    command when on ``PATH`` (nothing to install), else ``trustme`` when
    importable (``pip install mailio-trio[self-signed]``).

    Returns:
      The certificate and key paths.

    Raises:
      SelfSignedError: Neither tool is available, or ``openssl`` failed.
    """
    cert, key = directory / "self-signed-cert.pem", directory / "self-signed-key.pem"
    openssl = shutil.which("openssl")
    if openssl is not None:
        _openssl_self_signed(openssl, hostname, cert, key)
    else:
        try:
            import trustme  # optional extra, only for this fallback
        except ImportError:
            raise SelfSignedError(
                "--tls-self-signed needs the openssl command or the trustme package "
                "(pip install 'mailio-trio[self-signed]')"
            ) from None
        ca = trustme.CA()
        issued = ca.issue_cert(hostname, "localhost", "127.0.0.1", "::1")
        # The CA after the leaf: a client given this file (send --cafile) trusts the CA.
        cert.write_bytes(issued.cert_chain_pems[0].bytes() + ca.cert_pem.bytes())
        issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    logger.warning(
        "TLS: using a throw-away self-signed certificate for %s in %s (development only; "
        "clients must be given it to trust)",
        hostname,
        cert,
    )
    return cert, key


def _openssl_self_signed(openssl: str, hostname: str, cert: Path, key: Path) -> None:
    san = f"subjectAltName=DNS:{hostname},DNS:localhost,IP:127.0.0.1,IP:::1"
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "7",
        "-subj",
        f"/CN={hostname}",
        "-addext",
        san,
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    # umask so the private key is never readable by others, even briefly.
    old = os.umask(0o077)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        os.umask(old)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SelfSignedError(f"openssl could not make a self-signed certificate: {last}")
