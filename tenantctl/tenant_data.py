"""A tenant's application data beyond its config row: counting and purging its history rows.

Shared by the TenantConfigRow provider's delete and `tenantctl destroy`, so both refuse (or
purge) by the same rule. Every function runs inside the caller's transaction, scoped to the tenant.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from tenantctl.db import set_tenant_variable

__all__ = ["HISTORY_TABLES", "describe_counts", "history_counts", "purge_history"]

from tenantctl.app_schema import HISTORY_TABLES


def history_counts(cursor: psycopg.Cursor, tenant_id: str) -> dict[str, int]:
    set_tenant_variable(cursor, tenant_id)
    counts = {}
    for table in HISTORY_TABLES:
        cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                       (str(tenant_id),))
        counts[table] = cursor.fetchone()[0]
    return counts


def purge_history(cursor: psycopg.Cursor, tenant_id: str) -> dict[str, int]:
    set_tenant_variable(cursor, tenant_id)
    deleted = {}
    for table in HISTORY_TABLES:
        cursor.execute(sql.SQL("DELETE FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                       (str(tenant_id),))
        deleted[table] = cursor.rowcount
    return deleted


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items() if n) or "none"
