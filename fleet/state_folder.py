"""Where tenantctl keeps its own records beside an environment's state: the environment lock and id.

The backend is the one the project's engine uses (PULUMI_BACKEND_URL, Pulumi.yaml's `backend.url`, or
`pulumi login`), and the records go where every run on that state can see them:
- a `file://DIR` backend (and the rehearsal's): the folder `DIR/.tenantctl/`;
- an `s3://<bucket>/<prefix>` backend: the objects `<prefix>.tenantctl/...` in that bucket, beside Pulumi's
  `<prefix>.pulumi/` (fleet.s3_records).
Any other backend (Pulumi Cloud, azblob://, gs://) is refused in one line (UnsupportedBackend) rather than
given a local folder that another runner would not see.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote

from fleet.record_store import FileRecords, RecordStore
from fleet.stack_files import _project_file

RECORDS = ".tenantctl"
SUPPORTED = "file:// and s3://"


class UnsupportedBackend(Exception):
    """The backend keeps no records of tenantctl's; one line naming the supported ones, never the URL's query."""


def backend_url(root: Path) -> str | None:
    """The backend the project's engine uses, as the CLI picks it: the environment, the project file, the login."""
    url = os.environ.get("PULUMI_BACKEND_URL")
    if url:
        return url
    backend = _project_file(root).get("backend")
    if isinstance(backend, dict) and backend.get("url"):
        return str(backend["url"])
    return _logged_in_url(root)


def _logged_in_url(root: Path) -> str | None:
    # The same home the engine gets (fleet.engine.engine_environment): the venv's own when `make setup` made one.
    home = os.environ.get("PULUMI_HOME")
    venv_home = root / ".venv" / "pulumi-home"
    folder = Path(home) if home else venv_home if venv_home.is_dir() else Path.home() / ".pulumi"
    try:
        current = json.loads((folder / "credentials.json").read_text(encoding="utf-8")).get("current")
    except (OSError, ValueError, AttributeError):
        return None
    return current if isinstance(current, str) and current else None


def file_backend_dir(url: str | None, root: Path) -> Path | None:
    """The folder of a `file://` backend URL, read as the CLI reads it (the rest of the URL is the path, `~` is
    the home folder, a relative path is from the project, where the engine runs); None for any other backend."""
    if not url or not url.startswith("file://"):
        return None
    folder = Path(unquote(url.removeprefix("file://").split("?", 1)[0])).expanduser()
    return folder if folder.is_absolute() else (root / folder).resolve()


def project_records(root: Path) -> Path | None:
    """`DIR/.tenantctl` of the project's file backend; None for any other backend."""
    folder = file_backend_dir(backend_url(root), root)
    return None if folder is None else folder / RECORDS


def records_store(url: str | None, root: Path) -> RecordStore:
    """The record store beside the state of the backend `url`; UnsupportedBackend for any but file:// and s3://."""
    from fleet.s3_backend_url import S3BackendUrlError, parse_s3_url
    from fleet.s3_records import S3Records

    folder = file_backend_dir(url, root)
    if folder is not None:
        return FileRecords(folder / RECORDS)
    if url and url.startswith("s3://"):
        try:
            return S3Records(parse_s3_url(url))
        except S3BackendUrlError as exc:
            raise UnsupportedBackend(str(exc)) from None
    what = (f"{url.split('://', 1)[0]}://" if url and "://" in url
            else "Pulumi Cloud (no backend URL: PULUMI_BACKEND_URL, Pulumi.yaml's backend.url or `pulumi login`)")
    raise UnsupportedBackend(f"tenantctl keeps the environment lock and id beside the state on {SUPPORTED} "
                             f"backends only, not on {what}; see docs/operations.md")


def project_store(root: Path) -> RecordStore:
    """The record store of the project's backend; UnsupportedBackend for any but file:// and s3://."""
    return records_store(backend_url(root), root)


def rehearsal_records(state_dir: Path) -> Path:
    """The rehearsal's records live in its state folder, beside its backend."""
    return state_dir / RECORDS
