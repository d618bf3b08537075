"""DKIM-sign (RFC 6376) and ARC-seal (RFC 8617) what ``queue/relay`` spools.

Loaded once when the relay starts (:func:`load_signer`): every key file of
``[dkim.keys]`` is read and checked then, so a missing or bad key is one
:class:`~mailio_trio.config.ConfigError` at start, never an error per message.
RSA or Ed25519 is told from the PEM itself.

Which mail is signed, and with which domain's keys (:meth:`RelaySigner.headers_for`):

- Only mail that is *ours*: the session authenticated (a user, or
  ``Server.send_mail`` with its bounces), or its envelope sender is in a
  local domain (what ``rcpt/relay`` demands of unauthenticated relaying).
  Mail from others that an open relay passes on is never signed with our
  keys: that would vouch for a forgery.
- ``d=`` is the From header's domain when it is local and has keys, else the
  envelope sender's: DMARC (RFC 7489 §3.1.1) aligns ``d=`` with From, so the
  From domain comes first. A domain without keys of its own is signed for by
  its closest local parent that has some (``MAILER-DAEMON@mx.example.com`` by
  ``example.com``: relaxed alignment still holds).
- Every key of that domain signs: with an RSA and an Ed25519 key, two
  signatures (receivers that do not know Ed25519 ignore that one, RFC 8463 §5).

ARC (kept apart, :meth:`RelaySigner._arc_set`): mail from others, relayed while
a local domain is among its recipients (the domain that forwards it), gets an
ARC set sealed with that domain's RSA key when ``dkim.arc_seal`` is on. The
results it vouches for are ``queue/mailauth``'s Authentication-Results when
that handler ran (an object with a ``header_value`` string), else ``none``.

The header fields are written in front of the spool entry's message
(``Spool.prepare(headers=...)``), so the signature is as durable as the
message: a restart sends the same signed bytes. Signing hashes the whole
message and does RSA, so it runs in a worker thread, with the message read
whole (its size is bounded by ``limits.message_size``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.config import ConfigError, show

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterator
    from pathlib import Path

    from mailio_trio.chain import Request, Response
    from mailio_trio.config import Config, DkimKey
    from mailio_trio.mailauth.dkim import DkimSignConfig, DkimSigningKey
    from mailio_trio.message import Envelope, Message

__all__ = ["RelaySigner", "load_signer"]

INSTALL_HINT = "pip install 'mailio-trio[mailauth]'"


@attrs.frozen(kw_only=True)
class RelaySigner:
    """The loaded keys and what to do with them; one per server."""

    config: Config
    keys: DkimSignConfig
    sign: bool
    arc_seal: bool

    def _domains(self, domain: str) -> Iterator[str]:
        """``domain`` and its parents, nearest first, that are local and have keys."""
        labels = domain.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            if self.config.is_local_domain(candidate) and self.keys.keys_for(candidate):
                yield candidate

    def signing_domain(self, from_domain: str | None, sender_domain: str | None) -> str | None:
        """The ``d=`` for a message of ours (see the module docstring), or ``None``."""
        for domain in (from_domain, sender_domain):
            if domain:
                for candidate in self._domains(domain):
                    return candidate
        return None

    async def headers_for(self, req: Request, res: Response, message: Message) -> bytes:
        """The header fields to write in front of the spooled message (``b""``: none).

        Never raises for the message's sake: a message that cannot be signed
        (no From, does not parse) is relayed unsigned, and the reason logged.
        """
        path = message.path
        envelope = message.envelope
        sender = envelope.sender
        sender_domain = sender.domain if sender is not None and sender.domain else None
        ours = req.session.user is not None or (
            sender_domain is not None and self.config.is_local_domain(sender_domain)
        )
        if ours:
            if not self.sign:
                return b""
            return await trio.to_thread.run_sync(self._sign_sync, path, sender_domain, res.log)
        arc_domain = self._arc_domain(envelope)
        if arc_domain is None:
            return b""
        # queue/mailauth's verdict, when it ran; an empty value (it skipped a trusted
        # client) is no results either.
        text = getattr(res.get("queue/mailauth"), "header_value", None)
        results = text if isinstance(text, str) and text.strip() else None
        return await trio.to_thread.run_sync(self._arc_set, path, arc_domain, results, res.log)

    def _sign_sync(
        self, path: Path, sender_domain: str | None, log: logging.LoggerAdapter[logging.Logger]
    ) -> bytes:
        from mailio_trio.mailauth.dkim import sign_keys
        from mailio_trio.mailauth.dmarc import header_from

        message = path.read_bytes()
        author = header_from(message.partition(b"\r\n\r\n")[0]).domain
        domain = self.signing_domain(author, sender_domain)
        if domain is None:
            return b""
        keys = self.keys.keys_for(domain)
        try:
            headers = sign_keys(message, keys)
        except ValueError as exc:
            log.warning("not DKIM-signed for %s: %s", domain, exc)
            return b""
        log.info("DKIM-signed for %s (%s)", domain, ", ".join(k.selector for k in keys))
        return headers

    # -- ARC: others' mail that a local domain forwards ------------------------

    def _arc_domain(self, envelope: Envelope) -> str | None:
        """The local domain that forwards this message and has an RSA key, if sealing is on."""
        if not self.arc_seal:
            return None
        from mailio_trio.mailauth.dkim import DkimAlgorithm

        for recipient in envelope.recipients:
            domain = recipient.domain
            if domain and self.config.is_local_domain(domain):
                keys = self.keys.keys_for(domain)
                if any(k.algorithm is DkimAlgorithm.RSA_SHA256 for k in keys):
                    return domain.lower().rstrip(".")
        return None

    def _arc_set(
        self,
        path: Path,
        domain: str,
        results: str | None,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> bytes:
        from mailio_trio.mailauth.arc import seal
        from mailio_trio.mailauth.dkim import DkimAlgorithm

        message = path.read_bytes()
        if results is None:
            if _has_arc_chain(message):
                # Sealing a chain we did not verify would assert cv= we never checked.
                log.info("not ARC-sealed: the message has a chain and no queue/mailauth results")
                return b""
            results = "none"  # RFC 8601 §2.2: no authentication was done
        key = next(k for k in self.keys.keys_for(domain) if k.algorithm is DkimAlgorithm.RSA_SHA256)
        try:
            headers = seal(
                message,
                domain=domain,
                selector=key.selector,
                private_key_pem=key.private_key_pem,
                # As queue/mailauth's header names us: dkimpy matches it exactly.
                authserv_id=self.config.mailauth.authserv_id or self.config.hostname,
                authentication_results_text=results,
            )
        except ValueError as exc:
            log.warning("not ARC-sealed for %s: %s", domain, exc)
            return b""
        log.info("ARC-sealed for %s (%s)", domain, key.selector)
        return headers


def _has_arc_chain(message: bytes) -> bool:
    block = message.split(b"\r\n\r\n", 1)[0].lower()
    return block.startswith(b"arc-seal:") or b"\narc-seal:" in block


# -- loading -------------------------------------------------------------------


def _load_key(domain: str, index: int, entry: DkimKey) -> DkimSigningKey:
    """Read and check one key file; a one-line ConfigError naming the key and the path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from mailio_trio.mailauth.dkim import DkimAlgorithm, DkimSigningKey

    # A configured domain has a dot and only LDH characters, so it is always quoted as is.
    where = f'dkim.keys."{domain}"[{index}].key = {show(str(entry.key))}'
    try:
        data = entry.key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        key: Any = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: an encrypted key (the server has no one to ask for the passphrase).
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{where}: not an unencrypted PEM private key ({reason}); "
            "make one with `mailio-trio dkim keygen`"
        ) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = DkimAlgorithm.ED25519_SHA256
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ConfigError(
                f"{where}: an RSA key of {key.key_size} bits; RFC 8301 §3.2 wants at least 1024"
            )
        algorithm = DkimAlgorithm.RSA_SHA256
    else:
        raise ConfigError(
            f"{where}: not an RSA or Ed25519 key (DKIM has no other, {type(key).__name__})"
        )
    return DkimSigningKey(
        domain=domain,
        selector=entry.selector,
        private_key_pem=data.decode("ascii"),
        algorithm=algorithm,
    )


def load_signer(config: Config) -> RelaySigner | None:
    """Read every ``[dkim.keys]`` file once; ``None`` when there is nothing to sign with.

    Raises:
      ConfigError: One line: dkimpy is not installed, a key file is missing,
        unreadable or not a usable key, or a domain with keys is not local.
    """
    dkim = config.dkim
    if not dkim.keys or not (dkim.sign or dkim.arc_seal):
        return None
    try:
        from mailio_trio.mailauth.dkim import DkimSignConfig
    except ImportError as exc:
        raise ConfigError(
            f"dkim.keys: signing needs the mailauth extra ({exc.name or exc} is missing): "
            f"{INSTALL_HINT}"
        ) from None
    keys: list[DkimSigningKey] = []
    for domain, entries in dkim.keys.items():
        if not config.is_local_domain(domain):
            raise ConfigError(
                f'dkim.keys."{domain}": not a local domain (server.domains = '
                f"{show(list(config.domains))}); only local domains sign"
            )
        keys.extend(_load_key(domain, i, entry) for i, entry in enumerate(entries))
    return RelaySigner(
        config=config, keys=DkimSignConfig(keys=keys), sign=dkim.sign, arc_seal=dkim.arc_seal
    )
