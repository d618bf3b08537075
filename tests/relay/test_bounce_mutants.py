"""relay/bounce.py's DSNs read back as their sender's mail client would (mutation testing).

Mutmut (``nox -s mutants``, docs/testing-the-project.md) found most of
bounce.py reached only by end-to-end tests outside its test selection; these
pin each report's fields and wording by parsing the DSN bytes.
"""

from __future__ import annotations

import email.parser
import email.policy
import time
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING

import attrs

from mailio_trio.protocol.dsn import NotifyOn, Orcpt, Ret
from mailio_trio.relay import bounce
from mailio_trio.relay.spool import Entry, ErrorInfo, RecipientState, RecipientStatus

if TYPE_CHECKING:
    from pathlib import Path

MTA = "mx.example.test"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CREATED = NOW.timestamp() - 5 * 3600  # five hours in the queue
MESSAGE = b"Subject: hi\r\nFrom: a@example.com\r\n\r\nthe body\r\n"


@attrs.frozen
class Dsn:
    """A parsed DSN: headers, human-readable text, status blocks, returned part."""

    message: EmailMessage
    text: str
    per_message: dict[str, str]
    recipients: list[dict[str, str]]
    returned: Message

    def __getitem__(self, name: str) -> str:
        return str(self.message[name])


def _parse(raw: bytes) -> Dsn:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    parts = message.get_payload()
    assert isinstance(parts, list)
    human, status, returned = parts
    assert isinstance(human, EmailMessage)
    assert isinstance(status, Message)
    assert isinstance(returned, Message)
    # RFC 2046 §5.2: a message/* part is 7bit, 8bit or binary, and says so.
    assert status["Content-Transfer-Encoding"] == "7bit"
    status_blocks = status.get_payload()
    assert isinstance(status_blocks, list)
    blocks = [dict(block.items()) for block in status_blocks if isinstance(block, Message)]
    text = human.get_content().replace("\r\n", "\n")
    return Dsn(message, text, blocks[0], blocks[1:], returned)


def _entry(*recipients: RecipientState, **kw: object) -> Entry:
    return Entry(
        id="q-1",
        sender="a@example.com",
        recipients=list(recipients),
        created=CREATED,
        next_attempt=0.0,
        **kw,  # type: ignore[arg-type]  # ret / envid, typed at the call
    )


def _failed(address: str, error: ErrorInfo | None, **kw: object) -> RecipientState:
    return RecipientState(address, RecipientStatus.FAILED, error, **kw)  # type: ignore[arg-type]


def _message(tmp_path: Path, raw: bytes = MESSAGE) -> Path:
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    return path


def _failure(tmp_path: Path, entry: Entry, raw: bytes = MESSAGE) -> Dsn:
    return _parse(bounce.build_dsn(entry, _message(tmp_path, raw), reporting_mta=MTA, now=NOW))


# -- should_bounce ---------------------------------------------------------------------


def test_should_bounce_reads_auto_submitted_like_rfc_3834(tmp_path: Path) -> None:
    entry = _entry(_failed("b@r.test", None))
    cases = {
        b"Subject: x\r\n\r\n": True,  # no header: a person's mail
        b"Auto-Submitted: no\r\n\r\n": True,
        b"Auto-Submitted: No\r\n\r\n": True,  # the keyword is case-insensitive
        b"Auto-Submitted:  no ; comment=x\r\n\r\n": True,  # parameters after ";"
        b"Auto-Submitted: \r\n\r\n": True,
        b"Auto-Submitted: auto-replied\r\n\r\n": False,
        b"Auto-Submitted: Auto-Generated; owner=x\r\n\r\n": False,
    }
    for raw, expected in cases.items():
        assert bounce.should_bounce(entry, _message(tmp_path, raw)) is expected, raw
    null = attrs.evolve(entry, sender="")
    assert not bounce.should_bounce(null, _message(tmp_path, b"Subject: x\r\n\r\n"))


