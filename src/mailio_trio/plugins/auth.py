"""AUTH (RFC 4954): SASL PLAIN, LOGIN and, when a handler knows secrets, CRAM-MD5.

``auth/core`` runs the exchange and puts the claimed identity in ``req.user``
(a :class:`Credentials`); the handlers after it decide. ``auth/users`` is the
built-in check against ``[auth.users]`` (salted scrypt hashes); a handler of
your own checks credentials the mail-io way::

    @server.handler("auth")
    async def check(req, res):
        if await my_directory.verify(req.user.username, req.user.password):
            res.accept()
        else:
            res.reject(535, "5.7.8 Authentication credentials invalid")

Security:
  * AUTH is offered and accepted only where it may be used: after TLS unless
    ``auth.allow_insecure`` (``538 5.7.11`` otherwise, RFC 4954 §4 / RFC 3848),
    and never when no credentials check exists — mail-io accepted everyone then.
  * Every AUTH that does not end in ``235`` counts toward
    ``limits.auth_failures``; the next attempt after that many gets ``421 4.7.0``
    and the connection is closed (brute force costs a reconnect each round).
  * Secrets never reach a log: the transcript shows ``AUTH <mech> ***`` and
    ``<n octets>`` for the exchange lines, and :class:`Credentials` hides the
    password and CRAM-MD5 digest from ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.abuse import AbuseKind
from mailio_trio.chain import CORE, Chain, Handler, Request, Response
from mailio_trio.config import AuthConfig, Mechanism
from mailio_trio.passwords import DUMMY_HASH, verify_password
from mailio_trio.protocol import ClientProtocolError, Reply

if TYPE_CHECKING:
    from mailio_trio.chain import HandlerSession

__all__ = ["AuthConfig", "Credentials", "Mechanism", "credentials_check_configured"]

USERS = "users"
"""The name of the built-in ``[auth.users]`` check (``auth/users``)."""

CANCELLED = Reply(501, "Authentication cancelled", "5.0.0")
MALFORMED = Reply(501, "Cannot decode response: not valid base64", "5.5.2")
INVALID = Reply(535, "Authentication credentials invalid", "5.7.8")


@attrs.frozen(kw_only=True)
class Credentials:
    """What the client claimed in AUTH (``req.user``; ``session.user`` once accepted).

    ``password`` is ``None`` for CRAM-MD5, where only :meth:`check_secret` can tell.
    """

    mechanism: Mechanism
    username: str
    password: str | None = attrs.field(default=None, repr=False)
    authzid: str | None = None
    """RFC 4616 authorization identity ("act as"); ``None`` when not given."""
    challenge: bytes | None = attrs.field(default=None, repr=False)
    digest: str | None = attrs.field(default=None, repr=False)

    def check_secret(self, secret: str) -> bool:
        """Whether ``secret`` (the stored plain password) matches, for any mechanism."""
        if self.mechanism is Mechanism.CRAM_MD5:
            assert self.challenge is not None
            assert self.digest is not None
            expected = hmac.new(secret.encode("utf-8"), self.challenge, hashlib.md5).hexdigest()
            return hmac.compare_digest(expected, self.digest.lower())
        assert self.password is not None
        return hmac.compare_digest(self.password.encode("utf-8"), secret.encode("utf-8"))


def credentials_check_configured(session: HandlerSession) -> bool:
    """A user table or an ``auth`` handler of the user's own exists to check credentials.

    A table whose ``auth/users`` handler is disabled checks nothing: it does not count.
    """
    names = {h.name for h in session.handlers("auth")}
    if CORE not in names:
        return False
    table = USERS in names and bool(session.config.auth.users)
    # "auth/fault" (mailio_trio.testing's fault injection) refuses on cue and
    # accepts otherwise: it checks no credentials, so it does not count.
    return table or bool(names - {CORE, USERS, "fault"})


def usable(session: HandlerSession) -> bool:
    """Whether AUTH may be offered to ``session`` now."""
    config = session.config.auth
    return (
        session.user is None
        and (session.secure or config.allow_insecure)
        and credentials_check_configured(session)
    )


def extension(session: HandlerSession) -> str | None:
    if not usable(session):
        return None
    return "AUTH " + " ".join(m.value for m in session.config.auth.mechanisms)


# -- the exchange ---------------------------------------------------------------


def _decode(text: str) -> bytes:
    if text == "*":
        raise ClientProtocolError(CANCELLED)
    if text == "=":  # RFC 4954 §4: an empty initial response
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ClientProtocolError(MALFORMED) from None


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientProtocolError(Reply(501, "Credentials are not UTF-8", "5.5.2")) from None


async def _ask(res: Response, challenge: bytes) -> bytes:
    await res.write(Reply(334, base64.b64encode(challenge).decode("ascii"), None))
    return _decode(await res.read())


async def _plain(res: Response, initial: str | None) -> Credentials:
    data = _decode(initial) if initial is not None else await _ask(res, b"")
    parts = data.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        raise ClientProtocolError(Reply(501, "PLAIN wants authzid NUL authcid NUL passwd", "5.5.2"))
    authzid, username, password = (_utf8(p) for p in parts)
    return Credentials(
        mechanism=Mechanism.PLAIN,
        username=username,
        password=password,
        authzid=authzid or None,
    )


async def _login(res: Response, initial: str | None) -> Credentials:
    user = _decode(initial) if initial is not None else await _ask(res, b"Username:")
    password = await _ask(res, b"Password:")
    return Credentials(mechanism=Mechanism.LOGIN, username=_utf8(user), password=_utf8(password))


async def _cram_md5(res: Response, initial: str | None, hostname: str) -> Credentials:
    if initial is not None:  # RFC 2195: the server speaks first
        raise ClientProtocolError(Reply(501, "CRAM-MD5 takes no initial response", "5.5.2"))
    challenge = f"<{secrets.randbelow(10**12)}.{int(time.time())}@{hostname}>".encode("ascii")
    user, _, digest = _utf8(await _ask(res, challenge)).rpartition(" ")
    if not user or len(digest) != 32:
        raise ClientProtocolError(Reply(501, "CRAM-MD5 wants user SP hex-digest", "5.5.2"))
    return Credentials(
        mechanism=Mechanism.CRAM_MD5, username=user, challenge=challenge, digest=digest
    )


async def auth(req: Request, res: Response) -> None:
    session = req.session
    config = session.config.auth
    limit = session.config.limits.auth_failures
    if not credentials_check_configured(session):
        res.reject(502, "Command not implemented", "5.5.1")
    elif session.counters.auth_failures >= limit:
        session.context.abuse_log.log(  # a password-guessing botnet: one line per guess
            AbuseKind.AUTH_FAILED,
            res.log,
            logging.INFO,
            "closing after %d failed AUTH attempts",
            session.counters.auth_failures,
        )
        res.end(421, "Too many failed authentication attempts, closing connection", "4.7.0")
    elif session.user is not None:
        res.reject(503, "Already authenticated", "5.5.1")
    elif not session.esmtp:
        res.reject(503, "Send EHLO first", "5.5.1")
    elif session.in_transaction:
        res.reject(503, "AUTH not permitted during a mail transaction", "5.5.1")
    elif not (session.secure or config.allow_insecure):
        res.reject(538, "Encryption required for requested authentication mechanism", "5.7.11")
    else:
        await _exchange(req, res)


async def _exchange(req: Request, res: Response) -> None:
    session = req.session
    name, _, initial = req.argument.strip().partition(" ")
    if not name:
        res.reject(501, "Syntax: AUTH mechanism [initial-response]", "5.5.4")
        return
    mech = next((m for m in session.config.auth.mechanisms if m.value == name.upper()), None)
    if mech is None:
        res.reject(504, "Unrecognized authentication type", "5.5.4")
        return
    # Counted now and taken back on success: a cancel, a malformed response and a
    # rejection by any later handler all count, with no hook after the chain.
    session.counters.auth_failures += 1
    response = initial.strip() or None
    if mech is Mechanism.PLAIN:
        user = await _plain(res, response)
    elif mech is Mechanism.LOGIN:
        user = await _login(res, response)
    else:
        user = await _cram_md5(res, response, session.config.hostname)
    req.user = user

    def authenticated() -> None:
        session.counters.auth_failures -= 1
        session.user = user
        session.log.info("authenticated as %r with %s", user.username, user.mechanism.value)

    req.on_accept(authenticated)
    res.accept(235, "Authentication successful", "2.7.0")


async def check_users(req: Request, res: Response) -> None:
    """``auth/users``: the ``[auth.users]`` table; passes when the table is empty."""
    users = req.session.config.auth.users
    if not users:
        res.accept()
        return
    user = req.user
    assert isinstance(user, Credentials)
    stored = users.get(user.username)
    if user.password is None:  # CRAM-MD5: a hash cannot answer it
        res.reject(535, INVALID.text, INVALID.enhanced)
        return
    # Unknown users cost a full scrypt too, so timing does not reveal who exists.
    ok = await trio.to_thread.run_sync(verify_password, user.password, stored or DUMMY_HASH)
    if stored is None or not ok:
        abuse_log = req.session.context.abuse_log
        abuse_log.log(
            AbuseKind.AUTH_FAILED,
            res.log,
            logging.INFO,
            "authentication failed for %r",
            user.username,
        )
        res.reject(535, INVALID.text, INVALID.enhanced)
    elif user.authzid is not None and user.authzid != user.username:
        res.log.info("%r may not act as %r", user.username, user.authzid)
        res.reject(535, INVALID.text, INVALID.enhanced)
    else:
        res.accept()


def register(chain: Chain) -> None:
    chain.add(Handler(command="auth", name=CORE, func=auth))
    chain.add(Handler(command="auth", name=USERS, func=check_users))
    chain.add_extension(extension)
