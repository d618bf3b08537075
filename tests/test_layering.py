"""The import direction of the layers (docs/architecture.md), kept by a test.

protocol ← config ← {client, dns, tls, message, networks, abuse} ← mailauth ← chain
← {relay, plugins} ← server ← {cli, testing, inbox, pytest_plugin}

A module may import, at run time, only its own layer and the ones below it.
An import under ``if TYPE_CHECKING:`` runs never, so it may point up — but each
such upward import is listed in ``TYPE_ONLY_UPWARD`` below, so a new one is a
decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mailio_trio"

# The layer of each top-level module or package of mailio_trio, lowest first.
LAYERS: dict[str, int] = {
    "protocol": 0,
    "passwords": 0,  # stdlib only: the [auth] section checks hash formats with it
    "_durable": 0,
    "_shared": 2,
    "_maillog": 0,  # stdlib only: the mail log's line format, for the server and the relay
    "config": 1,
    "client": 2,
    "dns": 2,
    "tls": 2,
    "message": 2,
    "networks": 2,
    "abuse": 2,
    "mailauth": 3,
    "chain": 4,
    "_transaction": 4,
    "_handler_log": 4,
    "_handler_session": 4,
    "relay": 5,
    "plugins": 5,
    "server": 6,
    "cli": 7,
    "testing": 7,
    "inbox": 7,  # the capture store and web inbox: a queue handler, like testing/
    "pytest_plugin": 7,
    "__init__": 7,
    "__main__": 7,
}

# (importing module, imported module) pairs that point upward under TYPE_CHECKING only.
TYPE_ONLY_UPWARD: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "mailio_trio":
        return None
    return LAYERS["__init__" if len(parts) == 1 else parts[1]]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """``(module, type_only)`` for every ``mailio_trio`` import, function-local ones included."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit(stmt, True)
            for stmt in node.orelse:
                visit(stmt, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from mailio_trio.server import workers` imports the submodule.
                submodule = f"{node.module}.{alias.name}"
                found.append((submodule if _exists(submodule) else node.module, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return [(m, t) for m, t in found if m.split(".")[0] == "mailio_trio" and _exists(m)]


def _exists(module: str) -> bool:
    path = SRC.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = sorted(SRC.rglob("*.py"))


def upward_imports(path: Path) -> tuple[list[str], list[str]]:
    """The upward imports of one file: (run time, type only)."""
    name = _module_name(path)
    own = _layer(name)
    assert own is not None
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    runtime: list[str] = []
    type_only: list[str] = []
    for target, only_types in imports(tree):
        layer = _layer(target)
        if layer is not None and layer > own:
            (type_only if only_types else runtime).append(target)
    return runtime, type_only


def test_every_module_has_a_layer() -> None:
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_import_at_run_time(path: Path) -> None:
    runtime, _ = upward_imports(path)
    assert runtime == [], f"{_module_name(path)} imports a higher layer: {runtime}"


def test_type_only_upward_imports_are_the_listed_ones() -> None:
    seen = {(_module_name(path), target) for path in MODULES for target in upward_imports(path)[1]}
    assert seen == TYPE_ONLY_UPWARD


def test_the_check_sees_an_upward_import() -> None:
    """The test itself can fail: config importing tls.py is caught."""
    tree = ast.parse("from mailio_trio.tls import build_server_context\n")
    [(target, type_only)] = imports(tree)
    assert (target, type_only) == ("mailio_trio.tls", False)
    assert _layer(target) > LAYERS["config"]  # type: ignore[operator]  # a mailio_trio module