# -- the failure report ----------------------------------------------------------------


def test_a_failure_report_from_a_remote_reply(tmp_path: Path) -> None:
    error = ErrorInfo(550, "5.1.1", "no  such\tuser", "mx.r.test [127.0.0.2]")
    dsn = _failure(tmp_path, _entry(_failed("b@r.test", error)))
    assert dsn["From"] == f"Mail Delivery System <MAILER-DAEMON@{MTA}>"
    assert dsn["To"] == "a@example.com"
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["Date"] == format_datetime(NOW)
    assert dsn["Message-ID"].endswith(f"@{MTA}>")
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert dsn.message.get_content_type() == "multipart/report"
    assert dsn.message.get_param("report-type") == "delivery-status"
    assert dsn.text == (
        f"This is the mail system at {MTA}.\n"
        "\n"
        "Your message could not be delivered to one or more recipients.\n"
        "\n"
        "<b@r.test>: 550 no  such\tuser (from mx.r.test [127.0.0.2])\n"
    )
    assert dsn.per_message == {
        "Reporting-MTA": f"dns; {MTA}",
        "Arrival-Date": format_datetime(datetime.fromtimestamp(CREATED, UTC)),
        "X-Mailio-Queue-ID": "q-1",
    }
    assert dsn.recipients == [
        {
            "Final-Recipient": "rfc822; b@r.test",
            "Action": "failed",
            "Status": "5.1.1",
            "Remote-MTA": "dns; mx.r.test",
            "Diagnostic-Code": "smtp; 550 5.1.1 no such user",
        }
    ]
    # RET not FULL: the headers only, never the body.
    assert dsn.returned.get_content_type() == "text/rfc822-headers"
    assert dsn.returned["Content-Transfer-Encoding"] == "7bit"
    assert dsn.returned.get_payload() == "Subject: hi\r\nFrom: a@example.com\r\n"


def test_a_retried_4xx_is_reported_as_5xx(tmp_path: Path) -> None:
    # RFC 3463 §3.1: a given-up transient failure is reported in the 5.x.y form.
    with_enhanced = ErrorInfo(451, "4.4.1", "try later", "mx.r.test")
    without = ErrorInfo(421, None, "busy", "mx.r.test")
    dsn = _failure(
        tmp_path, _entry(_failed("b@r.test", with_enhanced), _failed("c@r.test", without))
    )
    b, c = dsn.recipients
    assert (b["Status"], b["Diagnostic-Code"]) == ("5.4.1", "smtp; 451 4.4.1 try later")
    assert (c["Status"], c["Diagnostic-Code"]) == ("5.0.0", "smtp; 421 busy")
    assert "<c@r.test>: 421 busy (from mx.r.test)" in dsn.text


def test_a_5xx_without_enhanced_code_keeps_its_class(tmp_path: Path) -> None:
    dsn = _failure(tmp_path, _entry(_failed("b@r.test", ErrorInfo(554, None, "no", "mx"))))
    assert dsn.recipients[0]["Status"] == "5.0.0"
    assert dsn.recipients[0]["Diagnostic-Code"] == "smtp; 554 no"


def test_a_local_decision_has_a_reason_not_a_remote(tmp_path: Path) -> None:
    # No remote answered (DNS, the retry deadline): no Remote-MTA, no Diagnostic-Code.
    local = ErrorInfo(550, "5.4.4", "no MX for r.test")
    dsn = _failure(tmp_path, _entry(_failed("b@r.test", local), _failed("c@r.test", None)))
    b, c = dsn.recipients
    assert b == {
        "Final-Recipient": "rfc822; b@r.test",
        "Action": "failed",
        "Status": "5.4.4",
        "X-Mailio-Reason": "550 5.4.4 no MX for r.test",
    }
    # A failed recipient with no error recorded (an old spool entry).
    assert c == {
        "Final-Recipient": "rfc822; c@r.test",
        "Action": "failed",
        "Status": "5.0.0",
        "X-Mailio-Reason": "550 delivery failed",
    }
    assert dsn.text.endswith("<b@r.test>: 550 no MX for r.test\n<c@r.test>: delivery failed\n")


