"""Secrets read from files in a folder (a Kubernetes Secret mounted read-only), one value per file.

A file is only as visible as its mode and mount; an environment variable is in every child's environment and
in /proc/<pid>/environ of the process. The scheduled verification job mounts its Secret and passes the folder.
"""

from __future__ import annotations

from pathlib import Path

# The file names of the verification job's Secret, and the `tenantctl verify` options they stand for.
DATABASE_URL = "database-url"
APP_DATABASE_URL = "app-database-url"
FERNET_KEY = "fernet-key"


class SecretFileError(Exception):
    """A secrets folder or file that cannot be read; names the file, never its content."""


def read_secret(folder: Path | None, name: str) -> str | None:
    """The value of `folder/name` without its trailing newline; None without a folder or that file."""
    if folder is None:
        return None
    path = folder / name
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"cannot read the secret file {path}: {getattr(exc, 'strerror', None) or exc}") from None
