"""Chaos at run time: faults by probability, a rate limiter, and their text forms.

:mod:`~mailio_trio.testing._faults` arms faults by count ("the next two RCPTs
answer 452"). Chaos adds what a long-running development sink wants:

- a **trigger** per stage that fires with a probability (``mail:451:0.2``:
  one MAIL in five answers ``451``), drawn from a seeded :class:`random.Random`
  so a test (or a bug report) can replay the exact sequence;
- a **rate limiter**: a token bucket of ``messages`` tokens refilled over
  ``interval`` seconds of ``trio.current_time()``; a MAIL that finds the bucket
  empty answers ``421 4.7.0`` and the connection closes, as a real MTA's
  anvil-style limit does.

The same text forms serve the CLI (``--fault``, ``--fault-probability``,
``--rate-limit``), the ``[chaos]`` table of the config file, and the inbox
API's JSON (``PUT /api/v1/chaos``), so one spelling is learnt once:

- ``STAGE:ACTION[:COUNT]`` — a counted fault (``rcpt:452:2``);
- ``STAGE:ACTION:PROBABILITY`` — a trigger, probability in ``(0, 1]``;
- ``ACTION`` is a code (``452``), ``drop``, or ``delay=SECONDS``;
- ``N/SECONDS`` — the rate limit (``10/60``: ten messages a minute).

Everything here but :class:`Chaos` is a pure value; :class:`Chaos` holds the
random generator and the bucket behind a :class:`threading.Lock` (the
synchronous fixture changes it from the test's thread).
"""

from __future__ import annotations

import math
import random
import threading
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.testing._faults import Fault, FaultKind, Stage

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "RATE_LIMIT_TEXT",
    "Chaos",
    "ChaosSettings",
    "ChaosTrigger",
    "RateLimit",
    "TokenBucket",
    "parse_fault",
    "parse_rate_limit",
    "parse_trigger",
]

RATE_LIMIT_TEXT = "4.7.0 Rate limit exceeded, try again later (mailio_trio chaos)"
CHAOS_TEXT = "Failure injected by mailio_trio chaos"


@attrs.frozen(kw_only=True)
class ChaosTrigger:
    """A fault that fires at ``stage`` with ``probability`` each time the stage is reached."""

    stage: Stage
    probability: float
    kind: FaultKind = FaultKind.REPLY
    code: int | None = None
    seconds: float = 0.0
    text: str = CHAOS_TEXT

    def __attrs_post_init__(self) -> None:
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"probability must be in (0, 1], not {self.probability}")
        _check_action(self.kind, self.code, self.seconds)

    def fault(self) -> Fault:
        """The one-shot fault this trigger fires."""
        return Fault(
            stage=self.stage, kind=self.kind, code=self.code, seconds=self.seconds, text=self.text
        )

    def spec(self) -> str:
        """The text form, ``STAGE:ACTION:PROBABILITY``."""
        action = _action_spec(self.kind, self.code, self.seconds)
        return f"{self.stage.value}:{action}:{self.probability:g}"


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``messages`` MAIL commands per ``interval`` seconds (a burst of ``messages``)."""

    messages: int
    interval: float

    def __attrs_post_init__(self) -> None:
        if self.messages < 1 or not (self.interval > 0 and math.isfinite(self.interval)):
            raise ValueError(
                f"a rate limit is N/SECONDS with N >= 1 and SECONDS > 0, "
                f"not {self.messages}/{self.interval}"
            )

    def spec(self) -> str:
        return f"{self.messages}/{self.interval:g}"


@attrs.define(kw_only=True)
class TokenBucket:
    """The classic token bucket, time passed in (no clock here: tests feed it numbers).

    It starts full: ``capacity`` messages may come at once, then one more each
    ``1 / rate`` seconds.
    """

    capacity: float
    rate: float
    """Tokens per second."""
    tokens: float = attrs.field(default=attrs.Factory(lambda self: self.capacity, takes_self=True))
    last: float | None = None

    @classmethod
    def for_limit(cls, limit: RateLimit) -> TokenBucket:
        return cls(capacity=float(limit.messages), rate=limit.messages / limit.interval)

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; ``False`` when the bucket is empty."""
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@attrs.frozen(kw_only=True)
class ChaosSettings:
    """Everything chaos can be told at once (a CLI, a ``[chaos]`` table, an API body)."""

    faults: tuple[Fault, ...] = ()
    """Counted faults, armed when the settings are applied."""
    triggers: tuple[ChaosTrigger, ...] = ()
    """At most one per stage."""
    rate_limit: RateLimit | None = None
    seed: int | None = None
    """Seeds the generator the triggers draw from; ``None``: the system's entropy."""

    def __attrs_post_init__(self) -> None:
        stages = [t.stage for t in self.triggers]
        if len(stages) != len(set(stages)):
            raise ValueError("one probabilistic fault per stage")

    @property
    def enabled(self) -> bool:
        return bool(self.faults or self.triggers or self.rate_limit)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "[chaos]") -> ChaosSettings:
        """The ``[chaos]`` table: ``faults``/``triggers`` lists of specs, ``rate_limit``, ``seed``.

        Raises:
          ValueError: One line starting with ``where`` and the key.
        """
        allowed = ("faults", "triggers", "rate_limit", "seed")
        for key in table:
            if key not in allowed:
                raise ValueError(f"{where}: unknown key {key!r}; keys are {', '.join(allowed)}")

        def specs(key: str) -> list[str]:
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f'{where}.{key}: a list of strings, like ["rcpt:452:2"]')
            return value

        try:
            faults = tuple(parse_fault(s) for s in specs("faults"))
            triggers = tuple(parse_trigger(s) for s in specs("triggers"))
            rate = table.get("rate_limit")
            if rate is not None and not isinstance(rate, str):
                raise ValueError(f"rate_limit: a string N/SECONDS, not {rate!r}")
            seed = table.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise ValueError(f"seed: an integer, not {seed!r}")
            return cls(
                faults=faults,
                triggers=triggers,
                rate_limit=None if rate is None else parse_rate_limit(rate),
                seed=seed,
            )
        except ValueError as exc:
            if str(exc).startswith(where):
                raise
            raise ValueError(f"{where}: {exc}") from None


