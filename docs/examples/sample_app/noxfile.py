"""The sample application's nox sessions: its tests run against mailio_trio's fixture."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the tests; mailio-trio's pytest plugin loads itself (pytest11 entry point)."""
    session.install("pytest", "pytest-trio", "mailio-trio")
    session.run("pytest", *session.posargs)