def test_envid_and_orcpt_come_back(tmp_path: Path) -> None:
    state = _failed(
        "b@r.test", ErrorInfo(550, "5.1.1", "x", "mx"), orcpt=Orcpt("rfc822", "B+1@r.test")
    )
    dsn = _failure(tmp_path, _entry(state, envid="QQ+1"))
    # RFC 3464 §2.2, §2.3.1: each first in its block.
    assert next(iter(dsn.per_message.items())) == ("Original-Envelope-Id", "QQ+1")
    assert list(dsn.recipients[0].items())[:2] == [
        ("Original-Recipient", "rfc822;B+1@r.test"),
        ("Final-Recipient", "rfc822; b@r.test"),
    ]


def test_notify_chooses_who_is_reported(tmp_path: Path) -> None:
    error = ErrorInfo(550, "5.1.1", "x", "mx")
    never = _failed("n@r.test", error, notify=frozenset({NotifyOn.NEVER}))
    success = _failed("s@r.test", error, notify=frozenset({NotifyOn.SUCCESS}))
    failure = _failed("f@r.test", error, notify=frozenset({NotifyOn.FAILURE}))
    default = _failed("d@r.test", error)
    entry = _entry(never, success, failure, default)
    assert [r.address for r in bounce.failure_recipients(entry)] == ["f@r.test", "d@r.test"]
    dsn = _failure(tmp_path, entry)
    assert [r["Final-Recipient"] for r in dsn.recipients] == [
        "rfc822; f@r.test",
        "rfc822; d@r.test",
    ]


def test_ret_full_returns_the_whole_message(tmp_path: Path) -> None:
    entry = _entry(_failed("b@r.test", ErrorInfo(550, "5.1.1", "x", "mx")), ret=Ret.FULL)
    dsn = _failure(tmp_path, entry)
    assert dsn.returned.get_content_type() == "message/rfc822"
    payload = dsn.returned.get_payload()
    assert isinstance(payload, list)
    [original] = payload
    assert isinstance(original, EmailMessage)
    assert original["Subject"] == "hi"
    assert original.get_content() == "the body\r\n"
    # RET=HDRS: the headers only.
    hdrs = _failure(tmp_path, attrs.evolve(entry, ret=Ret.HDRS))
    assert hdrs.returned.get_content_type() == "text/rfc822-headers"


def test_ret_full_beyond_the_limit_returns_the_headers(tmp_path: Path) -> None:
    entry = _entry(_failed("b@r.test", ErrorInfo(550, "5.1.1", "x", "mx")), ret=Ret.FULL)
    # Exactly at the limit the message still comes back whole; one byte over, not.
    head = b"Subject: big\r\n\r\n"
    at_limit = head + b"x" * (bounce.FULL_LIMIT - len(head))
    assert _failure(tmp_path, entry, at_limit).returned.get_content_type() == "message/rfc822"
    over = _failure(tmp_path, entry, at_limit + b"x")
    assert over.returned.get_content_type() == "text/rfc822-headers"
    assert over.returned.get_payload() == "Subject: big\r\n"


def test_the_returned_headers_stop_at_the_blank_line(tmp_path: Path) -> None:
    entry = _entry(_failed("b@r.test", None))
    # A message with no header lines at all quotes nothing of its body.
    empty = _failure(tmp_path, entry, b"\r\n\r\nsecret body\r\n")
    assert "secret" not in str(empty.returned.get_payload())
    # Headers only as long as the limit are read; no blank line: all of them.
    long_head = b"".join(b"X-%06d: %s\r\n" % (i, b"y" * 90) for i in range(3000))
    dsn = _failure(tmp_path, entry, long_head)
    quoted = str(dsn.returned.get_payload()).encode()
    assert quoted == long_head[: bounce.HEADER_LIMIT]


