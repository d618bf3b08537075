"""``Config.spool_dir`` is made ready when the server is built, or refused in one line."""

from __future__ import annotations

import os
import smtplib
from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.config import ConfigError

if TYPE_CHECKING:
    from pathlib import Path


def test_a_missing_spool_dir_is_created_at_construction(tmp_path: Path) -> None:
    spool = tmp_path / "not" / "yet"
    Server(Config(hostname="mx.test", spool_dir=spool))
    assert spool.is_dir()


def test_a_spool_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as caught:
        Server(Config(hostname="mx.test", spool_dir=tmp_path / "file" / "spool"))
    message = str(caught.value)
    assert message.startswith('server.spool_dir = "'), message
    assert "cannot create the directory" in message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_a_read_only_spool_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(ConfigError, match=r"server\.spool_dir = .*: the directory is not writable"):
        Server(Config(hostname="mx.test", spool_dir=tmp_path / "ro"))


async def test_mail_is_accepted_with_a_spool_dir_that_did_not_exist(tmp_path: Path) -> None:
    server = Server(Config(hostname="mx.test", spool_dir=tmp_path / "spool"))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            [(host, port), *_] = await nursery.start(server.serve, "127.0.0.1", 0)

            def send() -> dict[str, tuple[int, bytes]]:
                with smtplib.SMTP(host, port) as client:
                    return client.sendmail("a@mx.test", ["b@mx.test"], b"Subject: x\r\n\r\nhi\r\n")

            assert await trio.to_thread.run_sync(send) == {}
            await server.aclose()
