"""Fault injection and the capturing server's helpers, over real loopback sockets."""

from __future__ import annotations

import smtplib

import pytest
import trio

from mailio_trio import Config, Limits
from mailio_trio.protocol.catalogue import INTERNAL_ERROR, MESSAGE_TOO_BIG
from mailio_trio.testing import (
    CaptureOptions,
    RawConnection,
    RunningServer,
    Stage,
    start_capturing_server,
)

BODY = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nHi there.\r\n.\r\n"


async def _transaction(conn: RawConnection, rcpt: str = "b@example.com") -> None:
    await conn.read_reply()
    assert (await conn.command("EHLO client.test")).code == 250
    assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await conn.command(f"RCPT TO:<{rcpt}>")).code == 250


async def test_next_rcpt_answers_the_chosen_code_then_recovers(
    mailio_server: RunningServer,
) -> None:
    mailio_server.fail_next("rcpt", 452, "4.5.3 Too many recipients for now")
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        await conn.command("MAIL FROM:<a@example.org>")
        first = await conn.command("RCPT TO:<b@example.com>")
        second = await conn.command("RCPT TO:<b@example.com>")
    assert (first.code, first.enhanced, first.text) == (452, "4.5.3", "Too many recipients for now")
    assert (second.code, second.enhanced) == (250, "2.1.5")
    assert mailio_server.faults.pending() == 0


