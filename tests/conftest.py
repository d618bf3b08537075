"""Test-suite plumbing. The mailio fixtures come from the pytest11 entry point, not from here."""

from __future__ import annotations

# pytester runs pytest as a user would (tests/test_pytest_plugin.py, tests/test_sample_app.py).
pytest_plugins = ["pytester"]
