"""Local delivery into maildirs over real loopback sockets: smtplib -> server -> files."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.chain import Handler, Request, Response
from mailio_trio.config import MaildirConfig
from mailio_trio.plugins.maildir import Mailbox, Placement, store, unsafe_reason
from mailio_trio.protocol import Address
from mailio_trio.testing import open_raw_connection

MESSAGE = b"Subject: hello\r\nFrom: alice@example.com\r\n\r\nHi there.\r\n"


def make_config(root: Path, **maildir: object) -> Config:
    return Config(
        hostname="mx.test",
        domains=["example.com", "Lists.Example.com"],
        maildir=MaildirConfig(enabled=True, root=root, **maildir),  # type: ignore[arg-type]  # test-chosen settings
    )


@attrs.frozen
class Running:
    server: Server
    port: int


async def start(nursery: trio.Nursery, config: Config, server: Server | None = None) -> Running:
    server = server or Server(config)
    addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    return Running(server, addresses[0][1])


async def sendmail(
    server: Running, sender: str, recipients: list[str], message: bytes = MESSAGE
) -> dict[str, tuple[int, bytes]]:
    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            return client.sendmail(sender, recipients, message)

    return await trio.to_thread.run_sync(send)


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "maildirfolder")


async def test_two_local_recipients_and_local_sender_get_their_copies(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start(nursery, make_config(tmp_path))
    refused = await sendmail(server, "alice@example.com", ["bob@example.com", "carol@example.com"])
    assert refused == {}
    copies = []
    for user in ("bob", "carol"):
        box = tmp_path / "example.com" / user
        [delivered] = files(box / "new")
        assert files(box / "tmp") == []
        copies.append(delivered.read_bytes())
        assert delivered.name.endswith(f",S={delivered.stat().st_size}")
    sent_box = tmp_path / "example.com" / "alice" / ".Sent"
    [sent] = files(sent_box / "cur")
    assert sent.name.endswith(":2,S")
    assert (sent_box / "maildirfolder").is_file()
    assert files(sent_box / "new") == []
    copies.append(sent.read_bytes())
    # Byte-identical to what was sent, apart from our Received: line in front.
    for raw in copies:
        assert raw.startswith(b"Received: from ")
        assert raw.endswith(b"\r\n" + MESSAGE)
        assert raw == copies[0]
    # Every Maildir++ directory exists, so IMAP servers can open the mailbox.
    for mailbox in ("bob", "carol", "alice", "alice/.Sent"):
        for sub in ("tmp", "new", "cur"):
            assert (tmp_path / "example.com" / mailbox / sub).is_dir()


async def test_domain_and_local_part_are_case_folded(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start(nursery, make_config(tmp_path))
    await sendmail(server, "someone@elsewhere.test", ["Bob@EXAMPLE.com", "bob@example.COM"])
    # Two spellings of one mailbox: one copy, in the folded directory.
    assert [p.relative_to(tmp_path).parts[:3] for p in all_files(tmp_path)] == [
        ("example.com", "bob", "new")
    ]


async def test_foreign_sender_gets_no_sent_copy(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start(nursery, make_config(tmp_path))
    await sendmail(server, "x@elsewhere.test", ["bob@example.com"])
    assert len(all_files(tmp_path)) == 1


async def test_spam_verdict_sends_copy_to_junk(nursery: trio.Nursery, tmp_path: Path) -> None:
    spam_server = Server(make_config(tmp_path))

    # A stand-in for queue/spamd (a real spamd arrives with its own issue): it
    # stores the verdict the way that plugin does, for queue/maildir to read.
    async def spamd(req: Request, res: Response) -> None:
        assert req.message is not None
        res.set({"spam": b"VIAGRA" in req.message.read_bytes(), "score": 9.0})
        res.accept()

    spam_server.add_handler(Handler(command="queue", name="spamd", func=spamd, before=("maildir",)))
    server = await start(nursery, spam_server.config, spam_server)
    await sendmail(server, "x@elsewhere.test", ["bob@example.com"], b"Subject: VIAGRA\r\n\r\nx\r\n")
    await sendmail(server, "x@elsewhere.test", ["bob@example.com"], b"Subject: hi\r\n\r\nx\r\n")
    box = tmp_path / "example.com" / "bob"
    [junk] = files(box / ".Junk" / "new")
    assert b"VIAGRA" in junk.read_bytes()
    [ham] = files(box / "new")
    assert b"Subject: hi" in ham.read_bytes()


async def test_extend_hook_expands_aliases_and_drops(nursery: trio.Nursery, tmp_path: Path) -> None:
    calls: list[str] = []

    async def extend(address: Address) -> list[Address | str] | None:
        calls.append(str(address))
        table: dict[str, list[Address | str] | None] = {
            "team": ["bob@example.com", Address("carol", "example.com")],
            "devnull": [],
            "bob": [address],
            "carol": [address],
        }
        return table.get(address.local_part.lower())

    server = await start(nursery, make_config(tmp_path, extend=extend))
    refused = await sendmail(
        server, "x@elsewhere.test", ["team@example.com", "devnull@example.com"]
    )
    assert refused == {}
    assert sorted(p.relative_to(tmp_path).parts[1] for p in all_files(tmp_path)) == ["bob", "carol"]
    # Expanded once, at RCPT time, not again after DATA.
    assert calls == ["team@example.com", "devnull@example.com"]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refusal:
        await sendmail(server, "x@elsewhere.test", ["nobody@example.com"])
    assert refusal.value.recipients["nobody@example.com"] == (550, b"5.1.1 No such user here")


async def test_alias_and_its_target_in_one_message_get_one_copy(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def extend(address: Address) -> list[Address | str] | None:
        return ["bob@example.com"] if address.local_part == "postmaster" else [address]

    server = await start(nursery, make_config(tmp_path, extend=extend))
    await sendmail(server, "x@elsewhere.test", ["postmaster@example.com", "bob@example.com"])
    assert len(all_files(tmp_path)) == 1


async def test_unknown_user_is_refused_at_rcpt_when_mailboxes_set(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start(nursery, make_config(tmp_path, mailboxes=["bob@example.com"]))
    async with open_raw_connection("127.0.0.1", server.port) as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<x@elsewhere.test>")
        unknown = await conn.command("RCPT TO:<eve@example.com>")
        known = await conn.command("RCPT TO:<BOB@example.com>")
    assert (unknown.code, unknown.enhanced) == (550, "5.1.1")
    assert (known.code, known.enhanced) == (250, "2.1.5")


async def test_foreign_recipient_is_refused_until_relay_exists(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start(nursery, make_config(tmp_path))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refusal:
        await sendmail(server, "alice@example.com", ["someone@elsewhere.test"])
    code, text = refusal.value.recipients["someone@elsewhere.test"]
    assert (code, text[:5]) == (550, b"5.7.1")
    assert all_files(tmp_path) == []


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("<../../x@example.com>", (553, "5.1.3")),  # not even valid syntax
        # Valid local parts such as "../../x" are delivered under an escaped
        # name inside the root: tests/e2e/test_e2e_maildir_quoted_local_parts.py.
        ("<x@../../etc>", (553, "5.1.3")),
        ("<x@example.com/../../etc>", (553, "5.1.3")),
        # NUL and other controls never get past the command parser (RFC 5321 §4.1.1).
        ('<"a\x00b"@example.com>', (501, "5.5.2")),
        ('<"a\x1bb"@example.com>', (501, "5.5.2")),
    ],
)
async def test_path_escape_attempts_are_refused_at_rcpt(
    nursery: trio.Nursery, tmp_path: Path, recipient: str, expected: tuple[int, str]
) -> None:
    root = tmp_path / "mail"
    server = await start(nursery, make_config(root))
    async with open_raw_connection("127.0.0.1", server.port) as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<x@elsewhere.test>")
        reply = await conn.command(f"RCPT TO:{recipient}")
        assert (reply.code, reply.enhanced) == expected
        # And a transaction with it cannot be completed.
        assert (await conn.command("DATA")).code == 503
    assert all_files(tmp_path) == []
    assert not root.exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\x00b", "NUL character"),
        (".hidden", "leading dot"),
        ("a\x1fb", "control character"),
        ("a\x7fb", "control character"),
        ("a\x85b", "control character"),
        ("%2e%2e", "percent sign"),
        ("", "empty name"),
        ("bob", None),
        ("jürgen", None),
        ("first.last", None),
    ],
)
def test_unsafe_reason(name: str, reason: str | None) -> None:
    assert unsafe_reason(name) == reason


def test_mailbox_directory_never_leaves_root(tmp_path: Path) -> None:
    cfg = MaildirConfig(enabled=True, root=tmp_path)
    assert Mailbox("bob", "example.com").directory(cfg) == tmp_path / "example.com" / "bob"
    # A local part is escaped (mailbox_name); only a domain is refused as unsafe.
    assert Mailbox("..", "example.com").directory(cfg) == tmp_path / "example.com" / "%2E%2E"
    for local, domain in [("bob", ".."), ("a\x00b", "x"), ("x", "a/../../b")]:
        with pytest.raises(ValueError, match="unsafe"):
            Mailbox(local, domain).directory(cfg)


async def test_file_where_mailbox_dir_should_be_is_451_and_nothing_in_new(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start(nursery, make_config(tmp_path))
    (tmp_path / "example.com").mkdir()
    (tmp_path / "example.com" / "carol").write_bytes(b"not a directory")
    with pytest.raises(smtplib.SMTPDataError) as failure:
        await sendmail(server, "alice@example.com", ["bob@example.com", "carol@example.com"])
    assert (failure.value.smtp_code, failure.value.smtp_error[:5]) == (451, b"4.3.0")
    # bob's copy may have been written to tmp/ first; none is left anywhere.
    assert [p for p in all_files(tmp_path) if p.name != "carol"] == []


async def test_file_where_maildir_root_should_be_is_451(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    root.write_bytes(b"")
    server = await start(nursery, make_config(root))
    with pytest.raises(smtplib.SMTPDataError) as failure:
        await sendmail(server, "x@elsewhere.test", ["bob@example.com"])
    assert (failure.value.smtp_code, failure.value.smtp_error[:5]) == (451, b"4.3.0")


def test_store_rolls_back_delivered_copies_when_a_later_one_fails(tmp_path: Path) -> None:
    source = tmp_path / "msg.eml"
    source.write_bytes(MESSAGE)
    good = tmp_path / "mail" / "good"
    bad = tmp_path / "mail" / "bad"
    bad.mkdir(parents=True)
    (bad / "new").write_bytes(b"")  # new/ is a file: tmp/ works, the rename cannot
    with pytest.raises(OSError):  # noqa: PT011  # which OSError depends on the platform
        store(source, [Placement(good), Placement(bad)], "mx.test")
    assert files(good / "new") == []
    assert files(good / "tmp") == []
    assert files(bad / "tmp") == []


def test_mailbox_made_by_someone_else_at_the_same_moment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another worker process creates the mailbox directory between our check
    # and our mkdir: FileExistsError for a directory means "already made".
    source = tmp_path / "msg.eml"
    source.write_bytes(MESSAGE)
    real_mkdir = Path.mkdir

    def mkdir_raced(self: Path, *args: Any, **kwargs: Any) -> None:
        real_mkdir(self, *args, **kwargs)
        raise FileExistsError(17, "File exists", str(self))

    monkeypatch.setattr(Path, "mkdir", mkdir_raced)
    [delivered] = store(source, [Placement(tmp_path / "mail" / "bob")], "mx.test")
    assert delivered.read_bytes() == MESSAGE


async def test_concurrent_first_deliveries_to_one_new_mailbox_all_succeed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = await start(nursery, make_config(tmp_path))
    async with trio.open_nursery() as senders:
        for _ in range(8):
            senders.start_soon(sendmail, server, "x@elsewhere.test", ["fresh@example.com"])
    assert len(files(tmp_path / "example.com" / "fresh" / "new")) == 8