async def test_refused_rcpt_is_not_added_to_the_envelope(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await _transaction(conn, rcpt="c@example.com")
        mailio_server.fail_next("rcpt", 452)
        assert (await conn.command("RCPT TO:<refused@example.com>")).code == 452
        assert (await conn.command("DATA")).code == 354
        assert (await conn.command(BODY[:-2])).code == 250
    [captured] = await mailio_server.wait_for(1)
    assert captured.recipients == ["c@example.com"]


async def test_fault_counts_only_commands_the_protocol_accepts(
    mailio_server: RunningServer,
) -> None:
    mailio_server.fail_next("rcpt", 452)
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        early = await conn.command("RCPT TO:<b@example.com>")  # no MAIL yet: the core's 503
        assert mailio_server.faults.pending("rcpt") == 1
        await conn.command("MAIL FROM:<a@example.org>")
        faulted = await conn.command("RCPT TO:<b@example.com>")
    assert (early.code, faulted.code) == (503, 452)


async def test_count_fires_that_many_times(mailio_server: RunningServer) -> None:
    mailio_server.fail_next(Stage.MAIL, 451, count=2)
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        codes = [(await conn.command("MAIL FROM:<a@example.org>")).code for _ in range(3)]
    assert codes == [451, 451, 250]
    assert [f.stage for f in mailio_server.faults.fired] == [Stage.MAIL, Stage.MAIL]


async def test_data_fault_refuses_before_354(mailio_server: RunningServer) -> None:
    mailio_server.fail_next("data", 451)
    async with mailio_server.open_raw() as conn:
        await _transaction(conn)
        refused = await conn.command("DATA")
        accepted = await conn.command("DATA")
        assert (await conn.command(BODY[:-2])).code == 250
    assert (refused.code, refused.enhanced) == (451, "4.0.0")
    assert accepted.code == 354
    assert len(await mailio_server.wait_for(1)) == 1


async def test_message_fault_refuses_after_the_body_and_keeps_nothing(
    mailio_server: RunningServer,
) -> None:
    mailio_server.fail_next("message", 451, "4.3.0 Try again later")
    async with mailio_server.open_raw() as conn:
        await _transaction(conn)
        assert (await conn.command("DATA")).code == 354
        after_body = await conn.command(BODY[:-2])
        # The transaction is over: a retry in the same session starts from MAIL.
        assert (await conn.command("MAIL FROM:<a@example.org>")).code == 250
        assert (await conn.command("RCPT TO:<b@example.com>")).code == 250
        assert (await conn.command("DATA")).code == 354
        assert (await conn.command(BODY[:-2])).code == 250
    assert (after_body.code, after_body.enhanced) == (451, "4.3.0")
    assert len(await mailio_server.wait_for(1)) == 1


async def test_421_answers_and_closes(mailio_server: RunningServer) -> None:
    mailio_server.fail_next("mail", 421, "4.3.2 Going away")
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        reply = await conn.command("MAIL FROM:<a@example.org>")
        assert await conn.at_eof()
    assert (reply.code, reply.enhanced) == (421, "4.3.2")


async def test_drop_at_connect_closes_without_greeting(mailio_server: RunningServer) -> None:
    mailio_server.drop_next("connect")
    async with mailio_server.open_raw() as conn:
        with pytest.raises(EOFError):
            await conn.read_reply()
    async with mailio_server.open_raw() as conn:
        assert (await conn.read_reply()).code == 220


async def test_drop_after_body_closes_without_reply_and_keeps_nothing(
    mailio_server: RunningServer,
) -> None:
    mailio_server.drop_next("message")
    async with mailio_server.open_raw() as conn:
        await _transaction(conn)
        assert (await conn.command("DATA")).code == 354
        await conn.send(BODY)
        with pytest.raises(EOFError):
            await conn.read_reply()
    assert mailio_server.messages == []
    assert [f.stage for f in mailio_server.faults.fired] == [Stage.MESSAGE]


async def test_delay_longer_than_handler_timeout_is_the_servers_451(
    nursery: trio.Nursery,
) -> None:
    config = Config(hostname="mx.test", limits=Limits(handler_timeout=0.2))
    running = await start_capturing_server(nursery, config)
    running.delay_next("mail", 60)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO client.test")
        slow = await conn.command("MAIL FROM:<a@example.org>")
    assert slow == INTERNAL_ERROR


async def test_short_delay_then_normal_reply(mailio_server: RunningServer) -> None:
    mailio_server.delay_next("ehlo", 0.01)
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        reply = await conn.command("EHLO client.test")
    assert reply.code == 250
    assert mailio_server.faults.pending() == 0


async def test_clear_faults_disarms(mailio_server: RunningServer) -> None:
    mailio_server.fail_next("helo", 554)
    mailio_server.clear_faults()
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        assert (await conn.command("HELO client.test")).code == 250


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.fail_next("rcpt", 250), "4xx or 5xx"),
        (lambda r: r.fail_next("bogus", 451), "no fault stage 'bogus'"),
        (lambda r: r.fail_next("rcpt", 451, "5.1.1 wrong class"), "does not match"),
        (lambda r: r.drop_next("rcpt", count=0), "at least 1"),
        (lambda r: r.delay_next("rcpt", -1), "seconds >= 0"),
    ],
)
async def test_bad_fault_requests_fail_when_armed(
    mailio_server: RunningServer, call: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(mailio_server)  # type: ignore[operator]  # a lambda from the table


async def test_fault_on_a_disabled_command_is_refused(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(nursery, Config(plugins={"vrfy/core": False}))
    running.fail_next("noop", 451)  # fine: NOOP exists
    config = Config(plugins={"noop/core": False})
    other = await start_capturing_server(nursery, config)
    with pytest.raises(ValueError, match="no 'noop' command"):
        other.fail_next("noop", 451)


async def test_smtplib_sees_injected_data_451(mailio_server: RunningServer) -> None:
    mailio_server.fail_next("message", 451)

    def send() -> None:
        with smtplib.SMTP(mailio_server.host, mailio_server.port) as client:
            client.sendmail("a@example.org", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        await trio.to_thread.run_sync(send)
    assert refused.value.smtp_code == 451


async def test_find_and_clear(mailio_server: RunningServer) -> None:
    def send() -> None:
        with smtplib.SMTP(mailio_server.host, mailio_server.port) as client:
            client.sendmail("a@example.org", ["x@example.com"], b"Subject: one\r\n\r\n1\r\n")
            client.sendmail("<>", ["Y@Example.com"], b"Subject: two\r\n\r\n2\r\n")

    await trio.to_thread.run_sync(send)
    one, two = await mailio_server.wait_for(2)
    assert mailio_server.find(recipient="x@example.com") == [one]
    assert mailio_server.find(recipient="y@example.com", subject="two") == [two]
    assert mailio_server.find(sender="A@example.org") == [one]
    assert mailio_server.find(subject="three") == []
    assert two.sender is None
    mailio_server.clear()
    assert mailio_server.messages == []


async def test_wait_for_times_out(mailio_server: RunningServer) -> None:
    with pytest.raises(trio.TooSlowError):
        await mailio_server.wait_for(1, timeout=0.05)


@pytest.mark.mailio(domains=["example.com"], size_limit=2000)
async def test_marker_domains_and_size_limit(mailio_server: RunningServer) -> None:
    async with mailio_server.open_raw() as conn:
        await conn.read_reply()
        ehlo = await conn.command("EHLO client.test")
        await conn.command("MAIL FROM:<a@example.org>")
        foreign = await conn.command("RCPT TO:<b@elsewhere.example>")
        local = await conn.command("RCPT TO:<b@EXAMPLE.com>")
        await conn.command("DATA")
        big = await conn.command(b"Subject: big\r\n\r\n" + b"x" * 900 + b"\r\n" * 3 * 400 + b".")
    assert "SIZE 2000" in ehlo.text.splitlines()
    assert (foreign.code, foreign.enhanced) == (550, "5.7.1")
    assert local.code == 250
    assert big == MESSAGE_TOO_BIG


async def test_tls_option_offers_starttls_with_trust_for_the_test(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(nursery, options=CaptureOptions(tls=True))
    assert running.tls is not None
    context = running.tls.client_context()  # verifies the server like a real client would

    def send() -> None:
        with smtplib.SMTP(running.host, running.port, local_hostname="client.test") as client:
            client.starttls(context=context)
            client.sendmail("a@example.org", ["b@example.com"], b"Subject: tls\r\n\r\nx\r\n")

    await trio.to_thread.run_sync(send)
    [captured] = await running.outbox.wait_for(1)
    assert captured.secure
    assert "with ESMTPS " in captured.message["Received"]


async def test_auth_option_checks_the_given_users(nursery: trio.Nursery) -> None:
    running = await start_capturing_server(
        nursery, options=CaptureOptions(auth_users={"alice": "s3cret"})
    )

    def login(password: str) -> tuple[int, bytes | str]:
        with smtplib.SMTP(running.host, running.port, local_hostname="client.test") as client:
            try:
                client.login("alice", password)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code, exc.smtp_error
            client.sendmail("alice@example.com", ["b@example.com"], b"Subject: a\r\n\r\nx\r\n")
            return 235, b""

    assert (await trio.to_thread.run_sync(login, "wrong"))[0] == 535
    assert await trio.to_thread.run_sync(login, "s3cret") == (235, b"")
    [captured] = await running.outbox.wait_for(1)
    assert captured.user is not None
    assert captured.user.username == "alice"
    assert "with ESMTPA " in captured.message["Received"]


def test_unknown_option_is_named() -> None:
    with pytest.raises(TypeError, match=r"unknown option 'size'; options are domains, size_limit"):
        CaptureOptions.from_mapping({"size": 1})


@pytest.mark.parametrize(
    ("options", "command"),
    [(CaptureOptions(tls=True), "starttls"), (CaptureOptions(auth_users={"a": "b"}), "auth")],
)
async def test_option_whose_command_the_config_disables_is_refused(
    nursery: trio.Nursery, options: CaptureOptions, command: str
) -> None:
    """Not a server that silently lacks what the test asked for (the AUTH check
    handler alone, without the command's core, answers nothing)."""
    config = Config(hostname="mx.test", plugins={f"{command}/core": False})
    with pytest.raises(ValueError, match=f'disables \\(plugins."{command}/core"\\)'):
        await start_capturing_server(nursery, config, options=options)
