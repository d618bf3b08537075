"""The handler chain: every SMTP command and internal event runs through it.

A :class:`Handler` is an async callable registered for one command (``"rcpt"``)
under a name (``"dnsbl"``); its key is ``"rcpt/dnsbl"``. For each command the
handler named ``core`` (the protocol itself) runs first, then the rest in a
topological order of their ``before`` / ``after`` names, ties keeping
registration order. The order is computed when a handler is added, never per
command.

Each handler receives the :class:`Request` shared by the whole chain and its
own :class:`Response`, on which it makes exactly one decision: ``accept``
(pass on), ``reject`` (answer now, stop) or ``end`` (answer, close the
connection). The session enforces that rule; see ``server/_session.py``.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import attrs

from mailio_trio import _transaction
from mailio_trio._handler_log import VERBOSE
from mailio_trio._handler_session import HandlerContext, HandlerSession
from mailio_trio.protocol import Address, Command, MailFrom, RcptTo, Reply

if TYPE_CHECKING:
    from mailio_trio._handler_log import SessionLog
    from mailio_trio.message import Message

__all__ = [
    "CORE",
    "NEVER_WAITS",
    "VERBOSE",
    "Chain",
    "ChainError",
    "Decision",
    "Handler",
    "HandlerContext",
    "HandlerFunc",
    "HandlerSession",
    "Request",
    "Response",
    "Step",
    "make_reply",
    "never_waits",
]

CORE = "core"
"""The name of each command's protocol handler, which always runs first."""

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class HandlerFunc(Protocol):
    def __call__(self, req: Request, res: Response, /) -> Awaitable[None]: ...


NEVER_WAITS: set[object] = set()
"""Handler functions that decide without awaiting anything (see :func:`never_waits`)."""


def never_waits(func: F) -> F:
    """Mark a handler that never awaits: it runs without a ``handler_timeout`` scope.

    A handler that cannot block needs no timeout, and a cancel scope per
    handler call is a measurable share of a small command's CPU. The core
    protocol handlers are marked; a marked handler that did await something
    would run without its timeout, so mark only handlers that do no I/O.
    """
    NEVER_WAITS.add(func)
    return func


class ChainError(ValueError):
    """A handler registration that can never work: unknown names, cycles, duplicates."""


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # before="dnsbl" would otherwise order against d, n, s, ...
        return (value,)
    return tuple(value)


def _lower(value: str) -> str:
    return value.lower()


@attrs.frozen(kw_only=True)
class Handler:
    """One step of a command's chain.

    Args:
      command: The SMTP verb or event, lower case (``"rcpt"``, ``"queue"``, ``"connect"``).
      name: Unique within the command; ``core`` is the protocol's own handler.
      func: ``async def func(req, res)``; must decide exactly once.
      before: Names of handlers of the same command this one must precede.
      after: Names of handlers of the same command this one must follow.
      if_present: ``before``/``after`` bind only handlers that are registered,
        whenever they are (plugins ordered against other optional plugins);
        otherwise naming an absent handler is a :class:`ChainError`.
    """

    command: str = attrs.field(converter=_lower)
    name: str
    func: HandlerFunc
    before: tuple[str, ...] = attrs.field(default=(), converter=_names)
    after: tuple[str, ...] = attrs.field(default=(), converter=_names)
    if_present: bool = False
    key: str = attrs.field(init=False, eq=False, repr=False)
    """``"command/name"``, computed once (it is read for every handler call)."""

    @key.default
    def _key(self) -> str:
        return f"{self.command}/{self.name}"


class Step(NamedTuple):
    """A handler with what running it needs, looked up once when the chain is built."""

    handler: Handler
    config: Any
    """The handler's configuration (``Chain.plugins[key]``), or ``None``."""
    may_wait: bool
    """False for handlers marked ``never_waits``: no ``handler_timeout`` scope is needed."""


