"""What "on disk" means for every store that answers ``250``: fsync the file, then its directory.

A rename is durable only once the directory holding the new name is fsync'd
(POSIX leaves it to the file system; ext4 and XFS need it), so every store
that promises a message survives a crash ends with :func:`fsync_dir`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s entries (new names, renames) to disk. Blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
