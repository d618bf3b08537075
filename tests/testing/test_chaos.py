"""Chaos: probabilistic faults (seeded), the rate limiter, and the text forms they share."""

from __future__ import annotations

import random
import smtplib

import pytest
import trio

from mailio_trio import Config
from mailio_trio.testing import (
    FaultKind,
    RawConnection,
    RunningServer,
    Stage,
    ThreadedServer,
    start_capturing_server,
)
from mailio_trio.testing._chaos import (
    Chaos,
    ChaosSettings,
    ChaosTrigger,
    RateLimit,
    TokenBucket,
    parse_fault,
    parse_rate_limit,
    parse_trigger,
)

BODY = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nHi there.\r\n."


async def _greeted(conn: RawConnection) -> None:
    assert (await conn.read_reply()).code == 220
    assert (await conn.command("EHLO client.test")).code == 250


# --- the text forms ------------------------------------------------------------


def test_fault_specs() -> None:
    fault = parse_fault("rcpt:452:2")
    assert (fault.stage, fault.kind, fault.code, fault.count) == (
        Stage.RCPT,
        FaultKind.REPLY,
        452,
        2,
    )
    assert parse_fault("data:drop").kind is FaultKind.DROP
    delay = parse_fault("MAIL:delay=2.5:3")
    assert (delay.stage, delay.kind, delay.seconds, delay.count) == (
        Stage.MAIL,
        FaultKind.DELAY,
        2.5,
        3,
    )


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("rcpt", "STAGE:ACTION"),
        ("rcpt:252", "4xx or 5xx"),
        ("rcpt:45x", "not an action"),
        ("rcpt:452:0", "COUNT"),
        ("quit:452", "^'quit:452': no fault stage 'quit'"),
        ("mail:delay=soon", "seconds"),
        ("mail:delay=-1", "seconds >= 0"),
    ],
)
def test_bad_fault_specs_say_why(spec: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_fault(spec)


def test_trigger_and_rate_limit_specs() -> None:
    trigger = parse_trigger("mail:451:0.2")
    assert (trigger.stage, trigger.code, trigger.probability) == (Stage.MAIL, 451, 0.2)
    assert trigger.spec() == "mail:451:0.2"
    assert parse_trigger("message:drop:1").kind is FaultKind.DROP
    for bad in ("mail:451", "mail:451:0", "mail:451:1.5", "mail:451:often"):
        with pytest.raises(ValueError, match=r"^'mail:451.*': .*PROBABILITY"):
            parse_trigger(bad)
    assert parse_rate_limit("10/60") == RateLimit(messages=10, interval=60.0)
    for bad in ("10", "0/60", "10/0", "ten/60", "10/-1"):
        with pytest.raises(ValueError, match="N/SECONDS"):
            parse_rate_limit(bad)


def test_chaos_table() -> None:
    settings = ChaosSettings.from_mapping(
        {"faults": ["rcpt:452:2"], "triggers": ["mail:451:0.5"], "rate_limit": "5/1", "seed": 7}
    )
    assert [f.code for f in settings.faults] == [452]
    assert settings.triggers[0].stage is Stage.MAIL
    assert (settings.rate_limit, settings.seed) == (RateLimit(messages=5, interval=1.0), 7)
    with pytest.raises(ValueError, match=r"^\[chaos\]: unknown key 'sead'"):
        ChaosSettings.from_mapping({"sead": 1})
    with pytest.raises(ValueError, match=r"^\[chaos\]: 'rcpt:999'"):
        ChaosSettings.from_mapping({"faults": ["rcpt:999"]})
    with pytest.raises(ValueError, match=r"^\[chaos\]\.faults: a list of strings"):
        ChaosSettings.from_mapping({"faults": "rcpt:452"})
    with pytest.raises(ValueError, match="one probabilistic fault per stage"):
        ChaosSettings.from_mapping({"triggers": ["mail:451:0.5", "mail:drop:0.5"]})


# --- the pure machinery ----------------------------------------------------------


def test_token_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket.for_limit(RateLimit(messages=3, interval=30.0))  # one per 10 s
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(105.0) is False  # half a token
    assert bucket.take(110.0) is True  # a whole one, at last
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]  # capped at 3
    assert bucket.take(1000.0) is False


def test_seeded_chaos_draws_the_same_sequence_as_random_random() -> None:
    chaos = Chaos()
    chaos.configure([ChaosTrigger(stage=Stage.RCPT, code=452, probability=0.3)], seed=1234)
    fired = [chaos.pick(Stage.RCPT, 0.0) is not None for _ in range(200)]
    rng = random.Random(1234)
    assert fired == [rng.random() < 0.3 for _ in range(200)]
    assert 20 < sum(fired) < 100  # it does fire, and not always
    chaos.seed(1234)  # replay
    assert [chaos.pick(Stage.RCPT, 0.0) is not None for _ in range(200)] == fired
    assert chaos.pick(Stage.MAIL, 0.0) is None  # no trigger at MAIL: no draw, no fault


def test_the_rate_limit_answers_421_at_mail_only() -> None:
    chaos = Chaos()
    chaos.configure(rate_limit=RateLimit(messages=1, interval=60.0))
    assert chaos.pick(Stage.MAIL, 0.0) is None
    refused = chaos.pick(Stage.MAIL, 1.0)
    assert refused is not None
    assert (refused.code, refused.text[:5]) == (421, "4.7.0")
    assert chaos.pick(Stage.RCPT, 1.0) is None
    assert chaos.pick(Stage.MAIL, 61.0) is None  # refilled


# --- over real sockets ------------------------------------------------------------