def handler_decorator(
    add: Callable[[Handler], None],
    command: str,
    name: str | None,
    before: Iterable[str],
    after: Iterable[str],
) -> Callable[[HandlerFunc], HandlerFunc]:
    """The body of ``@server.handler(...)`` and ``@session.handler(...)``."""

    def register(func: HandlerFunc) -> HandlerFunc:
        handler_name = name if name is not None else str(getattr(func, "__name__", "handler"))
        add(
            Handler(
                command=command,
                name=handler_name,
                func=func,
                before=_names(before),
                after=_names(after),
            )
        )
        return func

    return register


def order_handlers(handlers: Iterable[Handler], *, known: Iterable[str] = ()) -> list[Handler]:
    """Sort one command's handlers: ``core`` first, then before/after, then registration order.

    Args:
      handlers: In registration order.
      known: Names that may be referred to although absent (disabled or not
        configured built-in plugins): an order against them binds once they
        are registered.

    Raises:
      ChainError: A duplicate name, a reference to an unknown name, or a cycle.
    """
    items = list(handlers)
    index = {h.name: i for i, h in enumerate(items)}
    if len(index) != len(items):
        seen: set[str] = set()
        dup = next(h.key for h in items if h.name in seen or seen.add(h.name))  # type: ignore[func-returns-value]  # set.add returns None: a one-pass duplicate finder
        raise ChainError(f"handler {dup!r} is registered twice")
    absent_ok = set(known)
    edges: dict[str, set[str]] = {h.name: set() for h in items}  # name -> names that follow it
    for h in items:
        if CORE in h.before and h.name != CORE:
            # Named here: the sort below only sees *some* handler displaced to the front.
            raise ChainError(f"{h.key!r} asks to run before {h.command}/core")
        for other in (*h.before, *h.after):
            if other not in index and other not in absent_ok and not h.if_present:
                raise ChainError(
                    f"handler {h.key!r} is ordered against {h.command}/{other!r}, "
                    "which is not registered"
                )
        edges[h.name].update(n for n in h.before if n in index)
        for n in h.after:
            if n in index:
                edges[n].add(h.name)
    indegree = dict.fromkeys(index, 0)
    for followers in edges.values():
        for n in followers:
            indegree[n] += 1
    # core is the protocol: it runs first whatever others ask for.
    ready = sorted((n for n, d in indegree.items() if d == 0), key=lambda n: (n != CORE, index[n]))
    out: list[Handler] = []
    while ready:
        name = ready.pop(0)
        out.append(items[index[name]])
        for n in edges[name]:
            indegree[n] -= 1
            if indegree[n] == 0:
                ready.append(n)
        ready.sort(key=lambda n: (n != CORE, index[n]))
    if len(out) != len(items):
        stuck = sorted(n for n, d in indegree.items() if d > 0)
        command = items[0].command
        raise ChainError(f"{command} handlers {stuck} order each other in a cycle")
    if CORE in index and out[0].name != CORE:
        raise ChainError(f"{out[0].key!r} asks to run before {out[0].command}/core")
    return out


