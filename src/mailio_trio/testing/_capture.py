"""The capturing server: in-process, on loopback, keeping what it accepts."""

from __future__ import annotations

import email.parser
import email.policy
import threading
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.chain import CORE, Handler, Request, Response, make_reply
from mailio_trio.config import Config
from mailio_trio.server import Server
from mailio_trio.testing import _content
from mailio_trio.testing._chaos import (
    ChaosSettings,
    ChaosTrigger,
    RateLimit,
    parse_fault,
    parse_rate_limit,
    parse_trigger,
)
from mailio_trio.testing._faults import FaultKind, Faults, Stage
from mailio_trio.testing._raw import open_raw_connection
from mailio_trio.testing._threaded import DEFAULT_WAIT
from mailio_trio.testing._tls_material import TLSMaterial

if TYPE_CHECKING:
    from collections.abc import Mapping
    from email.message import EmailMessage
    from pathlib import Path

    from mailio_trio.dns import Resolver
    from mailio_trio.inbox import Inbox
    from mailio_trio.mailauth.dkim import DkimResult
    from mailio_trio.message import Envelope
    from mailio_trio.testing._content import Attachment

__all__ = [
    "CaptureOptions",
    "CapturedMessage",
    "Outbox",
    "RunningServer",
    "TLSMaterial",
    "start_capturing_server",
]


