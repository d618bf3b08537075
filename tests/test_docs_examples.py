"""The handler examples in the docs run as written (a stale example is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize("page", ["handlers.md"])
def test_handler_examples_register_cleanly(page: str) -> None:
    blocks = python_blocks(page)
    assert blocks
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), namespace)  # each block builds on the last
    server = namespace["server"]
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