@attrs.define(eq=False)
class Chain:
    """The registered handlers of every command, kept in run order.

    Args:
      plugins: Per-handler configuration by key (``"rcpt/dnsbl"``); ``False``
        disables that handler.
    """

    plugins: Mapping[str, Any] = attrs.field(factory=dict)
    _registered: dict[str, list[Handler]] = attrs.field(factory=dict, init=False)
    _ordered: dict[str, tuple[Handler, ...]] = attrs.field(factory=dict, init=False)
    _plans: dict[str, tuple[Step, ...]] = attrs.field(factory=dict, init=False)
    _disabled: dict[str, set[str]] = attrs.field(factory=dict, init=False)
    _known: dict[str, set[str]] = attrs.field(factory=dict, init=False)
    _extensions: list[Callable[[HandlerSession], str | None]] = attrs.field(
        factory=list, init=False
    )

    def add(self, handler: Handler) -> None:
        """Register ``handler``; skipped (but nameable by others) when configured ``False``.

        Raises:
          ChainError: See :func:`order_handlers`; the chain is left unchanged.
        """
        if self.plugins.get(handler.key, True) is False:
            self._disabled.setdefault(handler.command, set()).add(handler.name)
            return
        candidate = [*self._registered.get(handler.command, ()), handler]
        ordered = order_handlers(candidate, known=self.nameable(handler.command))
        self._registered[handler.command] = candidate
        self._ordered[handler.command] = tuple(ordered)
        self._plans[handler.command] = self.plan_of(ordered)

    def handlers(self, command: str) -> tuple[Handler, ...]:
        """The handlers of ``command`` in run order (empty if none)."""
        return self._ordered.get(command, ())

    def plan(self, command: str) -> tuple[Step, ...]:
        """What the session runs for ``command``: its handlers in order, each with its config."""
        return self._plans.get(command, ())

    def plan_of(self, handlers: Iterable[Handler]) -> tuple[Step, ...]:
        return tuple(Step(h, self.plugins.get(h.key), h.func not in NEVER_WAITS) for h in handlers)

    def disabled(self, command: str) -> frozenset[str]:
        return frozenset(self._disabled.get(command, ()))

    def know(self, keys: Iterable[str]) -> None:
        """Declare built-in plugins (``"rcpt/dnsbl"``) that handlers may order against.

        mail-io's plugins are always there, so its handlers say ``before:
        'dnsbl'``; here a plugin may be off. An order against a known plugin
        binds whenever it is registered and is ignored while it is not, as
        ``Handler.if_present`` does for one handler; a name that no plugin
        has is still a :class:`ChainError`.
        """
        for key in keys:
            command, _, name = key.partition("/")
            self._known.setdefault(command, set()).add(name)

    def nameable(self, command: str) -> frozenset[str]:
        """Names of ``command`` that may be ordered against although absent."""
        return frozenset(self._disabled.get(command, ())) | self._known.get(command, set())

    def keys(self) -> frozenset[str]:
        """Every ``"command/name"`` added, registered or disabled by ``plugins``."""
        registered = {h.key for handlers in self._registered.values() for h in handlers}
        disabled = {f"{c}/{n}" for c, names in self._disabled.items() for n in names}
        return frozenset(registered | disabled)

    def add_extension(self, fn: Callable[[HandlerSession], str | None]) -> None:
        """Register an EHLO keyword source: ``fn(session)`` returns a line or ``None``."""
        self._extensions.append(fn)

    def extensions(self, session: HandlerSession) -> list[str]:
        return [line for fn in self._extensions if (line := fn(session))]


class Decision:
    """What a handler decided (an enum would do; plain constants keep this hot path cheap)."""

    ACCEPT = "accept"
    REJECT = "reject"
    END = "end"


_SUCCESS: dict[str, tuple[int, str]] = {"auth": (235, "2.7.0")}
"""Commands whose success reply is not 250: what a 2xx ``accept`` of them becomes."""

_LEADING_ENHANCED = re.compile(r"([245]\.\d{1,3}\.\d{1,3}) ")


@functools.lru_cache(maxsize=1024)
def make_reply(code: int, text: str, enhanced: str | None = None) -> Reply:
    """Build a reply, taking an enhanced code from ``enhanced`` or the start of ``text``.

    Without one, a 2xx/4xx/5xx reply gets the class's generic ``X.0.0``
    (RFC 3463 §3.1), so every final reply carries an enhanced status code.
    ``enhanced=""`` means none: the greeting and the EHLO reply carry none
    (RFC 2034 §3).

    Replies are immutable, so the same arguments give the same :class:`Reply`
    from a small LRU cache: a constant reply (``250 2.1.0 Sender OK``) is
    parsed, validated and formatted for the wire once, not per command.
    """
    if enhanced == "":
        return Reply(code, text, None)
    if enhanced is None and (m := _LEADING_ENHANCED.match(text)):
        enhanced, text = m.group(1), text[m.end() :]
    if enhanced is None and code // 100 in (2, 4, 5):
        enhanced = f"{code // 100}.0.0"
    return Reply(code, text, enhanced)


class HandlerMisuse(RuntimeError):
    """A handler decided twice or decided nothing: a bug in that handler."""


_NO_REFUSALS: Mapping[tuple[str, str], Reply] = types.MappingProxyType({})
"""``refused_recipients`` of almost every request: shared, read-only, not a dict per call."""

