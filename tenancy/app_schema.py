"""The application's schema contract (db/app_schema.sql): the facts the checks rely on, and loading it.

Production databases get the schema from the application's migrations; local clusters, rehearsals
and tests get it from db/app_schema.sql through `ensure_schema`, which leaves a current schema alone
and re-runs the idempotent file on an older one.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from tenancy import db

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "db" / "app_schema.sql"
TENANT_VARIABLE = "app.current_tenant_id"
TENANT_CONFIGS = "tenant_configs"
HISTORY_TABLES = ("enhancement_history", "ticket_history", "system_inventory")
TENANT_TABLES = (TENANT_CONFIGS, *HISTORY_TABLES)
APP_ROLE = "app_user"
PROVISIONER_ROLE = "tenant_provisioner"
OWNER_ROLE = "app_owner"
# The newest column and table the contract added; a database without either gets the (idempotent) file re-run.
NEWEST_COLUMN = "webhook_next_signing_secret_encrypted"
ENVIRONMENTS_TABLE = "tenantctl_environments"
NEWEST_TABLE = ENVIRONMENTS_TABLE


def schema_present(dsn: str, *, connect_timeout: float = 5.0) -> bool:
    """Whether the database already has the current contract: `tenant_configs` with its newest column, and
    the newest table."""
    with db.connect(dsn, connect_timeout=connect_timeout, autocommit=True) as conn:
        try:
            row = conn.execute(
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s"
                " AND NOT attisdropped) AND to_regclass(%s) IS NOT NULL",
                (TENANT_CONFIGS, NEWEST_COLUMN, NEWEST_TABLE),
            ).fetchone()
        except psycopg.Error as exc:
            raise db.DatabaseError(f"cannot inspect {db.describe_dsn(dsn)}: {db.first_line(exc)}") from None
    return bool(row and row[0])


def load_schema(dsn: str, path: Path = SCHEMA_PATH, *, connect_timeout: float = 5.0) -> None:
    """Run the schema file in one transaction: all of it applies, or none of it."""
    try:
        script = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise db.DatabaseError(f"cannot read the schema file {path}: {exc.strerror}") from None
    with db.connect(dsn, connect_timeout=connect_timeout, autocommit=True) as conn:
        try:
            with conn.transaction():
                # No parameters: psycopg sends the script as one simple query, so it may hold many statements.
                conn.execute(script)
        except psycopg.Error as exc:
            raise db.DatabaseError(
                f"loading {Path(path).name} into {db.describe_dsn(dsn)} failed: {db.first_line(exc)}"
            ) from None


def ensure_schema(dsn: str, path: Path = SCHEMA_PATH, *, connect_timeout: float = 5.0) -> bool:
    """Load the schema only if it is absent or older than the contract; return whether it was loaded."""
    if schema_present(dsn, connect_timeout=connect_timeout):
        return False
    load_schema(dsn, path, connect_timeout=connect_timeout)
    return True
