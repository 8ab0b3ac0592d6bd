"""`tenantctl export|import`: a tenant's rows out, encrypted to an operator's key, and back into an empty
environment; and the export gate `tenantctl destroy` applies (fleet.tenant_export, tenancy.tenant_export)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from tenancy.model import SLUG_PATTERN
from tenantctl.app import (
    AllowUnverifiedTls,
    Rehearsal,
    StateDir,
    TenantsDir,
    Wait,
    WaitTimeout,
    app,
    checked_url,
    err,
    fail,
    out,
    tenant_for,
)


def _stack_config(env: str, key: str) -> str | None:
    """A platform stack's config value, decrypted by the Pulumi CLI when it is installed."""
    import shutil
    import subprocess

    from fleet.offboarding import _engine_env

    if shutil.which("pulumi") is None:
        return None
    result = subprocess.run(["pulumi", "config", "get", key, "--stack", env], capture_output=True, text=True,
                            timeout=120, env=_engine_env())
    return (result.stdout.strip() or None) if result.returncode == 0 else None


@app.command()
def export(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    out_file: Annotated[Path, typer.Option("--out", help="The export file to write (never overwritten).")],
    recipient: Annotated[Path, typer.Option(
        "--recipient", help="The operator's X25519 public key (PEM) the export is encrypted to.")],
    env: Annotated[str, typer.Option("--env", "--stack", help="Environment of the tenant.")] = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="TENANT_DATABASE_URL",
        help="Provisioner database URL (default: the platform stack's databaseUrl via the Pulumi CLI).")] = None,
    tenant_id: Annotated[str | None, typer.Option("--tenant-id", help="Needed when the tenant file is gone.")] = None,
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
) -> None:
    """Write the tenant's tenant_configs row and its rows in every tenant table, read under its own RLS context,
    encrypted to --recipient, with a manifest (readable without the key) and per-part checksums."""
    from fleet.tenant_export import ExportError, read_key_file, read_snapshot, tool_version, write_export
    from tenancy.tenant_export import build_export, dumps, load_recipient

    tenant = _checked_tenant(slug, tenants_dir)
    tenant_id = _tenant_id(slug, tenant, tenant_id)
    env = "rehearsal" if rehearsal else env
    try:
        key = load_recipient(read_key_file(recipient, "--recipient"), f"--recipient {recipient}")
        text = (tenants_dir / f"{slug}.yaml").read_text(encoding="utf-8") if tenant is not None else ""
        database = _database(env, tenants_dir, database_url, rehearsal, state_dir, allow_unverified_tls)
        with database as url:
            snapshot = read_snapshot(url, tenant_id, text)
        document = build_export(snapshot.rows, tenant_id=tenant_id, slug=slug, environment=env,
                                environment_id=snapshot.environment_id, recipient=key, tool_version=tool_version())
        written = dumps(document)
        write_export(out_file, written)
    except ExportError as exc:
        raise fail(str(exc)) from None
    manifest = document["manifest"]
    _record(database, manifest, out_file, written, slug, env)
    counts = ", ".join(f"{n} {table}" for table, n in manifest["tables"].items())
    out.print(f"{out_file}: tenant {slug} ({tenant_id}) of {env}, row {manifest['row']['id']}: {counts}; encrypted "
              f"to {manifest['encryption']['recipient']}", markup=False)


