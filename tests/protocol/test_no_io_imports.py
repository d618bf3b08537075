"""protocol/ stays sans-I/O: no trio, sockets, TLS or OS access (STYLE.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mailio_trio.protocol

FORBIDDEN = {"trio", "socket", "ssl", "os", "asyncio", "selectors", "time"}
PROTOCOL_DIR = Path(mailio_trio.protocol.__file__).parent
MODULES = sorted(PROTOCOL_DIR.glob("*.py"))


def imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            roots.add("__import__")
    return roots


def test_protocol_modules_found() -> None:
    names = {path.stem for path in MODULES}
    assert {"__init__", "lines", "commands", "data", "replies", "errors"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert imported_roots(tree) & (FORBIDDEN | {"__import__"}) == set()


def test_public_names() -> None:
    assert sorted(mailio_trio.protocol.__all__) == [
        "Address",
        "BareLineEndings",
        "Bdat",
        "BdatSyntaxError",
        "ChunkReader",
        "ClientProtocolError",
        "Command",
        "ConnectionLost",
        "DataReader",
        "DotStuffer",
        "LineSplitter",
        "MailFrom",
        "Need",
        "OverlongLine",
        "ProtocolUsageError",
        "RcptTo",
        "Reply",
        "ReplyReader",
        "ServerProtocolError",
        "Verb",
        "crlf_line_endings",
        "data_problem",
        "dot_stuff",
        "mail_parameters",
        "parse_bdat",
        "parse_command",
        "parse_helo_name",
        "parse_mail_from",
        "parse_rcpt_to",
    ]
    for name in mailio_trio.protocol.__all__:
        assert getattr(mailio_trio.protocol, name) is not None
