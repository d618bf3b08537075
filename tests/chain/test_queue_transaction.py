"""The ``queue`` chain answers for the whole transaction: every keeper commits, or none does.

A real server on loopback with maildir delivery and relaying on: real maildirs
and a real relay spool in ``tmp_path``, a DNS server on loopback (real packets)
naming an aiosmtpd MX on 127.0.0.2 for the relayed copy, smtplib or raw
connections as the client. ``queue/gate`` is a user handler that runs after
``queue/maildir`` and ``queue/relay`` — by then both have prepared their
copies — and answers as each test scripts it. Whatever goes wrong after the
preparation, no copy may be visible (no file in any ``new/`` or ``cur/``, no
spool entry), and the client's retry must deliver exactly one copy of each.
"""

from __future__ import annotations

import enum
import logging
import shutil
import smtplib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from smtp_peers import Peer, run_aiosmtpd

from mailio_trio import Config, Server
from mailio_trio.chain import Handler, Request, Response
from mailio_trio.config import ConfigError, DnsConfig, Limits, MaildirConfig, RelayConfig
from mailio_trio.relay.spool import Spool
from mailio_trio.server import _connection as connection
from mailio_trio.testing import RawConnection, open_raw_connection
from mailio_trio.testing.dns import DnsServer, Zone

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

SENDER = "alice@example.com"  # local: a copy lands in .Sent/cur/ too
RECIPIENTS = ["bob@example.com", "carol@remote.test"]
BODY = b"Subject: once\r\nFrom: alice@example.com\r\n\r\nexactly one copy, please\r\n"
WAIT = 20.0  # a bound on each wait, never a pause


class Verdict(enum.Enum):
    ACCEPT = "accept"
    REJECT = "554"
    DEFER = "451"
    END = "421 and close"
    RAISE = "raise"
    HANG = "hang"
    WAIT = "wait for release"


@attrs.define(eq=False)
class Gate:
    """``queue/gate``: answers each message with the next scripted verdict (then accepts)."""

    root: Path
    spool: Path
    verdicts: list[Verdict] = attrs.field(factory=list)
    sabotage: list[Path] = attrs.field(factory=list)
    """Directories to replace with a plain file while the gate runs: a commit-time fault."""
    prepared: list[list[Path]] = attrs.field(factory=list)
    """What the maildir and spool held, per message, when the gate ran."""
    entered: trio.Event = attrs.field(factory=trio.Event)
    release: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, req: Request, res: Response) -> None:
        self.prepared.append(everything(self.root) + everything(self.spool))
        for directory in self.sabotage:
            shutil.rmtree(directory)
            directory.write_bytes(b"")  # tests run as root: a mode would not stop us
        self.sabotage.clear()
        verdict = self.verdicts.pop(0) if self.verdicts else Verdict.ACCEPT
        self.entered.set()
        if verdict is Verdict.REJECT:
            res.reject(554, "5.7.1 Virus found")
        elif verdict is Verdict.DEFER:
            res.reject(451, "4.7.1 Scanner busy, try later")
        elif verdict is Verdict.END:
            res.end(421, "4.3.2 Going away")
        elif verdict is Verdict.RAISE:
            raise RuntimeError("scanner crashed")
        elif verdict is Verdict.HANG:
            await trio.sleep_forever()
        else:
            if verdict is Verdict.WAIT:
                await self.release.wait()
            res.accept()


def everything(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "maildirfolder")


def visible(root: Path) -> list[Path]:
    """Messages a mail reader would see: files in any ``new/`` or ``cur/``."""
    return [p for p in everything(root) if p.parent.name in ("new", "cur")]


@attrs.define(eq=False)
class Setup:
    config: Config
    gate: Gate
    peer: Peer
    server: Server
    port: int
    root: Path
    spool: Path

    def assert_nothing_kept(self) -> None:
        assert everything(self.root) == []  # not in new/ or cur/, and no tmp/ leftover
        assert everything(self.spool) == []
        assert Spool(self.spool).entries_sync() == []

    async def start_again(self, nursery: trio.Nursery) -> None:
        """A new server on the same maildirs and spool (the first one was stopped)."""
        self.server = make_server(self.config, self.gate)
        addresses: list[tuple[str, int]] = await nursery.start(self.server.serve, "127.0.0.1", 0)
        self.port = addresses[0][1]

    async def assert_retry_delivers_once(self) -> None:
        assert await sendmail(self.port) == 250
        assert [p.relative_to(self.root).parts[:-1] for p in visible(self.root)] == [
            ("example.com", "alice", ".Sent", "cur"),
            ("example.com", "bob", "new"),
        ]
        assert [p for p in everything(self.root) if p.parent.name == "tmp"] == []
        for copy in visible(self.root):
            assert copy.read_bytes().endswith(BODY)
        await self.peer.handler.wait_for(1, WAIT)
        assert self.server.relay is not None
        with trio.fail_after(WAIT):
            await self.server.relay.wait_idle()
        [relayed] = self.peer.handler.received
        assert relayed.recipients == ["carol@remote.test"]
        assert relayed.content.endswith(BODY)
        assert Spool(self.spool).entries_sync() == []  # delivered once, entry gone


