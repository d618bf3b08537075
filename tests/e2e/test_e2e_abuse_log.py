"""Anti-abuse log lines are rate-limited: a flood of hostile clients over real
loopback sockets leaves a bounded number of lines and one true summary."""

from __future__ import annotations

import base64
import logging
import re
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from mailio_trio import Config, Limits, Server
from mailio_trio.abuse import AbuseKind, RateLimitedLog
from mailio_trio.config import ConfigError
from mailio_trio.passwords import hash_password
from mailio_trio.plugins.auth import AuthConfig
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    import ssl

FLOOD = 40
SUMMARY = re.compile(r"^\.\.\. and (\d+) more (.+) in the last ([\d.]+) s$")


def _messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


def _summaries(caplog: pytest.LogCaptureFixture, kind: AbuseKind) -> list[tuple[int, int]]:
    """(count, level) of each summary line for ``kind``."""
    out = []
    for record in caplog.records:
        match = SUMMARY.match(record.getMessage())
        if match and match.group(2) == kind.value:
            out.append((int(match.group(1)), record.levelno))
    return out


async def test_early_talker_flood_logs_a_burst_then_one_true_summary(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    config = Config(
        hostname="mx.test",
        limits=Limits(abuse_log_burst=3, abuse_log_interval=3600),
        # A long delay: only talking first ends the wait, so every bot is caught.
        plugins={"connect/pregreet": {"delay": 30}},
    )
    server = Server(config)
    [(host, port)] = await nursery.start(server.serve, "127.0.0.1", 0)
    for _ in range(FLOOD):
        async with open_raw_connection(host, port) as bot:
            await bot.send(b"EHLO bot.test\r\n")
            reply = await bot.read_reply()
            assert (reply.code, reply.enhanced) == (554, "5.5.1")
    assert len(_messages(caplog, "sent data before the greeting")) == 3
    assert _summaries(caplog, AbuseKind.EARLY_TALKER) == []  # the hour is not over
    await server.aclose()  # stopping writes what is still only counted
    assert _summaries(caplog, AbuseKind.EARLY_TALKER) == [(FLOOD - 3, logging.WARNING)]
    assert len(_messages(caplog, "sent data before the greeting")) == 3


async def test_per_address_refusals_are_rate_limited(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailio_trio")
    limits = Limits(connections_per_ip=1, abuse_log_burst=2, abuse_log_interval=3600)
    server = Server(Config(hostname="mx.test", limits=limits))
    [(host, port)] = await nursery.start(server.serve, "127.0.0.1", 0)
    async with AsyncExitStack() as stack:
        held = await stack.enter_async_context(open_raw_connection(host, port))
        assert (await held.read_reply()).code == 220
        for _ in range(FLOOD):
            async with open_raw_connection(host, port) as refused:
                reply = await refused.read_reply()
                assert (reply.code, reply.enhanced) == (421, "4.7.0")
        assert len(_messages(caplog, "refused 127.0.0.1")) == 2
        await server.aclose()
    assert _summaries(caplog, AbuseKind.PER_IP_REFUSED) == [(FLOOD - 2, logging.INFO)]


async def test_one_summary_per_interval_then_a_fresh_burst(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The helper alone under a mock clock: no sockets are needed to see the interval."""
    caplog.set_level(logging.INFO, logger="mailio_trio.test")
    log = logging.getLogger("mailio_trio.test")
    limited = RateLimitedLog(burst=2, interval=60)
    for i in range(7):
        limited.log(AbuseKind.EARLY_TALKER, log, logging.WARNING, "talker %d", i)
    limited.log(AbuseKind.DNSBL_LISTED, log, logging.INFO, "listed")  # a kind of its own
    assert [r.getMessage() for r in caplog.records] == ["talker 0", "talker 1", "listed"]
    caplog.clear()

    await trio.sleep(61)  # the interval ends: its summary is written without a new line
    assert [r.getMessage() for r in caplog.records] == [
        "... and 5 more early talkers in the last 60 s"
    ]
    assert caplog.records[0].levelno == logging.WARNING
    caplog.clear()

    for i in range(3):  # a new window: a new burst
        limited.log(AbuseKind.EARLY_TALKER, log, logging.WARNING, "again %d", i)
    await trio.sleep(10)
    limited.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "again 0",
        "again 1",
        "... and 1 more early talkers in the last 10 s",
    ]
    await trio.sleep(120)  # the flushed window's timer finds nothing more to say
    assert len(caplog.records) == 3


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("abuse_log_burst", -1, "limits.abuse_log_burst = -1: must be a whole number >= 0"),
        ("abuse_log_interval", 0, "limits.abuse_log_interval = 0: must be a number greater than 0"),
    ],
)
def test_bad_abuse_log_settings_are_one_line(key: str, value: int, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Config.from_mapping({"limits": {key: value}})
    assert str(exc.value) == message


async def test_password_guessing_flood_is_rate_limited(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """Each wrong password used to log a line: a guessing botnet wrote one per guess."""
    caplog.set_level(logging.INFO, logger="mailio_trio")
    config = Config(
        hostname="mx.test",
        limits=Limits(abuse_log_burst=2, abuse_log_interval=3600),
        auth=AuthConfig(users={"alice": hash_password("right", log_n=4)}, allow_insecure=True),
    )
    server = Server(config)
    [(host, port)] = await nursery.start(server.serve, "127.0.0.1", 0)
    guess = base64.b64encode(b"\0alice\0wrong").decode()
    for _ in range(FLOOD // 4):
        async with open_raw_connection(host, port) as bot:
            await bot.read_reply()
            await bot.command("EHLO bot.test")
            reply = await bot.command(f"AUTH PLAIN {guess}")
            assert (reply.code, reply.enhanced) == (535, "5.7.8")
    assert len(_messages(caplog, "authentication failed for 'alice'")) == 2
    await server.aclose()
    assert _summaries(caplog, AbuseKind.AUTH_FAILED) == [(FLOOD // 4 - 2, logging.INFO)]


async def test_failed_tls_handshake_flood_is_rate_limited(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, server_tls_context: ssl.SSLContext
) -> None:
    """Scanners speaking plain text to the SMTPS port: one line each, before."""
    caplog.set_level(logging.INFO, logger="mailio_trio")
    config = Config(hostname="mx.test", limits=Limits(abuse_log_burst=3, abuse_log_interval=3600))
    server = Server(config, tls_context=server_tls_context)
    [(host, port)] = await nursery.start(server.serve_tls, "127.0.0.1", 0)
    for _ in range(FLOOD // 2):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(b"EHLO not-tls.test\r\n\r\n" * 8)
            with trio.fail_after(10):
                while await stream.receive_some():
                    pass  # until the server gives up on the handshake and closes
    assert len(_messages(caplog, "TLS handshake with")) == 3
    await server.aclose()
    assert _summaries(caplog, AbuseKind.TLS_HANDSHAKE) == [(FLOOD // 2 - 3, logging.INFO)]