def test_utf8_headers_come_back_8bit_as_sent(tmp_path: Path) -> None:
    # SMTPUTF8 mail (RFC 6532) has raw UTF-8 headers. This raised
    # UnicodeEncodeError in as_bytes() until mutation testing looked here: such a
    # message could never be bounced (the worker retried the bounce forever).
    entry = _entry(_failed("b@r.test", None))
    head = "Subject: grüße\r\n".encode() + b"X-Raw: \xff\r\n"  # and a stray non-UTF-8 byte
    raw = bounce.build_dsn(
        entry, _message(tmp_path, head + b"\r\nbody\r\n"), reporting_mta=MTA, now=NOW
    )
    quoted = raw.split(b"Content-Type: text/rfc822-headers\r\n", 1)[1]
    assert quoted.startswith(b"Content-Transfer-Encoding: 8bit\r\n\r\n" + head)
    delay = bounce.build_delay_dsn(
        _entry(RecipientState("b@r.test")),
        _message(tmp_path, head + b"\r\nbody\r\n"),
        reporting_mta=MTA,
        give_up_at=0.0,
        now=NOW,
    )
    assert head in delay


# -- success reports -------------------------------------------------------------------


def test_a_relayed_report(tmp_path: Path) -> None:
    relayed = RecipientState(
        "s@r.test",
        RecipientStatus.DELIVERED,
        ErrorInfo(250, "2.6.0", "queued  as\t1", "mx.r.test"),
        notify=frozenset({NotifyOn.SUCCESS}),
        relayed=True,
    )
    # Delivered but not asked for, or delivered to a next hop that reports itself.
    quiet = attrs.evolve(relayed, address="q@r.test", notify=None)
    dsn_hop = attrs.evolve(relayed, address="h@r.test", relayed=False)
    entry = _entry(relayed, quiet, dsn_hop, ret=Ret.FULL)
    assert [r.address for r in bounce.relayed_recipients(entry)] == ["s@r.test"]
    dsn = _failure(tmp_path, entry)
    assert dsn["Subject"] == "Relayed Mail Report"
    assert dsn.text == (
        f"This is the mail system at {MTA}.\n"
        "\n"
        "Your message was passed on to the recipients' mail systems below, which do\n"
        "not report delivery status: this is the last notice you will get for them.\n"
        "\n"
        "<s@r.test>: relayed\n"
    )
    assert dsn.recipients == [
        {
            "Final-Recipient": "rfc822; s@r.test",
            "Action": "relayed",
            "Status": "2.6.0",
            "Remote-MTA": "dns; mx.r.test",
            "Diagnostic-Code": "smtp; 250 2.6.0 queued as 1",
        }
    ]
    # RET=FULL is for failures (RFC 3461 §4.3): a success report has the headers.
    assert dsn.returned.get_content_type() == "text/rfc822-headers"


def test_one_report_mixes_failed_and_relayed(tmp_path: Path) -> None:
    relayed = RecipientState(
        "s@r.test",
        RecipientStatus.DELIVERED,
        ErrorInfo(250, None, "ok", "mx.r.test"),
        notify=frozenset({NotifyOn.SUCCESS, NotifyOn.FAILURE}),
        relayed=True,
    )
    failed = _failed("f@r.test", ErrorInfo(550, "5.1.1", "unknown", "mx.r.test"))
    dsn = _failure(tmp_path, _entry(failed, relayed, ret=Ret.FULL))
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn.text == (
        f"This is the mail system at {MTA}.\n"
        "\n"
        "Your message could not be delivered to one or more recipients.\n"
        "\n"
        "<f@r.test>: 550 unknown (from mx.r.test)\n"
        "\n"
        "Your message was passed on to the recipients' mail systems below, which do\n"
        "not report delivery status: this is the last notice you will get for them.\n"
        "\n"
        "<s@r.test>: relayed\n"
    )
    assert [(r["Action"], r["Status"]) for r in dsn.recipients] == [
        ("failed", "5.1.1"),
        ("relayed", "2.0.0"),
    ]
    assert dsn.recipients[1]["Diagnostic-Code"] == "smtp; 250 ok"
    assert dsn.returned.get_content_type() == "message/rfc822"


