"""plugins/maildir.py's edges, as mutation testing (nox -s mutants) asked for them.

Each test reads what a mail reader or an operator sees: the files in the
mailbox, their names, the per-recipient LMTP replies and the log lines.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import types
from pathlib import Path

import attrs
import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.config import MaildirConfig, RelayConfig
from mailio_trio.plugins import maildir
from mailio_trio.plugins.maildir import Pending, Placement
from mailio_trio.protocol import Address
from mailio_trio.testing import open_raw_connection

WAIT = 20  # seconds: an upper bound for anything to happen, never expected
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def _all_files(root: Path) -> list[tuple[str, ...]]:
    """The directory of every message file under ``root`` (not Maildir++ markers)."""
    return sorted(
        p.relative_to(root).parts[:-1]
        for p in root.rglob("*")
        if p.is_file() and p.name != "maildirfolder"
    )


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "msg.eml"
    source.write_bytes(MESSAGE)
    return source


# -- names --------------------------------------------------------------------


def test_a_mailbox_name_reads_back_as_its_local_part() -> None:
    # The inverse is what tools listing mailboxes use (docs/maildir.md).
    for local, name in [
        ("john..doe", "john%2E%2Edoe"),
        (".Sent", "%2ESent"),
        ("a/b\\c", "a%2Fb%5Cc"),
        ("%2e%2e", "%252e%252e"),
    ]:
        assert maildir.mailbox_name(local) == name
        assert maildir.local_part_of(name) == local
    for ordinary in ("bob", "first.last", "jürgen", "john doe"):
        assert maildir.mailbox_name(ordinary) == ordinary
        assert maildir.local_part_of(ordinary) == ordinary
    # Only the upper-case escapes mailbox_name writes are read back.
    assert maildir.local_part_of("a%2eb%2E") == "a%2eb."


def test_the_file_name_is_courier_s_unique_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seconds, M + microseconds, P + pid, Q + counter, R + randomness, the host,
    # S= the size; "/" and ":" in the host escaped (":" starts a maildir's flags).
    now = 1_700_000_001 + (1 - 2**-22)  # 0.99999976 s: the microseconds are 999999
    monkeypatch.setattr(time, "time", lambda: now)
    [delivered] = maildir.store(_source(tmp_path), [Placement(tmp_path / "bob")], "mx:25/a")
    pattern = (
        rf"1700000001\.M999999P{os.getpid()}Q\d+R[0-9a-f]{{16}}\.mx\\07225\\057a,S={len(MESSAGE)}"
    )
    assert re.fullmatch(pattern, delivered.name), delivered.name
    assert delivered.parent == tmp_path / "bob" / "new"
    monkeypatch.setattr(time, "time", lambda: 1_700_000_001.25)
    [later] = maildir.store(_source(tmp_path), [Placement(tmp_path / "bob")], "mx")
    assert later.name.startswith(f"1700000001.M250000P{os.getpid()}Q")


async def test_a_hook_s_string_splits_at_the_last_at_sign(tmp_path: Path) -> None:
    async def extend(address: Address) -> list[Address | str]:
        return ['"a@b"@example.com']

    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(root=tmp_path, extend=extend),
    )
    [target] = await maildir.expand(config, Address("team", "example.com")) or []
    assert (target.local_part, target.domain) == ('"a@b"', "example.com")


def test_spaces_and_no_break_spaces_are_names_c0_c1_controls_are_not() -> None:
    # A quoted "john doe" is a valid local part, and U+00A0 is printable; the
    # C0 and C1 control ranges end just before them.
    for local in ("john doe", "a\xa0b", "\xa1"):
        assert maildir.Mailbox(local, "example.com").unsafe_reason() is None, repr(local)
    for local in ("a\x1fb", "a\x7fb", "a\x9fb"):
        assert maildir.Mailbox(local, "example.com").unsafe_reason() == "control character"


def test_directory_templates_and_refusals(tmp_path: Path) -> None:
    cfg = MaildirConfig(enabled=True, root=tmp_path, path="%d/100%%/%n")
    box = maildir.Mailbox("bob", "example.com").directory(cfg)
    assert box == tmp_path / "example.com" / "100%" / "bob"
    # The message names the mailbox: it is what "refusing to store" logs.
    with pytest.raises(ValueError, match=r"^unsafe mailbox name 'bob@\.\.': '\.\.'$"):
        maildir.Mailbox("bob", "..").directory(cfg)


def test_local_mailbox_folds_the_domain_and_finds_postmaster() -> None:
    config = _config(Path("unused"))
    assert maildir.local_mailbox(config, Address("Bob", "Example.COM.")) == maildir.Mailbox(
        "bob", "example.com"
    )
    # RFC 5321 §4.5.1: the domain-less Postmaster is the first local domain's.
    assert maildir.local_mailbox(config, Address("Postmaster", "")) == maildir.Mailbox(
        "postmaster", "example.com"
    )
    assert maildir.local_mailbox(config, Address("bob", "elsewhere.test")) is None


def test_register_orders_maildir_after_spam_and_dmarc_verdicts() -> None:
    # On a chain of one's own, with neither plugin there yet: no ChainError;
    # registered later, without an order of their own, they still run first.
    chain = Chain()
    maildir.register(chain)

    async def verdict(req: Request, res: Response) -> None:
        res.accept()

    chain.add(Handler(command="queue", name="spamd", func=verdict))
    chain.add(Handler(command="queue", name="mailauth", func=verdict))
    assert [h.name for h in chain.handlers("queue")] == ["spamd", "mailauth", "maildir"]


async def test_a_verdict_handler_without_an_order_still_runs_first(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(_config(tmp_path))

    async def spamd(req: Request, res: Response) -> None:
        res.set({"spam": True, "score": 9.0})
        res.accept()

    server.add_handler(Handler(command="queue", name="spamd", func=spamd))
    port = await _serve(nursery, server)
    await _transaction(port, "EHLO", ["bob@example.com"])
    assert _all_files(tmp_path) == [("example.com", "bob", ".Junk", "new")]


# -- the inbox is no Maildir++ folder ------------------------------------------


def test_only_folders_are_marked_maildirfolder(tmp_path: Path) -> None:
    # Courier and Dovecot take a directory with "maildirfolder" for a
    # subfolder: the inbox must not have one, its .Sent must.
    box = tmp_path / "bob"
    maildir.store(_source(tmp_path), [Placement(box), Placement(box, ".Sent", seen=True)], "mx")
    assert not (box / "maildirfolder").exists()
    assert (box / ".Sent" / "maildirfolder").is_file()
    assert len(_files(box / "new")) == 1
    [sent] = _files(box / ".Sent" / "cur")
    assert sent.name.endswith(":2,S")


# -- commit and discard --------------------------------------------------------


def test_a_commit_failing_halfway_takes_back_what_it_renamed(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    pending: list[Pending] = []
    maildir.prepare(_source(tmp_path), [Placement(good), Placement(bad)], "mx", pending)
    (bad / "new").rmdir()
    (bad / "new").write_bytes(b"")  # the second rename cannot happen
    with pytest.raises(OSError):  # noqa: PT011  # which OSError depends on the platform
        maildir.commit(pending)
    for box in (good, bad):
        assert _files(box / "tmp") == []
    assert _files(good / "new") == []  # renamed, then taken back


def test_discard_removes_renamed_and_prepared_copies(tmp_path: Path) -> None:
    box = tmp_path / "bob"
    pending: list[Pending] = []
    maildir.prepare(_source(tmp_path), [Placement(box), Placement(box)], "mx", pending)
    maildir.commit(pending[:1])  # one visible already, one still in tmp/
    maildir.discard(pending)
    assert [p for p in box.rglob("*") if p.is_file()] == []
    maildir.discard(pending)  # twice: nothing left, nothing raised


def test_discard_tries_every_copy_and_raises_the_first_failure(tmp_path: Path) -> None:
    box = tmp_path / "bob"
    pending: list[Pending] = []
    maildir.prepare(_source(tmp_path), [Placement(box), Placement(box)], "mx", pending)
    stuck = tmp_path / "stuck"
    stuck.mkdir()  # unlink() fails on a directory: not "already gone"
    broken = [Pending(stuck, stuck), *pending, Pending(stuck, stuck)]
    with pytest.raises(OSError) as failure:  # noqa: PT011  # EISDIR or EPERM, by platform
        maildir.discard(broken)
    assert not isinstance(failure.value, FileNotFoundError)
    assert failure.value.filename == str(stuck)
    assert _files(box / "tmp") == []  # the copies after the failure were removed too
    # A dest that cannot be removed does not keep its tmp/ file from going.
    pending = []
    maildir.prepare(_source(tmp_path), [Placement(box)], "mx", pending)
    with pytest.raises(OSError):  # noqa: PT011  # as above
        maildir.discard([Pending(pending[0].tmp, stuck)])
    assert _files(box / "tmp") == []


def test_discard_reports_a_directory_it_could_not_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = tmp_path / "bob"
    pending: list[Pending] = []
    maildir.prepare(_source(tmp_path), [Placement(box)], "mx", pending)
    maildir.commit(pending)

    def fsync_fails(path: Path) -> None:
        raise OSError(errno.EIO, "I/O error", str(path))

    monkeypatch.setattr(maildir, "fsync_dir", fsync_fails)
    # The copy is gone, but its removal may not survive a crash: say so.
    with pytest.raises(OSError, match="I/O error") as failure:
        maildir.discard(pending)
    assert failure.value.filename == str(box / "new")
    assert _files(box / "new") == []


# -- the handler, over a socket ------------------------------------------------


async def _serve(nursery: trio.Nursery, config: Config | Server) -> int:
    server = config if isinstance(config, Server) else Server(config)
    bound: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
    return bound[0][1]


async def _transaction(
    port: int,
    hello: str,
    recipients: list[str],
    sender: str = "x@elsewhere.test",
    message: bytes = MESSAGE,
) -> list[tuple[int, str]]:
    """MAIL, RCPT each, DATA; the replies after the message (one, or one per RCPT)."""
    with trio.fail_after(WAIT):
        async with open_raw_connection("127.0.0.1", port) as conn:
            await conn.read_reply()
            await conn.command(f"{hello} client.test")
            assert (await conn.command(f"MAIL FROM:<{sender}>")).code == 250
            for rcpt in recipients:
                assert (await conn.command(f"RCPT TO:<{rcpt}>")).code == 250
            assert (await conn.command("DATA")).code == 354
            first = await conn.command(message + b".")
            replies = [first]
            if hello == "LHLO":
                replies += [await conn.read_reply() for _ in recipients[1:]]
    return [(r.code, f"{r.enhanced} {r.text}") for r in replies]


@pytest.mark.parametrize(
    ("error", "reply"),
    [
        (errno.ENOSPC, (452, "4.2.2 Mailbox full")),
        (errno.EDQUOT, (452, "4.2.2 Mailbox full")),
        (errno.EIO, (451, f"4.3.0 {maildir.STORE_FAILED}")),
    ],
)
async def test_lmtp_refuses_only_the_recipient_whose_mailbox_failed(
    nursery: trio.Nursery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: int,
    reply: tuple[int, str],
) -> None:
    real_prepare = maildir.prepare

    def prepare(source: Path, placements: list[Placement], *args: object) -> None:
        if any(p.mailbox.name == "bob" for p in placements):
            raise OSError(error, os.strerror(error))
        real_prepare(source, placements, *args)  # type: ignore[arg-type]  # passed through

    monkeypatch.setattr(maildir, "prepare", prepare)
    config = Config(
        hostname="store.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path),
        lmtp=True,
    )
    port = await _serve(nursery, config)
    replies = await _transaction(port, "LHLO", ["alice@example.com", "bob@example.com"])
    assert replies[1] == reply
    assert replies[0][0] == 250
    assert len(_files(tmp_path / "example.com" / "alice" / "new")) == 1
    assert _files(tmp_path / "example.com" / "bob" / "new") == []


async def test_the_commit_and_rollback_are_logged(
    nursery: trio.Nursery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Operators read these to see where a message went, or that it was taken back.
    caplog.set_level(logging.INFO, logger="mailio_trio")
    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path),
        lmtp=True,
    )
    real_prepare = maildir.prepare

    def prepare(source: Path, placements: list[Placement], *args: object) -> None:
        real_prepare(source, placements, *args)  # type: ignore[arg-type]  # passed through
        if any(p.mailbox.name == "bob" for p in placements):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(maildir, "prepare", prepare)
    port = await _serve(nursery, config)
    replies = await _transaction(port, "LHLO", ["alice@example.com", "bob@example.com"])
    assert [code for code, _ in replies] == [250, 452]
    lines = [
        r.getMessage().split("] ", 1)[1]
        for r in caplog.records
        if "queue/maildir" in r.getMessage()
    ]
    stored = [line for line in lines if line.endswith("stored in 1 maildir(s)")]
    removed = [line for line in lines if line.endswith(": 1 maildir copies removed")]
    assert len(stored) == 1
    assert len(removed) == 1
    message_id = stored[0].removesuffix(" stored in 1 maildir(s)")
    assert message_id in replies[0][1]  # "... queued as <id>"
    assert removed[0] == f"{message_id}: 1 maildir copies removed"
    assert _lines(caplog, logging.ERROR) == [
        f"cannot store {message_id}: [Errno {errno.ENOSPC}] No space left on device"
    ]
    assert _all_files(tmp_path) == [("example.com", "alice", "new")]  # bob's tmp/ copy gone


async def test_without_rcpt_local_the_hook_runs_at_delivery(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # rcpt/local expands at RCPT time and leaves its answer for queue/maildir;
    # with it off, maildir asks the hook itself (and an empty answer drops).
    async def extend(address: Address) -> list[Address | str]:
        return [] if address.local_part == "devnull" else ["carol@example.com"]

    config = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(enabled=True, root=tmp_path, extend=extend),
        plugins={"rcpt/local": False},
    )
    port = await _serve(nursery, config)
    replies = await _transaction(port, "EHLO", ["team@example.com", "devnull@example.com"])
    assert [code for code, _ in replies] == [250]
    assert _all_files(tmp_path) == [("example.com", "carol", "new")]


def _config(root: Path, **kw: object) -> Config:
    return Config(
        hostname="mx.test",
        domains=["example.com", "lists.example.com"],
        maildir=MaildirConfig(enabled=True, root=root, **kw),  # type: ignore[arg-type]  # test-chosen
    )


async def test_mailboxes_bound_alias_targets_and_sent_copies(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # maildir.mailboxes lists who has a mailbox: an alias's other targets and
    # a sender without one get no copy (no directory appears for them).
    async def extend(address: Address) -> list[Address | str]:
        if address.local_part == "team":
            return ["ghost@example.com", "bob@example.com"]
        return [address]

    config = _config(tmp_path, extend=extend, mailboxes=["bob@example.com", "team@example.com"])
    port = await _serve(nursery, config)
    replies = await _transaction(port, "EHLO", ["team@example.com"], sender="alice@example.com")
    assert [code for code, _ in replies] == [250]
    assert _all_files(tmp_path) == [("example.com", "bob", "new")]


async def test_a_dmarc_quarantine_verdict_files_into_junk(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # queue/mailauth stores its verdict with a "junk" flag (DMARC p=quarantine);
    # a stand-in stores one the same way.
    server = Server(_config(tmp_path))

    async def mailauth(req: Request, res: Response) -> None:
        res.set(types.SimpleNamespace(junk=b"quarantine" in (await _read(req))))
        res.accept()

    server.add_handler(
        Handler(command="queue", name="mailauth", func=mailauth, before=("maildir",))
    )
    port = await _serve(nursery, server)
    await _transaction(port, "EHLO", ["bob@example.com"])
    quarantined = b"Subject: quarantine\r\n\r\nx\r\n"
    await _transaction(port, "EHLO", ["bob@example.com"], message=quarantined)
    assert _all_files(tmp_path) == [
        ("example.com", "bob", ".Junk", "new"),
        ("example.com", "bob", "new"),
    ]


async def _read(req: Request) -> bytes:
    assert req.message is not None
    return await trio.to_thread.run_sync(req.message.read_bytes)


async def test_a_recipient_refused_earlier_gets_no_mailbox(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # LMTP: a queue handler before maildir refuses the first recipient; the
    # second still gets its copy, and nothing is made for the first.
    server = Server(attrs.evolve(_config(tmp_path), lmtp=True))

    async def gate(req: Request, res: Response) -> None:
        req.reject_recipient(Address("alice", "example.com"), 550, "Alice left", "5.1.1")
        res.accept()

    server.add_handler(Handler(command="queue", name="gate", func=gate, before=("maildir",)))
    port = await _serve(nursery, server)
    replies = await _transaction(port, "LHLO", ["alice@example.com", "bob@example.com"])
    assert replies == [(550, "5.1.1 Alice left"), replies[1]]
    assert replies[1][0] == 250
    assert _all_files(tmp_path) == [("example.com", "bob", "new")]
    assert not (tmp_path / "example.com" / "alice").exists()


async def test_a_domain_with_a_transport_is_not_stored_here(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # relay.transports hands lists.example.com to its LMTP server (port 9 on
    # loopback: nobody listens, the spool keeps it); the other recipient is stored.
    config = attrs.evolve(
        _config(tmp_path / "mail"),
        relay=RelayConfig(
            enabled=True,
            spool_dir=tmp_path / "spool",
            transports={"lists.example.com": "lmtp:inet:127.0.0.1:9"},
        ),
    )
    port = await _serve(nursery, config)
    replies = await _transaction(port, "EHLO", ["dev@lists.example.com", "bob@example.com"])
    assert [code for code, _ in replies] == [250]
    assert _all_files(tmp_path / "mail") == [("example.com", "bob", "new")]


async def test_an_alias_to_a_foreign_address_is_logged_and_the_rest_delivered(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mailio_trio")

    async def extend(address: Address) -> list[Address | str]:
        if address.local_part == "team":
            return ["out@elsewhere.test", "bob@example.com"]
        return [address]

    port = await _serve(nursery, _config(tmp_path, extend=extend))
    replies = await _transaction(port, "EHLO", ["team@example.com"])
    assert [code for code, _ in replies] == [250]
    assert _all_files(tmp_path) == [("example.com", "bob", "new")]
    warnings = [
        r.getMessage().split("] ", 1)[1]
        for r in caplog.records
        if "queue/maildir" in r.getMessage() and r.levelno == logging.WARNING
    ]
    assert warnings == ["team@example.com expands to foreign out@elsewhere.test: not relayed yet"]


async def test_mail_from_the_null_sender_is_delivered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # A bounce (MAIL FROM:<>) has no sender mailbox, and no .Sent copy.
    port = await _serve(nursery, _config(tmp_path))
    replies = await _transaction(port, "EHLO", ["bob@example.com"], sender="")
    assert [code for code, _ in replies] == [250]
    assert _all_files(tmp_path) == [("example.com", "bob", "new")]


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """queue/maildir's log lines at ``level``, without the session tag."""
    return [
        r.getMessage().split("] ", 1)[1]
        for r in caplog.records
        if "queue/maildir" in r.getMessage() and r.levelno == level
    ]


