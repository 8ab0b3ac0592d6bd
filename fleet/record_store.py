"""tenantctl's records beside an environment's state: small documents by name, in one of two stores.

The environment lock and the environment id (fleet.environment_lock, fleet.environment_id) are written
once, against this contract, whichever backend keeps the state:
- `FileRecords`: a folder, a `file://` backend's `DIR/.tenantctl/` or the rehearsal's (this module);
- `S3Records`: objects under an S3 backend's `<prefix>.tenantctl/` (fleet.s3_records).

Each step is atomic against every other writer of the same store:
- `create(name, text)`: only when the name does not exist; False (nothing changed) when it does;
- `read(name)`: the text, its age in seconds and a version; None when there is no such record;
- `replace(name, text, version)`, `delete(name, version)`: only while the record is still at `version`;
  False (nothing changed) when it has changed or gone meanwhile.
A record is written whole or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleet.atomic_files import link_new, sweep_temporaries

# A kill between a file's write and its link leaves a temporary file; a writer is done with a small file
# within seconds, so one older than this is nobody's write in progress.
SWEEP_AFTER_S = 60


class RecordStoreError(Exception):
    """The store could not be read or written; one line, without a secret."""


@dataclass(frozen=True)
class Found:
    text: str
    age: float  # seconds since it was written
    version: str  # what `replace` and `delete` check: the content's digest, or the object's ETag


class RecordStore(Protocol):
    def where(self, name: str) -> str: ...

    def read(self, name: str) -> Found | None: ...

    def create(self, name: str, text: str) -> bool: ...

    def replace(self, name: str, text: str, version: str) -> bool: ...

    def delete(self, name: str, version: str) -> bool: ...


@dataclass(frozen=True)
class FileRecords:
    """A folder. `create` is one `link(2)` of a complete, fsynced file; `replace` and `delete` compare the
    content's digest and act under a short `flock` of a guard file beside the record, which every mutation
    takes (and which tenantctl took before this store existed, so an older tenantctl on the same folder is
    kept apart too)."""

    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def where(self, name: str) -> str:
        return str(self.path(name))

    def read(self, name: str) -> Found | None:
        path = self.path(name)
        try:
            data = path.read_bytes()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RecordStoreError(f"cannot read {path}: {exc.strerror}") from None
        return Found(data.decode("utf-8", "replace"), age, hashlib.sha256(data).hexdigest())

    @contextlib.contextmanager
    def _guard(self, name: str) -> Iterator[None]:
        """Held for milliseconds; the kernel drops it when its process dies, so it is never stale."""
        with open(self.path(name).with_suffix(".guard"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _still(self, name: str, version: str) -> bool:
        found = self.read(name)
        return found is not None and found.version == version

    def create(self, name: str, text: str) -> bool:
        path = self.path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordStoreError(f"cannot create {path.parent}: {exc.strerror}") from None
        with self._guard(name):
            sweep_temporaries(path.parent, SWEEP_AFTER_S)
            return link_new(path, text)

    def replace(self, name: str, text: str, version: str) -> bool:
        with self._guard(name):
            if not self._still(name, version):
                return False
            self.path(name).unlink(missing_ok=True)
            return link_new(self.path(name), text)

    def delete(self, name: str, version: str) -> bool:
        if not self.path(name).parent.is_dir():  # `rehearse --destroy` removes the whole state folder
            return False
        with self._guard(name):
            if not self._still(name, version):
                return False
            self.path(name).unlink(missing_ok=True)
            return True


def as_store(records: Path | RecordStore) -> RecordStore:
    """A folder is a `FileRecords`; a store is itself."""
    return FileRecords(records) if isinstance(records, Path) else records
