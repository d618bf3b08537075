"""``Spool.prepare(headers=...)``: header fields written in front of the message, durably."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.relay.spool import Spool

if TYPE_CHECKING:
    from pathlib import Path


async def test_prepared_headers_precede_the_copied_message(tmp_path: Path) -> None:
    source = tmp_path / "in.eml"
    source.write_bytes(b"From: a@example.com\r\n\r\nbody\r\n")
    spool = Spool(tmp_path / "spool")
    spool.open()
    entry = await spool.prepare(source, "a@example.com", ["b@remote.test"], headers=b"X-A: 1\r\n")
    await spool.commit(entry.id)
    assert spool.message_path(entry.id).read_bytes() == (
        b"X-A: 1\r\nFrom: a@example.com\r\n\r\nbody\r\n"
    )
    plain = await spool.prepare(source, "a@example.com", ["b@remote.test"])
    await spool.commit(plain.id)
    assert spool.message_path(plain.id).read_bytes() == source.read_bytes()
