"""Each environment's id (fleet rule 1): a UUID beside its state, and the claim on the database it provisions.

Beside the state: the record `environments/<env>.json` in the environment's record store
(tenantctl.record_store: `DIR/.tenantctl/` of a `file://` backend or of the rehearsal, `<prefix>.tenantctl/` in
an S3 backend's bucket), created on the first `up` with the store's atomic create (a link(2); an S3 PutObject
with `If-None-Match: *`), so two first runs agree on one id, and never regenerated while it exists.

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
from tenantctl.record_store import RecordStore, RecordStoreError, as_store

ENVIRONMENTS = "environments"
TABLE = ENVIRONMENTS_TABLE


class EnvironmentIdError(Exception):
    """The recorded id is unreadable, or the database belongs to another environment; one line."""


def id_name(env: str) -> str:
    return f"{ENVIRONMENTS}/{env}.json"


def id_path(records: Path, env: str) -> Path:
    """Where a folder store keeps the id."""
    return records / id_name(env)


def recorded_id(records: Path | RecordStore, env: str, create: bool = False) -> str | None:
    """The environment's id; made (once) when `create` and there is none. None: none recorded, none made."""
    store = as_store(records)
    existing = _read(store, env)
    if existing is not None or not create:
        return existing
    try:
        store.create(id_name(env), json.dumps({"environment_id": str(uuid.uuid4()), "name": env}) + "\n")
    except (OSError, RecordStoreError) as exc:
        raise EnvironmentIdError(f"cannot record the environment id: {exc}") from None
    # Whoever created it first, this run or another one at the same moment, that record is the id.
    return _read(store, env)


def _read(store: RecordStore, env: str) -> str | None:
    where = store.where(id_name(env))
    try:
        found = store.read(id_name(env))
    except RecordStoreError as exc:
        raise EnvironmentIdError(f"cannot read the environment id: {exc}") from None
    if found is None:
        return None
    try:
        return str(uuid.UUID(json.loads(found.text)["environment_id"]))
    except (ValueError, KeyError, TypeError):
        # Never replaced by a new one: the database still knows the old id, and a new one would be refused there.
        raise EnvironmentIdError(f"{where} does not hold an environment id; restore it from a backup of the "
                                 f"state (the database's {TABLE} row names it)") from None


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
