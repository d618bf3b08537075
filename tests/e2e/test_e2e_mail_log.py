"""The mail log: one grep-able INFO line per connection, message, refusal and relay outcome.

#13 item 14. The lines are parsed back into ``key=value`` pairs and their
fields asserted; the samples in docs/logging.md are parsed the same way and
must have the same keys, so the documentation cannot drift from the log.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from smtp_peers import BODY, PeerHandler, free_port_on, run_aiosmtpd, start_relaying_server

from mailio_trio import Config
from mailio_trio._maillog import format_fields
from mailio_trio.cli._logging import _JSONFormatter
from mailio_trio.client import send
from mailio_trio.testing import RunningServer, start_capturing_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest

    from mailio_trio._maillog import Value

WAIT = 20  # seconds: an upper bound, never expected
DOCS = Path(__file__).resolve().parents[2] / "docs" / "logging.md"
_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)(?: |$)')


def parse(line: str) -> dict[str, str]:
    """A mail log line back into its pairs; the whole line must be pairs."""
    pairs = _PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, line
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


@asynccontextmanager
async def relay_setup(
    nursery: trio.Nursery, tmp_path: Path, port: int
) -> AsyncIterator[RunningServer]:
    yield await start_relaying_server(nursery, tmp_path, port, connect_timeout=5.0)


def mail_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    return [parse(r.getMessage()) for r in caplog.records if r.name == "mailio_trio.mail"]


def find(lines: list[dict[str, str]], **want: str) -> list[dict[str, str]]:
    return [line for line in lines if all(line.get(k) == v for k, v in want.items())]


async def test_accepted_refused_and_relayed_lines(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio.mail")
    port = free_port_on("127.0.0.2")
    handler = PeerHandler(data_replies=["451 4.3.0 try again later"])
    with trio.fail_after(WAIT):
        async with (
            run_aiosmtpd("127.0.0.2", port=port, handler=handler) as peer,
            relay_setup(nursery, tmp_path, port) as running,
        ):
            async with running.open_raw() as conn:
                await conn.read_reply()
                await conn.command("EHLO client.test")
                await conn.command("MAIL FROM:<spammer@elsewhere.test>")
                refused = await conn.command("RCPT TO:<victim@elsewhere.test>")
                await conn.command("QUIT")
            assert refused.code == 550
            await send(running.host, running.port, "a@example.com", ["b@remote.test"], BODY)
            await peer.handler.wait_for(1)
            while True:  # the worker logs the second outcome after the peer's 250
                lines = mail_lines(caplog)
                if (
                    find(lines, event="relay", status="sent")
                    and len(find(lines, event="disconnect")) == 2
                ):
                    break
                await trio.sleep(0.01)

    [reject] = find(lines, event="reject")
    assert reject["command"] == "RCPT"
    assert reject["from"] == "<spammer@elsewhere.test>"
    assert reject["to"] == "<victim@elsewhere.test>"
    assert (reject["status"], reject["code"], reject["dsn"]) == ("refused", "550", "5.7.1")
    assert reject["reply"] == "Relay access denied"
    assert re.fullmatch(r"unknown\[127\.0\.0\.1\]:\d+", reject["client"])
    assert reject["helo"] == "client.test"

    [message] = find(lines, event="message")
    assert message["from"] == "<a@example.com>"
    assert message["to"] == "<b@remote.test>"
    assert message["nrcpt"] == "1"
    assert int(message["size"]) > len(BODY)  # as stored: our Received: line too
    assert (message["status"], message["code"]) == ("accepted", "250")
    assert message["queue_id"].startswith(message["session"] + ".")

    deferred, sent = find(lines, event="relay")
    for relay in (deferred, sent):
        assert relay["to"] == "<b@remote.test>"
        assert relay["from"] == "<a@example.com>"
        assert relay["relay"] == "mx.remote.test[127.0.0.2]"
        assert re.fullmatch(r"\d+\.\ds", relay["delay"])
    assert (deferred["status"], deferred["code"], deferred["dsn"]) == ("deferred", "451", "4.3.0")
    assert (sent["status"], sent["code"]) == ("sent", "250")
    assert deferred["queue_id"] == sent["queue_id"]
    [retry] = find(lines, event="deferred")
    assert retry["queue_id"] == sent["queue_id"]
    assert retry["attempts"] == "1"
    # A human time, not a Unix number.
    datetime.strptime(retry["retry_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    first, second = find(lines, event="disconnect")
    assert (first["commands"], first["messages"], first["refused"]) == ("4", "0", "1")
    assert (second["messages"], second["refused"]) == ("1", "0")

    # docs/logging.md shows one line of each kind with exactly these keys.
    documented = {(d["event"], d.get("status")): set(d) for d in map(parse, _doc_samples())}
    optional = {"tls", "user", "helo", "dsn"}  # left out when there is none
    for line in (reject, message, deferred, sent, retry, first):
        keys = documented[(line["event"], line.get("status"))]
        assert keys - optional == set(line) - optional, line


def _doc_samples() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    return [
        line.split(" mailio_trio.mail ", 1)[1]
        for line in text.splitlines()
        if " INFO mailio_trio.mail " in line
    ]


def test_json_format_has_the_fields_as_keys() -> None:
    fields: dict[str, Value] = {
        "event": "message",
        "from": "<a@example.com>",
        "nrcpt": 2,
        "reply": 'a "b" c',
    }
    record = logging.LogRecord(
        "mailio_trio.mail", logging.INFO, __file__, 1, "%s", (format_fields(fields),), None
    )
    record.fields = fields
    entry = json.loads(_JSONFormatter().format(record))
    assert entry["event"] == "message"
    assert entry["from"] == "<a@example.com>"
    assert entry["nrcpt"] == 2
    assert entry["level"] == "info"
    assert parse(entry["message"]) == {k: str(v) for k, v in fields.items()}


def test_values_cannot_forge_fields_or_lines() -> None:
    line = format_fields({"to": '<"a b=c"@x>', "reply": "one\r\nevent=fake"})
    assert "\n" not in line
    assert parse(line) == {"to": '<"a b=c"@x>', "reply": "one\r\nevent=fake"}


async def test_a_refusal_flood_is_not_a_log_flood(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    from mailio_trio.server._session import REFUSALS_LOGGED

    caplog.set_level(logging.INFO, logger="mailio_trio.mail")
    running = await start_capturing_server(nursery, Config(hostname="mx.test"))
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await conn.read_reply()
            await conn.command("EHLO flood.test")
            await conn.command("MAIL FROM:<a@elsewhere.test>")
            for i in range(REFUSALS_LOGGED + 10):
                assert (await conn.command(f"RCPT TO:<../r{i}@x>")).code >= 500
            await conn.command("QUIT")
        while True:  # the session logs its line as it closes, after our QUIT
            if find(mail_lines(caplog), event="disconnect"):
                break
            await trio.sleep(0.01)
    lines = mail_lines(caplog)
    assert len(find(lines, event="reject")) == REFUSALS_LOGGED
    [closed] = find(lines, event="disconnect")
    assert closed["refused"] == str(REFUSALS_LOGGED + 10)
