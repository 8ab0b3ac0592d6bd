"""Orchestrates `tenantctl rehearse`: the local services, one apply (or destroy), and the summary."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from tenantctl import app_schema, db, tenant_data
from tenantctl.loader import TenantLoadError, require_tenants
from tenantctl.localpg import LocalPostgres, LocalPostgresError
from tenantctl.receiver import WebhookReceiver
from tenantctl.rehearsal import STATE_FILE, RehearsalResult, RehearsalState, apply, destroy
from tenantctl.stack_files import find_project_root

DATABASE = "app"
REHEARSAL_DIR = ".rehearsal"


class RehearseFailure(Exception):
    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


def _state_dir(base: Path, database_url: str | None) -> Path:
    if database_url is None:
        return base / "embedded"
    digest = hashlib.sha256(db.describe_dsn(database_url).encode()).hexdigest()[:12]
    return base / f"external-{digest}"


def run_rehearse(
    tenants_dir: Path,
    database_url: str | None,
    app_database_url: str | None,
    destroy_all: bool,
    progress: Callable[[str], None] | None = None,
    state_base: Path | None = None,
) -> RehearsalResult:
    say = progress or (lambda _line: None)
    root = find_project_root(tenants_dir.resolve().parent)
    try:
        tenants = [] if destroy_all else require_tenants(tenants_dir)
    except TenantLoadError as exc:
        raise RehearseFailure(f"{len(exc.problems)} error(s) in tenant files", [str(p) for p in exc.problems]) from None
    state_dir = _state_dir(state_base or root / REHEARSAL_DIR, database_url)
    state = RehearsalState.load(state_dir / STATE_FILE)
    postgres = None
    try:
        if database_url is None:
            postgres = LocalPostgres(root=state_dir / "postgres", port=state.environment.get("postgres_port"))
            say("starting a local PostgreSQL for the rehearsal")
            postgres.start()
            state.environment["postgres_port"] = postgres.port
            if not _database_exists(postgres):
                postgres.create_database(DATABASE)
            database_url = postgres.dsn(user="tenant_provisioner", dbname=DATABASE)
            schema_url = postgres.dsn(dbname=DATABASE)
        else:
            schema_url = database_url
        if app_schema.ensure_schema(schema_url):
            say("loaded db/app_schema.sql")
        app_url = app_database_url or db.with_user(database_url, app_schema.APP_ROLE)
        if destroy_all:
            result = destroy(root, state)
            say(f"removed {len(result.removed)} resource(s)")
        else:
            fernet_key = state.secret("fernetKey", _new_fernet_key)
            kept = [str(t.tenant_id) for t in tenants]
            before = tenant_row_counts(database_url, kept)
            with WebhookReceiver(app_url, fernet_key, port=state.environment.get("receiver_port", 0)) as receiver:
                state.environment["receiver_port"] = int(receiver.base_url.rsplit(":", 1)[1])
                say(f"webhook receiver on {receiver.base_url}; running the program for {len(tenants)} tenant(s)")
                result = apply(root, tenants_dir, tenants, state, database_url, app_url, receiver.base_url)
            after = tenant_row_counts(database_url, kept)
            result.rows_lost = sum(max(0, before[t] - after[t]) for t in kept)
            say(f"{result.rows_lost} row(s) lost of the {sum(before.values())} the declared tenants had before")
            for outcome in result.tenants:
                checks = " ".join(f"{name}={'ok' if ok else 'FAILED'}" for name, ok in outcome.checks.items())
                say(f"  {outcome.slug}: {outcome.status} {checks}".rstrip())
                for error in outcome.errors:
                    say("    " + error.replace("\n", "\n    "))
        for tenant in result.removed_tenants:
            say(f"  {tenant}: deleted")
        if result.delete_error:
            say("  delete refused: " + result.delete_error.replace("\n", "\n    "))
        state.save()
    except (LocalPostgresError, db.DatabaseError) as exc:
        raise RehearseFailure(str(exc)) from None
    finally:
        if postgres is not None:
            postgres.stop()
    if destroy_all and result.ok:
        if postgres is not None:
            postgres.destroy()
        shutil.rmtree(state_dir, ignore_errors=True)
    return result


def tenant_row_counts(database_url: str, tenant_ids: list[str]) -> dict[str, int]:
    """Each tenant's tenant_configs row plus history rows, read inside its own RLS context."""
    counts = {}
    with db.connect(database_url) as connection, connection.cursor() as cursor:
        for tenant_id in tenant_ids:
            history = tenant_data.history_counts(cursor, tenant_id)
            cursor.execute("SELECT count(*) FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))
            counts[tenant_id] = cursor.fetchone()[0] + sum(history.values())
    return counts


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _database_exists(postgres: LocalPostgres) -> bool:
    with db.connect(postgres.dsn(), autocommit=True) as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is not None


def summary_table(result: RehearsalResult) -> Table:
    table = Table(title=f"Rehearsal: {result.changes} change(s), {result.rows_lost} row(s) lost")
    table.add_column("tenant")
    table.add_column("status")
    table.add_column("checks")
    for outcome in result.tenants:
        checks = ", ".join(f"{n} {'ok' if ok else 'FAILED'}" for n, ok in outcome.checks.items()) or "-"
        table.add_row(outcome.slug, outcome.status, checks)
    for slug in result.removed_tenants:
        table.add_row(slug, "deleted", "-")
    if result.delete_error:
        table.add_row("(delete)", "failed", result.delete_error.splitlines()[0])
    return table
