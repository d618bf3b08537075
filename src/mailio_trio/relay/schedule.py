"""Retry arithmetic for the relay, pure: times are passed in, nothing reads a clock.

mail-io waits ``base × failures²`` between attempts (60 s, 4 min, 9 min, ...)
and gives up ``retry_hours`` after the message was accepted. RFC 5321
§4.5.4.1 asks for at least 30 minutes between retries and 4-5 days before
giving up; the defaults here are mail-io's (48 hours), the base is configurable.
"""

from __future__ import annotations

__all__ = ["deadline", "delay_warning_at", "expired", "next_attempt"]


def next_attempt(now: float, attempts: int, base: float) -> float:
    """When to try again after ``attempts`` failed attempts (``attempts >= 1``).

    Example:
      >>> next_attempt(1000.0, 3, 60.0)
      1540.0
    """
    return now + base * max(attempts, 1) ** 2


def deadline(created: float, retry_hours: float) -> float:
    """The time after which temporary failures are given up and bounced."""
    return created + retry_hours * 3600.0


def expired(now: float, created: float, retry_hours: float) -> bool:
    return now >= deadline(created, retry_hours)


def delay_warning_at(created: float, delay_warning_hours: float) -> float | None:
    """When a still-undelivered message's sender is warned; ``None``: warnings are off (0).

    Example:
      >>> delay_warning_at(1000.0, 4.0)
      15400.0
    """
    if delay_warning_hours <= 0:
        return None
    return created + delay_warning_hours * 3600.0
