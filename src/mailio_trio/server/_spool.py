"""Where a DATA (or BDAT) body goes while the ``queue`` handlers run: a temporary file.

Durability is not this module's job: queue handlers that keep the message
(maildir, relay spool) write and fsync their own copies before ``250``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["NullSpool", "Spool"]


class Spool:
    """A DATA body being written to disk; blocking writes of large blocks to the page cache."""

    def __init__(self, directory: Path | None) -> None:
        fd, name = tempfile.mkstemp(prefix="mailio-", suffix=".eml", dir=directory)
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=256 * 1024)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class NullSpool:
    """The discard mode's spool: the body is read and dropped (like aiosmtpd's Sink)."""

    # Queue handlers see an empty file; it is never unlinked (see Session.deliver).
    path = Path(os.devnull)

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass
