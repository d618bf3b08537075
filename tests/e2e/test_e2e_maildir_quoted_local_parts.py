"""Every valid local part reaches a mailbox, under a reversible name inside the root (#13 item 17).

A quoted local part such as ``"john..doe"`` is valid RFC 5321 (§4.1.2) but
cannot be a directory name as it stands; ``mailbox_name`` escapes it, and
ordinary local parts keep the names their mailboxes already have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.config import MaildirConfig
from mailio_trio.plugins.maildir import Mailbox, local_part_of, mailbox_name
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 20  # seconds: an upper bound, never expected

ORDINARY = ["bob", "first.last", "jürgen", "a+tag", "o'brien", "x=y", "a-b_c", "a."]
QUOTED = ["john..doe", ".hidden", ".Sent", "../../x", "x/../../y", "a/b", "a\\b", "%2e%2e", "%"]


@pytest.mark.parametrize("local", ORDINARY)
def test_ordinary_local_parts_keep_their_directory_names(local: str) -> None:
    assert mailbox_name(local) == local
    assert local_part_of(local) == local


@pytest.mark.parametrize("local", QUOTED)
def test_other_local_parts_are_escaped_reversibly(local: str) -> None:
    name = mailbox_name(local)
    assert local_part_of(name) == local
    assert "/" not in name
    assert "\\" not in name
    assert "." not in name  # so no "..", no leading dot (a Maildir++ folder)
    assert "%" in name  # which no ordinary name has: no two local parts share a mailbox
    assert Mailbox(local, "example.org").unsafe_reason() is None


def test_names_never_collide() -> None:
    names = [mailbox_name(local) for local in ORDINARY + QUOTED]
    assert len(set(names)) == len(names)
    assert mailbox_name("john..doe") == "john%2E%2Edoe"
    assert mailbox_name("%2e%2e") == "%252e%252e"


def test_what_no_escaping_mends_is_still_refused() -> None:
    for local in ("", "a\x00b", "a\x1bb"):
        assert Mailbox(local, "example.org").unsafe_reason() is not None
    assert Mailbox("bob", "..").unsafe_reason() is not None


@pytest.mark.parametrize("local", QUOTED)
async def test_quoted_local_part_is_delivered_inside_the_root(tmp_path: Path, local: str) -> None:
    root = tmp_path / "mail"
    config = Config(
        hostname="mx.test",
        domains=["example.org"],
        maildir=MaildirConfig(enabled=True, root=root),
    )
    quoted = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            server = Server(config)
            bound: list[tuple[str, int]] = await nursery.start(server.serve, "127.0.0.1", 0)
            async with open_raw_connection("127.0.0.1", bound[0][1]) as conn:
                await conn.read_reply()
                await conn.command("EHLO c.test")
                await conn.command("MAIL FROM:<x@elsewhere.test>")
                rcpt = await conn.command(f"RCPT TO:<{quoted}@example.org>")
                assert (rcpt.code, rcpt.enhanced) == (250, "2.1.5")
                assert (await conn.command("DATA")).code == 354
                done = await conn.command("Subject: hi\r\n\r\nhi\r\n.")
                assert done.code == 250
            nursery.cancel_scope.cancel()
    _check_delivered(tmp_path, local)


def _check_delivered(tmp_path: Path, local: str) -> None:
    root = tmp_path / "mail"
    [domain] = root.iterdir()
    [mailbox] = domain.iterdir()
    folded = local.lower()  # maildir.fold_local_part, the default
    assert mailbox.name == mailbox_name(folded)
    assert local_part_of(mailbox.name) == folded
    assert len(list((mailbox / "new").iterdir())) == 1
    # Nothing anywhere else: every file is under that one mailbox.
    assert all(p.is_relative_to(mailbox) for p in tmp_path.rglob("*") if p.is_file())
