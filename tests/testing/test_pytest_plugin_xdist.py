"""The fixtures under pytest-xdist, and their switches (tls, auth, web, chaos), as users meet them.

A generated suite of 20 tests — sync, Trio, factory; TLS with AUTH, the web
inbox, seeded chaos, the rate limiter, the content helpers — runs under
``pytest -n 4`` twice in a row in a fresh project (the pytest11 entry point
supplies the fixtures). Each generated test ends with a check, in an autouse
fixture torn down after the server fixtures, that no thread it started is
left (Trio's process-wide cache of idle worker threads aside).
"""

from __future__ import annotations

import re
import textwrap

import pytest

pytest.importorskip("xdist")

INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider
filterwarnings = error
trio_mode = true
"""

CONFTEST = """
import threading

import pytest


@pytest.fixture(autouse=True)
def no_leaked_thread():
    # Autouse: set up before, so torn down after, the mailio fixtures.
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and not t.name.startswith("Trio thread")
    ]
    assert not leaked, f"threads left behind: {leaked}"
"""

SUITE = """
import email.message
import random
import smtplib
import ssl

import httpx
import pytest
import trio

PNG = b"\\x89PNG\\r\\n\\x1a\\n fake image bytes"


def newsletter(i):
    msg = email.message.EmailMessage()
    msg["From"] = "News <news@app.example>"
    msg["To"] = "reader@example.com"
    msg["Subject"] = f"Issue {i}"
    msg["List-Unsubscribe"] = "<mailto:unsub@app.example>, <https://app.example/unsub?u=1>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(f"Issue {i}. Read it at https://app.example/issues/{i}.")
    msg.add_alternative(
        f'<p>Issue {i}: <a href="https://app.example/issues/{i}?html=1">read</a></p>',
        subtype="html",
    )
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="logo.png")
    return msg


@pytest.mark.parametrize("i", range(4))
def test_sync_content_helpers(mailio_server_thread, i):
    server = mailio_server_thread
    with smtplib.SMTP(server.host, server.port) as client:
        client.send_message(newsletter(i))
    [m] = server.wait_for(1, timeout=10)
    assert m.text.startswith(f"Issue {i}.")
    assert "<a href=" in m.html
    [logo] = m.attachments
    assert (logo.filename, logo.content_type, logo.content) == ("logo.png", "image/png", PNG)
    assert m.links == [
        f"https://app.example/issues/{i}?html=1",
        f"https://app.example/issues/{i}",
    ]
    assert m.has_list_unsubscribe and m.has_one_click_unsubscribe
    assert m.list_unsubscribe == ["mailto:unsub@app.example", "https://app.example/unsub?u=1"]


@pytest.mark.parametrize("i", range(4))
def test_factory_tls_and_auth_with_plain_smtplib(mailio_server_factory, i):
    server = mailio_server_factory(tls=True, auth=True)
    # Both ways to trust the throw-away CA: the context, or the PEM file.
    context = server.tls.client_context() if i % 2 else ssl.create_default_context(
        cafile=str(server.tls.ca_path)
    )
    with smtplib.SMTP(server.host, server.port) as client:
        client.starttls(context=context)
        client.login(*server.credentials)
        client.sendmail("a@example.org", ["b@example.com"], f"Subject: tls {i}\\r\\n\\r\\nx")
    [m] = server.wait_for(1, timeout=10)
    assert m.secure and m.user.username == server.credentials[0]


@pytest.mark.parametrize("i", range(4))
def test_factory_web_inbox_and_its_chaos_api(mailio_server_factory, i):
    server = mailio_server_factory(web=True)
    with smtplib.SMTP(server.host, server.port) as client:
        client.send_message(newsletter(i))
    server.wait_for(1, timeout=10)
    with httpx.Client(base_url=server.web_url, timeout=10) as web:
        listing = web.get("/api/v1/wait", params={"count": 1, "timeout": 10}).json()
        assert [m["Subject"] for m in listing["messages"]] == [f"Issue {i}"]
        chaos = {"Sender": {"ErrorCode": 451, "Probability": 100}}
        web.put("/api/v1/chaos", json=chaos).raise_for_status()
    with smtplib.SMTP(server.host, server.port) as client, pytest.raises(
        smtplib.SMTPSenderRefused
    ) as refused:
        client.sendmail("a@example.org", ["b@example.com"], "Subject: no\\r\\n\\r\\nx")
    assert refused.value.smtp_code == 451


@pytest.mark.parametrize("seed", range(4))
async def test_trio_seeded_probabilistic_faults(mailio_server, seed):
    mailio_server.seed_chaos(seed)
    mailio_server.fail_randomly("rcpt", 452, 0.5)
    rng = random.Random(seed)
    expected = [452 if rng.random() < 0.5 else 250 for _ in range(10)]

    def send():
        with smtplib.SMTP(mailio_server.host, mailio_server.port) as client:
            client.ehlo("client.test")
            client.mail("a@example.org")
            return [client.rcpt("b@example.com")[0] for _ in range(10)]

    with trio.fail_after(30):
        assert await trio.to_thread.run_sync(send) == expected


@pytest.mark.mailio(rate_limit="2/3600", faults=["rcpt:452:1"])
@pytest.mark.parametrize("i", range(4))
def test_marker_rate_limit_and_fault(mailio_server_thread, i):
    server = mailio_server_thread
    with smtplib.SMTP(server.host, server.port) as client:
        refused = client.sendmail("a@example.org", ["x@example.com", "y@example.com"], "S: 1")
        assert list(refused) == ["x@example.com"]  # the marker's counted fault
        client.sendmail("a@example.org", ["z@example.com"], "S: 2")
        with pytest.raises(smtplib.SMTPSenderRefused) as limited:
            client.sendmail("a@example.org", ["z@example.com"], "S: 3")
    assert limited.value.smtp_code == 421
    assert len(server.wait_for(2, timeout=10)) == 2
"""


def test_twenty_tests_pass_under_four_xdist_workers_twice(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=textwrap.dedent(SUITE))
    for _ in range(2):
        result = pytester.runpytest_subprocess("-n", "4", "-p", "xdist", timeout=300)
        result.assert_outcomes(passed=20)
        result.stdout.fnmatch_lines(["*4 workers [[]20 items[]]*"])


def test_tls_files_go_under_each_workers_own_base(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mailio(tls=True)
        @pytest.mark.parametrize("i", range(4))
        def test_ca(mailio_server_thread, worker_id, tmp_path_factory, i):
            path = mailio_server_thread.tls.ca_path
            assert path.read_bytes() == mailio_server_thread.tls.ca_pem
            assert path.is_relative_to(tmp_path_factory.getbasetemp())
            print(f"CA {worker_id} {path}")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "-s", "-rA", timeout=300)
    result.assert_outcomes(passed=4)
    paths = re.findall(r"CA (gw\d) (\S+)", result.stdout.str())
    assert len({path for _, path in paths}) == len(paths)  # no file shared by two servers
    for worker, path in paths:
        assert f"/popen-{worker}/" in path


def test_a_bad_chaos_option_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mailio(faults=["rcpt:999"])
        def test_x(mailio_server_thread):
            pass

        def test_y(mailio_server_factory):
            mailio_server_factory(rate_limit="often")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.mailio: 'rcpt:999': a fault's code is 4xx or 5xx, not 999*",
            "*mailio_server_factory: 'often': a rate limit is N/SECONDS*",
        ],
        consecutive=False,
    )
