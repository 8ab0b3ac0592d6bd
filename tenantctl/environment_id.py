"""Each environment's id (fleet rule 1): a UUID beside its state, and the claim on the database it provisions.

Beside the state: `<records>/environments/<env>.json` (`tenantctl.state_folder`), created on the first `up`
in one step (`atomic_files.link_new`: two first runs agree on one id) and never regenerated while it exists.

In the database: the one row of `tenantctl_environments` (db/app_schema.sql). The first environment that
writes a tenant row claims the database; every later write of a tenant row checks the claim in the same
transaction (components/dynamic/tenant_config_row.py), so a second environment on the same database is
refused before it touches a row, with both ids named.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tenantctl.app_schema import ENVIRONMENTS_TABLE

ENVIRONMENTS = "environments"
TABLE = ENVIRONMENTS_TABLE


class EnvironmentIdError(Exception):
    """The recorded id is unreadable, or the database belongs to another environment; one line."""


def id_path(records: Path, env: str) -> Path:
    return records / ENVIRONMENTS / f"{env}.json"


def recorded_id(records: Path, env: str, create: bool = False) -> str | None:
    """The environment's id; made (once) when `create` and there is none. None: none recorded, none made."""
    from tenantctl.atomic_files import link_new

    path = id_path(records, env)
    existing = _read(path)
    if existing is not None or not create:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    link_new(path, json.dumps({"environment_id": str(uuid.uuid4()), "name": env}) + "\n")
    # Whoever linked first, this run or another one at the same moment, that file is the id.
    return _read(path)


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EnvironmentIdError(f"cannot read the environment id {path}: {exc.strerror}") from None
    try:
        return str(uuid.UUID(json.loads(text)["environment_id"]))
    except (ValueError, KeyError, TypeError):
        # Never replaced by a new one: the database still knows the old id, and a new one would be refused there.
        raise EnvironmentIdError(f"{path} does not hold an environment id; restore it from a backup of the "
                                 f"state folder (the database's {TABLE} row names it)") from None


def claim_database(cursor, environment_id: str, name: str) -> None:
    """Claim the database for this environment, or raise EnvironmentIdError when another one holds it.

    Inside the caller's transaction: a refusal rolls back everything it was about to write."""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))
    if not cursor.fetchone()[0]:
        raise EnvironmentIdError(f"the database has no {TABLE} table: load db/app_schema.sql (or the application's "
                                 "migration) so that it can record which environment owns it")
    # One row at most (its constraint): the insert is a no-op when this or another environment holds it, and
    # a concurrent first claim waits on the unique index, then sees the winner's row.
    cursor.execute(f"INSERT INTO {TABLE} (environment_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                   (environment_id, name))
    cursor.execute(f"SELECT environment_id, name FROM {TABLE}")
    rows = cursor.fetchall()
    if any(str(row[0]) == str(environment_id) for row in rows):
        return
    owner = f"{rows[0][1]} ({rows[0][0]})" if rows else "another environment"
    raise EnvironmentIdError(f"this database belongs to environment {owner}, not to {name} ({environment_id}): "
                             "two environments must not share a database; nothing was written")


def release_database(dsn: str, environment_id: str) -> None:
    """Give the database up (after `rehearse --destroy` removed every row): only this environment's claim."""
    from tenantctl import db

    with db.connect(dsn, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]:
            connection.execute(f"DELETE FROM {TABLE} WHERE environment_id = %s", (environment_id,))
