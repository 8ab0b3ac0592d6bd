"""Files that appear whole or not at all: write under a temporary name, fsync, then link to the real name.

`link(2)` never replaces an existing name, so the first writer wins and every reader sees a complete file;
a SIGKILL before the link leaves only a temporary file, which no reader takes for the real one.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path


def link_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Create `path` holding `text`, durably; False (and nothing changed) when it already exists."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the new name survives a power loss too
    finally:
        os.close(folder)
    return True


def sweep_temporaries(folder: Path, older_than: float) -> None:
    """Remove what a kill between write and link left, once surely nobody's write in progress."""
    for leftover in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > older_than:
                leftover.unlink()