@attrs.frozen(kw_only=True)
class CapturedMessage:
    """One accepted message: envelope, bytes as stored, parsed message, session facts."""

    envelope: Envelope
    raw: bytes
    """The message as stored, our ``Received:`` line then the client's bytes (CRLF)."""
    client_address: str
    helo: str | None
    secure: bool
    """The message came over TLS."""
    user: Any
    """Who authenticated (AUTH), or ``None``."""
    auth: Any = None
    """The email authentication verdict (``res.get("queue/mailauth")``, a
    :class:`~mailio_trio.plugins.mailauth.MailauthVerdict`), or ``None`` when not checked."""

    @property
    def message(self) -> EmailMessage:
        """The message parsed with ``email.policy.default``."""
        parser = email.parser.BytesParser(policy=email.policy.default)
        return parser.parsebytes(self.raw)

    @property
    def text(self) -> str:
        """The ``text/plain`` body, decoded (``""`` when there is none)."""
        return _content.body_text(self.message)

    @property
    def html(self) -> str:
        """The ``text/html`` body, decoded (``""`` when there is none)."""
        return _content.body_html(self.message)

    @property
    def attachments(self) -> list[Attachment]:
        """Every part that is not the body (with ``.filename``, ``.content_type``, ``.content``)."""
        return _content.attachments(self.message)

    @property
    def links(self) -> list[str]:
        """Every link in the body (the HTML's ``<a href>``, then URLs in the text), no repeats."""
        return _content.links(self.message)

    @property
    def list_unsubscribe(self) -> list[str]:
        """The ``List-Unsubscribe`` header's URIs (RFC 2369), or ``[]``."""
        return _content.list_unsubscribe(self.message)

    @property
    def has_list_unsubscribe(self) -> bool:
        """The message names a way to unsubscribe (``List-Unsubscribe`` with a URI)."""
        return bool(self.list_unsubscribe)

    @property
    def has_one_click_unsubscribe(self) -> bool:
        """Whether RFC 8058 one-click unsubscribe is offered (``https`` URI plus ``-Post``)."""
        post = str(self.message.get("List-Unsubscribe-Post", "")).replace(" ", "")
        https = any(uri.lower().startswith("https:") for uri in self.list_unsubscribe)
        return https and post.lower() == "list-unsubscribe=one-click"

    async def dkim_results(self, resolver: Resolver) -> list[DkimResult]:
        """Verify the DKIM signatures, keys looked up with ``resolver`` (needs the mailauth extra).

        The capturing server has no DNS of its own: give it a resolver on the
        loopback DNS server (``mailio_trio.testing.dns``) serving the
        signer's ``<selector>._domainkey`` TXT record.
        """
        from mailio_trio.mailauth.dkim import verify

        return await verify(self.raw, resolver=resolver)

    async def dkim_valid(self, resolver: Resolver) -> bool:
        """At least one DKIM signature verifies (see :meth:`dkim_results`)."""
        from mailio_trio.mailauth.dkim import DkimVerdict

        return any(r.result is DkimVerdict.PASS for r in await self.dkim_results(resolver))

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients as ``local@domain`` strings."""
        return [str(r) for r in self.envelope.recipients]

    @property
    def sender(self) -> str | None:
        """The envelope sender as a string; ``None`` for the null reverse-path ``<>``."""
        sender = self.envelope.sender
        return None if sender is None else str(sender)

    def matches(
        self, *, recipient: str | None = None, subject: str | None = None, sender: str | None = None
    ) -> bool:
        """Addresses compare case-insensitively (whole address); ``subject`` exactly."""
        if recipient is not None and recipient.lower() not in (r.lower() for r in self.recipients):
            return False
        if sender is not None and (self.sender or "").lower() != sender.lower():
            return False
        return subject is None or self.message["Subject"] == subject


@attrs.define(eq=False)
class Outbox:
    """Messages a capturing server accepted, in order.

    Thread-safe: the server's Trio thread adds while another thread reads,
    clears or waits (the synchronous fixture); a :class:`threading.Condition`
    guards the list, and a :class:`trio.Event` wakes Trio waiters.
    """

    messages: list[CapturedMessage] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _cond: threading.Condition = attrs.field(factory=threading.Condition, init=False)

    def add(self, captured: CapturedMessage) -> None:
        """Append ``captured``; call from the server's Trio thread."""
        with self._cond:
            self.messages.append(captured)
            self._cond.notify_all()
        self._changed.set()
        self._changed = trio.Event()

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def snapshot(self) -> list[CapturedMessage]:
        """A copy of the messages, taken under the lock."""
        with self._cond:
            return list(self.messages)

    def find(
        self, *, recipient: str | None = None, subject: str | None = None, sender: str | None = None
    ) -> list[CapturedMessage]:
        """The messages matching every criterion given (see :meth:`CapturedMessage.matches`)."""
        return [
            m
            for m in self.snapshot()
            if m.matches(recipient=recipient, subject=subject, sender=sender)
        ]

    async def wait_for(self, count: int, timeout: float = DEFAULT_WAIT) -> list[CapturedMessage]:  # noqa: ASYNC109  # the fixture API promises wait_for(n, timeout=...)
        """Wait until at least ``count`` messages are in; raises ``trio.TooSlowError``."""
        with trio.fail_after(timeout):
            while len(self.messages) < count:
                await self._changed.wait()
        return self.snapshot()

    def wait_for_blocking(self, count: int, timeout: float = DEFAULT_WAIT) -> list[CapturedMessage]:
        """:meth:`wait_for` for a thread that is not the server's; raises ``TimeoutError``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(
                    f"waited {timeout}s for {count} message(s); {len(self.messages)} arrived"
                )
            return list(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


def _domains(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _users(value: Any) -> Mapping[str, str] | None:
    return None if value is None else dict(value)


def _specs(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


DEFAULT_CREDENTIALS = ("mailio", "mailio-test-password")
"""The account ``auth=True`` offers when no ``auth_users`` are given."""


@attrs.frozen(kw_only=True)
class CaptureOptions:
    """What a test may ask of the capturing server (``@pytest.mark.mailio(...)``).

    Args:
      domains: Local domains; RCPT to any other answers ``550 5.7.1``.
        ``None`` (the default) accepts every recipient, as a sink should.
      size_limit: Octets; advertised with SIZE, over it is ``552 5.3.4``.
      auth_users: ``{"user": "password"}``; AUTH is offered and checked.
      tls: Offer STARTTLS with a certificate from a throw-away CA
        (``running.tls``, a :class:`TLSMaterial`).
      hostname: Our name in the greeting and ``Received:``.
      auth: Offer AUTH with one account, ``running.credentials``
        (``auth_users`` names the accounts instead).
      web: Serve the web inbox and its API too (``running.web_url``; needs
        the web extra).
      faults: Counted faults armed at start, ``"STAGE:ACTION[:COUNT]"``.
      fault_probability: Probabilistic faults, ``"STAGE:ACTION:P"``.
      rate_limit: ``"N/SECONDS"``: MAIL past N per SECONDS answers ``421 4.7.0``.
      chaos_seed: Seeds the probabilistic faults' draws: the same traffic
        meets the same faults every run (``None``: the system's entropy).
    """

    domains: tuple[str, ...] | None = attrs.field(default=None, converter=_domains)
    size_limit: int | None = None
    auth_users: Mapping[str, str] | None = attrs.field(default=None, converter=_users)
    tls: bool = False
    hostname: str = "mx.test"
    auth: bool = False
    web: bool = False
    faults: tuple[str, ...] = attrs.field(default=(), converter=_specs)
    fault_probability: tuple[str, ...] = attrs.field(default=(), converter=_specs)
    rate_limit: str | None = None
    chaos_seed: int | None = 0

    def __attrs_post_init__(self) -> None:
        self.chaos_settings()  # a bad spec fails when the options are made, not mid-test

    def chaos_settings(self) -> ChaosSettings:
        """The chaos these options ask for; ``ValueError`` saying what is wrong."""
        return ChaosSettings(
            faults=tuple(parse_fault(s) for s in self.faults),
            triggers=tuple(parse_trigger(s) for s in self.fault_probability),
            rate_limit=None if self.rate_limit is None else parse_rate_limit(self.rate_limit),
            seed=self.chaos_seed,
        )

    @property
    def users(self) -> Mapping[str, str] | None:
        """The AUTH accounts (``auth_users``, else the default one with ``auth=True``)."""
        if self.auth_users is not None:
            return self.auth_users
        return dict([DEFAULT_CREDENTIALS]) if self.auth else None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], where: str = "options") -> CaptureOptions:
        """Build from keyword options; an unknown one is a ``TypeError`` naming it."""
        allowed = [f.name for f in attrs.fields(cls)]
        for key in options:
            if key not in allowed:
                names = ", ".join(allowed)
                raise TypeError(f"{where}: unknown option {key!r}; options are {names}")
        return cls(**options)

    def apply(self, config: Config | None) -> Config:
        """``config`` (or the test default) with these options in it."""
        if config is None:
            config = Config(hostname=self.hostname, domains=self.domains or ("example.com",))
        elif self.domains is not None:
            config = attrs.evolve(config, domains=self.domains)
        if self.size_limit is not None:
            config = attrs.evolve(
                config, limits=attrs.evolve(config.limits, message_size=self.size_limit)
            )
        if self.users is not None and not self.tls:
            # A test that asks for AUTH without TLS means it: allow it in plaintext.
            config = attrs.evolve(config, auth=attrs.evolve(config.auth, allow_insecure=True))
        return config

    @property
    def changes_config(self) -> bool:
        return self.domains is not None or self.size_limit is not None


def _check_support(server: Server, options: CaptureOptions) -> None:
    # A configuration that switches the command off (plugins."starttls/core" =
    # false) fails loudly rather than give a server that silently lacks it.
    for asked, command, option in (
        (options.tls, "starttls", "tls=True"),
        (options.users is not None, "auth", "auth_users"),
    ):
        if asked and not any(h.name == CORE for h in server.chain.handlers(command)):
            raise ValueError(
                f"mailio_trio.testing: {option} needs the {command.upper()} command, "
                f'which this configuration disables (plugins."{command}/core")'
            )


@attrs.define(eq=False)
class RunningServer:
    """A server listening on loopback, with the messages it captured and its faults."""

    server: Server
    host: str
    port: int
    outbox: Outbox
    faults: Faults = attrs.field(factory=Faults)
    tls: TLSMaterial | None = None
    """Client-side trust for ``tls=True``, else ``None``."""
    credentials: tuple[str, str] | None = None
    """``(user, password)`` for ``client.login(*running.credentials)`` when AUTH is on."""
    web_url: str | None = None
    """With ``web=True``, the web inbox at ``http://127.0.0.1:PORT`` (API under ``/api/v1/``)."""
    inbox: Inbox | None = None
    """The web inbox's store (``web=True``)."""

    @property
    def messages(self) -> list[CapturedMessage]:
        return self.outbox.messages

    async def wait_for(self, count: int, timeout: float = DEFAULT_WAIT) -> list[CapturedMessage]:  # noqa: ASYNC109  # the fixture API promises wait_for(n, timeout=...)
        """Wait until ``count`` messages are in, then return all; ``trio.TooSlowError`` if not."""
        return await self.outbox.wait_for(count, timeout)

    def clear(self) -> None:
        """Forget captured messages (faults stay armed; see ``clear_faults``)."""
        self.outbox.clear()

    def find(
        self, *, recipient: str | None = None, subject: str | None = None, sender: str | None = None
    ) -> list[CapturedMessage]:
        """Captured messages matching every criterion given."""
        return self.outbox.find(recipient=recipient, subject=subject, sender=sender)

    def fail_next(
        self, stage: Stage | str, code: int, text: str | None = None, *, count: int = 1
    ) -> None:
        """See :meth:`Faults.fail_next`: e.g. ``fail_next("rcpt", 452)``."""
        self.faults.fail_next(stage, code, text, count=count)

    def drop_next(self, stage: Stage | str, *, count: int = 1) -> None:
        """See :meth:`Faults.drop_next`: close without replying at ``stage``."""
        self.faults.drop_next(stage, count=count)

    def delay_next(self, stage: Stage | str, seconds: float, *, count: int = 1) -> None:
        """See :meth:`Faults.delay_next`."""
        self.faults.delay_next(stage, seconds, count=count)

    def clear_faults(self) -> None:
        """Disarm every counted fault, probabilistic fault and the rate limit."""
        self.faults.clear()

    def fail_randomly(
        self, stage: Stage | str, code: int, probability: float, text: str | None = None
    ) -> None:
        """Each command at ``stage`` answers ``code`` with ``probability`` (see ``seed_chaos``)."""
        self._set_trigger(_trigger(stage, probability, FaultKind.REPLY, code=code, text=text))

    def drop_randomly(self, stage: Stage | str, probability: float) -> None:
        """Each command at ``stage`` loses its connection, unanswered, with ``probability``."""
        self._set_trigger(_trigger(stage, probability, FaultKind.DROP))

    def delay_randomly(self, stage: Stage | str, seconds: float, probability: float) -> None:
        """Each command at ``stage`` is answered ``seconds`` late with ``probability``."""
        self._set_trigger(_trigger(stage, probability, FaultKind.DELAY, seconds=seconds))

    def _set_trigger(self, trigger: ChaosTrigger) -> None:
        self.faults.check_stage(trigger.stage)
        self.faults.chaos.set_trigger(trigger)

    def rate_limit(self, messages: int, per: float) -> None:
        """Past ``messages`` MAIL commands per ``per`` seconds, MAIL answers ``421 4.7.0``.

        A token bucket on ``trio.current_time()``, full at the start.
        """
        self.faults.chaos.set_rate_limit(RateLimit(messages=messages, interval=per))

    def seed_chaos(self, seed: int | None) -> None:
        """Restart the random draws from ``seed``: the same traffic meets the same faults."""
        self.faults.chaos.seed(seed)

    def open_raw(self) -> Any:
        """``async with running.open_raw() as conn`` — a byte-level connection."""
        return open_raw_connection(self.host, self.port)


def _trigger(
    stage: Stage | str,
    probability: float,
    kind: FaultKind,
    *,
    code: int | None = None,
    seconds: float = 0.0,
    text: str | None = None,
) -> ChaosTrigger:
    if code is not None:
        make_reply(code, text or "x")  # a malformed enhanced code fails here, not mid-test
    trigger = ChaosTrigger(
        stage=Stage.parse(stage), probability=probability, kind=kind, code=code, seconds=seconds
    )
    return attrs.evolve(trigger, text=text) if text else trigger


def capture_handler(outbox: Outbox) -> Handler:
    """A ``queue/capture`` handler that keeps each message in ``outbox``."""

    async def capture(req: Request, res: Response) -> None:
        assert req.message is not None
        session = req.session
        raw = await trio.to_thread.run_sync(req.message.read_bytes)
        outbox.add(
            CapturedMessage(
                envelope=req.message.envelope,
                raw=raw,
                client_address=session.client.address,
                helo=session.helo_name,
                secure=session.secure,
                user=session.user,
                auth=res.get("queue/mailauth"),
            )
        )
        res.accept()

    return Handler(command="queue", name="capture", func=capture)


def local_domains_handler(domains: tuple[str, ...]) -> Handler:
    """A ``rcpt/local_domains`` handler: recipients outside ``domains`` are refused."""
    wanted = frozenset(d.lower().rstrip(".") for d in domains)

    async def local_domains(req: Request, res: Response) -> None:
        assert req.to is not None
        if req.to.domain.lower().rstrip(".") in wanted:
            res.accept()
        else:
            # The reply Postfix and Exim give an unauthenticated relay attempt.
            res.reject(550, f"Relaying denied: {req.to.domain} is not a local domain", "5.7.1")

    return Handler(command="rcpt", name="local_domains", func=local_domains)


def users_handler(users: Mapping[str, str]) -> Handler:
    """An ``auth/test_users`` handler: the claimed identity must be in ``users`` (plain secrets).

    Plain secrets are fine here: they are a test's own throw-away accounts.
    """

    async def test_users(req: Request, res: Response) -> None:
        user = req.user
        secret = users.get(getattr(user, "username", ""))
        if secret is not None and user.check_secret(secret):
            res.accept()
        else:
            res.reject(535, "Authentication credentials invalid", "5.7.8")

    return Handler(command="auth", name="test_users", func=test_users)


async def _serve_inbox(
    inbox: Inbox,
    host: str,
    faults: Faults,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    from mailio_trio.inbox import serve_web

    try:
        await serve_web(inbox, host, 0, chaos=faults, task_status=task_status)
    finally:
        inbox.close()


async def start_capturing_server(
    nursery: trio.Nursery,
    config: Config | None = None,
    *,
    host: str = "127.0.0.1",
    server: Server | None = None,
    options: CaptureOptions | None = None,
    workdir: Path | None = None,
) -> RunningServer:
    """Start a capturing server on ``host`` and a free port in ``nursery``.

    Returns once the port is bound. Stop it with ``running.server.shutdown()``
    or by cancelling ``nursery``.

    Args:
      nursery: Where the server runs.
      config: The server's configuration; default ``mx.test`` for ``example.com``.
      host: The loopback address to listen on.
      server: A server built by the caller (its own handlers); ``config`` and
        options that change configuration are then refused.
      options: Test options (domains, size limit, TLS, AUTH users, chaos, web).
      workdir: A directory of the caller's for files (the TLS CA's ``ca_path``);
        the fixtures give each test its own, under pytest's per-worker base.

    Raises:
      ValueError: ``tls`` or ``auth_users`` with ``config`` switching their command off.
    """
    options = options or CaptureOptions()
    tls = None
    if server is None:
        if options.tls:
            tls = TLSMaterial.create(directory=workdir)
        server = Server(options.apply(config), tls_context=tls.server_context if tls else None)
    elif config is not None or options.changes_config or options.tls:
        raise ValueError("start_capturing_server: pass options in the Server given, not here")
    _check_support(server, options)
    users = options.users
    if users is not None:
        server.add_handler(users_handler(users))
    faults = Faults()
    faults.install(server)
    faults.apply(options.chaos_settings())
    if options.domains is not None:
        server.add_handler(local_domains_handler(options.domains))
    outbox = Outbox()
    server.add_handler(capture_handler(outbox))
    inbox = web_url = None
    if options.web:
        from mailio_trio.inbox import inbox_handler, open_inbox

        inbox = open_inbox(":memory:")  # no file: nothing shared between tests or workers
        server.add_handler(inbox_handler(inbox))
        urls: list[str] = await nursery.start(_serve_inbox, inbox, host, faults)
        web_url = urls[0]
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, host, 0)
    bound_host, port = addresses[0]
    return RunningServer(
        server=server,
        host=bound_host,
        port=port,
        outbox=outbox,
        faults=faults,
        tls=tls,
        credentials=next(iter(users.items())) if users else None,
        web_url=web_url,
        inbox=inbox,
    )
