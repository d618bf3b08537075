"""The README's pytest example passes, run as a user's test file.

Copied into a fresh directory and run by pytest in a subprocess, as
tests/testing/test_sample_app.py does: the fixture arrives through the
installed package's ``pytest11`` entry point, with no conftest of ours.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

README = Path(__file__).parents[2] / "README.md"

INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider
filterwarnings = error
"""


def test_readme_pytest_example_passes(pytester: pytest.Pytester) -> None:
    section = README.read_text().split("## Testing your application's email", 1)[1]
    match = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert match, "no python block under ## Testing your application's email"
    pytester.makepyfile(test_welcome=match.group(1))
    pytester.makeini(INI)

    result = pytester.runpytest_subprocess("-v")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_welcome_is_retried PASSED*"])
