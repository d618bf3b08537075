"""The handler examples in the docs run as written (a stale example is a bug)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from mailio_trio import Server
from mailio_trio.client import send

if TYPE_CHECKING:
    import pytest

DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


def run_handlers_page() -> dict[str, object]:
    namespace: dict[str, object] = {}
    for block in python_blocks("handlers.md"):
        exec(compile(block, "docs/handlers.md", "exec"), namespace)  # each builds on the last
    return namespace


def test_handler_examples_register_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the archive example makes its folders here
    server = run_handlers_page()["server"]
    names = [h.name for h in server.chain.handlers("rcpt")]  # type: ignore[attr-defined]
    assert names[0] == "core"
    assert names.index("log_recipient") < names.index("only_example")


def test_authentication_example_orders_after_the_verification() -> None:
    [block] = python_blocks("authentication.md")
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/authentication.md", "exec"), namespace)
    server = namespace["server"]
    names = [h.name for h in server.chain.handlers("queue")]  # type: ignore[attr-defined]
    assert "only_authenticated" in names


async def test_archive_example_keeps_what_it_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = run_handlers_page()["server"]
    assert isinstance(server, Server)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            [(host, port), *_] = await nursery.start(server.serve, "127.0.0.1", 0)
            result = await send(
                host,
                port,
                "alice@example.org",
                ["bob@example.com"],
                b"Subject: archived\r\n\r\nKeep me.\r\n",
                ehlo_name="client.example.org",
            )
            assert result.data_reply is not None
            assert result.data_reply.code == 250
            await server.aclose()
    [kept] = (tmp_path / "archive" / "new").iterdir()
    assert b"Keep me." in kept.read_bytes()
    assert not list((tmp_path / "archive" / "tmp").iterdir())