_BUILT_CONFIGS: dict[tuple[int, type], tuple[Any, Any]] = {}
"""``Request.config_as`` results by (id of the configuration table, class)."""


@attrs.define(eq=False, slots=True)
class Request:
    """What one command's handlers share.

    Core handlers fill in what they parse: ``sender`` and ``mail`` (MAIL),
    ``to`` and ``rcpt`` (RCPT), ``user`` (AUTH), ``message`` (queue).
    ``config`` is the running handler's own configuration.
    """

    command: Command
    session: HandlerSession
    config: Any = None
    sender: Address | None = None
    mail: MailFrom | None = None
    to: Address | None = None
    rcpt: RcptTo | None = None
    user: Any = None
    message: Message | None = None
    # Created on first use: most commands have no after-reply step, and a
    # Request is built per command.
    _effects: list[Callable[[], None]] | None = None
    _after_reply: list[Callable[[], Awaitable[Reply | None]]] | None = None
    _commit: list[Callable[[], Awaitable[None]]] | None = None
    _rollback: list[Callable[[], Awaitable[None]]] | None = None
    _refused: dict[tuple[str, str], Reply] | None = None
    """``queue``: recipients a handler refused, by ``Address.key()`` (see ``reject_recipient``)."""
    _owners: dict[Callable[[], Awaitable[None]], frozenset[tuple[str, str]]] | None = None
    """Commit and rollback steps that belong to some recipients only, and whose they are."""

    @property
    def argument(self) -> str:
        return self.command.argument

    def config_as(self, cls: type[T]) -> T:
        """This handler's configuration as ``cls``: defaults when none, built from a table.

        Built once per table and class and shared from then on (a plugin asks on
        every command; building parses its networks, lists and timeouts each
        time): treat it as read-only, as the plugins' frozen attrs classes are.
        """
        cfg = self.config
        if isinstance(cfg, cls):
            return cfg
        key = (id(cfg), cls)
        if (built := _BUILT_CONFIGS.get(key)) is not None:
            return built[1]  # type: ignore[no-any-return]  # keyed by cls
        if cfg is None or cfg is True:
            value = cls()
        elif isinstance(cfg, Mapping):
            value = cls(**cfg)
        else:
            raise TypeError(
                f"configuration of {self.command.name} is {type(cfg).__name__}, "
                f"expected {cls.__name__} or a table"
            )
        # The table is kept with its object, so its id cannot be reused for another.
        _BUILT_CONFIGS[key] = (cfg, value)
        return value

    def on_accept(self, effect: Callable[[], None]) -> None:
        """Run ``effect`` only if the whole chain accepts (core handlers commit state here)."""
        if self._effects is None:
            self._effects = [effect]
        else:
            self._effects.append(effect)

    def after_reply(self, step: Callable[[], Awaitable[Reply | None]]) -> None:
        """Once the accepting reply is sent, await ``step``; a reply it returns is sent next.

        For commands whose work follows their reply: DATA's body, STARTTLS's handshake.
        """
        if self._after_reply is None:
            self._after_reply = [step]
        else:
            self._after_reply.append(step)

    def on_commit(
        self,
        step: Callable[[], Awaitable[None]],
        *,
        recipients: Iterable[Address] | None = None,
    ) -> None:
        """Await ``step`` once every handler accepted, before the reply is sent.

        For ``queue`` handlers that keep the message in two phases: prepare
        durably where no reader looks, then make it visible here (maildir's
        rename into ``new/``). Steps run in registration (chain) order, each
        within ``limits.handler_timeout``; the first that raises or times out
        rolls the whole transaction back and the client gets ``451 4.3.0``.

        Args:
          step: The commit step.
          recipients: The recipients this step keeps the message for (a
            mailbox's copy). It runs only if one of them is still accepted
            when the chain ends (see :meth:`reject_recipient`); without them
            it runs whenever any recipient is.
        """
        if recipients is not None:
            self._own(step, recipients)
        if self._commit is None:
            self._commit = [step]
        else:
            self._commit.append(step)

    def _own(self, step: Callable[[], Awaitable[None]], recipients: Iterable[Address]) -> None:
        if self._owners is None:
            self._owners = {}
        self._owners[step] = frozenset(r.key() for r in recipients)

    def reject_recipient(
        self, recipient: Address, code: int, text: str, enhanced: str | None = None
    ) -> None:
        """Refuse the message for one recipient, in a ``queue`` handler; the others go on.

        Not a decision: the handler still accepts (the message goes on for the
        other recipients) or rejects (for everyone). Once the chain accepted,
        the steps registered for the refused recipients only are rolled back
        and the others committed. Under LMTP (RFC 2033 §4.2) each recipient
        gets its own reply after the message, this one for ``recipient``;
        under SMTP the message has one reply, so refusing any recipient
        refuses it for all (with the first refused recipient's reply) and
        nothing is kept: a ``250`` would promise delivery to every one.
        The first refusal of a recipient is the one kept.

        Raises:
          ValueError: Not a 4xx/5xx code, or ``recipient`` is not one of the message's.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"reject_recipient takes a 4xx or 5xx code, not {code}")
        if self.message is None:
            raise ValueError("reject_recipient is for queue handlers, with a message")
        key = recipient.key()
        if all(r.key() != key for r in self.message.envelope.recipients):
            raise ValueError(f"{recipient} is not a recipient of this message")
        if self._refused is None:
            self._refused = {}
        self._refused.setdefault(key, make_reply(code, text, enhanced))

    @property
    def refused_recipients(self) -> Mapping[tuple[str, str], Reply]:
        """Recipients refused so far with :meth:`reject_recipient`, by ``Address.key()``."""
        return self._refused or _NO_REFUSALS

    def on_rollback(
        self,
        step: Callable[[], Awaitable[None]],
        *,
        recipients: Iterable[Address] | None = None,
    ) -> None:
        """Await ``step`` if the transaction does not end in an accepting reply.

        Runs when a later handler rejects, ends, raises or times out, when a
        commit step fails, or when the session is cancelled or the client
        closes the connection before the reply. Steps run newest first,
        shielded from cancellation, each within ``limits.rollback_timeout``.
        A step must undo whatever its handler left, committed or not: it may
        run after its own commit step (a later one failed), or when the
        preparation stopped halfway. Register it before preparing.

        With ``recipients`` it also runs, before the commit steps, when every
        one of them was refused (see :meth:`reject_recipient`).
        """
        if recipients is not None:
            self._own(step, recipients)
        if self._rollback is None:
            self._rollback = [step]
        else:
            self._rollback.append(step)

    @property
    def prepared(self) -> bool:
        """Whether a handler registered commit or rollback steps that have not run."""
        return self._commit is not None or self._rollback is not None

    async def commit(self, reply: Reply) -> Reply:
        """Run the commit steps (the session does, once the chain accepted).

        Returns:
          ``reply`` once every step succeeded (nothing is left to roll back);
          ``451 4.3.0`` after a failed step, everything rolled back.

        Raises:
          ConnectionLost: The client closed the connection first; rolled back.
        """
        steps: Sequence[Callable[[], Awaitable[None]]] = self._commit or ()
        self._commit = None
        if self._owners is not None and self._refused:
            steps = await self._drop_refused(steps)
        reply = await _transaction.commit(self, steps, reply)
        if reply is not _transaction.COMMIT_FAILED:
            self._rollback = None  # committed: nothing may undo it now
        return reply

    async def _drop_refused(
        self, steps: Sequence[Callable[[], Awaitable[None]]]
    ) -> Sequence[Callable[[], Awaitable[None]]]:
        """Roll back what only refused recipients own; the commit steps left to run."""
        owners, refused = self._owners or {}, self._refused or {}

        def refused_only(step: Callable[[], Awaitable[None]]) -> bool:
            owned = owners.get(step)
            return owned is not None and owned <= refused.keys()

        if self._rollback is not None:
            undo = [step for step in self._rollback if refused_only(step)]
            self._rollback = [step for step in self._rollback if not refused_only(step)]
            await _transaction.roll_back(self, undo)
        return [step for step in steps if not refused_only(step)]

    async def roll_back(self) -> None:
        """Run the rollback steps not yet run; nothing once committed (the session does)."""
        if self._rollback is None:
            return
        steps, self._rollback, self._commit = self._rollback, None, None
        await _transaction.roll_back(self, steps)

    def take_effects(self) -> Sequence[Callable[[], None]]:
        effects, self._effects = self._effects, None
        return effects or ()

    def take_after_reply(self) -> Sequence[Callable[[], Awaitable[Reply | None]]]:
        steps, self._after_reply = self._after_reply, None
        return steps or ()


@attrs.define(eq=False, slots=True)
class Response:
    """One handler's side of a command: exactly one of accept, reject or end.

    ``write``/``read`` talk to the client mid-command (AUTH's ``334``
    challenges); ``set``/``get`` share values between handlers and commands.
    """

    _session: HandlerSession
    handler: Handler
    decision: str | None = None
    reply: Reply | None = None
    decided_twice: bool = False
    _log: SessionLog | None = None

    @property
    def log(self) -> SessionLog:
        """This handler's logger, its lines tagged with the session and handler.

        mail-io's levels are there: ``debug``, ``verbose`` (``VERBOSE`` = 15),
        ``info``, ``warn``/``warning``, ``error``.

        Built on first use: most handler calls never log, and a Response is
        made per handler per command.
        """
        if self._log is None:
            self._log = self._session.handler_log(self.handler)
        return self._log

    def _decide(self, decision: str, reply: Reply | None) -> None:
        if self.decision is not None:
            self.decided_twice = True
            raise HandlerMisuse(f"handler {self.handler.key} decided twice")
        self.decision, self.reply = decision, reply

    def accept(
        self, code: int | None = None, text: str | None = None, enhanced: str | None = None
    ) -> None:
        """Pass to the next handler; with a code, that becomes the reply the client sees."""
        if code is not None and not 200 <= code < 400:
            raise ValueError(f"accept takes a 2xx or 3xx code, not {code}")
        reply = None if code is None else make_reply(code, text or "OK", enhanced)
        if reply is not None and reply.code // 100 == 2:
            success = _SUCCESS.get(self.handler.command)
            if success is not None and reply.code != success[0]:
                # mail-io's handlers accept AUTH with "250 OK"; its success code is the
                # protocol's (RFC 4954 §6: 235 2.7.0), or smtplib's login fails.
                reply = make_reply(success[0], reply.text, success[1])
        self._decide(Decision.ACCEPT, reply)

    def reject(self, code: int, text: str, enhanced: str | None = None) -> None:
        """Answer now with a 4xx/5xx reply; later handlers do not run."""
        if not 400 <= code <= 599:
            raise ValueError(f"reject takes a 4xx or 5xx code, not {code}")
        self._decide(Decision.REJECT, make_reply(code, text, enhanced))

    def end(
        self, code: int | None = None, text: str | None = None, enhanced: str | None = None
    ) -> None:
        """Answer (when given a code) and close the connection."""
        reply = None if code is None else make_reply(code, text or "Closing connection", enhanced)
        self._decide(Decision.END, reply)

    async def write(self, reply: Reply | str) -> None:
        """Send an intermediate reply now (``Reply(334, "")`` or a raw ``"334 ..."`` line)."""
        await self._session.send_now(reply)

    async def read(self) -> str:
        """Read the client's next line (AUTH exchanges); the line is not a command."""
        return await self._session.read_auxiliary_line()

    def set(self, value: Any) -> None:
        """Store ``value`` under this handler's key for later handlers and commands."""
        self._session.values[self.handler.key] = value

    def get(self, key: str) -> Any:
        """Read what ``res.set`` stored, as mail-io's ``res.get``.

        ``"command/name"`` is that handler's value (``None`` if none);
        ``"command"`` is a new dict of handler name → value for every handler
        of that command that stored one (``res.get("queue")["spamd"]``).
        """
        values = self._session.values
        if "/" in key:
            return values.get(key)
        prefix = f"{key}/"
        return {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
