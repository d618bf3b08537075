"""Run fuzz targets: ``python fuzz/run.py TARGET|all SECONDS [libFuzzer flags...]``.

Each target runs in its own process for SECONDS, from its corpus in
``fuzz/corpus/<target>/`` (seeded from the target's ``SEEDS``; kept between
runs, not committed). A contract failure or a hang (libFuzzer's ``-timeout``)
leaves the input in ``fuzz/crashes/<target>-crash-*`` / ``-timeout-*``; the log
is ``fuzz/logs/<target>.log``. Prints one line per target: executions, new
corpus inputs, findings; exits 1 if any target found something.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))
# One input may take this long before libFuzzer calls it a hang.
TIMEOUT_SECONDS = 10
# A leak or a blow-up, not a parser's working memory.
RSS_LIMIT_MB = 2048


def _seed(target: str, corpus: Path) -> None:
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(f"fuzz_{target}")
    for seed in module.SEEDS:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def run(target: str, seconds: int, extra: list[str]) -> tuple[str, bool]:
    """Fuzz one target; return its summary line and whether it found something."""
    corpus, crashes, logs = HERE / "corpus" / target, HERE / "crashes", HERE / "logs"
    for folder in (corpus, crashes, logs):
        folder.mkdir(parents=True, exist_ok=True)
    _seed(target, corpus)
    before = set(crashes.glob(f"{target}-*"))
    log = logs / f"{target}.log"
    with log.open("wb") as out:
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / f"fuzz_{target}.py"),
                str(corpus),
                f"-max_total_time={seconds}",
                f"-timeout={TIMEOUT_SECONDS}",
                f"-rss_limit_mb={RSS_LIMIT_MB}",
                f"-artifact_prefix={crashes}/{target}-",
                "-print_final_stats=1",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    text = log.read_text("utf-8", "replace")
    runs = re.findall(r"stat::number_of_executed_units:\s+(\d+)", text)
    new = re.findall(r"stat::new_units_added:\s+(\d+)", text)
    found = sorted(set(crashes.glob(f"{target}-*")) - before)
    summary = (
        f"{target}: {runs[-1] if runs else '?'} executions in {seconds} s, "
        f"{new[-1] if new else '?'} new corpus inputs, exit {proc.returncode}, "
        f"findings: {', '.join(p.name for p in found) or 'none'}"
    )
    return summary, bool(found) or proc.returncode != 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or (argv[0] != "all" and argv[0] not in TARGETS):
        print(f"usage: run.py TARGET|all SECONDS [libFuzzer flags]; targets: {', '.join(TARGETS)}")
        return 2
    targets = TARGETS if argv[0] == "all" else [argv[0]]
    failed = False
    for target in targets:
        summary, bad = run(target, int(argv[1]), argv[2:])
        print(summary, flush=True)
        failed |= bad
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
