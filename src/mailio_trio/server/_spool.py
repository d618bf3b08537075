"""Where a DATA (or BDAT) body goes while the ``queue`` handlers run: a temporary file.

Durability is not this module's job: queue handlers that keep the message
(maildir, relay spool) write and fsync their own copies before ``250``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from mailio_trio.config import ConfigError, show

__all__ = ["NullSpool", "Spool", "prepare_directory"]


def prepare_directory(key: str, path: Path) -> Path:
    """Create ``path`` if needed and check we can write there; returns it absolute.

    Called when the server is built: a spool that cannot be written must stop
    the start with one line, not answer every DATA with ``451`` and a traceback.

    Raises:
      ConfigError: One line naming ``key``, the path and the reason.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{key} = {show(str(path))}: cannot create the directory: {exc.strerror or exc}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{key} = {show(str(path))}: the directory is not writable")
    return path.absolute()


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
