"""Developer sessions: ``nox`` runs tests, lint and typecheck."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"
PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
def tests(session: nox.Session) -> None:
    """Run pytest against the installed package; args after ``--`` go to pytest."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests and this file."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs with warnings as errors."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("sphinx-build", "-W", "-n", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against aiosmtpd (never part of the default sessions).

    Args after ``--`` go to ``bench/run.py`` (``--rounds 5``, ``--workloads W2,W3``).
    """
    # The extras W2M ([metrics] listen) and W2R ([redis] url) serve with.
    session.install(".[metrics,redis]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    if any("smtp-source" in arg or "smtp-sink" in arg for arg in session.posargs):
        # Postfix's C generator and sink: unpacked from Debian's package, no daemon.
        session.run("sh", "bench/get_postfix.sh", external=True)
    if any("smtp-server" in arg for arg in session.posargs):
        # nodemailer's smtp-server (issue #18): the pinned version from package-lock.json.
        session.run(
            "npm", "ci", "--no-audit", "--no-fund", "--prefix", "bench/smtp-server", external=True
        )
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz the wire parsers with atheris (never a default session).

    ``nox -s fuzz -- TARGET SECONDS`` (a name from ``fuzz/``, or ``all``);
    findings land in ``fuzz/crashes/`` (docs/testing-the-project.md).
    """
    if len(session.posargs) < 2:
        session.error("usage: nox -s fuzz -- TARGET|all SECONDS [libFuzzer flags]")
    session.install(".[mailauth]", *nox.project.dependency_groups(PYPROJECT, "fuzz"))
    session.run("python", "fuzz/run.py", *session.posargs)


# What `mutmut results` calls a mutant the tests did not kill.
_SURVIVING = ("survived", "timeout", "suspicious", "no tests", "segfault")


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing with mutmut (never a default session; config: [tool.mutmut]).

    Args after ``--`` go to ``mutmut run``: mutant globs such as
    ``"mailio_trio.relay.schedule*"`` (all the configured modules without
    any). The survivors are written to ``mutants/survivors.txt``;
    ``mutmut show NAME`` prints one's diff (docs/testing-the-project.md).
    """
    session.install(".[mailauth]", *nox.project.dependency_groups(PYPROJECT, "mutants"))
    session.run("mutmut", "run", *session.posargs)
    results = session.run("mutmut", "results", silent=True) or ""
    survivors = [
        line.strip()
        for line in str(results).splitlines()
        if line.strip().rpartition(": ")[2] in _SURVIVING
    ]
    Path("mutants", "survivors.txt").write_text("".join(f"{s}\n" for s in survivors))
    session.log(f"{len(survivors)} surviving mutants in mutants/survivors.txt")
