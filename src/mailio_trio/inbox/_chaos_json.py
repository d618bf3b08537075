"""``/api/v1/chaos``'s JSON: Mailpit's three triggers, plus ours (no I/O).

Mailpit (v1.22+) answers ``GET``/``PUT /api/v1/chaos`` with::

    {"Sender": {"ErrorCode": 451, "Probability": 20},
     "Recipient": {"ErrorCode": 0, "Probability": 0},
     "Authentication": {"ErrorCode": 0, "Probability": 0}}

``Probability`` is a percentage; ``Sender`` is MAIL, ``Recipient`` RCPT,
``Authentication`` AUTH, and a ``PUT`` replaces every trigger. Ours keeps those
keys and meanings, and adds (all optional on ``PUT``):

- ``Triggers``: ``[{"Stage", "ErrorCode" | "Drop" | "Delay", "Probability"}]``,
  any stage; for mail/rcpt/auth, an entry here wins over Mailpit's key, and
  a later entry for a stage over an earlier one;
- ``Faults``: counted faults, ``[{"Stage", "ErrorCode" | "Drop" | "Delay", "Count"}]``
  (``GET``: those still armed, with the firings left);
- ``RateLimit``: ``{"Messages": N, "Interval": SECONDS}`` or ``null``;
- ``Seed``: the generator's seed, or ``null``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mailio_trio.testing import Fault, FaultKind, Stage
from mailio_trio.testing._chaos import CHAOS_TEXT, ChaosSettings, ChaosTrigger, RateLimit

if TYPE_CHECKING:
    from mailio_trio.testing import Faults

__all__ = ["MAILPIT_TRIGGERS", "MAX_RATE_MESSAGES", "chaos_json", "parse_chaos_json"]

MAX_RATE_MESSAGES = 10**9
"""A rate limit's burst at most (the bucket counts in floats)."""

MAILPIT_TRIGGERS = {"Sender": Stage.MAIL, "Recipient": Stage.RCPT, "Authentication": Stage.AUTH}
_DEFAULT_CODE = 451


def _action_json(kind: FaultKind, code: int | None, seconds: float) -> dict[str, Any]:
    return {
        "ErrorCode": code if kind is FaultKind.REPLY else 0,
        "Drop": kind is FaultKind.DROP,
        "Delay": seconds if kind is FaultKind.DELAY else 0,
    }


def _percent(probability: float) -> float:
    # 0.1 * 100 is 10.000000000000002: answer what was asked for.
    return round(probability * 100, 9)


def chaos_json(faults: Faults) -> dict[str, Any]:
    """What ``GET /api/v1/chaos`` answers for ``faults``."""
    settings = faults.chaos.settings()
    by_stage = {t.stage: t for t in settings.triggers}
    out: dict[str, Any] = {}
    for key, stage in MAILPIT_TRIGGERS.items():
        trigger = by_stage.get(stage)
        if trigger is not None and trigger.kind is FaultKind.REPLY:
            out[key] = {"ErrorCode": trigger.code, "Probability": _percent(trigger.probability)}
        else:
            out[key] = {"ErrorCode": _DEFAULT_CODE, "Probability": 0}
    out["Triggers"] = [
        {
            "Stage": t.stage.value,
            **_action_json(t.kind, t.code, t.seconds),
            "Probability": _percent(t.probability),
        }
        for t in settings.triggers
    ]
    out["Faults"] = [
        {"Stage": f.stage.value, **_action_json(f.kind, f.code, f.seconds), "Count": f.count}
        for f in faults.pending_faults()
    ]
    limit = settings.rate_limit
    out["RateLimit"] = (
        None if limit is None else {"Messages": limit.messages, "Interval": limit.interval}
    )
    out["Seed"] = settings.seed
    return out


