"""An environment's claim on the database it provisions (fleet rule 1): the one row of `tenantctl_environments`.

The first environment that writes a tenant row claims the database; every later write of a tenant row checks the
claim in the same transaction (components/dynamic/tenant_config_row.py), so a second environment on the same
database is refused before it touches a row, with both ids named. The id itself is recorded beside the
environment's state (fleet/environment_id.py).
"""

from __future__ import annotations

from tenancy.app_schema import ENVIRONMENTS_TABLE

TABLE = ENVIRONMENTS_TABLE


class EnvironmentIdError(Exception):
    """The recorded id is unreadable, or the database belongs to another environment; one line."""


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
    from tenancy import db

    with db.connect(dsn, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]:
            connection.execute(f"DELETE FROM {TABLE} WHERE environment_id = %s", (environment_id,))
