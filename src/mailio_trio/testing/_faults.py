"""Fault injection for the capturing test server: wrong answers on purpose.

An application's retry path (a ``451`` after DATA, a ``452`` to RCPT, a
connection that drops before the reply) is the code least often run and
most often wrong. These faults make a real server misbehave on cue, so a test
can drive that path over a real socket.

Each fault is a handler on the chain — ``<command>/fault``, registered right
after the command's ``core`` handler and before every other handler known at
start-up — so it only fires for a command the protocol itself would have
accepted (a ``RCPT`` before ``MAIL`` still gets its ``503``) and a refused
command commits nothing (``req.on_accept`` effects are skipped).

Thread safety: the fault table is guarded by a :class:`threading.Lock`, held
only for a dictionary update, so the test thread of the synchronous fixture
may arm faults while the server's Trio thread consumes them.
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING

import attrs
import trio

from mailio_trio.chain import CORE, Handler, Request, Response, make_reply

if TYPE_CHECKING:
    from mailio_trio.server import Server
    from mailio_trio.testing._chaos import Chaos, ChaosSettings

__all__ = ["Fault", "FaultKind", "Faults", "Stage"]


class Stage(enum.Enum):
    """Where a fault fires: an SMTP command, or one of the two moments that are not one."""

    CONNECT = "connect"
    """Instead of the ``220`` greeting."""
    HELO = "helo"
    EHLO = "ehlo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    """The ``DATA`` command itself, before the ``354``: the body is never sent."""
    MESSAGE = "message"
    """The reply after the body's final ``.``: the message was sent but is not taken."""
    RSET = "rset"
    NOOP = "noop"
    AUTH = "auth"
    """The ``AUTH`` command (Mailpit's ``Authentication`` chaos trigger)."""
    # No QUIT: its core handler ends the session, so nothing after it ever runs.

    @property
    def command(self) -> str:
        """The chain command this stage's fault handler is registered on."""
        return "queue" if self is Stage.MESSAGE else self.value

    @classmethod
    def parse(cls, value: Stage | str) -> Stage:
        if isinstance(value, Stage):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"no fault stage {value!r}; stages are {allowed}") from None


class FaultKind(enum.Enum):
    REPLY = "reply"
    """Answer a chosen 4xx/5xx code instead of the normal reply (``421`` also closes)."""
    DROP = "drop"
    """Close the connection without any reply."""
    DELAY = "delay"
    """Wait, then carry on normally."""


@attrs.frozen(kw_only=True)
class Fault:
    """One armed fault: what it does and how many more times it fires."""

    stage: Stage
    kind: FaultKind
    count: int = 1
    code: int | None = None
    text: str = "Failure injected by mailio_trio.testing"
    seconds: float = 0.0


