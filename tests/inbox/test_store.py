"""The capture store: the cap drops the oldest, a file survives a restart, search, events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from mailio_trio.inbox import NewMessage, open_inbox
from mailio_trio.inbox._parse import parse, part_by_id
from mailio_trio.inbox._store import SqliteStore

if TYPE_CHECKING:
    from pathlib import Path


def _raw(subject: str, body: str = "Hello.", sender: str = "dev@app.example") -> bytes:
    return (
        f"From: Dev Person <{sender}>\r\nTo: Alice <alice@example.com>\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@app.example>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def _new(subject: str, body: str = "Hello.", **kwargs: object) -> NewMessage:
    return NewMessage(
        raw=_raw(subject, body),
        sender="dev@app.example",
        recipients=("alice@example.com",),
        client_address="127.0.0.1",
        helo="client.test",
        **kwargs,  # type: ignore[arg-type]  # the tests pass NewMessage's own fields
    )


def _subjects(store: SqliteStore, query: str = "") -> list[str]:
    messages, _ = store.page(0, 100, query)
    return [m.summary["Subject"] for m in messages]


def test_count_cap_drops_the_oldest() -> None:
    store = SqliteStore(":memory:", max_messages=3)
    ids = [store.add(_new(f"m{i}"))[0].id for i in range(5)]
    assert _subjects(store) == ["m4", "m3", "m2"]  # newest first
    assert store.get(ids[0]) is None
    assert store.get(ids[1]) is None
    assert store.counts()[0] == 3


def test_the_cap_reports_what_it_dropped() -> None:
    store = SqliteStore(":memory:", max_messages=2)
    first = store.add(_new("a"))[0]
    store.add(_new("b"))
    _, dropped = store.add(_new("c"))
    assert dropped == [first.id]


def test_size_cap_drops_the_oldest_until_the_total_fits() -> None:
    one = len(_raw("m0", "x" * 1000))
    store = SqliteStore(":memory:", max_bytes=one * 2 + 10)
    for i in range(4):
        store.add(_new(f"m{i}", "x" * 1000))
    assert _subjects(store) == ["m3", "m2"]
    assert store.counts()[2] <= one * 2 + 10


def test_a_message_bigger_than_the_cap_is_kept_alone() -> None:
    store = SqliteStore(":memory:", max_bytes=100)
    store.add(_new("small"))
    store.add(_new("big", "x" * 500))
    assert _subjects(store) == ["big"]


def test_a_file_store_keeps_messages_across_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "capture.sqlite")
    store = SqliteStore(path)
    facts: dict[str, Any] = {"auth_user": "alice", "tls": True, "auth_results": "mx.test; spf=pass"}
    stored, _ = store.add(_new("kept", **facts))
    store.close()

    again = SqliteStore(path)
    found = again.get(stored.id)
    assert found is not None
    assert found.raw == _raw("kept")
    assert (found.sender, found.recipients) == ("dev@app.example", ("alice@example.com",))
    assert (found.client_address, found.helo, found.tls) == ("127.0.0.1", "client.test", True)
    assert (found.auth_user, found.auth_results) == ("alice", "mx.test; spf=pass")
    assert found.created == stored.created
    assert found.size == len(_raw("kept"))
    # The cap still counts what was there before the restart.
    again.close()
    capped = SqliteStore(path, max_messages=1)
    capped.add(_new("newer"))
    assert _subjects(capped) == ["newer"]
    capped.close()


def test_ids_are_stable_and_distinct() -> None:
    store = SqliteStore(":memory:")
    a = store.add(_new("a"))[0].id
    b = store.add(_new("b"))[0].id
    assert a != b
    assert len(a) == 22
    assert store.page(0, 10)[0][1].id == a  # the same ID on every read


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Invoice 2", "Password reset", "Welcome aboard"]),
        ("subject:password", ["Password reset"]),
        ("from:bob@", ["Invoice 2"]),
        ("to:carol", ["Welcome aboard"]),
        ("kiwi", ["Welcome aboard"]),  # free text: the body
        ("KIWI subject:welcome", ["Welcome aboard"]),
        ("kiwi subject:invoice", []),  # every term must match
        ('"reset link"', ["Password reset"]),
        ("100%", []),  # LIKE wildcards are literal
        ("from:", ["Invoice 2", "Password reset", "Welcome aboard"]),
    ],
)
def test_search(query: str, expected: list[str]) -> None:
    store = SqliteStore(":memory:")
    for sender, to, subject, body in [
        ("alice@app.example", "carol@example.com", "Welcome aboard", "Have a kiwi."),
        ("alice@app.example", "dave@example.com", "Password reset", "Use the reset link."),
        ("bob@app.example", "dave@example.com", "Invoice 2", "Pay up."),
    ]:
        raw = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
        store.add(NewMessage(raw=raw, sender=sender, recipients=(to,), client_address="127.0.0.1"))
    assert _subjects(store, query) == expected


def test_delete_some_and_all() -> None:
    store = SqliteStore(":memory:")
    a, b, c = (store.add(_new(s))[0].id for s in "abc")
    assert store.delete([a, "nope"]) == [a]
    assert _subjects(store) == ["c", "b"]
    assert sorted(store.delete()) == sorted([b, c])
    assert store.counts() == (0, 0, 0)


def test_viewing_marks_read() -> None:
    store = SqliteStore(":memory:")
    a = store.add(_new("a"))[0].id
    assert store.counts()[1] == 1
    found = store.get(a, mark_read=True)
    assert found is not None
    assert found.read
    assert store.counts()[1] == 0


def test_parse_reads_a_multipart_message() -> None:
    raw = (
        b"From: App <app@example.com>\r\nTo: a@example.com, B <b@example.com>\r\n"
        b"Subject: =?utf-8?q?Caf=C3=A9?=\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="X"\r\n\r\n'
        b'--X\r\nContent-Type: multipart/alternative; boundary="Y"\r\n\r\n'
        b"--Y\r\nContent-Type: text/plain\r\n\r\nplain body\r\n"
        b"--Y\r\nContent-Type: text/html\r\n\r\n<p>html <b>body</b></p>\r\n--Y--\r\n"
        b"--X\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="r.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--X--\r\n"
    )
    parsed = parse(raw)
    assert parsed.subject == "Café"
    assert parsed.from_ == {"Name": "App", "Address": "app@example.com"}
    assert [a["Address"] for a in parsed.to] == ["a@example.com", "b@example.com"]
    assert parsed.text.strip() == "plain body"
    assert "<b>body</b>" in parsed.html
    assert parsed.attachments == [
        {
            "PartID": "2",
            "FileName": "r.pdf",
            "ContentType": "application/pdf",
            "ContentID": "",
            "Size": 9,
        }
    ]
    assert part_by_id(raw, "2") == (b"%PDF-1.4\n", "application/pdf", "r.pdf")
    assert part_by_id(raw, "1.2") is not None
    assert part_by_id(raw, "9") is None


def test_parse_never_raises_on_garbage() -> None:
    parsed = parse(b"\x00\xff: \r\nFrom: <<<\r\nContent-Type: multipart/mixed\r\n\r\n\xff\xfe")
    assert isinstance(parsed.snippet, str)


async def test_inbox_wakes_waiters_and_subscribers() -> None:
    inbox = open_inbox(":memory:", max_messages=2)
    try:
        with trio.fail_after(10), inbox.subscribe() as events:
            async with trio.open_nursery() as nursery:
                reached: list[int] = []

                async def wait() -> None:
                    reached.append(await inbox.wait_for_count(2))

                nursery.start_soon(wait)
                first = await inbox.add(_new("one"))
                await inbox.add(_new("two"))
            assert reached == [2]
            await inbox.add(_new("three"))  # the cap drops "one"
            kinds = [(await events.receive()) for _ in range(4)]
            assert [e.kind for e in kinds] == ["new", "new", "delete", "new"]
            assert kinds[2].ids == (first.id,)
            await inbox.delete()
            last = await events.receive()
            assert (last.kind, last.ids) == ("delete", None)
    finally:
        inbox.close()


def test_the_snippet_of_an_html_only_message_is_its_text() -> None:
    raw = (
        b"Subject: s\r\nContent-Type: text/html\r\n\r\n"
        b"<style>p {color: red}</style><p>Hello &amp; <b>welcome</b></p>\r\n"
    )
    assert parse(raw).snippet == "Hello & welcome"
