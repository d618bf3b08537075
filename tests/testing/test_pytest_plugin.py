"""The pytest plugin as its users meet it: loaded by the pytest11 entry point, in a fresh project.

Each test writes a small test suite with ``pytester`` and runs pytest on it in
a subprocess (so the entry point, not our conftest, supplies the fixtures).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider
filterwarnings = error
{extra}
"""


def _ini(pytester: pytest.Pytester, extra: str = "") -> None:
    pytester.makeini(INI.format(extra=extra))


def test_plugin_loads_without_pytest_trio() -> None:
    code = (
        "import sys, mailio_trio.pytest_plugin; "
        "assert 'pytest_trio' not in sys.modules, 'pytest-trio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fixtures_are_listed_with_docs(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    result = pytester.runpytest_subprocess("--fixtures")
    result.stdout.fnmatch_lines(
        ["mailio_server -- *pytest_plugin.py*", "*capturing SMTP server on 127.0.0.1*"]
    )
    # pytest lists a plugin's fixtures in the order it met them, not by name.
    result.stdout.fnmatch_lines(["mailio_server_thread -- *pytest_plugin.py*"])
    result.stdout.fnmatch_lines(
        ["mailio_server_factory -- *pytest_plugin.py*", "*a capturing SMTP server per call*"]
    )


def test_sync_fixture_with_marker_options(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import smtplib
        import pytest

        @pytest.mark.mailio(domains="example.com", size_limit=4096, hostname="mx.sample.test")
        def test_send(mailio_server_thread):
            server = mailio_server_thread
            with smtplib.SMTP(server.host, server.port) as client:
                client.ehlo("client.test")
                assert client.esmtp_features["size"] == "4096"
                rcpts = ["b@example.com", "c@other.example"]
                refused = client.sendmail("a@example.org", rcpts, b"Subject: s\\r\\n\\r\\nx")
            assert refused == {"c@other.example": (550, b"5.7.1 Relaying denied: "
                                                   b"other.example is not a local domain")}
            [m] = server.wait_for(1, timeout=5)
            assert [str(r) for r in m.envelope.recipients] == ["b@example.com"]
            assert str(m.envelope.sender) == "a@example.org"
            assert m.message["Subject"] == "s"
            assert b"by mx.sample.test" in m.raw
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_trio_fixture_under_pytest_trio(pytester: pytest.Pytester) -> None:
    _ini(pytester, "trio_mode = true")
    pytester.makepyfile(
        """
        import smtplib
        import trio

        async def test_send(mailio_server):
            mailio_server.fail_next("rcpt", 452, count=1)

            def send():
                with smtplib.SMTP(mailio_server.host, mailio_server.port) as client:
                    client.ehlo("client.test")
                    client.mail("a@example.org")
                    first = client.rcpt("b@example.com")[0]
                    second = client.rcpt("b@example.com")[0]
                    client.data(b"Subject: trio\\r\\n\\r\\nx")
                    return first, second

            assert await trio.to_thread.run_sync(send) == (452, 250)
            [m] = await mailio_server.wait_for(1, timeout=5)
            assert mailio_server.find(subject="trio") == [m]
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_options_by_indirect_parametrization(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import smtplib
        import pytest

        @pytest.mark.parametrize(
            "mailio_server_thread", [{"size_limit": 1000}, {"size_limit": 2000}], indirect=True
        )
        def test_size(mailio_server_thread):
            with smtplib.SMTP(mailio_server_thread.host, mailio_server_thread.port) as client:
                client.ehlo("client.test")
                assert client.esmtp_features["size"] in ("1000", "2000")
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_unknown_marker_option_is_one_clear_line(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mailio(size=10)
        def test_x(mailio_server_thread):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.mailio: unknown option 'size'; options are domains, size_limit*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_sync_fixture_200_times_leaves_nothing_behind(pytester: pytest.Pytester) -> None:
    """The real fixture, 200 times in one in-process pytest run; measured from outside it."""
    _ini(pytester)
    ports = pytester.path / "ports.txt"
    source = pytester.path / "test_many.py"
    template = (
        """
        import smtplib
        import pytest

        @pytest.mark.parametrize("i", range(COUNT))
        def test_one(mailio_server_thread, i):
            with smtplib.SMTP(mailio_server_thread.host, mailio_server_thread.port) as client:
                client.sendmail("a@example.org", ["b@example.com"], f"Subject: {i}\\r\\n\\r\\nx")
            [m] = mailio_server_thread.wait_for(1)
            assert m.message["Subject"] == str(i)
            with open(PORTS, "a") as f:
                print(mailio_server_thread.port, file=f)
        """
    ).replace("PORTS", repr(str(ports)))

    def run(n: int) -> None:
        source.write_text(textwrap.dedent(template.replace("COUNT", str(n))))
        pytester.runpytest_inprocess("-q").assert_outcomes(passed=n)

    run(1)  # warm-up: pytest's and Trio's one-time imports, Trio's worker-thread cache
    threads = [t for t in threading.enumerate() if not t.name.startswith("Trio thread")]
    fds = len(os.listdir("/proc/self/fd"))
    ports.unlink()

    run(200)

    # Trio's idle worker threads ("Trio thread N") are a process-wide cache, not ours.
    after = [t for t in threading.enumerate() if not t.name.startswith("Trio thread")]
    assert after == threads
    assert len(os.listdir("/proc/self/fd")) == fds
    used = {int(line) for line in ports.read_text().split()}
    assert len(used) > 1
    for port in used:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            continue
        raise AssertionError(f"port {port} still accepts connections")
