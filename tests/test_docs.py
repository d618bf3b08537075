"""Every example in README.md and docs/*.md runs, parses or loads: a stale example is a bug.

Sybil lexes the Markdown (fenced blocks, also inside lists and quotes, and
directives in HTML comments) and runs Python blocks with their page's line
numbers in tracebacks; this module decides what each block must do:

- ``python``: executed in a fresh namespace, in a temporary working directory.
- ``toml``: loaded with ``Config.from_mapping(tomllib.loads(...))``.
- ``console``: every ``mailio-trio ...`` command line is accepted by the CLI's
  argument parser (a renamed flag fails here). The quick start itself runs for
  real in tests/e2e/test_readme_quickstart.py.

Directives, written just before a block (invisible in the rendered page, so
the reason is where a reader of the Markdown sees it):

- ``<!-- skip: next "why" -->``: the block is not run; pytest -ra shows why.
- ``<!-- continue: previous -->``: this Python block runs in the namespace of
  the Python block before it (which then runs first, in the same item).
- ``<!-- fragment: next "why" -->``: a TOML block that is only parsed, not
  loaded (placeholder paths or modules); a Python block that is only compiled
  (top-level ``await``: an excerpt of a Trio task), not run.

New pages under docs/ are picked up by the glob. docs/examples/sample_app is
Python files, not Markdown: tests/testing/test_sample_app.py runs it.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
from sybil import Document, Region
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown.lexers import (
    DirectiveInHTMLCommentLexer,
    FencedCodeBlockLexer,
    RawFencedCodeBlockLexer,
)

from mailio_trio import Config
from mailio_trio.cli._main import build_parser

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from sybil import Example

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "toml", "console")
DIRECTIVES = {"skip": "next", "continue": "previous", "fragment": "next"}


def shown(page: Path) -> str:
    """The page as a reader names it: ``docs/relay.md``."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def blocks(document: Document) -> Iterable[Region]:
    lexer = FencedCodeBlockLexer("|".join(LANGUAGES), {"language": "language", "source": "source"})
    for region in lexer(document):
        region.parsed = (region.lexemes["language"], region.lexemes["source"])
        yield region


def directives(document: Document) -> Iterable[Region]:
    lexer = DirectiveInHTMLCommentLexer("|".join(DIRECTIVES), arguments=".*?")
    for region in lexer(document):
        region.parsed = ("directive", (region.lexemes["directive"], region.lexemes["arguments"]))
        yield region


def parse(page: Path) -> Document:
    return Document.parse(str(page), blocks, directives)


@attrs.frozen
class Item:
    """One test: a block, or a Python block and the ones continuing it."""

    page: Path
    language: str
    lines: tuple[int, ...]  # the blocks' first lines, in the page's order
    skip: str | None = None
    fragment: str | None = None
    error: str | None = None  # a malformed directive, reported by the test

    @property
    def id(self) -> str:
        return f"{shown(self.page)}:{self.lines[-1]}"


def reason(arguments: str) -> str | None:
    """The quoted reason after ``next``; ``None`` when there is none."""
    rest = arguments.split(None, 1)[1:] or [""]
    try:
        value = ast.literal_eval(rest[0].strip())
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) and value.strip() else None


def items(page: Path) -> Iterator[Item]:
    pending: dict[str, str] = {}
    previous: Item | None = None
    for example in parse(page):
        kind, value = example.parsed
        where = f"{shown(page)}:{example.line}"
        if kind == "directive":
            name, arguments = value
            if arguments.split()[:1] != [DIRECTIVES[name]]:
                known = f"{name}: {DIRECTIVES[name]}"
                yield Item(page, "", (example.line,), error=f"{where}: only {known} is known")
            elif name != "continue" and reason(arguments) is None:
                yield Item(page, "", (example.line,), error=f'{where}: {name} needs a "reason"')
            else:
                pending[name] = reason(arguments) or ""
            continue
        language = kind
        if "continue" in pending:
            del pending["continue"]
            if language != "python" or previous is None or previous.language != "python":
                yield Item(page, "", (example.line,), error=f"{where}: continues no python block")
                continue
            previous = attrs.evolve(previous, lines=(*previous.lines, example.line))
        else:
            if previous is not None:
                yield previous
            previous = Item(page, language, (example.line,))
        if "skip" in pending:
            previous = attrs.evolve(previous, skip=pending.pop("skip"))
        if "fragment" in pending:
            fragment = pending.pop("fragment")
            previous = attrs.evolve(previous, fragment=fragment)
    if previous is not None:
        yield previous
    if pending:
        yield Item(page, "", (0,), error=f"{shown(page)}: {sorted(pending)} before no block")


ITEMS = [item for page in PAGES for item in items(page)]


