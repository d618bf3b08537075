"""The real ``mailio-trio serve`` as a subprocess, for tests that need the whole program.

Shared by the CLI, RSS and other process-level tests (``pythonpath = ["tests"]``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LISTENING = re.compile(r"^mailio-trio: listening on 127\.0\.0\.1:(\d+)(?: \(\d+ workers\))?; ")


@contextlib.contextmanager
def serving(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run ``serve --listen 127.0.0.1:0 ARGS`` in ``cwd``; yields the process and its port.

    The port comes from the "listening on" line, so nothing sleeps. Its own
    process group, killed on exit, so ``--workers`` children never outlive a test.
    """
    with subprocess.Popen(
        [sys.executable, "-m", "mailio_trio", "serve", "--listen", "127.0.0.1:0", *args],
        cwd=cwd,  # serve creates ./mail and ./spool
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            match = LISTENING.match(line)
            # Not proc.stderr.read(): a live server (or its workers) never closes it.
            assert match, (line, proc.poll())
            yield proc, int(match.group(1))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
