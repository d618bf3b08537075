"""The sample application of docs/testing.md, tested the way its users would test it.

The sample (docs/examples/sample_app: an app module, its tests, its noxfile)
is copied into a fresh directory and run by pytest in a subprocess, so the
fixtures arrive exactly as they do for a user: through the installed package's
``pytest11`` entry point, with no conftest of ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

SAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "sample_app"

INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider
filterwarnings = error
"""


def test_sample_app_tests_pass_against_the_fixture(pytester: pytest.Pytester) -> None:
    for name in ("signup.py", "test_signup.py", "notify.py", "test_notify.py"):
        pytester.makepyfile(**{name[:-3]: (SAMPLE / name).read_text()})
    pytester.makeini(INI)

    result = pytester.runpytest_subprocess("-v")

    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        [
            "*test_welcome_is_sent_with_our_client PASSED*",
            "*test_recipient_refused_with_452_is_retried PASSED*",
            "*test_welcome_is_retried_after_451s PASSED*",
        ],
    )