@app.command("import")
def import_(
    export_file: Annotated[Path, typer.Argument(help="The export file (tenantctl export).")],
    identity: Annotated[Path, typer.Option(
        "--identity", help="The operator's X25519 private key (PEM) the export was encrypted to.")],
    env: Annotated[str, typer.Option("--env", "--stack", help="The environment to import into.")] = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="TENANT_DATABASE_URL",
        help="Provisioner database URL (default: the platform stack's databaseUrl; with --rehearsal: required).")
    ] = None,
    app_database_url: Annotated[str | None, typer.Option(
        "--app-database-url", envvar="TENANT_APP_DATABASE_URL",
        help="Application role URL, which writes the history rows (default: the platform stack's appDatabaseUrl; "
             "with --rehearsal: required).")] = None,
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900,
) -> None:
    """Restore an export into an environment that does not hold the tenant: its rows (same ids, created_at and
    history), then its stack, whose first up adopts the row. Refuses, changing nothing, when the environment
    already has the tenant or another tenant holds one of its row ids."""
    from fleet.tenant_export import ExportError, read_export_file, read_key_file, restore_rows
    from tenancy.tenant_export import decrypt_export, load_identity, parse_export

    where = str(export_file)
    env = "rehearsal" if rehearsal else env
    try:
        document = parse_export(read_export_file(export_file), where)
        key = load_identity(read_key_file(identity, "--identity"), f"--identity {identity}")
        rows = decrypt_export(document, key, where)
    except ExportError as exc:
        raise fail(str(exc)) from None
    manifest = document["manifest"]
    slug, tenant_id = manifest["slug"], manifest["tenant_id"]
    if not re.fullmatch(SLUG_PATTERN, str(slug)):
        raise fail(f"{where}: manifest: {slug!r} is not a tenant slug")
    tenant_path = tenants_dir / f"{slug}.yaml"
    tenant = _checked_tenant(slug, tenants_dir)
    if tenant is not None and str(tenant.tenant_id) != tenant_id:
        raise fail(f"{tenant_path}: tenant_id is {tenant.tenant_id}, the export's tenant is {tenant_id}: a slug names "
                   "one tenant; nothing imported")
    if not tenants_dir.is_dir():
        raise fail(f"--tenants-dir {tenants_dir}: no such folder; nothing imported")
    if tenant is None and not rows.tenant_file:
        raise fail(f"{where} holds no tenant file and {tenant_path} does not exist: add the tenant's file first")
    if tenant is None:
        from tenancy.loader import parse_tenant_bytes

        parsed, problems = parse_tenant_bytes(rows.tenant_file.encode("utf-8"), str(tenant_path), expected_slug=slug)
        if problems or parsed is None or str(parsed.tenant_id) != tenant_id:
            raise fail(f"{where}: its tenant file is not valid here ({problems[0] if problems else 'tenant_id'}); "
                       f"write {tenant_path} by hand first")
    if rehearsal:
        url = checked_url(database_url, "--database-url", allow_unverified_tls)
        app_url = checked_url(app_database_url, "--app-database-url", allow_unverified_tls)
        if url is None or app_url is None:
            raise fail("import --rehearsal needs --database-url and --app-database-url (the database to import into)")
    else:
        url = checked_url(database_url or _stack_config(env, "databaseUrl"), "--database-url", allow_unverified_tls)
        app_url = checked_url(app_database_url or _stack_config(env, "appDatabaseUrl"), "--app-database-url",
                              allow_unverified_tls)
        if url is None or app_url is None:
            raise fail(f"no database URLs for environment {env}: pass --database-url and --app-database-url (the "
                       f"platform stack {env}'s databaseUrl and appDatabaseUrl could not be read)")
    try:
        if rehearsal:
            restored = restore_rows(url, app_url, rows, env, None, where)
        else:
            from tenantctl.app import environment_locked

            with environment_locked(env, tenants_dir, f"import {slug}", wait, wait_timeout):
                restored = restore_rows(url, app_url, rows, env, None, where)
    except ExportError as exc:
        raise fail(str(exc)) from None
    written = ", ".join(f"{n} {table}" for table, n in restored.inserted.items()) or "none (all there already)"
    err.print(f"tenant {slug} ({tenant_id}): rows restored: {written}"
              + (" (an earlier run of this import had written the rest)" if restored.resumed else ""), markup=False)
    if tenant is None:
        from fleet.atomic_files import link_new

        link_new(tenant_path, rows.tenant_file)
        err.print(f"wrote {tenant_path} from the export: commit it with the tenant's stack file", markup=False)
    _adopt(env, slug, tenants_dir, url, app_url, rehearsal, state_dir, wait, wait_timeout)
    _check_adopted(url, tenant_id, manifest["row"]["id"])
    out.print(f"imported tenant {slug} ({tenant_id}) into {env}: row {manifest['row']['id']} adopted by stack "
              f"{env}.{slug}; its webhook signing secret is the new stack's: hand it over again "
              f"(`tenantctl handoff {slug}{' --rehearsal' if rehearsal else f' --env {env}'}`)", markup=False)