@attrs.define(eq=False)
class Chaos:
    """The live chaos of one server: triggers, seeded generator, rate limiter.

    Consulted by the fault handlers after the counted faults, so a fault a test
    armed on purpose always fires first.
    """

    _triggers: dict[Stage, ChaosTrigger] = attrs.field(factory=dict, init=False)
    _rate_limit: RateLimit | None = attrs.field(default=None, init=False)
    _bucket: TokenBucket | None = attrs.field(default=None, init=False)
    _seed: int | None = attrs.field(default=None, init=False)
    _rng: random.Random = attrs.field(factory=random.Random, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def configure(
        self,
        triggers: Iterable[ChaosTrigger] = (),
        *,
        rate_limit: RateLimit | None = None,
        seed: int | None = None,
    ) -> None:
        """Replace every trigger and the rate limit (Mailpit's ``PUT`` resets too)."""
        table = {t.stage: t for t in triggers}
        with self._lock:
            self._triggers = table
            self._rate_limit = rate_limit
            self._bucket = None if rate_limit is None else TokenBucket.for_limit(rate_limit)
            self._seed = seed
            self._rng = random.Random(seed)  # chaos, not cryptography

    def set_trigger(self, trigger: ChaosTrigger) -> None:
        """Add or replace the trigger at ``trigger.stage``, keeping the rest."""
        with self._lock:
            self._triggers[trigger.stage] = trigger

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        with self._lock:
            self._rate_limit = limit
            self._bucket = None if limit is None else TokenBucket.for_limit(limit)

    def seed(self, seed: int | None) -> None:
        """Restart the generator from ``seed``: the same draws follow."""
        with self._lock:
            self._seed = seed
            self._rng = random.Random(seed)  # chaos, not cryptography

    def clear(self) -> None:
        """No triggers, no rate limit (the seed stays)."""
        with self._lock:
            self._triggers = {}
            self._rate_limit = None
            self._bucket = None

    def settings(self) -> ChaosSettings:
        """What is configured now (without counted faults: see ``Faults.pending``)."""
        with self._lock:
            return ChaosSettings(
                triggers=tuple(self._triggers.values()),
                rate_limit=self._rate_limit,
                seed=self._seed,
            )

    def pick(self, stage: Stage, now: float) -> Fault | None:
        """The fault chaos fires at ``stage`` at time ``now``, or ``None``."""
        with self._lock:
            if stage is Stage.MAIL and self._bucket is not None and not self._bucket.take(now):
                return Fault(stage=stage, kind=FaultKind.REPLY, code=421, text=RATE_LIMIT_TEXT)
            trigger = self._triggers.get(stage)
            # One draw per visit to a stage with a trigger, whatever it decides:
            # the sequence a seed gives depends only on the traffic.
            if trigger is not None and self._rng.random() < trigger.probability:
                return trigger.fault()
        return None


# --- the text forms ------------------------------------------------------------


def _check_action(kind: FaultKind, code: int | None, seconds: float) -> None:
    if kind is FaultKind.REPLY and (code is None or not 400 <= code <= 599):
        raise ValueError(f"a fault's code is 4xx or 5xx, not {code}")
    if kind is FaultKind.DELAY and not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"a delay is seconds >= 0, not {seconds}")


