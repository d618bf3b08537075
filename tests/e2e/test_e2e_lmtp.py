"""LMTP (RFC 2033) over real sockets: smtplib.LMTP and raw pipelined lines against the server.

smtplib's LMTP class speaks LHLO but, like its SMTP parent, reads one reply
after DATA; the further per-recipient replies are read with ``getreply()``.
"""

from __future__ import annotations

import errno
import os
import smtplib
import socket
import stat
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.config import MaildirConfig
from mailio_trio.plugins import maildir
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mailio_trio.chain import Request, Response

MESSAGE = b"Subject: lmtp\r\nFrom: sender@example.org\r\n\r\nHello, three of you.\r\n"
RECIPIENTS = ["alice@example.com", "bob@example.com", "carol@example.com"]


def lmtp_config(root: Path, **server: object) -> Config:
    return Config(
        hostname="store.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=root),
        lmtp=True,
        **server,  # type: ignore[arg-type]  # test-chosen settings
    )


def new_files(root: Path, user: str) -> list[Path]:
    new = root / "example.com" / user / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("tmp/*") if p.is_file()]


def nothing_kept(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.is_file()]


Outcome = list[tuple[int, bytes]]


def lmtp_transaction(
    connect: Callable[[], smtplib.LMTP], recipients: list[str] = RECIPIENTS
) -> Outcome:
    """MAIL, every RCPT, DATA; the replies after the final dot, one per recipient."""
    with connect() as client:
        client.ehlo_or_helo_if_needed()  # LHLO: smtplib.LMTP's ehlo_msg
        assert client.mail("sender@example.org")[0] == 250
        for rcpt in recipients:
            assert client.rcpt(rcpt)[0] == 250
        replies = [client.data(MESSAGE)]
        replies += [client.getreply() for _ in recipients[1:]]
        assert client.noop()[0] == 250  # still in step: no reply was left unread
        return replies


async def serve_tcp(nursery: trio.Nursery, server: Server) -> Callable[[], smtplib.LMTP]:
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    port = addresses[0][1]
    return lambda: smtplib.LMTP("127.0.0.1", port)


def codes(replies: Outcome) -> list[tuple[int, str]]:
    return [(code, text.decode()[:5]) for code, text in replies]


async def test_three_recipients_one_refused_by_a_handler_get_three_replies_in_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(lmtp_config(tmp_path))

    @server.handler("queue", after=("maildir",))
    async def no_bob(req: Request, res: Response) -> None:
        assert req.message is not None
        for rcpt in req.message.envelope.recipients:
            if rcpt.local_part == "bob":
                req.reject_recipient(rcpt, 550, "Bob left", "5.1.1")
        res.accept()

    connect = await serve_tcp(nursery, server)
    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(lmtp_transaction, connect)
    assert codes(replies) == [(250, "2.0.0"), (550, "5.1.1"), (250, "2.0.0")]
    assert replies[1][1] == b"5.1.1 Bob left"
    # maildir prepared bob's copy before the refusal: rolled back, the others committed.
    assert [len(new_files(tmp_path, u)) for u in ("alice", "bob", "carol")] == [1, 0, 1]
    assert tmp_files(tmp_path) == []
    [alice] = new_files(tmp_path, "alice")
    assert b"with LMTP id" in alice.read_bytes().split(b"\r\n\r\n")[0]