def _adopt(env: str, slug: str, tenants_dir: Path, url: str, app_url: str, rehearsal: bool, state_dir: Path | None,
           wait: bool, wait_timeout: float) -> None:
    """The tenant's stack created and applied (`up --only SLUG`): its row resource adopts the restored row."""
    if rehearsal:
        from fleet.rehearse import RehearseFailure, run_rehearse

        try:
            result = run_rehearse(tenants_dir, url, app_url, False, lambda line: err.print(line, markup=False),
                                  state_base=state_dir, only={slug})
        except RehearseFailure as exc:
            raise fail(f"the rows are restored, but the stack's up failed: {exc}; run the import again",
                       details=exc.details) from None
        if not result.ok:
            problems = [error for tenant in result.tenants for error in tenant.errors]
            raise fail("the rows are restored, but the stack's up failed; fix it and run the import again",
                       details=problems)
        return
    from tenantctl.fleet_commands import Where, _fleet

    _fleet("up", Where(env, tenants_dir, wait=wait, wait_timeout=wait_timeout), [slug], None, 1, False, None)


def _check_adopted(url: str, tenant_id: str, row_id: str) -> None:
    from fleet.tenant_export import ExportError, current_tenant

    try:
        row = current_tenant(url, tenant_id, "").row
    except ExportError as exc:
        raise fail(str(exc)) from None
    if row is None or str(row["id"]) != row_id or not row.get("provisioning_owner"):
        raise fail(f"after the up, tenant {tenant_id}'s row is not row {row_id} adopted by its stack: check "
                   "`tenantctl status`")


def _checked_tenant(slug: str, tenants_dir: Path):
    if not re.fullmatch(SLUG_PATTERN, slug):
        raise fail(f"{slug!r} is not a tenant slug")
    return tenant_for(slug, tenants_dir)


def _tenant_id(slug: str, tenant, given: str | None) -> str:
    import uuid

    if given is not None:
        try:
            given = str(uuid.UUID(given))
        except ValueError:
            raise fail(f"--tenant-id {given!r} is not a UUID") from None
        if tenant is not None and str(tenant.tenant_id) != given:
            raise fail(f"--tenant-id {given} is not tenants/{slug}.yaml's tenant_id ({tenant.tenant_id})")
        return given
    if tenant is None:
        raise fail(f"no tenants/{slug}.yaml: pass --tenant-id")
    return str(tenant.tenant_id)


def _record(database: _database, manifest: dict, out_file: Path, written: str, slug: str, env: str) -> None:
    """The export's manifest recorded beside the environment's state (fleet.export_records), for the gate of a
    removal `tenantctl up` offboards. Not recorded (a backend without records): said; the file stands."""
    import hashlib

    from fleet.export_records import ExportRecordError, record_of, write_record

    record = record_of(manifest, out_file.name, hashlib.sha256(written.encode("utf-8")).hexdigest())
    try:
        where = write_record(database.store(), record)
    except ExportRecordError as exc:
        err.print(f"[yellow]the export is not recorded beside the state ({exc}): a removal of {slug} by `tenantctl "
                  f"up` will refuse; offboard it with `tenantctl destroy {slug} --env {env} --export FILE`[/]")
        return
    err.print(f"recorded the export's manifest in {where}", markup=False)