def test_a_delivered_report(tmp_path: Path) -> None:
    replied = RecipientState(
        "b@here.test", RecipientStatus.DELIVERED, ErrorInfo(250, "2.1.5", "ok  fine")
    )
    odd_enhanced = attrs.evolve(
        replied, address="o@here.test", error=ErrorInfo(250, "5.0.0", "odd")
    )
    not_2xx = attrs.evolve(replied, address="n@here.test", error=ErrorInfo(550, "5.0.0", "x"))
    bare = RecipientState("c@here.test", RecipientStatus.DELIVERED)
    entry = _entry(replied, odd_enhanced, not_2xx, bare, ret=Ret.FULL)
    raw = bounce.build_delivered_dsn(entry, _message(tmp_path), reporting_mta=MTA, now=NOW)
    dsn = _parse(raw)
    assert dsn["Subject"] == "Successful Mail Delivery Report"
    assert dsn["From"] == f"Mail Delivery System <MAILER-DAEMON@{MTA}>"
    assert dsn.per_message["Reporting-MTA"] == f"dns; {MTA}"
    assert dsn["Date"] == format_datetime(NOW)
    assert dsn.text == (
        f"This is the mail system at {MTA}.\n"
        "\n"
        "Your message was delivered to the recipients below.\n"
        "\n"
        "<b@here.test>: delivered to the mailbox\n"
        "<o@here.test>: delivered to the mailbox\n"
        "<n@here.test>: delivered to the mailbox\n"
        "<c@here.test>: delivered to the mailbox\n"
    )
    assert [
        (r["Final-Recipient"], r["Action"], r["Status"], r["Diagnostic-Code"])
        for r in dsn.recipients
    ] == [
        ("rfc822; b@here.test", "delivered", "2.1.5", "smtp; 250 2.1.5 ok fine"),
        ("rfc822; o@here.test", "delivered", "2.0.0", "smtp; 250 5.0.0 odd"),
        ("rfc822; n@here.test", "delivered", "2.0.0", "smtp; 250 2.0.0 delivered"),
        ("rfc822; c@here.test", "delivered", "2.0.0", "smtp; 250 2.0.0 delivered"),
    ]
    assert all("Remote-MTA" not in r for r in dsn.recipients)
    assert dsn.returned.get_content_type() == "text/rfc822-headers"


# -- the delay warning -----------------------------------------------------------------