def make_server(config: Config, gate: Gate) -> Server:
    server = Server(config)
    server.add_handler(
        Handler(
            command="queue", name="gate", func=gate, after=("maildir", "relay"), if_present=True
        )
    )
    return server


@asynccontextmanager
async def setup(
    nursery: trio.Nursery, tmp_path: Path, limits: Limits | None = None
) -> AsyncIterator[Setup]:
    zone = Zone()
    zone.mx("remote.test", (10, "mx1.remote.test"))
    zone.a("mx1.remote.test", "127.0.0.2")
    dns_host, dns_port = await nursery.start(DnsServer(zone).serve)
    root, spool = tmp_path / "mail", tmp_path / "spool"
    async with run_aiosmtpd("127.0.0.2") as peer:
        config = Config(
            hostname="mx.example.com",
            domains=["example.com"],
            spool_dir=tmp_path,
            limits=limits or Limits(),
            maildir=MaildirConfig(enabled=True, root=root),
            relay=RelayConfig(
                enabled=True,
                spool_dir=spool,
                port=peer.port,
                allow_unauthenticated=True,
                retry_base_interval=0.05,
                connect_timeout=5.0,
            ),
            dns=DnsConfig(nameservers=[dns_host], port=dns_port, timeout=2.0),
        )
        gate = Gate(root, spool)
        server = make_server(config, gate)
        addresses: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
        yield Setup(config, gate, peer, server, addresses[0][1], root, spool)


async def sendmail(port: int) -> int:
    """Send the message with smtplib as a real client would; the reply code after DATA."""

    def send() -> int:
        with smtplib.SMTP("127.0.0.1", port) as client:
            try:
                refused = client.sendmail(SENDER, RECIPIENTS, BODY)
            except smtplib.SMTPServerDisconnected:
                return 0
            except smtplib.SMTPResponseException as exc:
                return exc.smtp_code
            assert refused == {}
            return 250

    return await trio.to_thread.run_sync(send)


async def send_body(conn: RawConnection) -> None:
    """Everything up to the final dot; the reply to it is left unread."""
    await conn.read_reply()
    lines = ["EHLO client.test", f"MAIL FROM:<{SENDER}>", *(f"RCPT TO:<{r}>" for r in RECIPIENTS)]
    for line in lines:
        reply = await conn.command(line)
        assert reply.code == 250, (line, reply)
    assert (await conn.command("DATA")).code == 354
    await conn.send(BODY + b".\r\n")


@pytest.mark.parametrize(
    ("verdict", "code"),
    [
        (Verdict.REJECT, 554),
        (Verdict.DEFER, 451),
        (Verdict.RAISE, 451),
        (Verdict.END, 421),
    ],
)
async def test_later_handler_refusing_leaves_no_copy_and_the_retry_delivers_once(
    nursery: trio.Nursery, tmp_path: Path, verdict: Verdict, code: int
) -> None:
    async with setup(nursery, tmp_path) as env:
        env.gate.verdicts = [verdict]
        assert await sendmail(env.port) == code
        # The keepers had prepared before the gate refused: the test is not vacuous.
        [prepared] = env.gate.prepared
        assert {p.relative_to(tmp_path).parts[0] for p in prepared} == {"mail", "spool"}
        assert {p.parent.name for p in prepared} == {"tmp"}  # nothing visible yet
        env.assert_nothing_kept()
        await env.assert_retry_delivers_once()


