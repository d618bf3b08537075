"""The spool keeps DSN parameters (RFC 3461) with an entry, and reads entries without them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mailio_trio.protocol.dsn import DsnRcpt, NotifyOn, Orcpt, Ret
from mailio_trio.relay.spool import Entry, RecipientState, Spool

if TYPE_CHECKING:
    from pathlib import Path


def test_dsn_parameters_survive_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.open()
    source = tmp_path / "m.eml"
    source.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    dsn = {
        "b@remote.test": DsnRcpt(
            frozenset({NotifyOn.SUCCESS, NotifyOn.FAILURE}), Orcpt("rfc822", "B+x@remote.test")
        ),
        "c@remote.test": DsnRcpt(frozenset({NotifyOn.NEVER})),
    }
    entry = spool.prepare_sync(
        source,
        "a@example.com",
        ["b@remote.test", "c@remote.test", "d@remote.test"],
        dsn=dsn,
        ret=Ret.HDRS,
        envid="QQ+1",
    )
    spool.commit_sync(entry.id)
    loaded = spool.load_sync(entry.id)
    assert loaded is not None
    assert (loaded.ret, loaded.envid) == (Ret.HDRS, "QQ+1")
    b, c, d = loaded.recipients
    assert b.notify == frozenset({NotifyOn.SUCCESS, NotifyOn.FAILURE})
    assert b.orcpt == Orcpt("rfc822", "B+x@remote.test")
    assert c.notify == frozenset({NotifyOn.NEVER})
    assert (d.notify, d.orcpt, d.relayed) == (None, None, False)
    assert not c.wants(NotifyOn.FAILURE)
    assert d.wants(NotifyOn.FAILURE)
    assert d.wants(NotifyOn.DELAY)
    assert not d.wants(NotifyOn.SUCCESS)


def test_an_entry_written_before_dsn_still_loads() -> None:
    old = {
        "version": 1,
        "id": "abc-1",
        "sender": "a@example.com",
        "recipients": [{"address": "b@remote.test", "status": "pending", "error": None}],
        "created": 1.0,
        "next_attempt": 2.0,
        "attempts": 0,
        "smtputf8": False,
        "body_8bit": None,
        "bounced": False,
        "delay_warned": False,
    }
    entry = Entry.from_json(json.loads(json.dumps(old)))
    assert (entry.ret, entry.envid) == (None, None)
    [state] = entry.recipients
    assert (state.notify, state.orcpt, state.relayed) == (None, None, False)
    # And an entry without DSN parameters is written as before: no new keys.
    assert entry.to_json() == old


def test_relayed_is_kept() -> None:
    entry = Entry(
        id="abc-2",
        sender="a@example.com",
        recipients=[RecipientState("b@remote.test", relayed=True)],
        created=1.0,
        next_attempt=1.0,
    )
    assert Entry.from_json(entry.to_json()).recipients[0].relayed