def examples(item: Item) -> list[Example]:
    """The item's examples from a fresh parse, sharing one fresh namespace."""
    by_line = {example.line: example for example in parse(item.page)}
    return [by_line[line] for line in item.lines]


def run_python(example: Example, fragment: str | None) -> None:
    _, example.parsed = example.parsed  # the source, which Sybil's evaluator executes
    if fragment is None:
        PythonEvaluator()(example)
    else:
        source = "\n" * (example.line + example.parsed.line_offset) + str(example.parsed)
        compile(source, example.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def check_toml(example: Example, fragment: str | None) -> None:
    _, source = example.parsed
    table = tomllib.loads(str(source))
    if fragment is None:
        Config.from_mapping(table)


def commands(source: str) -> Iterator[str]:
    """The ``mailio-trio`` command lines of a console block (without ``$ `` or output)."""
    lines = source.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        elif not prompted or line.startswith("$ "):
            joined.append(line.removeprefix("$ "))
    for line in joined:
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", "||", ";", "|"):
                if command[:3] == ["python", "-m", "mailio_trio"]:
                    command[:3] = ["mailio-trio"]
                if command[:1] == ["mailio-trio"]:
                    yield shlex.join(command)
                command = []
            elif command or not re.fullmatch(r"[A-Z_]+=.*", word):  # MAILIO_PASSWORD=x cmd
                command.append(word)


def check_console(example: Example) -> None:
    _, source = example.parsed
    for command in commands(str(source)):
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit as exc:
            pytest.fail(f"{example.path}:{example.line}: {command!r}: {stderr.getvalue()}{exc}")


@pytest.mark.parametrize("item", ITEMS, ids=[item.id for item in ITEMS])
def test_example(item: Item, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if item.error:
        pytest.fail(item.error)
    if item.skip is not None:
        pytest.skip(f"{item.id}: {item.skip}")
    monkeypatch.chdir(tmp_path)  # what an example writes (an archive/, a mail/) stays here
    for example in examples(item):
        if item.language == "python":
            run_python(example, item.fragment)
        elif item.language == "toml":
            check_toml(example, item.fragment)
        else:
            check_console(example)


def test_every_page_is_collected() -> None:
    pages = {item.page.name for item in ITEMS}
    assert {"README.md", "quickstart.md", "handlers.md", "configuration.md"} <= pages


def test_command_lines_are_found() -> None:
    source = (
        'mailio-trio send --to a@b \\\n    --subject "Hi there"  # x\n'
        "python -m pip install . && mailio-trio serve\n"
    )
    assert list(commands(source)) == [
        "mailio-trio send --to a@b --subject 'Hi there'",
        "mailio-trio serve",
    ]
    assert list(commands("$ mailio-trio serve\nmailio-trio: listening on ...\n")) == [
        "mailio-trio serve"
    ]
    assert list(commands("MAILIO_PASSWORD=x python -m mailio_trio send --to a@b | cat")) == [
        "mailio-trio send --to a@b"
    ]


def test_directives_attach_to_the_next_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- continue: previous -->\n```python\nassert x\n```\n\n"
        '<!-- skip: next "needs a network" -->\n```console\nmailio-trio serve\n```\n\n'
        '<!-- fragment: next "placeholder paths" -->\n```toml\n[maildir]\n```\n'
    )
    python, console, toml = items(page)
    assert (python.language, python.lines) == ("python", (1, 6))
    assert (console.language, console.skip) == ("console", "needs a network")
    assert (toml.language, toml.fragment) == ("toml", "placeholder paths")
    assert not any(item.error for item in (python, console, toml))


def test_malformed_directives_fail(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- skip: start -->\n```python\npass\n```\n\n"
        "<!-- skip: next -->\n```python\npass\n```\n\n"
        "<!-- continue: previous -->\n```toml\n```\n\n"
        '<!-- fragment: next "dangling" -->\n'
    )
    errors = [item.error for item in items(page) if item.error]
    assert errors == [
        "page.md:1: only skip: next is known",
        'page.md:6: skip needs a "reason"',
        "page.md:12: continues no python block",
        "page.md: ['fragment'] before no block",
    ]


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_commands_are_in_console_blocks(page: Path) -> None:
    """A command shown in an untagged, text or shell block would escape the parser check."""
    lexer = RawFencedCodeBlockLexer(re.compile(r"(?P<info>[^\n]*)$\n", re.M))
    for region in lexer(Document(page.read_text(), str(page))):
        if region.lexemes["info"].strip() not in ("", "text", "bash", "sh", "shell"):
            continue
        for line in str(region.lexemes["source"]).splitlines():
            assert not re.match(r"(\$ )?mailio-trio ", line), (
                f"{page.name}: {line!r}: use ```console"
            )
