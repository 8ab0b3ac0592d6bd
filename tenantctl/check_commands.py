"""`tenantctl verify|handoff`: the post-deploy checks of a tenant, and what its ServiceDesk Plus admin needs."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tenantctl.app import (
    AllowUnverifiedTls,
    TenantsDir,
    app,
    checked_url,
    emit_json,
    err,
    fail,
    out,
    tenant_for,
)


def _stack_settings(tenants_dir: Path, stack: str) -> tuple[str, str]:
    from fleet.stack_files import StackFileError, find_project_root, read_stack_file

    try:
        stack_file = read_stack_file(find_project_root(tenants_dir.resolve().parent), stack)
    except StackFileError as exc:
        raise fail(str(exc)) from None
    return (
        str(stack_file.plain("webhookBaseUrl", "https://api.ai-agents.production")),
        str(stack_file.plain("sharedNamespace", "production")),
    )


@app.command()
def handoff(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    stack: Annotated[str, typer.Option("--env", "--stack", help="Environment the tenant is deployed to.")] = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Also print the signing secret (needs your AWS access to it).")
    ] = False,
    rehearsal: Annotated[bool, typer.Option(
        "--rehearsal", help="A tenant of the rehearsal environment (its receiver, region and AWS emulator).")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="With --rehearsal: the database it rehearses on (it picks the state folder).")] = None,
) -> None:
    """Print what the client's ServiceDesk Plus admin needs (Markdown); never the secret unless --reveal."""
    from fleet.handoff import HandoffError, render_handoff, reveal_signing_secret
    from fleet.stack_files import find_project_root, tenant_region

    tenant = tenant_for(slug, tenants_dir)
    if tenant is None:
        raise fail(f"no tenant file {tenants_dir / (slug + '.yaml')}")
    endpoint, aws_env, option = None, None, None
    if rehearsal:
        from fleet import engine
        from fleet.rehearsal_endpoints import recorded_endpoints

        try:
            ends = recorded_endpoints(tenants_dir, database_url, state_dir)
        except engine.EngineError as exc:
            raise fail(str(exc)) from None
        stack, base_url, shared_namespace, region = ends.env, ends.webhook_base_url, ends.shared_namespace, ends.region
        endpoint, aws_env, option = ends.aws_endpoint, ends.aws_environment(), "--rehearsal"
        if reveal and endpoint is None:
            raise fail("the rehearsal's AWS emulator is not running, and the secrets it held went with it: "
                       "run `tenantctl rehearse` (it starts the emulator and recreates them), then reveal again")
    else:
        base_url, shared_namespace = _stack_settings(tenants_dir, stack)
        region = tenant_region(find_project_root(tenants_dir.resolve().parent), stack, slug)
    out.print(render_handoff(tenant, stack, base_url, shared_namespace, region, endpoint, option), markup=False)
    if reveal:
        try:
            secret = reveal_signing_secret(tenant, region, endpoint, aws_env)
        except HandoffError as exc:
            raise fail(str(exc)) from None
        err.print("[yellow]The signing secret follows; do not paste it into tickets or chat.[/]")
        out.print(secret, markup=False)


class VerifyFormat(StrEnum):
    text = "text"
    json = "json"
    prometheus = "prometheus"


