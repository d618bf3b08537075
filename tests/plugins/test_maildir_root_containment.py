"""Maildir paths: the second safety layer, root containment, on its own (#19, blind spot 6).

Two layers keep a recipient's mailbox under ``maildir.root``: the name check
(:func:`mailio_trio.plugins.maildir.unsafe_reason`, also used by
``rcpt/local`` at RCPT time) and, behind it, the check that the joined path
lies under the root (``Mailbox.directory``). With the first layer working,
no test can reach the second; here it is switched off (monkeypatch), so the
second must hold alone — in the function and end to end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config
from mailio_trio.config import MaildirConfig
from mailio_trio.plugins import maildir
from mailio_trio.plugins.maildir import Mailbox
from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 20  # seconds: an upper bound for anything to happen, never expected


@pytest.fixture
def no_name_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first layer off: every local part and domain is a "safe" path component."""
    monkeypatch.setattr(maildir, "unsafe_reason", lambda _text: None)
    assert Mailbox("..", "example.com").unsafe_reason() is None


@pytest.mark.usefixtures("no_name_check")
@pytest.mark.parametrize(
    ("local", "domain", "path"),
    [
        ("..", "example.com", "%d/%n"),  # the root itself
        ("bob", "..", "%d/%n"),  # beside the root
        ("../../etc", "example.com", "%d/%n"),  # far above it
        ("..", "example.com", "%n"),
        ("x/../../../y", "example.com", "%d/%n"),
    ],
)
def test_directory_outside_the_root_is_refused(
    tmp_path: Path, local: str, domain: str, path: str
) -> None:
    cfg = MaildirConfig(enabled=True, root=tmp_path / "mail", path=path)
    with pytest.raises(ValueError, match="would be outside"):
        Mailbox(local, domain).directory(cfg)


@pytest.mark.usefixtures("no_name_check")
def test_directory_inside_the_root_is_still_allowed(tmp_path: Path) -> None:
    cfg = MaildirConfig(enabled=True, root=tmp_path / "mail")
    # ".." that stays inside the root is not what the second layer is for.
    box = Mailbox("a/../b", "example.com").directory(cfg)
    assert box == tmp_path / "mail" / "example.com" / "b"


@pytest.mark.usefixtures("no_name_check")
async def test_escaping_recipient_gets_451_and_nothing_is_written(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    config = Config(
        hostname="mx.test", domains=["example.com"], maildir=MaildirConfig(enabled=True, root=root)
    )
    running = await start_capturing_server(nursery, config)
    with trio.fail_after(WAIT):
        async with running.open_raw() as conn:
            await conn.read_reply()
            await conn.command("EHLO client.test")
            await conn.command("MAIL FROM:<x@elsewhere.test>")
            # root/example.com/../../escaped is tmp_path/escaped: outside the root.
            rcpt = await conn.command('RCPT TO:<"../../escaped"@example.com>')
            assert (await conn.command("DATA")).code == 354
            reply = await conn.command(b"Subject: out\r\n\r\nclimb\r\n.")
    assert rcpt.code == 250  # the first layer is off: only the second stands
    assert (reply.code, reply.enhanced) == (451, "4.3.0")
    assert reply.text == maildir.STORE_FAILED
    assert not (tmp_path / "escaped").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # noqa: ASYNC240  # a small tmp_path
    assert running.messages == []  # the queue chain refused it as a whole
