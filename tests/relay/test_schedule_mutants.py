"""relay/schedule.py's edges, as mutation testing (nox -s mutants) asked for them."""

from __future__ import annotations

from mailio_trio.relay import schedule


def test_a_delay_warning_under_two_hours_is_still_a_warning() -> None:
    # mutmut: "delay_warning_hours <= 0" mutated to "<= 1" survived the suite,
    # whose only values were 4 and 0. Any positive setting warns; 0 is off.
    assert schedule.delay_warning_at(1000.0, 1) == 1000.0 + 3600.0
    assert schedule.delay_warning_at(1000.0, 0.5) == 1000.0 + 1800.0
    assert schedule.delay_warning_at(1000.0, -1) is None


def test_a_message_expires_at_its_deadline_not_after() -> None:
    deadline = schedule.deadline(1000.0, 48)
    assert deadline == 1000.0 + 48 * 3600.0
    assert not schedule.expired(deadline - 0.5, 1000.0, 48)
    assert schedule.expired(deadline, 1000.0, 48)


def test_the_first_retry_waits_one_base() -> None:
    # attempts < 1 is a caller's slip; it waits like the first failure.
    assert schedule.next_attempt(100.0, 1, 60.0) == 160.0
    assert schedule.next_attempt(100.0, 0, 60.0) == 160.0