@app.command()
def verify(
    slug: Annotated[str | None, typer.Argument(help="Tenant slug (or --all).")] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Every tenant file, one after the other.")] = False,
    tenants_dir: TenantsDir = Path("tenants"),
    stack: Annotated[str, typer.Option("--env", "--stack", help="Environment whose webhookBaseUrl is used.")] = "prod",
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="TENANT_DATABASE_URL",
                                 help="Provisioner URL, to read the tenant's signing secret.")
    ] = None,
    app_database_url: Annotated[
        str | None, typer.Option("--app-database-url", envvar="APP_DATABASE_URL",
                                 help="The application's role (default: app_user on --database-url's database).")
    ] = None,
    webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="Override the tenant's webhook URL.")] = None,
    fernet_key: Annotated[
        str | None, typer.Option("--fernet-key", envvar="TENANT_FERNET_KEY", help="Application Fernet key.")
    ] = None,
    checks: Annotated[str | None, typer.Option(
        "--checks", help="Comma-separated: rls,webhook,kubernetes (default: rls,webhook, and kubernetes with a "
                         "--rehearsal that has a Kubernetes API server).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (= --format json).")] = False,
    output: Annotated[VerifyFormat, typer.Option(
        "--format", help="text, json, or prometheus (tenant_probe_success per tenant and check).")] = VerifyFormat.text,
    pushgateway: Annotated[str | None, typer.Option(
        "--pushgateway", envvar="TENANT_PUSHGATEWAY_URL", help="Also push the probe series to this Pushgateway.")
    ] = None,
    secrets_dir: Annotated[Path | None, typer.Option(
        "--secrets-dir", envvar="TENANT_SECRETS_DIR",
        help="A folder of secret files (database-url, app-database-url, fernet-key), such as a mounted Secret: "
             "each fills the option not given.")] = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
    rehearsal: Annotated[bool, typer.Option(
        "--rehearsal", help="The rehearsal environment: its database, Fernet key and receiver.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
) -> None:
    """Run the post-deploy checks (signed webhook probe, RLS isolation, and on the rehearsal Kubernetes isolation
    through its API server) for one tenant or all; exit 1 on a failure."""
    from tenancy import secret_files

    output = VerifyFormat.json if as_json else output
    as_json = output is VerifyFormat.json
    try:
        database_url = database_url or secret_files.read_secret(secrets_dir, secret_files.DATABASE_URL)
        app_database_url = app_database_url or secret_files.read_secret(secrets_dir, secret_files.APP_DATABASE_URL)
        fernet_key = fernet_key or secret_files.read_secret(secrets_dir, secret_files.FERNET_KEY)
    except secret_files.SecretFileError as exc:
        raise fail(str(exc), as_json=as_json) from None
    if (slug is None) == (not all_tenants):
        raise fail("give a tenant slug or --all (not both)", as_json=as_json)
    from tenancy.loader import TenantLoadError, require_tenants

    try:
        registry = require_tenants(tenants_dir)
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    if all_tenants:
        tenants = registry
        if webhook_url is not None:
            raise fail("--webhook-url names one tenant's endpoint: not with --all", as_json=as_json)
    else:
        tenant = tenant_for(slug, tenants_dir)
        if tenant is None:
            raise fail(f"no tenant file {tenants_dir / (slug + '.yaml')}", as_json=as_json)
        tenants = [tenant]
    from fleet.verification import KUBERNETES

    selected = [c.strip() for c in (checks or "rls,webhook").split(",") if c.strip()]
    if KUBERNETES in selected and not rehearsal:
        raise fail("the kubernetes checks ask the rehearsal's API server: give --rehearsal (a production cluster is "
                   "asked by the OnboardingCheck's identity, not yet by verify)", as_json=as_json)
    database_url = checked_url(database_url, "--database-url", allow_unverified_tls, as_json)
    app_database_url = checked_url(app_database_url, "--app-database-url", allow_unverified_tls, as_json)
    if rehearsal:
        from fleet import engine
        from fleet.rehearsal_endpoints import running_endpoints
        from fleet.rehearse import RehearseFailure

        say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
        try:
            with running_endpoints(tenants_dir, database_url, app_database_url, state_dir, say) as ends:
                cluster = None
                if ends.kube is not None:
                    from checks.kubernetes_isolation import SharedWorkload
                    from fleet.rehearsal_cluster import CHECKER, SHARED_WORKLOAD_ACCOUNT
                    from fleet.verification import KubernetesTarget

                    if checks is None:
                        selected.append(KUBERNETES)
                    cluster = KubernetesTarget(ends.kube.as_user(CHECKER), ends.shared_namespace, registry,
                                               SharedWorkload(ends.shared_namespace, SHARED_WORKLOAD_ACCOUNT))
                elif KUBERNETES in selected:
                    raise fail("this rehearsal renders its Kubernetes objects to files, so there is no API server to "
                               "ask: `tenantctl rehearse --destroy`, then `tenantctl rehearse`, applies them to one",
                               as_json=as_json)
                _verify_tenants(tenants, registry, selected, ends.database_url, ends.app_database_url,
                                ends.fernet_key, ends.webhook_base_url, webhook_url, all_tenants, output, pushgateway,
                                cluster)
        except (engine.EngineError, RehearseFailure) as exc:
            raise fail(str(exc), as_json=as_json) from None
        return
    if app_database_url is None and database_url:
        from psycopg.conninfo import conninfo_to_dict

        from tenancy.db import with_user

        if conninfo_to_dict(database_url).get("password"):
            # The provisioner's password is not app_user's: a derived URL would fail to log in (a false P0).
            raise fail("app_user has its own password: give --app-database-url (or APP_DATABASE_URL)",
                       as_json=as_json)
        app_database_url = with_user(database_url, "app_user")
    if "rls" in selected and not app_database_url:
        raise fail("the rls check needs --app-database-url (or --database-url)", as_json=as_json)
    base_url = None
    if "webhook" in selected:
        if not (database_url and fernet_key):
            raise fail("the webhook check needs --database-url and --fernet-key to read the signing secret",
                       as_json=as_json)
        if webhook_url is None:
            base_url, _shared = _stack_settings(tenants_dir, stack)
    _verify_tenants(tenants, registry, selected, database_url, app_database_url, fernet_key, base_url, webhook_url,
                    all_tenants, output, pushgateway)


def _verify_tenants(tenants, registry, selected: list[str], database_url: str | None, app_database_url: str | None,
                    fernet_key: str | None, base_url: str | None, webhook_url: str | None, all_tenants: bool,
                    output: VerifyFormat, pushgateway: str | None, cluster=None) -> None:
    from fleet import probe_metrics
    from fleet.verification import VerifyError, VerifyTarget, verify_tenant

    as_json = output is VerifyFormat.json
    # Other tenants of the registry are probed as real peers: isolation must hold against them, not just a made-up one.
    target = VerifyTarget(selected, database_url, app_database_url, fernet_key, base_url, webhook_url,
                          [t.tenant_id for t in registry], cluster)
    outcomes = []
    for tenant in tenants:
        try:
            outcomes.append(verify_tenant(tenant, target))
        except VerifyError as exc:
            if not all_tenants:
                raise fail(str(exc), as_json=as_json) from None
            outcomes.append(probe_metrics.setup_failure(tenant, str(exc)))
    if output is VerifyFormat.prometheus or pushgateway:
        exposition = probe_metrics.registry_for(outcomes)
        if pushgateway:
            try:
                probe_metrics.push(pushgateway, exposition)
            except probe_metrics.PushError as exc:
                raise fail(str(exc), as_json=as_json) from None
    if output is VerifyFormat.prometheus:
        sys.stdout.write(probe_metrics.exposition_text(exposition))
    elif as_json:
        reports = [{"slug": o.tenant.slug, "seconds": round(o.seconds, 3), **o.report.as_dict()} for o in outcomes]
        emit_json(reports[0] if not all_tenants else {"ok": all(o.report.ok for o in outcomes), "tenants": reports})
    else:
        for outcome in outcomes:
            out.print(outcome.report.render(f"tenant {outcome.tenant.slug}"), markup=False)
    if not all(o.report.ok for o in outcomes):
        raise typer.Exit(1)

