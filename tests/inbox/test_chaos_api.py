"""``/api/v1/chaos`` against ``serve --capture --web`` run in-process: Mailpit's shape, and ours.

Each call's answer is checked against the OpenAPI document's ChaosTriggers
schema, and its effect over real SMTP (``smtplib`` in a thread).
"""

from __future__ import annotations

import json
import smtplib
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import trio
from inbox_serving import Serving, serve_inbox

from mailio_trio.inbox import inbox_app
from mailio_trio.inbox._openapi import openapi

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import httpx

MESSAGE = "From: dev@app.example\r\nSubject: Chaos\r\n\r\nHello.\r\n"


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[Serving]:
    async with serve_inbox(tmp_path, "--fault", "rcpt:452:2", "--chaos-seed", "11") as running:
        yield running


def _check_schema(body: Any) -> None:
    document = openapi()
    schema = {**document["components"]["schemas"]["ChaosTriggers"], "$defs": {}}
    jsonschema.validate(body, schema)


async def _call(serving: Serving, method: str, body: Any = None) -> httpx.Response:
    def run() -> httpx.Response:
        with serving.client() as client:
            content = (
                None if body is None else (body if isinstance(body, str) else json.dumps(body))
            )
            return client.request(method, "/api/v1/chaos", content=content)

    return await trio.to_thread.run_sync(run)


async def _mail_code(serving: Serving) -> int:
    """The reply to one MAIL command over a fresh connection."""

    def run() -> int:
        with smtplib.SMTP("127.0.0.1", serving.smtp_port, timeout=30) as client:
            client.ehlo("client.test")
            code, _ = client.mail("dev@app.example")
            return int(code)

    return await trio.to_thread.run_sync(run)


async def test_get_shows_the_cli_faults_and_mailpits_defaults(serving: Serving) -> None:
    with trio.fail_after(30):
        answer = await _call(serving, "GET")
    assert answer.status_code == 200
    body = answer.json()
    _check_schema(body)
    assert body["Sender"] == {"ErrorCode": 451, "Probability": 0}
    assert body["Recipient"] == {"ErrorCode": 451, "Probability": 0}
    assert body["Authentication"] == {"ErrorCode": 451, "Probability": 0}
    assert body["Faults"] == [
        {"Stage": "rcpt", "ErrorCode": 452, "Drop": False, "Delay": 0, "Count": 2}
    ]
    assert (body["Triggers"], body["RateLimit"], body["Seed"]) == ([], None, 11)


async def test_a_mailpit_put_replaces_everything_and_fires(serving: Serving) -> None:
    with trio.fail_after(30):
        answer = await _call(serving, "PUT", {"Sender": {"ErrorCode": 450, "Probability": 100}})
        assert answer.status_code == 200
        body = answer.json()
        _check_schema(body)
        assert body["Sender"] == {"ErrorCode": 450, "Probability": 100}
        assert body["Faults"] == []  # Mailpit: a PUT resets what was there
        assert body["Triggers"] == [
            {"Stage": "mail", "ErrorCode": 450, "Drop": False, "Delay": 0, "Probability": 100}
        ]
        assert await _mail_code(serving) == 450
        assert (await _call(serving, "GET")).json() == body
        tenth = {"Triggers": [{"Stage": "data", "ErrorCode": 451, "Probability": 10}]}
        answer = await _call(serving, "PUT", tenth)
        assert answer.json()["Triggers"][0]["Probability"] == 10  # not 10.000000000000002


async def test_our_triggers_faults_and_rate_limit(serving: Serving) -> None:
    put = {
        "Recipient": {"ErrorCode": 452, "Probability": 100},
        "Triggers": [
            {"Stage": "rcpt", "Drop": True, "Probability": 0},  # ours wins: rcpt is off
            {"Stage": "noop", "Delay": 0.01, "Probability": 50},
        ],
        "Faults": [{"Stage": "mail", "ErrorCode": 550, "Count": 1}],
        "RateLimit": {"Messages": 2, "Interval": 3600},
        "Seed": 5,
    }
    with trio.fail_after(30):
        answer = await _call(serving, "PUT", put)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        _check_schema(body)
        assert body["Recipient"]["Probability"] == 0
        assert [t["Stage"] for t in body["Triggers"]] == ["noop"]
        assert body["Faults"][0]["ErrorCode"] == 550
        assert (body["RateLimit"], body["Seed"]) == ({"Messages": 2, "Interval": 3600}, 5)
        # The counted fault first (no token spent), then two MAILs, then the limit.
        codes = [await _mail_code(serving) for _ in range(4)]
        assert codes == [550, 250, 250, 421]

        cleared = await _call(serving, "DELETE")
        assert cleared.status_code == 200
        _check_schema(cleared.json())
        assert (cleared.json()["Triggers"], cleared.json()["RateLimit"]) == ([], None)
        assert await _mail_code(serving) == 250


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json", "chaos: "),
        ([], "the body: a JSON object"),
        ({"Sender": {"ErrorCode": 250, "Probability": 10}}, "Sender.ErrorCode: an SMTP code"),
        ({"Sender": {"ErrorCode": 451, "Probability": 101}}, "Sender.Probability"),
        ({"Triggers": [{"Stage": "quit", "ErrorCode": 451, "Probability": 5}]}, "no fault stage"),
        (
            {"Triggers": [{"Stage": "mail", "ErrorCode": 451, "Drop": True, "Probability": 5}]},
            "exactly one of ErrorCode, Drop, Delay",
        ),
        ({"Faults": [{"Stage": "mail", "ErrorCode": 451, "Count": 0}]}, "Faults[0].Count"),
        ({"RateLimit": {"Messages": 0, "Interval": 1}}, "RateLimit.Messages"),
        ({"Seed": "x"}, "Seed: an integer"),
        (
            '{"Triggers": [{"Stage": "mail", "Delay": Infinity, "Probability": 5}]}',
            "Delay: a number",
        ),
        ('{"Sender": {"ErrorCode": 451, "Probability": NaN}}', "Sender.Probability: a number"),
    ],
)
async def test_a_bad_put_is_400_and_changes_nothing(
    serving: Serving, body: Any, expected: str
) -> None:
    with trio.fail_after(30):
        answer = await _call(serving, "PUT", body)
        assert answer.status_code == 400
        assert expected in answer.text
        assert (await _call(serving, "GET")).json()["Faults"][0]["Count"] == 2


async def test_without_a_fault_table_chaos_is_not_enabled(serving: Serving) -> None:
    # The app built without the server's faults answers as Mailpit does without --enable-chaos.
    import httpx

    transport = httpx.ASGITransport(app=inbox_app(serving.inbox))
    async with httpx.AsyncClient(transport=transport, base_url="http://inbox.test") as client:
        answer = await client.get("/api/v1/chaos")
    assert (answer.status_code, answer.text) == (400, "chaos is not enabled on this server")


async def test_a_vanishing_probability_is_off(serving: Serving) -> None:
    # 5e-324 % is 0.0 once divided by 100: off, not a 400 (found by schemathesis).
    body = {"Triggers": [{"Stage": "mail", "ErrorCode": 451, "Probability": 5e-324}]}
    with trio.fail_after(30):
        answer = await _call(serving, "PUT", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["Triggers"] == []