async def test_one_mailbox_over_quota_gets_452_the_others_250(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = maildir.prepare

    def prepare(source: Path, placements: list[maildir.Placement], *args: object) -> None:
        if any(p.mailbox.name == "bob" for p in placements):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        real_prepare(source, placements, *args)  # type: ignore[arg-type]  # passed through

    monkeypatch.setattr(maildir, "prepare", prepare)
    connect = await serve_tcp(nursery, Server(lmtp_config(tmp_path)))
    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(lmtp_transaction, connect)
    assert codes(replies) == [(250, "2.0.0"), (452, "4.2.2"), (250, "2.0.0")]
    assert [len(new_files(tmp_path, u)) for u in ("alice", "bob", "carol")] == [1, 0, 1]


async def test_one_mailbox_write_error_gets_451_the_others_250(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Root ignores a read-only directory: a file where bob's mailbox should be fails for anyone.
    (tmp_path / "example.com").mkdir()
    (tmp_path / "example.com" / "bob").write_text("not a maildir")
    connect = await serve_tcp(nursery, Server(lmtp_config(tmp_path)))
    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(lmtp_transaction, connect)
    assert codes(replies) == [(250, "2.0.0"), (451, "4.3.0"), (250, "2.0.0")]
    assert [len(new_files(tmp_path, u)) for u in ("alice", "carol")] == [1, 1]


async def test_every_recipient_refused_keeps_nothing(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = Server(lmtp_config(tmp_path))

    @server.handler("queue", after=("maildir",))
    async def nobody(req: Request, res: Response) -> None:
        assert req.message is not None
        for rcpt in req.message.envelope.recipients:
            req.reject_recipient(rcpt, 450, f"not now, {rcpt.local_part}", "4.2.0")
        res.accept()

    connect = await serve_tcp(nursery, server)
    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(lmtp_transaction, connect)
    assert [r[1] for r in replies] == [
        f"4.2.0 not now, {u}".encode() for u in ("alice", "bob", "carol")
    ]
    assert nothing_kept(tmp_path)


async def test_a_whole_message_refusal_is_repeated_for_every_recipient(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(lmtp_config(tmp_path))

    @server.handler("queue", after=("maildir",))
    async def virus(req: Request, res: Response) -> None:
        res.reject(554, "Infected", "5.7.1")

    connect = await serve_tcp(nursery, server)
    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(lmtp_transaction, connect)
    assert codes(replies) == [(554, "5.7.1")] * 3
    assert nothing_kept(tmp_path)


async def test_smtp_reject_recipient_refuses_the_whole_message(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path),
    )
    server = Server(config)

    @server.handler("queue", after=("maildir",))
    async def no_bob(req: Request, res: Response) -> None:
        assert req.message is not None
        req.reject_recipient(req.message.envelope.recipients[1], 452, "Bob is full", "4.2.2")
        res.accept()

    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", addresses[0][1]) as client:
            client.sendmail("sender@example.org", RECIPIENTS, MESSAGE)

    with trio.fail_after(10), pytest.raises(smtplib.SMTPDataError) as refused:
        await trio.to_thread.run_sync(send)
    assert (refused.value.smtp_code, refused.value.smtp_error) == (452, b"4.2.2 Bob is full")
    assert nothing_kept(tmp_path)


async def test_helo_and_ehlo_are_refused_and_lhlo_lists_ehlos_extensions(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(lmtp_config(tmp_path))
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    with trio.fail_after(10):
        async with open_raw_connection("127.0.0.1", addresses[0][1]) as conn:
            assert (await conn.read_reply()).code == 220
            for verb in ("HELO", "EHLO"):
                reply = await conn.command(f"{verb} client.test")
                assert (reply.code, reply.enhanced) == (500, "5.5.1")
            assert (await conn.command("MAIL FROM:<a@example.org>")).code == 503
            reply = await conn.command("LHLO client.test")
    assert reply.code == 250
    lines = reply.text.split("\n")
    assert lines[0] == "store.test Hello client.test"
    assert {"PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES", "8BITMIME"} <= set(lines[1:])


async def test_lhlo_to_an_smtp_server_is_unrecognized(nursery: trio.Nursery) -> None:
    server = Server(Config(hostname="mx.test"))
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    with trio.fail_after(10):
        async with open_raw_connection("127.0.0.1", addresses[0][1]) as conn:
            assert (await conn.read_reply()).code == 220
            reply = await conn.command("LHLO client.test")
            assert (reply.code, reply.enhanced) == (500, "5.5.1")
            assert (await conn.command("EHLO client.test")).code == 250


async def test_pipelined_lmtp_transaction_gets_every_reply_in_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(lmtp_config(tmp_path))

    @server.handler("queue", after=("maildir",))
    async def no_carol(req: Request, res: Response) -> None:
        assert req.message is not None
        req.reject_recipient(req.message.envelope.recipients[2], 550, "No carol", "5.1.1")
        res.accept()

    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    envelope = "MAIL FROM:<s@example.org>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in RECIPIENTS)
    with trio.fail_after(10):
        async with open_raw_connection("127.0.0.1", addresses[0][1]) as conn:
            assert (await conn.read_reply()).code == 220
            assert (await conn.command("LHLO client.test")).code == 250
            # RFC 2920: the envelope and DATA in one write, then the body and the next
            # transaction's first commands behind the final dot.
            await conn.send((envelope + "DATA\r\n").encode())
            assert [(await conn.read_reply()).code for _ in range(5)] == [250] * 4 + [354]
            await conn.send(MESSAGE + b".\r\n" + b"RSET\r\nNOOP\r\n")
            after = [await conn.read_reply() for _ in range(5)]
    assert [(r.code, r.enhanced) for r in after] == [
        (250, "2.0.0"),
        (250, "2.0.0"),
        (550, "5.1.1"),
        (250, "2.0.0"),  # RSET
        (250, "2.0.0"),  # NOOP
    ]
    assert [len(new_files(tmp_path, u)) for u in ("alice", "bob", "carol")] == [1, 1, 0]


async def test_bdat_last_gets_one_reply_per_recipient(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(lmtp_config(tmp_path))
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    with trio.fail_after(10):
        async with open_raw_connection("127.0.0.1", addresses[0][1]) as conn:
            assert (await conn.read_reply()).code == 220
            assert (await conn.command("LHLO client.test")).code == 250
            assert (await conn.command("MAIL FROM:<s@example.org>")).code == 250
            for rcpt in RECIPIENTS[:2]:
                assert (await conn.command(f"RCPT TO:<{rcpt}>")).code == 250
            await conn.send(b"BDAT %d\r\n" % 10 + MESSAGE[:10])
            assert (await conn.read_reply()).code == 250  # a middle chunk: one reply
            rest = MESSAGE[10:]
            await conn.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
            finals = [await conn.read_reply() for _ in range(2)]
            assert (await conn.command("NOOP")).code == 250
    assert [r.code for r in finals] == [250, 250]
    assert [len(new_files(tmp_path, u)) for u in ("alice", "bob")] == [1, 1]


async def test_too_big_message_is_refused_once_per_recipient(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(lmtp_config(tmp_path, limits={"message_size": 64}))
    connect = await serve_tcp(nursery, server)

    def send() -> Outcome:
        with connect() as client:
            client.ehlo_or_helo_if_needed()
            client.mail("s@example.org")
            for rcpt in RECIPIENTS[:2]:
                client.rcpt(rcpt)
            first = client.data(MESSAGE * 4)
            return [first, client.getreply()]

    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(send)
    assert [code for code, _ in replies] == [552, 552]


async def test_unix_socket_replaces_a_stale_one_and_is_removed_after(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "lmtp.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a dead server's socket file, left behind
    server = Server(
        Config(
            hostname="store.test",
            domains=["example.com"],
            maildir=MaildirConfig(enabled=True, root=tmp_path / "mail"),
        ),
        lmtp=True,
    )
    assert server.config.lmtp
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        with scope:
            await server.serve_unix(path, task_status=task_status)

    bound: list[tuple[str, int]] = await nursery.start(run)
    assert bound == [(str(path), 0)]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    with trio.fail_after(10):
        replies = await trio.to_thread.run_sync(lmtp_transaction, lambda: smtplib.LMTP(str(path)))
    assert codes(replies) == [(250, "2.0.0")] * 3
    [alice] = new_files(tmp_path / "mail", "alice")
    assert b"[127.0.0.1]" in alice.read_bytes().split(b"\r\n")[0]
    scope.cancel()
    with trio.fail_after(10):
        while path.exists():  # noqa: ASYNC110  # the serve task's finally removes it
            await trio.sleep(0.01)


async def test_unix_socket_with_a_live_server_is_not_taken_over(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "lmtp.sock"
    first = Server(lmtp_config(tmp_path / "mail"))
    await nursery.start(first.serve_unix, path)
    with pytest.raises(OSError, match="listening") as taken:
        await Server(lmtp_config(tmp_path / "mail")).serve_unix(path)
    assert taken.value.errno == errno.EADDRINUSE
    (tmp_path / "file").write_text("mine")
    with pytest.raises(OSError, match="not a socket"):
        await Server(lmtp_config(tmp_path / "mail")).serve_unix(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"


async def test_delivered_report_names_only_the_recipients_that_got_the_message(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = maildir.prepare

    def prepare(source: Path, placements: list[maildir.Placement], *args: object) -> None:
        if any(p.mailbox.name == "bob" for p in placements):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_prepare(source, placements, *args)  # type: ignore[arg-type]  # passed through

    monkeypatch.setattr(maildir, "prepare", prepare)
    connect = await serve_tcp(nursery, Server(lmtp_config(tmp_path)))

    def send() -> Outcome:
        with connect() as client:
            client.ehlo("client.test")
            client.mail("alice@example.com")
            for rcpt in ("bob@example.com", "carol@example.com"):
                assert client.rcpt(rcpt, ["NOTIFY=SUCCESS"])[0] == 250
            return [client.data(MESSAGE), client.getreply()]

    with trio.fail_after(20):
        replies = await trio.to_thread.run_sync(send)
        assert codes(replies) == [(452, "4.2.2"), (250, "2.0.0")]
        while not new_files(tmp_path, "alice"):  # noqa: ASYNC110  # the outbox sends after the 250
            await trio.sleep(0.02)
    [report] = new_files(tmp_path, "alice")
    text = report.read_bytes()
    assert b"carol@example.com" in text
    assert b"bob@example.com" not in text
