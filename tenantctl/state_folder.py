"""Where tenantctl keeps its own records beside an environment's state: the environment lock and id.

A local `file://DIR` backend (the rehearsal's, or a project's through PULUMI_BACKEND_URL, Pulumi.yaml's
`backend.url` or `pulumi login`) has a folder every run on that state can see: the records go to
`DIR/.tenantctl/`. Any other backend (s3://, Pulumi Cloud, ...) has no folder here, so there is none:
callers say what that means for them rather than invent a local one that another runner would not see.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote

from tenantctl.stack_files import _project_file

RECORDS = ".tenantctl"


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
    # The same home the engine gets (tenantctl.engine.engine_environment): the venv's own when `make setup` made one.
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


def rehearsal_records(state_dir: Path) -> Path:
    """The rehearsal's records live in its state folder, beside its backend."""
    return state_dir / RECORDS
