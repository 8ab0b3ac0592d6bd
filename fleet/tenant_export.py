"""`tenantctl export|import` and offboarding's export gate: a tenant's rows read, restored and compared.

Reading is done as the provisioner inside the tenant's own RLS context (`set_tenant_context`, which also refuses a
tenant without a row), in one read-only REPEATABLE READ transaction: every table of the export is the same
snapshot. The file format and its encryption are `tenancy.tenant_export`'s.

Import restores into an environment that does not hold the tenant: its `tenant_configs` row (same id, created_at,
ciphertexts) is inserted by the provisioner with no `provisioning_owner`, so the tenant stack's row resource adopts
it on its first `up` (its create takes an existing row over under the same id and writes its own owner token);
the history rows (same ids) are inserted by the application role, the only one the contract lets write history.
Refused, with nothing changed: a database already holding the tenant (other rows than an earlier run of this same
import left), a row id or history id held by another tenant, a database claimed by another environment, a tenant
file with another tenant_id. A re-run after an interruption finds the rows this import wrote and goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.types.json import Jsonb

from tenancy import db
from tenancy.app_schema import HISTORY_TABLES, TENANT_CONFIGS, TENANT_TABLES
from tenancy.tenant_export import CurrentTenant, ExportError, TenantRows, plain


@dataclass(frozen=True)
class Snapshot:
    rows: TenantRows
    environment_id: str | None


def _cursor_rows(cursor: psycopg.Cursor) -> list[dict[str, Any]]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, (plain(value) for value in row), strict=True)) for row in cursor.fetchall()]


def _read_tables(cursor: psycopg.Cursor, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    tables = {}
    for table in TENANT_TABLES:
        order = sql.SQL(" ORDER BY id")
        cursor.execute(sql.SQL("SELECT * FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)) + order,
                       (tenant_id,))
        tables[table] = _cursor_rows(cursor)
    return tables


def _environment_claim(cursor: psycopg.Cursor) -> tuple[str, str] | None:
    cursor.execute("SELECT environment_id, name FROM tenantctl_environments")
    row = cursor.fetchone()
    return (str(row[0]), row[1]) if row else None


@contextlib.contextmanager
def _tenant_cursor(database_url: str, tenant_id: str) -> Iterator[tuple[psycopg.Connection, psycopg.Cursor]]:
    """A connection and cursor for reading one tenant; a connection or query failure is an ExportError."""
    try:
        connection = db.connect(database_url)
    except db.DatabaseError as exc:
        raise ExportError(str(exc)) from None
    with connection, connection.cursor() as cursor:
        try:
            yield connection, cursor
        except errors.NoDataFound:
            raise ExportError(f"the database {db.describe_dsn(database_url)} has no tenant_configs row for tenant "
                              f"{tenant_id}: nothing to export") from None
        except psycopg.Error as exc:
            raise ExportError(f"reading tenant {tenant_id} from {db.describe_dsn(database_url)}: "
                              f"{db.first_line(exc)}") from None


def read_snapshot(database_url: str, tenant_id: str, tenant_file: str) -> Snapshot:
    """The tenant's rows in every tenant table, read under its own context in one snapshot."""
    with _tenant_cursor(database_url, tenant_id) as (connection, cursor):
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        cursor.execute("SELECT set_tenant_context(%s)", (tenant_id,))
        tables = _read_tables(cursor, tenant_id)
        claim = _environment_claim(cursor)
    return Snapshot(TenantRows(tenant_file, tables), claim[0] if claim else None)


def current_tenant(database_url: str, tenant_id: str, environment: str) -> CurrentTenant:
    """The tenant's row and row counts now (the gate's side of the comparison), read under its context."""
    with _tenant_cursor(database_url, tenant_id) as (_, cursor):
        db.set_tenant_variable(cursor, tenant_id)
        cursor.execute("SELECT * FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))
        rows = _cursor_rows(cursor)
        counts = {}
        for table in TENANT_TABLES:
            cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(sql.Identifier(table)),
                           (tenant_id,))
            counts[table] = cursor.fetchone()[0]
    return CurrentTenant(tenant_id, environment, rows[0] if rows else None, counts)


# --- import -----------------------------------------------------------------------------------------------------


class _HeldRow(ExportError):
    """An id of the export is another tenant's in the target database (a unique key refused it)."""


@dataclass(frozen=True)
class Restored:
    inserted: dict[str, int]  # rows written now, per table
    resumed: bool  # an earlier run of this import had written some


def _columns(cursor: psycopg.Cursor, table: str) -> dict[str, str]:
    cursor.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass"
                   " AND attnum > 0 AND NOT attisdropped", (table,))
    return dict(cursor.fetchall())


def _value(value: Any, column_type: str) -> Any:
    return Jsonb(value) if column_type in ("jsonb", "json") and value is not None else value


