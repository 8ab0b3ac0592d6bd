"""A tenant's application data beyond its config row: counting, locking and purging its history rows.

Shared by the TenantConfigRow provider's delete and `tenantctl destroy`, so both apply one rule:
history is deleted only for a tenant whose purge was applied, and then in the same transaction as
its config row. Every function runs inside the caller's transaction, scoped to the tenant.
"""

from __future__ import annotations

from datetime import UTC

import psycopg
from psycopg import sql

from tenancy.app_schema import HISTORY_TABLES
from tenancy.db import set_tenant_variable

__all__ = ["HISTORY_TABLES", "describe_counts", "history_counts", "lock_history", "purge_history"]

# A delete waits at most this long for the application's in-flight inserts; then it fails and can be re-run.
LOCK_TIMEOUT = "10s"


def lock_history(cursor: psycopg.Cursor) -> None:
    """Block inserts into the history tables until the transaction ends (reads go on).

    Under READ COMMITTED a history row committed between a count and a delete would otherwise be
    missed by the count (deleting the config row of a tenant that has history) or caught by a purge
    nobody asked for. SHARE mode conflicts with the inserts' ROW EXCLUSIVE lock and with nothing a
    reader takes; the provisioner may take it because it holds DELETE on these tables.
    """
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
    tables = sql.SQL(", ").join(sql.Identifier(table) for table in HISTORY_TABLES)
    cursor.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(tables))


def history_counts(cursor: psycopg.Cursor, tenant_id: str) -> dict[str, int]:
    set_tenant_variable(cursor, tenant_id)
    counts = {}
    for table in HISTORY_TABLES:
        cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                       (str(tenant_id),))
        counts[table] = cursor.fetchone()[0]
    return counts


def purge_history(cursor: psycopg.Cursor, tenant_id: str) -> dict[str, int]:
    """Delete the tenant's history rows. Callers hold `lock_history` and have checked the purge was applied."""
    set_tenant_variable(cursor, tenant_id)
    deleted = {}
    for table in HISTORY_TABLES:
        cursor.execute(sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                       (str(tenant_id),))
        deleted[table] = cursor.rowcount
    return deleted


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items() if n) or "none"


def row_update_times(database_url: str, tenant_ids: list[str]) -> dict[str, str | None]:
    """Each tenant's `tenant_configs.updated_at` (ISO, UTC), read inside its own RLS context; None: no row."""
    from tenancy import db

    times: dict[str, str | None] = {}
    with db.connect(database_url) as connection, connection.cursor() as cursor:
        for tenant_id in tenant_ids:
            set_tenant_variable(cursor, tenant_id)
            cursor.execute("SELECT updated_at FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))
            row = cursor.fetchone()
            times[tenant_id] = row[0].astimezone(UTC).isoformat(timespec="seconds") if row else None
    return times