async def test_later_handler_timing_out_leaves_no_copy_and_the_retry_delivers_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A real (short) handler_timeout, not autojump_clock: maildir and the spool write
    in threads, and a clock that jumps while a thread fsyncs would time *them* out."""
    async with setup(nursery, tmp_path, Limits(handler_timeout=1.0)) as env:
        env.gate.verdicts = [Verdict.HANG]
        assert await sendmail(env.port) == 451
        env.assert_nothing_kept()
        await env.assert_retry_delivers_once()


@pytest.mark.parametrize("io_path", ["fast-io", "trio-stream-io"])
async def test_client_gone_before_the_reply_leaves_no_copy_and_the_retry_delivers_once(
    nursery: trio.Nursery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    io_path: str,
) -> None:
    """RFC 5321 §3.8: a close before the reply cancels the pending transaction.

    The client cannot read a ``250`` it hung up on, so it will send again:
    committing would deliver the message twice.
    """
    monkeypatch.setattr(connection, "FAST_SOCKET_IO", io_path == "fast-io")
    caplog.set_level(logging.INFO, logger="mailio_trio.session")
    async with setup(nursery, tmp_path) as env:
        env.gate.verdicts = [Verdict.WAIT]
        async with open_raw_connection("127.0.0.1", env.port) as conn:
            await send_body(conn)
            with trio.fail_after(WAIT):
                await env.gate.entered.wait()
        # Closed: the server's session is still in the queue chain.
        env.gate.release.set()
        # Once the server has stopped, its session has finished with the message.
        with trio.fail_after(WAIT):
            await env.server.aclose()
        env.assert_nothing_kept()
        assert "client closed the connection before the reply" in caplog.text
        await env.start_again(nursery)
        await env.assert_retry_delivers_once()


async def test_session_cancelled_mid_chain_leaves_no_copy(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Shutdown's grace runs out while a handler hangs: the rollback still runs (shielded)."""
    async with setup(nursery, tmp_path, Limits(shutdown_grace=0.5, handler_timeout=600.0)) as env:
        env.gate.verdicts = [Verdict.HANG]
        async with open_raw_connection("127.0.0.1", env.port) as conn:
            await send_body(conn)
            with trio.fail_after(WAIT):
                await env.gate.entered.wait()
                env.server.shutdown()
                await env.server.wait_stopped()
        env.assert_nothing_kept()
        await env.start_again(nursery)
        await env.assert_retry_delivers_once()


async def test_relay_spool_failure_after_maildir_prepared_leaves_no_maildir_copy(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with setup(nursery, tmp_path) as env:
        tmp_dir = env.spool / "tmp"
        tmp_dir.rmdir()
        tmp_dir.write_bytes(b"")  # the spool cannot write its entry
        assert await sendmail(env.port) == 451
        assert env.gate.prepared == []  # queue/relay refused: the gate never ran
        assert everything(env.root) == []
        tmp_dir.unlink()
        tmp_dir.mkdir()
        env.assert_nothing_kept()
        await env.assert_retry_delivers_once()


async def test_maildir_commit_failing_halfway_is_451_and_nothing_visible(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Bob's copy is renamed into new/, then .Sent/cur/ is no directory: both go, 451."""
    async with setup(nursery, tmp_path) as env:
        sent_cur = env.root / "example.com" / "alice" / ".Sent" / "cur"
        env.gate.sabotage = [sent_cur]
        assert await sendmail(env.port) == 451
        sent_cur.unlink()
        sent_cur.mkdir()
        env.assert_nothing_kept()
        await env.assert_retry_delivers_once()


async def test_relay_commit_failing_takes_back_the_committed_maildir_copies(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """queue/relay commits after queue/maildir: its failure undoes maildir's renames too."""
    async with setup(nursery, tmp_path) as env:
        queue_dir = env.spool / "queue"
        env.gate.sabotage = [queue_dir]
        assert await sendmail(env.port) == 451
        queue_dir.unlink()
        queue_dir.mkdir()
        env.assert_nothing_kept()
        await env.assert_retry_delivers_once()


def test_spool_entry_prepared_but_not_committed_is_gone_after_a_crash(tmp_path: Path) -> None:
    """A crash between prepare and commit: the restarted spool neither delivers nor keeps it."""
    source = tmp_path / "message.eml"
    source.write_bytes(BODY)
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = spool.prepare_sync(source, SENDER, ["carol@remote.test"])
    assert spool.entries_sync() == []  # the worker does not see it
    assert [p.name for p in everything(tmp_path / "spool")] == [
        f"{entry.id}.eml",
        f"{entry.id}.json",
    ]
    assert {p.parent.name for p in everything(tmp_path / "spool")} == {"tmp"}
    restarted = Spool(tmp_path / "spool")
    restarted.open()
    assert restarted.entries_sync() == []
    assert everything(tmp_path / "spool") == []


def test_spool_entry_committed_survives_a_restart(tmp_path: Path) -> None:
    source = tmp_path / "message.eml"
    source.write_bytes(BODY)
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = spool.prepare_sync(source, SENDER, ["carol@remote.test"])
    spool.commit_sync(entry.id)
    restarted = Spool(tmp_path / "spool")
    restarted.open()
    [found] = restarted.entries_sync()
    assert (found.id, [r.address for r in found.recipients]) == (entry.id, ["carol@remote.test"])
    assert restarted.message_path(entry.id).read_bytes() == BODY


def test_rollback_timeout_is_configuration_with_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "mailio.toml"
    path.write_text("[limits]\nrollback_timeout = 5\n")
    assert Config.from_toml(path).limits.rollback_timeout == 5
    assert Config().limits.rollback_timeout == 30.0
    path.write_text("[limits]\nrollback_timeout = 0\n")
    with pytest.raises(
        ConfigError, match=r"^\S+mailio\.toml: limits\.rollback_timeout = 0: must be a number "
    ):
        Config.from_toml(path)