def _insert(cursor: psycopg.Cursor, table: str, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    if not rows:
        return
    names = list(rows[0])
    override = sql.SQL(" OVERRIDING SYSTEM VALUE") if table in HISTORY_TABLES else sql.SQL("")
    statement = sql.SQL("INSERT INTO {} ({}){} VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)), override,
        sql.SQL(", ").join(sql.Placeholder() * len(names)))
    try:
        cursor.executemany(statement, [[_value(row.get(name), columns[name]) for name in names] for row in rows])
    except errors.UniqueViolation:
        ids = sorted(str(row["id"]) for row in rows)
        held = f"row id {ids[0]}" if len(ids) == 1 else f"one of the ids {ids[0]} .. {ids[-1]}"
        raise _HeldRow(f"{table}: {held} is held by another tenant's row") from None


def _advance_identity(cursor: psycopg.Cursor, table: str, rows: list[dict[str, Any]]) -> None:
    """Make the table's identity hand out ids above the restored ones, with nextval alone (the application role
    may use the sequence, not set it): the ids skipped are never used."""
    if not rows:
        return
    top = max(int(row["id"]) for row in rows)
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
    sequence = cursor.fetchone()[0]
    cursor.execute("SELECT nextval(%s)", (sequence,))
    if cursor.fetchone()[0] < top:
        cursor.execute("SELECT max(n) FROM (SELECT nextval(%s) AS n FROM generate_series(1, %s - currval(%s))) s",
                       (sequence, top, sequence))


def _differs(table: str, existing: list[dict[str, Any]], exported: list[dict[str, Any]]) -> bool:
    if table == TENANT_CONFIGS:
        # Written by this import and not yet adopted: exactly the export's row, owned by nobody.
        return existing != [{**row, "provisioning_owner": None} for row in exported]
    return existing != exported


def restore_rows(database_url: str, app_database_url: str, rows: TenantRows, environment: str,
                 environment_id: str | None, where: str) -> Restored:
    """Insert the export's rows into an environment's database that does not hold the tenant (see the module's
    docstring); ExportError, with nothing changed, otherwise."""
    config = rows.config_row
    tenant_id = str(config["tenant_id"])
    try:
        provisioner = db.connect(database_url)
        application = db.connect(app_database_url)
    except db.DatabaseError as exc:
        raise ExportError(str(exc)) from None
    with provisioner, application, provisioner.cursor() as pcur, application.cursor() as acur:
        try:
            db.set_tenant_variable(pcur, tenant_id)
            claim = _environment_claim(pcur)
            if claim and environment_id and claim[0] != environment_id:
                raise ExportError(f"{db.describe_dsn(database_url)} belongs to environment {claim[1]!r} "
                                  f"({claim[0]}), not {environment!r}: nothing imported")
            existing = _read_tables(pcur, tenant_id)
            held = {table: found for table, found in existing.items() if found}
            resumed = bool(held)
            for table, found in held.items():
                if _differs(table, found, rows.tables.get(table, [])):
                    raise ExportError(_already_there(environment, tenant_id, table, found))
            missing = {}
            for table in TENANT_TABLES:
                wanted = rows.tables.get(table, [])
                if wanted and table not in held:
                    columns = _columns(pcur, table)
                    unknown = sorted(set(wanted[0]) - set(columns))
                    if unknown:
                        raise ExportError(f"{where}: {table} of {db.describe_dsn(database_url)} has no column "
                                          f"{', '.join(unknown)}: load the application schema the export was made "
                                          "with first; nothing imported")
                    missing[table] = (wanted, columns)
            db.set_tenant_variable(acur, tenant_id)
            for table in HISTORY_TABLES:
                if table in missing:
                    _insert(acur, table, *missing[table])
                    _advance_identity(acur, table, missing[table][0])
            if TENANT_CONFIGS in missing:
                wanted, columns = missing[TENANT_CONFIGS]
                _insert(pcur, TENANT_CONFIGS, [{**row, "provisioning_owner": None} for row in wanted], columns)
            # History first: a kill between the two commits leaves history the re-run recognises, never a row
            # the stack could adopt without its history.
            application.commit()
            provisioner.commit()
        except _HeldRow as exc:
            raise ExportError(f"{where}: {exc} in {db.describe_dsn(database_url)}; nothing imported") from None
        except psycopg.Error as exc:
            raise ExportError(f"importing tenant {tenant_id} into {db.describe_dsn(database_url)}: "
                              f"{db.first_line(exc)}; nothing imported") from None
    return Restored({table: len(missing[table][0]) for table in missing}, resumed)


def _already_there(environment: str, tenant_id: str, table: str, found: list[dict[str, Any]]) -> str:
    if table == TENANT_CONFIGS and found[0].get("provisioning_owner"):
        return (f"environment {environment} already has tenant {tenant_id}: its tenant_configs row {found[0]['id']} "
                "is managed by a stack (an earlier import was adopted, or the tenant was never offboarded); "
                "nothing imported")
    return (f"environment {environment} already has rows of tenant {tenant_id} in {table} ({len(found)}) that are "
            "not this export's: nothing imported")


def write_export(path: Path, text: str) -> None:
    """The export file, whole or not at all, readable by its owner only; an existing file is never replaced."""
    from fleet.atomic_files import link_new

    try:
        if not path.parent.is_dir():
            raise ExportError(f"--out {path}: the folder {path.parent} does not exist")
        if not link_new(path, text, mode=0o600):
            raise ExportError(f"--out {path}: the file exists; choose another name (an export is never overwritten)")
    except OSError as exc:
        raise ExportError(f"--out {path}: {exc.strerror}") from None


def read_export_file(path: Path) -> bytes:
    from tenancy.tenant_export import MAX_FILE_BYTES

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ExportError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB: not a tenantctl export")
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: {exc.strerror}") from None


def read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()[:65536]
    except OSError as exc:
        raise ExportError(f"{what} {path}: {exc.strerror}") from None


def tool_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tenant-onboarding")
    except metadata.PackageNotFoundError:
        return "unknown"
