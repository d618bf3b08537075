"""The fuzz targets (fuzz/) replayed without atheris: their seeds and every past finding.

A finding is kept as ``fuzz/regressions/<target>-<what>``; its fix has a
plain test too (tests/protocol/test_fuzz_findings.py). Replaying here keeps
the harnesses themselves from rotting while nobody fuzzes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py"))
REGRESSIONS = sorted((FUZZ / "regressions").glob("*"))


def target(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(FUZZ))
    return importlib.import_module(f"fuzz_{name}")


def test_every_parser_has_a_target() -> None:
    assert TARGETS == ["bdat", "commands", "data", "dkim", "dsn", "proxy", "replies", "spf"]


@pytest.mark.parametrize("name", TARGETS)
def test_seeds_keep_the_contract(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = target(name, monkeypatch)
    for seed in module.SEEDS:
        module.test_one_input(seed)
        # Every cut: octet 0 picks the reads in most targets.
        for spec in range(8):
            module.test_one_input(bytes([spec]) + seed[1:])


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_past_findings_keep_the_contract(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = target(path.name.split("-", 1)[0], monkeypatch)
    module.test_one_input(path.read_bytes())


def test_chunks_cover_the_payload_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    common = target("data", monkeypatch).chunks
    payload = bytes(range(200))
    for spec in range(256):
        reads = common(spec, payload)
        assert b"".join(reads) == payload
        assert all(reads)
    assert common(1, b"") == []