@attrs.define(eq=False)
class Faults:
    """The faults armed on one server, first armed first fired per stage."""

    _pending: dict[Stage, list[Fault]] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _stages: frozenset[Stage] = attrs.field(default=frozenset(), init=False)
    fired: list[Fault] = attrs.field(factory=list, init=False)
    """Every fault that fired, once per firing, in order (for assertions)."""
    chaos: Chaos = attrs.field(factory=lambda: _new_chaos(), init=False)
    """Probabilistic faults and the rate limiter, consulted after the counted faults."""

    def apply(self, settings: ChaosSettings) -> None:
        """Arm ``settings.faults`` and replace the chaos with its triggers and rate limit.

        Raises:
          ValueError: A fault or trigger at a stage this server has no command for
            (checked before anything changes).
        """
        for stage in {f.stage for f in settings.faults} | {t.stage for t in settings.triggers}:
            self.check_stage(stage)
        for fault in settings.faults:
            self._arm(fault)
        self.chaos.configure(settings.triggers, rate_limit=settings.rate_limit, seed=settings.seed)

    def pending_faults(self) -> list[Fault]:
        """The counted faults still armed, each with the firings it has left."""
        with self._lock:
            return [f for stage in Stage for f in self._pending.get(stage, ())]

    def fail_next(
        self, stage: Stage | str, code: int, text: str | None = None, *, count: int = 1
    ) -> None:
        """The next ``count`` commands at ``stage`` answer ``code`` (4xx or 5xx).

        ``text`` may start with an enhanced status code (``"4.5.3 Try later"``);
        without one the reply carries the class's ``X.0.0``. A ``421`` closes
        the connection after the reply, as RFC 5321 §3.8 says it must.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"fail_next takes a 4xx or 5xx code, not {code}")
        make_reply(code, text or "x")  # a malformed enhanced code fails here, not mid-test
        fault = Fault(stage=Stage.parse(stage), kind=FaultKind.REPLY, count=count, code=code)
        self._arm(attrs.evolve(fault, text=text) if text else fault)

    def drop_next(self, stage: Stage | str, *, count: int = 1) -> None:
        """At the next ``count`` commands at ``stage``, close the connection without a reply."""
        self._arm(Fault(stage=Stage.parse(stage), kind=FaultKind.DROP, count=count))

    def delay_next(self, stage: Stage | str, seconds: float, *, count: int = 1) -> None:
        """Hold the reply to the next ``count`` commands at ``stage`` for ``seconds``.

        The delay runs under ``limits.handler_timeout``: a longer one becomes
        the server's own ``451 4.3.0``, as a slow real handler would.
        """
        if seconds < 0:
            raise ValueError(f"delay_next takes seconds >= 0, not {seconds}")
        self._arm(
            Fault(stage=Stage.parse(stage), kind=FaultKind.DELAY, count=count, seconds=seconds)
        )

    def clear(self) -> None:
        """Disarm every pending fault and the chaos (``fired`` and the seed are kept)."""
        with self._lock:
            self._pending.clear()
        self.chaos.clear()

    def pending(self, stage: Stage | str | None = None) -> int:
        """How many firings are still armed, at ``stage`` or in all."""
        with self._lock:
            stages = self._pending if stage is None else [Stage.parse(stage)]
            return sum(f.count for s in stages for f in self._pending.get(s, ()))

    def check_stage(self, stage: Stage) -> None:
        """Raise ``ValueError`` if this server has no command for ``stage`` to fault."""
        if self._stages and stage not in self._stages:
            raise ValueError(f"this server has no {stage.command!r} command to fault")

    def _arm(self, fault: Fault) -> None:
        if fault.count < 1:
            raise ValueError(f"count must be at least 1, not {fault.count}")
        self.check_stage(fault.stage)
        with self._lock:
            self._pending.setdefault(fault.stage, []).append(fault)

    def _take(self, stage: Stage) -> Fault | None:
        with self._lock:
            queue = self._pending.get(stage)
            if queue:
                fault = queue[0]
                if fault.count > 1:
                    queue[0] = attrs.evolve(fault, count=fault.count - 1)
                else:
                    queue.pop(0)
                self.fired.append(fault)
                return fault
        chosen = self.chaos.pick(stage, trio.current_time())
        if chosen is not None:
            with self._lock:
                self.fired.append(chosen)
        return chosen

    def install(self, server: Server) -> None:
        """Register a ``<command>/fault`` handler for every stage the server has a core for."""
        stages = []
        for stage in Stage:
            handlers = server.chain.handlers(stage.command)
            if not any(h.name == CORE for h in handlers):
                continue
            others = tuple(h.name for h in handlers if h.name != CORE)
            server.add_handler(
                Handler(
                    command=stage.command,
                    name="fault",
                    func=_FaultHandler(self, stage),
                    before=others,
                )
            )
            stages.append(stage)
        self._stages = frozenset(stages)


@attrs.frozen
class _FaultHandler:
    faults: Faults
    stage: Stage

    async def __call__(self, req: Request, res: Response, /) -> None:
        fault = self.faults._take(self.stage)
        if fault is None:
            res.accept()
            return
        res.log.info("injecting %s fault at %s", fault.kind.value, self.stage.value)
        match fault.kind:
            case FaultKind.DELAY:
                await trio.sleep(fault.seconds)
                res.accept()
            case FaultKind.DROP:
                res.end()
            case FaultKind.REPLY:
                assert fault.code is not None
                if fault.code == 421:
                    res.end(fault.code, fault.text)
                else:
                    res.reject(fault.code, fault.text)


def _new_chaos() -> Chaos:
    # Imported here: _chaos builds on this module's Fault and Stage.
    from mailio_trio.testing._chaos import Chaos

    return Chaos()