def _action_spec(kind: FaultKind, code: int | None, seconds: float) -> str:
    if kind is FaultKind.REPLY:
        return str(code)
    if kind is FaultKind.DROP:
        return "drop"
    return f"delay={seconds:g}"


def _parse_action(text: str) -> tuple[FaultKind, int | None, float]:
    text = text.strip().lower()
    if text == "drop":
        return FaultKind.DROP, None, 0.0
    if text.startswith("delay="):
        try:
            seconds = float(text.removeprefix("delay="))
        except ValueError:
            raise ValueError(f"delay={text[6:]!r}: seconds, like delay=2.5") from None
        _check_action(FaultKind.DELAY, None, seconds)
        return FaultKind.DELAY, None, seconds
    if not (text.isdigit() and len(text) == 3):
        raise ValueError(f"{text!r} is not an action: a code (452), drop, or delay=SECONDS")
    code = int(text)
    _check_action(FaultKind.REPLY, code, 0.0)
    return FaultKind.REPLY, code, 0.0


def fault_spec(fault: Fault) -> str:
    """A counted fault's text form, ``STAGE:ACTION:COUNT``."""
    action = _action_spec(fault.kind, fault.code, fault.seconds)
    return f"{fault.stage.value}:{action}:{fault.count}"


def parse_fault(spec: str) -> Fault:
    """``STAGE:ACTION[:COUNT]`` → a counted :class:`Fault` (``rcpt:452:2``, ``data:drop``).

    Raises:
      ValueError: One line, starting with ``spec``, saying what is wrong with it.
    """
    try:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise ValueError("a fault is STAGE:ACTION[:COUNT], like rcpt:452:2")
        stage = Stage.parse(parts[0].strip())
        kind, code, seconds = _parse_action(parts[1])
        count = 1
        if len(parts) == 3:
            if not parts[2].strip().isdigit() or int(parts[2]) < 1:
                raise ValueError("COUNT is a whole number >= 1")
            count = int(parts[2])
    except ValueError as exc:
        raise ValueError(f"{spec!r}: {exc}") from None
    return Fault(stage=stage, kind=kind, code=code, seconds=seconds, count=count)


def parse_trigger(spec: str) -> ChaosTrigger:
    """``STAGE:ACTION:PROBABILITY`` → a :class:`ChaosTrigger` (``mail:451:0.2``).

    Raises:
      ValueError: One line, starting with ``spec``, saying what is wrong with it.
    """
    try:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError("a probabilistic fault is STAGE:ACTION:PROBABILITY, like mail:451:0.2")
        stage = Stage.parse(parts[0].strip())
        kind, code, seconds = _parse_action(parts[1])
        try:
            probability = float(parts[2])
        except ValueError:
            probability = math.nan
        if not 0.0 < probability <= 1.0:
            raise ValueError("PROBABILITY is a number in (0, 1]")
    except ValueError as exc:
        raise ValueError(f"{spec!r}: {exc}") from None
    return ChaosTrigger(stage=stage, kind=kind, code=code, seconds=seconds, probability=probability)


def parse_rate_limit(spec: str) -> RateLimit:
    """``N/SECONDS`` → a :class:`RateLimit` (``10/60``: ten messages a minute).

    Raises:
      ValueError: One line saying what is wrong with ``spec``.
    """
    count, sep, seconds = spec.partition("/")
    try:
        if not sep:
            raise ValueError
        return RateLimit(messages=int(count), interval=float(seconds))
    except ValueError:
        raise ValueError(
            f"{spec!r}: a rate limit is N/SECONDS with N >= 1 and SECONDS > 0, like 10/60"
        ) from None