async def test_seeded_probabilistic_rcpt_faults_follow_the_seed(
    mailio_server: RunningServer,
) -> None:
    mailio_server.seed_chaos(99)
    mailio_server.fail_randomly("rcpt", 452, 0.5, "4.5.3 Try fewer")
    rng = random.Random(99)
    expected = [452 if rng.random() < 0.5 else 250 for _ in range(20)]
    with trio.fail_after(30):
        async with mailio_server.open_raw() as conn:
            await _greeted(conn)
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
            codes = [(await conn.command("RCPT TO:<b@example.com>")).code for _ in range(20)]
    assert codes == expected
    assert {452, 250} <= set(codes)
    assert [f.code for f in mailio_server.faults.fired] == [452] * codes.count(452)


async def test_counted_faults_fire_before_the_random_ones(mailio_server: RunningServer) -> None:
    mailio_server.fail_randomly("mail", 451, 1.0)
    mailio_server.fail_next("mail", 550)
    with trio.fail_after(30):
        async with mailio_server.open_raw() as conn:
            await _greeted(conn)
            first = await conn.command("MAIL FROM:<a@example.org>")
            second = await conn.command("MAIL FROM:<a@example.org>")
            mailio_server.clear_faults()
            third = await conn.command("MAIL FROM:<a@example.org>")
    assert (first.code, second.code, third.code) == (550, 451, 250)


async def test_a_random_drop_after_data_keeps_nothing(mailio_server: RunningServer) -> None:
    mailio_server.drop_randomly("message", 1.0)
    with trio.fail_after(30):
        async with mailio_server.open_raw() as conn:
            await _greeted(conn)
            await conn.command("MAIL FROM:<a@example.org>")
            await conn.command("RCPT TO:<b@example.com>")
            assert (await conn.command("DATA")).code == 354
            await conn.send(BODY + b"\r\n")
            assert await conn.at_eof()
    assert mailio_server.messages == []


async def test_a_random_delay_still_answers(mailio_server: RunningServer) -> None:
    mailio_server.delay_randomly("noop", 0.01, 1.0)
    with trio.fail_after(30):
        async with mailio_server.open_raw() as conn:
            await _greeted(conn)
            assert (await conn.command("NOOP")).code == 250
    assert [f.kind for f in mailio_server.faults.fired] == [FaultKind.DELAY]


async def test_the_rate_limiter_closes_with_421_past_n_messages(
    mailio_server: RunningServer,
) -> None:
    # Two an hour: the bucket cannot refill during the test, whatever the machine's speed.
    mailio_server.rate_limit(2, per=3600)
    with trio.fail_after(30):
        async with mailio_server.open_raw() as conn:
            await _greeted(conn)
            for _ in range(2):
                assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
                assert (await conn.command("RSET")).code == 250
            refused = await conn.command("MAIL FROM:<a@example.org>")
            assert await conn.at_eof()
    assert (refused.code, refused.enhanced) == (421, "4.7.0")
    assert "Rate limit" in refused.text


def test_probability_out_of_range_is_refused_at_once(
    mailio_server_thread: ThreadedServer,
) -> None:
    server = mailio_server_thread
    with pytest.raises(ValueError, match=r"probability must be in \(0, 1\]"):
        server.fail_randomly("rcpt", 452, 2.0)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        server.fail_randomly("rcpt", 250, 0.5)


async def test_chance_faults_at_a_stage_the_server_lacks_are_refused(
    nursery: trio.Nursery,
) -> None:
    running = await start_capturing_server(nursery, Config(plugins={"noop/core": False}))
    with pytest.raises(ValueError, match="no 'noop' command"):
        running.fail_randomly("noop", 451, 0.5)
    with pytest.raises(ValueError, match="no 'noop' command"):
        running.faults.apply(ChaosSettings(triggers=(parse_trigger("noop:drop:1"),)))
    running.server.shutdown()


@pytest.mark.mailio(auth=True)
def test_auth_faults_fire(mailio_server_thread: ThreadedServer) -> None:
    server = mailio_server_thread
    assert server.credentials is not None
    server.fail_next("auth", 454, "4.7.0 Temporary authentication failure")
    with smtplib.SMTP(server.host, server.port, timeout=30) as client:
        client.ehlo("client.test")
        client.user, client.password = server.credentials
        # One mechanism at a time: login() would try the next one after a refusal.
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("PLAIN", client.auth_plain, initial_response_ok=True)
        assert refused.value.smtp_code == 454
        assert client.auth("PLAIN", client.auth_plain, initial_response_ok=True)[0] == 235


def test_the_auth_fault_handler_is_no_credentials_check(
    mailio_server_thread: ThreadedServer,
) -> None:
    # auth/fault is installed, but with nothing to check passwords AUTH is not offered.
    with smtplib.SMTP(mailio_server_thread.host, mailio_server_thread.port, timeout=30) as client:
        client.ehlo("client.test")
        assert not client.has_extn("auth")


@pytest.mark.mailio(web=True)
async def test_the_trio_fixture_serves_the_web_inbox_and_its_chaos_api(
    mailio_server: RunningServer,
) -> None:
    import httpx

    assert mailio_server.web_url is not None

    def call() -> int:
        with httpx.Client(base_url=mailio_server.web_url or "", timeout=30) as web:
            put = {"Recipient": {"ErrorCode": 452, "Probability": 100}}
            web.put("/api/v1/chaos", json=put).raise_for_status()
        with smtplib.SMTP(mailio_server.host, mailio_server.port, timeout=30) as client:
            client.ehlo("client.test")
            client.mail("a@example.org")
            return client.rcpt("b@example.com")[0]

    with trio.fail_after(30):
        assert await trio.to_thread.run_sync(call) == 452
    assert mailio_server.faults.chaos.settings().triggers[0].stage is Stage.RCPT
