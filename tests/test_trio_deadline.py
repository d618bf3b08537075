"""tests/trio_deadline.py: a hanging Trio test fails on the real clock, whatever its clock.

Run with pytester (in process), a short deadline and three tests: one that
waits forever on the ordinary clock, one that waits forever under
``autojump_clock`` (no deadline for the clock to jump to), and one that
sleeps a virtual hour under ``autojump_clock`` — which must pass, since only
real seconds count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

HANGING_TESTS = """
import pytest
import trio


async def test_waits_forever():
    await trio.Event().wait()


async def test_waits_forever_under_autojump(autojump_clock):
    await trio.Event().wait()


async def test_virtual_hour_is_not_real_time(autojump_clock):
    await trio.sleep(3600)


@pytest.mark.trio_deadline(30)
async def test_marker_gives_more_time():
    await trio.sleep(0.01)
"""


def test_hanging_trio_tests_fail_at_the_deadline(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_hanging=HANGING_TESTS)
    result = pytester.runpytest_inprocess("-p", "trio_deadline", "-o", "trio_deadline=0.5")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_hanging.py::test_waits_forever - *",
            "FAILED test_hanging.py::test_waits_forever_under_autojump - *",
        ]
    )
    message = "Failed: did not finish within its 0.5 s real-time deadline"
    assert result.stdout.str().count(message) == 2


def test_default_deadline_is_under_faulthandler_timeout(pytestconfig: pytest.Config) -> None:
    deadline = float(pytestconfig.getini("trio_deadline"))
    faulthandler = float(pytestconfig.getini("faulthandler_timeout"))
    assert 0 < deadline < faulthandler