class _database:
    """The provisioner URL of the environment: the flag, the rehearsal's (its embedded PostgreSQL for the while),
    or the platform stack's."""

    def __init__(self, env: str, tenants_dir: Path, database_url: str | None, rehearsal: bool,
                 state_dir: Path | None, allow_unverified_tls: bool) -> None:
        self.args = (env, tenants_dir, database_url, rehearsal, state_dir, allow_unverified_tls)
        self.context = None
        self.backend = None  # the rehearsal's, once entered

    def store(self):
        """The record store beside the environment's state; ExportRecordError where there is none."""
        from fleet.export_records import ExportRecordError, store_for

        if self.backend is not None:
            return store_for(self.backend)
        from fleet.stack_files import find_project_root
        from fleet.state_folder import UnsupportedBackend, project_store

        try:
            return project_store(find_project_root(self.args[1].resolve().parent))
        except UnsupportedBackend as exc:
            raise ExportRecordError(str(exc)) from None

    def __enter__(self) -> str:
        env, tenants_dir, database_url, rehearsal, state_dir, allow = self.args
        if rehearsal:
            from fleet import engine
            from fleet.rehearse import RehearseFailure, rehearsal_sources

            self.context = rehearsal_sources(tenants_dir, checked_url(database_url, "--database-url", allow),
                                             state_dir)
            try:
                spec_for, _stacks, url = self.context.__enter__()
                from fleet.rehearse import STACK

                self.backend = spec_for(STACK, None).backend
                return url
            except (engine.EngineError, RehearseFailure) as exc:
                raise fail(str(exc)) from None
        from fleet.offboarding import database_url_from_stack

        url = checked_url(database_url or database_url_from_stack(env), "--database-url", allow)
        if url is None:
            raise fail(f"no database URL for environment {env}: pass --database-url (the platform stack's "
                       "databaseUrl could not be read)")
        return url

    def __exit__(self, *exc_info) -> bool:
        if self.context is not None:
            return bool(self.context.__exit__(*exc_info))
        return False


def export_gate(export_file: Path | None, without_export: bool, database_url: str | None, tenant_id: str | None,
                env: str, slug: str) -> None:
    """Offboarding's gate: an export of the tenant as it is now, less than 24 hours old, or --without-export."""
    from datetime import UTC, datetime

    from fleet.tenant_export import ExportError, current_tenant, read_export_file
    from tenancy.tenant_export import gate_problems, parse_export

    if export_file is not None and without_export:
        raise fail("--export and --without-export exclude each other")
    if without_export:
        err.print(f"[yellow]offboarding {slug} without an export (--without-export): what the destroy deletes is "
                  "not kept anywhere[/]")
        return
    where = f"tenantctl export {slug} {'--rehearsal' if env == 'rehearsal' else f'--env {env}'}"
    if export_file is None:
        raise fail(f"offboarding needs an export of tenant {slug} made within 24 h: run `{where} --recipient KEY.pub "
                   "--out FILE` and pass --export FILE, or pass --without-export to offboard without one")
    if database_url is None or tenant_id is None:
        raise fail(f"--export {export_file}: the tenant's row cannot be read to compare (no database URL or tenant "
                   "id): pass --database-url (and --tenant-id without a tenant file)")
    try:
        manifest = parse_export(read_export_file(export_file), str(export_file))["manifest"]
        problems = gate_problems(manifest, current_tenant(database_url, tenant_id, env), datetime.now(UTC))
    except ExportError as exc:
        raise fail(str(exc)) from None
    if problems:
        raise fail(f"--export {export_file} does not cover tenant {slug} as it is now: {'; '.join(problems)}; "
                   f"make a new one (`{where} ...`)")
    err.print(f"export {export_file} matches tenant {slug}'s row {manifest['row']['id']} "
              f"(made {manifest['created_at']})", markup=False)