async def test_lmtp_a_local_sender_s_copy_is_its_own_batch(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = Server(attrs.evolve(_config(tmp_path), lmtp=True))

    # After maildir: it refuses bob once maildir prepared bob's copy.
    async def gate(req: Request, res: Response) -> None:
        req.reject_recipient(Address("bob", "example.com"), 550, "Bob left", "5.1.1")
        res.accept()

    server.add_handler(Handler(command="queue", name="gate", func=gate, after=("maildir",)))
    port = await _serve(nursery, server)
    replies = await _transaction(
        port, "LHLO", ["carol@example.com", "bob@example.com"], sender="alice@example.com"
    )
    assert [code for code, _ in replies] == [250, 550]
    # bob's prepared copy was taken back; carol's and alice's .Sent were kept.
    assert _all_files(tmp_path) == [
        ("example.com", "alice", ".Sent", "cur"),
        ("example.com", "carol", "new"),
    ]


async def test_lmtp_a_spam_copy_sent_to_oneself_is_kept_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # With junk_folder = sent_folder a spam message alice sent herself lands in
    # one folder once: the Junk copy stands for the Sent one.
    server = Server(attrs.evolve(_config(tmp_path, junk_folder=".Sent"), lmtp=True))

    async def spamd(req: Request, res: Response) -> None:
        res.set({"spam": True, "score": 9.0})
        res.accept()

    server.add_handler(Handler(command="queue", name="spamd", func=spamd, before=("maildir",)))
    port = await _serve(nursery, server)
    replies = await _transaction(port, "LHLO", ["alice@example.com"], sender="alice@example.com")
    assert [code for code, _ in replies] == [250]
    assert _all_files(tmp_path) == [("example.com", "alice", ".Sent", "new")]


async def test_a_store_failure_is_451_and_logged(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mailio_trio")
    root = tmp_path / "mail"
    root.write_bytes(b"")  # a file where the maildir root should be
    port = await _serve(nursery, _config(root))
    [(code, text)] = await _transaction(port, "EHLO", ["bob@example.com"])
    assert (code, text) == (451, f"4.3.0 {maildir.STORE_FAILED}")
    [line] = _lines(caplog, logging.ERROR)
    assert re.fullmatch(r"cannot store [0-9a-f]+\.\d+: \[Errno \d+\] .*", line), line


async def test_a_mailbox_outside_the_root_is_451_and_logged(
    nursery: trio.Nursery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The name check off (as in test_maildir_root_containment): the path check
    # refuses, and the log says which mailbox and why.
    caplog.set_level(logging.ERROR, logger="mailio_trio")
    monkeypatch.setattr(maildir, "unsafe_reason", lambda _text: None)
    root = tmp_path / "mail"
    port = await _serve(nursery, _config(root))
    [(code, text)] = await _transaction(port, "EHLO", ['"../../escaped"@example.com'])
    assert (code, text) == (451, f"4.3.0 {maildir.STORE_FAILED}")
    [line] = _lines(caplog, logging.ERROR)
    expected = (
        r"refusing to store [0-9a-f]+\.\d+: mailbox '\.\./\.\./escaped@example\.com' "
        rf"would be outside {re.escape(str(root))}"
    )
    assert re.fullmatch(expected, line), line