def _number(value: Any, where: str, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: a number")
    if value < low or (high is not None and value > high):
        bound = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
        raise ValueError(f"{where}: a number {bound}, not {value}")
    return float(value)


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (JSON Schema's ``integer``: ``4.0`` is one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _action(entry: dict[str, Any], where: str) -> tuple[FaultKind, int | None, float]:
    drop = entry.get("Drop", False)
    delay = entry.get("Delay", 0)
    raw_code = entry.get("ErrorCode", 0)
    if not isinstance(drop, bool):
        raise ValueError(f"{where}.Drop: true or false")
    seconds = _number(delay, f"{where}.Delay", low=0)
    code = 0 if raw_code is None else _whole(raw_code)
    if code is None:
        raise ValueError(f"{where}.ErrorCode: an SMTP code from 400 to 599")
    chosen = [bool(code), drop, seconds > 0]
    if sum(chosen) != 1:
        raise ValueError(f"{where}: exactly one of ErrorCode, Drop, Delay")
    if drop:
        return FaultKind.DROP, None, 0.0
    if seconds > 0:
        return FaultKind.DELAY, None, seconds
    if not 400 <= code <= 599:
        raise ValueError(f"{where}.ErrorCode: an SMTP code from 400 to 599, not {code}")
    return FaultKind.REPLY, code, 0.0


def _stage(entry: dict[str, Any], where: str) -> Stage:
    value = entry.get("Stage")
    if not isinstance(value, str):
        raise ValueError(f'{where}.Stage: a stage name, like "rcpt"')
    return Stage.parse(value)


def _entries(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ValueError(f"{key}: a list of objects")
    return value


def parse_chaos_json(body: Any) -> ChaosSettings:
    """``PUT /api/v1/chaos``'s body → the settings it asks for.

    Raises:
      ValueError: One line naming the key (answered ``400``).
    """
    if not isinstance(body, dict):
        raise ValueError("the body: a JSON object")
    triggers: dict[Stage, ChaosTrigger] = {}
    for key, stage in MAILPIT_TRIGGERS.items():
        entry = body.get(key)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"{key}: an object with ErrorCode and Probability")
        percent = _number(entry.get("Probability", 0), f"{key}.Probability", low=0, high=100)
        if percent / 100 > 0:  # a denormal percentage is 0.0 once divided: off
            kind, code, _ = _action({"ErrorCode": entry.get("ErrorCode", 0)}, key)
            triggers[stage] = ChaosTrigger(
                stage=stage, kind=kind, code=code, probability=percent / 100
            )
    for index, entry in enumerate(_entries(body, "Triggers")):
        where = f"Triggers[{index}]"
        stage = _stage(entry, where)
        percent = _number(entry.get("Probability"), f"{where}.Probability", low=0, high=100)
        kind, code, seconds = _action(entry, where)
        if percent / 100 == 0:
            triggers.pop(stage, None)
            continue
        triggers[stage] = ChaosTrigger(
            stage=stage, kind=kind, code=code, seconds=seconds, probability=percent / 100
        )
    faults = []
    for index, entry in enumerate(_entries(body, "Faults")):
        where = f"Faults[{index}]"
        count = _whole(entry.get("Count", 1))
        if count is None or count < 1:
            raise ValueError(f"{where}.Count: a whole number >= 1")
        kind, code, seconds = _action(entry, where)
        faults.append(
            Fault(
                stage=_stage(entry, where),
                kind=kind,
                code=code,
                seconds=seconds,
                count=count,
                text=CHAOS_TEXT,
            )
        )
    limit = body.get("RateLimit")
    rate_limit = None
    if limit is not None:
        if not isinstance(limit, dict):
            raise ValueError('RateLimit: {"Messages": N, "Interval": SECONDS} or null')
        messages = _whole(limit.get("Messages"))
        if messages is None or not 1 <= messages <= MAX_RATE_MESSAGES:
            raise ValueError(f"RateLimit.Messages: a whole number from 1 to {MAX_RATE_MESSAGES}")
        interval = _number(limit.get("Interval"), "RateLimit.Interval", low=0)
        if interval <= 0:
            raise ValueError("RateLimit.Interval: seconds > 0")
        rate_limit = RateLimit(messages=messages, interval=interval)
    seed = body.get("Seed")
    if seed is not None and (seed := _whole(seed)) is None:
        raise ValueError("Seed: an integer or null")
    return ChaosSettings(
        faults=tuple(faults), triggers=tuple(triggers.values()), rate_limit=rate_limit, seed=seed
    )