def test_a_delay_warning(tmp_path: Path) -> None:
    remote = RecipientState(
        "b@r.test", error=ErrorInfo(451, "4.7.1", "greylisted  now", "mx.r.test")
    )
    odd = RecipientState("o@r.test", error=ErrorInfo(451, "5.7.1", "odd", "mx.r.test"))
    local = RecipientState("c@r.test", error=ErrorInfo(451, None, "no route"))
    untried = RecipientState("d@r.test")
    no_delay = RecipientState("n@r.test", notify=frozenset({NotifyOn.FAILURE}))
    done = RecipientState("x@r.test", RecipientStatus.DELIVERED)
    entry = _entry(remote, odd, local, untried, no_delay, done, ret=Ret.FULL)
    assert [r.address for r in bounce.delay_recipients(entry)] == [
        "b@r.test",
        "o@r.test",
        "c@r.test",
        "d@r.test",
    ]
    give_up = NOW.timestamp() + 43 * 3600
    raw = bounce.build_delay_dsn(
        entry, _message(tmp_path), reporting_mta=MTA, give_up_at=give_up, now=NOW
    )
    dsn = _parse(raw)
    until = format_datetime(datetime.fromtimestamp(give_up, UTC))
    assert until == "Sat, 03 Jan 2026 22:04:05 +0000"
    assert dsn["Subject"] == "Delayed Mail (still being retried)"
    assert dsn["From"] == f"Mail Delivery System <MAILER-DAEMON@{MTA}>"
    assert dsn.per_message["Reporting-MTA"] == f"dns; {MTA}"
    assert dsn["Date"] == format_datetime(NOW)
    assert dsn.text == (
        f"This is the mail system at {MTA}.\n"
        "\n"
        "####### THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #######\n"
        "\n"
        "Your message has not been delivered yet to the recipients below after 5.0 hours."
        f" The mail system will keep trying until {until}; only if it still fails by"
        " then will you get another message saying so.\n"
        "\n"
        "<b@r.test>: 451 greylisted  now (from mx.r.test)\n"
        "<o@r.test>: 451 odd (from mx.r.test)\n"
        "<c@r.test>: 451 no route\n"
        "<d@r.test>: delivery failed\n"
    )
    b, o, c, d = dsn.recipients
    assert b == {
        "Final-Recipient": "rfc822; b@r.test",
        "Action": "delayed",
        "Status": "4.7.1",
        "Remote-MTA": "dns; mx.r.test",
        "Diagnostic-Code": "smtp; 451 4.7.1 greylisted now",
        "Will-Retry-Until": until,
    }
    assert (o["Status"], o["Diagnostic-Code"]) == ("4.0.0", "smtp; 451 5.7.1 odd")
    assert c == {
        "Final-Recipient": "rfc822; c@r.test",
        "Action": "delayed",
        "Status": "4.0.0",
        "X-Mailio-Reason": "451 no route",
        "Will-Retry-Until": until,
    }
    assert (d["Status"], d["X-Mailio-Reason"]) == ("4.0.0", "451 not delivered yet")
    # A warning never returns the message, whatever RET says.
    assert dsn.returned.get_content_type() == "text/rfc822-headers"


def test_the_delay_warning_counts_hours_from_arrival(tmp_path: Path) -> None:
    message = _message(tmp_path)
    for seconds, hours in ((5400, "1.5"), (13500, "3.8"), (0, "0.0")):  # 3.75 rounds up
        entry = attrs.evolve(_entry(RecipientState("b@r.test")), created=NOW.timestamp() - seconds)
        raw = bounce.build_delay_dsn(entry, message, reporting_mta=MTA, give_up_at=0.0, now=NOW)
        assert f"after {hours} hours." in _parse(raw).text


def test_without_a_time_given_the_date_is_now_in_utc(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    dsn = _parse(
        bounce.build_dsn(_entry(_failed("b@r.test", None)), _message(tmp_path), reporting_mta=MTA)
    )
    date = parsedate_to_datetime(dsn["Date"])
    # "-0000" would say the zone is unknown (RFC 5322 §3.3); parsed, it has no tzinfo.
    assert date.tzinfo is not None
    assert before.replace(microsecond=0) <= date <= datetime.now(UTC)
    # A delay warning without a time counts the hours up to now.
    entry = attrs.evolve(_entry(RecipientState("b@r.test")), created=time.time() - 7200)
    raw = bounce.build_delay_dsn(entry, _message(tmp_path), reporting_mta=MTA, give_up_at=0.0)
    assert "after 2.0 hours." in _parse(raw).text


def test_only_the_header_block_is_quoted(tmp_path: Path) -> None:
    # The first blank line ends the headers; one later in the body does not.
    body = b"Subject: x\r\n\r\npara one\r\n\r\npara two\r\n"
    dsn = _failure(tmp_path, _entry(_failed("b@r.test", None)), body)
    assert dsn.returned.get_payload() == "Subject: x\r\n"
