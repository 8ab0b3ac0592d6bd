"""Orchestrates `tenantctl rehearse`: the local services, one engine operation, and the summary."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from components.naming import split_stack_name
from components.settings import PlatformSettings
from fleet import change_counts, desired_state, engine, environment_lock, rehearsal_cluster, upgrade_guard
from fleet.environment_id import EnvironmentIdError, recorded_id
from fleet.error_lines import one_line
from fleet.project_runs import FleetEnvironment, digest_inputs
from fleet.rehearsal import (
    STACK,
    STATE_FILE,
    LocalServices,
    RehearsalResult,
    RehearsalState,
    _plain_stack_config,
    rehearsal_backend,
    spec_maker,
    tenant_outcome,
)
from fleet.rollout import FleetResult, SelectionRefused, candidate_stacks, run_fleet, select
from fleet.stack_files import find_project_root
from fleet.stack_identity import read_identities
from fleet.stack_run import StackJob, process_pool, run_in_process
from fleet.state_folder import rehearsal_records
from services import aws_emulator
from services.kube_apiserver import KubeApiServerError, LocalKubeApiServer
from services.localpg import LocalPostgres, LocalPostgresError
from services.receiver import WebhookReceiver
from tenancy import app_schema, db, tenant_data
from tenancy.environment_claim import release_database
from tenancy.loader import TenantLoadError, require_tenants

DATABASE = "app"
REHEARSAL_DIR = ".rehearsal"
REHEARSAL_CONCURRENCY = 2
APPLY_HINT = "tenantctl rehearse"  # the rehearsal's `up`


class RehearseFailure(Exception):
    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


def _state_dir(base: Path, database_url: str | None) -> Path:
    if database_url is None:
        return base / "embedded"
    digest = hashlib.sha256(db.describe_dsn(database_url).encode()).hexdigest()[:12]
    return base / f"external-{digest}"


def rehearsal_option(root: Path, state_dir: Path) -> str:
    """How a command names the rehearsal of `state_dir` in a hint: `--rehearsal`, with `--state-dir` unless it is
    the default folder and `--database-url` for an external database (never the URL itself: it may hold a
    password)."""
    words = ["--rehearsal"]
    if state_dir.parent.resolve() != (root / REHEARSAL_DIR).resolve():
        words.append(f"--state-dir {shlex.quote(str(state_dir.parent))}")
    if state_dir.name != "embedded":
        words.append("--database-url <the rehearsal's database URL>")
    return " ".join(words)


def run_rehearse(
    tenants_dir: Path,
    database_url: str | None,
    app_database_url: str | None,
    destroy_all: bool,
    progress: Callable[[str], None] | None = None,
    state_base: Path | None = None,
    preview: bool = False,
    only: set[str] | None = None,
    force: bool = False,
    refresh: bool = False,
    keep_running: bool = False,
) -> RehearsalResult:
    """`tenantctl rehearse`: a tenant stack whose desired state is unchanged since a clean run is skipped
    (fleet.skipping) unless `force` (every selected stack runs) or `refresh` (refreshed first, then run). With
    `keep_running`, PostgreSQL and the Kubernetes API server are left running after the run (`rehearse --stop`)."""
    say = progress or (lambda _line: None)
    root = find_project_root(tenants_dir.resolve().parent)
    try:
        tenants = require_tenants(tenants_dir, allow_none=destroy_all)
    except TenantLoadError as exc:
        if not destroy_all:
            raise RehearseFailure(f"{len(exc.problems)} error(s) in tenant files",
                                  [str(p) for p in exc.problems]) from None
        tenants = []
    try:
        version = engine.engine_version(root)
    except engine.EngineError as exc:
        raise RehearseFailure(str(exc)) from None
    state_dir = _state_dir(state_base or root / REHEARSAL_DIR, database_url)
    interrupted = "interrupted: run `tenantctl rehearse` again to finish (the engine saved what it did), or " \
                  "`tenantctl rehearse --destroy`"
    operation = "destroy" if destroy_all else "preview" if preview else "up"
    hint = f"tenantctl unlock {rehearsal_option(root, state_dir)} --force"
    with (_exclusive(state_dir),
          _environment_locked(state_dir, f"rehearse {operation}", say, read_only=operation == "preview",
                              unlock_hint=hint),
          _remembering_interrupts() as seen):
        try:
            result = _rehearse(root, tenants_dir, tenants, version, state_dir, database_url, app_database_url,
                               destroy_all, preview, say, only, force, refresh, keep_running and not destroy_all)
        except KeyboardInterrupt:
            # The engine saved what it did; the local services were stopped on the way out.
            raise RehearseFailure(interrupted) from None
        if seen.is_set():  # a library caught the KeyboardInterrupt on its way up: Ctrl-C still means stop
            raise RehearseFailure(interrupted)
        return result


@contextlib.contextmanager
def _remembering_interrupts() -> Iterator[threading.Event]:
    """Ctrl-C raises KeyboardInterrupt as usual, and is also remembered, so a run that was interrupted never
    reports success even if some code on the way swallowed the exception."""
    seen = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum, frame):
        seen.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _exclusive(state_dir: Path, wait: bool = False, wait_timeout: float = 0.0) -> Iterator[None]:
    """One rehearsal per state folder at a time: two would share one stack, database and emulator. (A preview
    too: it starts the same local services. The kernel drops the flock with its process, so it is never stale.)
    With `wait`, a held folder is waited for, up to `wait_timeout` seconds."""
    state_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_timeout
    with (state_dir / ".lock").open("w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait and time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    continue
                holder = environment_lock.lock_status(rehearsal_records(state_dir), STACK)
                raise RehearseFailure(f"another rehearsal is running on {state_dir}"
                                      f"{' (' + holder + ')' if holder else ''}; wait for it to finish") from None
        yield


@contextlib.contextmanager
def _environment_locked(state_dir: Path, label: str, say: Callable[[str], None], *, read_only: bool,
                        unlock_hint: str, wait: bool = False, wait_timeout: float = 900.0) -> Iterator[None]:
    """The environment lock of the rehearsal (rule 5), beside its state: a run that changes it takes it, so the
    record names who holds the environment (`label`); a read-only run only reports it (rule 2)."""
    records = rehearsal_records(state_dir)
    if read_only:
        held = environment_lock.lock_status(records, STACK)
        if held:
            say(held)
        yield
        return
    try:
        with environment_lock.environment_lock(records, STACK, label, say=say, unlock_hint=unlock_hint, wait=wait,
                                               wait_timeout=wait_timeout):
            yield
    except environment_lock.LockError as exc:
        raise RehearseFailure(str(exc)) from None


@dataclass(frozen=True)
class RunningServices:
    services: LocalServices
    aws_fresh: bool  # the AWS emulator was (re)started: the objects the stacks' state names are gone
    postgres: LocalPostgres | None  # the embedded PostgreSQL (stopped on the way out); None: a given database
    kube: LocalKubeApiServer | None = None  # the local API server; None: Kubernetes objects are rendered to files


@contextlib.contextmanager
def _local_services(root: Path, state_dir: Path, state: RehearsalState, database_url: str | None,
                    app_database_url: str | None, say: Callable[[str], None],
                    keep_running: bool = False) -> Iterator[RunningServices]:
    """What the rehearsal's stacks talk to, for the while: its PostgreSQL (the embedded one started, and stopped
    again; a given database as it is) with the application's schema, the AWS emulator the state folder keeps
    running (started and kept when none runs: rule 6), its Kubernetes API server (fleet.rehearsal_cluster: started
    on its etcd data, set up, and stopped again), and the receiver on its recorded port. PostgreSQL and the API
    server that an earlier `--keep-running` left are used as they are and left running; with `keep_running`, those
    this run starts are left running too. A service that cannot start (or a database error on the way) is a
    RehearseFailure."""
    postgres = None
    try:
        with contextlib.ExitStack() as services:
            if database_url is None:
                postgres = LocalPostgres(root=state_dir / "postgres", port=state.environment.get("postgres_port"))
                if postgres.adopt():
                    say(f"PostgreSQL (kept running) on port {postgres.port}")
                else:
                    say("starting a local PostgreSQL for the rehearsal")
                    postgres.start()
                state.environment["postgres_port"] = postgres.port
                if not _database_exists(postgres):
                    postgres.create_database(DATABASE)
                database_url = postgres.dsn(user="tenant_provisioner", dbname=DATABASE)
                schema_url = postgres.dsn(dbname=DATABASE)
            else:
                schema_url = database_url
            _require_utf8(schema_url)
            if app_schema.ensure_schema(schema_url):
                say("loaded db/app_schema.sql")
            app_url = app_database_url or db.with_user(database_url, app_schema.APP_ROLE)
            aws = aws_emulator.ensure_running(state_dir)
            say(f"AWS emulator (moto) on {aws.endpoint}")
            kube = None
            mode = rehearsal_cluster.kubernetes_mode(state_dir, state.environment)
            if state.environment.get(rehearsal_cluster.MODE_KEY) != mode:
                state.environment[rehearsal_cluster.MODE_KEY] = mode
                state.save()  # before any stack is applied one way or the other
            if mode == rehearsal_cluster.API_SERVER:
                kube = services.enter_context(rehearsal_cluster.running_cluster(
                    state_dir, say, keep_running=keep_running, namespaces=_cluster_namespaces(root)))
            else:
                say("Kubernetes objects are rendered to files in this state folder (its stacks began that way): "
                    "`tenantctl rehearse --destroy`, then `tenantctl rehearse`, applies them to a local API server")
            fernet_key = state.secret("fernetKey", _new_fernet_key)
            receiver = services.enter_context(_receiver(app_url, fernet_key, state.environment.get("receiver_port", 0),
                                                        say))
            state.environment["receiver_port"] = int(receiver.base_url.rsplit(":", 1)[1])
            state.save()
            yield RunningServices(LocalServices(database_url, app_url, receiver.base_url, aws.endpoint,
                                                str(state_dir / rehearsal_cluster.KUBECONFIG) if kube else None),
                                  aws.fresh, postgres, kube)
        state.save()
    except (LocalPostgresError, db.DatabaseError, aws_emulator.AwsEmulatorError,
            rehearsal_cluster.ClusterError) as exc:
        raise RehearseFailure(str(exc)) from None
    finally:
        if postgres is not None:
            if keep_running and not postgres.adopted and postgres.running:
                postgres.leave_running()
            else:
                postgres.stop()  # an adopted one is only let go


def _cluster_namespaces(root: Path) -> tuple[str, ...]:
    """The namespaces a production cluster has that the program names but does not create (monitoring, ingress)."""
    plain = _plain_stack_config(root)
    defaults = PlatformSettings()
    return (plain.get("monitoringNamespace") or defaults.monitoring_namespace,
            plain.get("ingressNamespace") or defaults.ingress_namespace)


def _shared_namespace(root: Path) -> str:
    return _plain_stack_config(root).get("sharedNamespace") or PlatformSettings().shared_namespace


def _rehearse(root: Path, tenants_dir: Path, tenants, version: str, state_dir: Path, database_url: str | None,
              app_database_url: str | None, destroy_all: bool, preview: bool,
              say: Callable[[str], None], only: set[str] | None = None, force: bool = False,
              refresh: bool = False, keep_running: bool = False) -> RehearsalResult:
    state = RehearsalState.load(state_dir / STATE_FILE)
    operation = "destroy" if destroy_all else "preview" if preview else "up"
    try:
        with _local_services(root, state_dir, state, database_url, app_database_url, say, keep_running) as running:
            result = _operate(root, tenants_dir, state, state_dir, running.services, operation, tenants,
                              running.aws_fresh, version, say, only, force, refresh)
            if running.kube is not None and operation == "up":
                # The application's deployment in the shared namespace, once the platform stack has made it.
                rehearsal_cluster.shared_workload(running.kube, _shared_namespace(root))
            if keep_running:
                result.kept_running = _kept_running(state_dir, running)
                say("left running until `tenantctl rehearse --stop`:")
                for line in _kept_running_lines(result.kept_running):
                    say(line)
    except engine.EngineError as exc:
        raise RehearseFailure(str(exc)) from None
    except KubeApiServerError as exc:
        raise RehearseFailure(f"the rehearsal's Kubernetes API server: {exc}") from None
    if destroy_all and result.ok:
        environment = recorded_id(rehearsal_records(state_dir), STACK)
        # An external database outlives the rehearsal: give up its claim.
        if running.postgres is None and environment:
            release_database(running.services.database_url, environment)
        aws_emulator.stop(state_dir)
        rehearsal_cluster.destroy(state_dir)
        if running.postgres is not None:
            running.postgres.destroy()
        shutil.rmtree(state_dir, ignore_errors=True)
    return result


def stop_services(state_base: Path) -> list[str]:
    """`tenantctl rehearse --stop`: every service a state folder under `state_base` owns (its AWS emulator, the
    PostgreSQL and Kubernetes API server `--keep-running` or a killed run left), stopped if it is still the process
    that was recorded."""
    stopped = []
    folders = sorted(p for p in state_base.iterdir() if p.is_dir()) if state_base.is_dir() else []
    for state_dir in folders:
        if (state_dir / aws_emulator.RECORD).is_file() and aws_emulator.stop(state_dir):
            stopped.append(f"{state_dir.name}: the AWS emulator is not running")
        try:
            if LocalPostgres.stop_recorded(state_dir / "postgres"):
                stopped.append(f"{state_dir.name}: stopped its PostgreSQL")
            if rehearsal_cluster.stop_kept(state_dir):
                stopped.append(f"{state_dir.name}: stopped its Kubernetes API server (etcd, kube-apiserver, "
                               "kube-controller-manager)")
        except (LocalPostgresError, rehearsal_cluster.ClusterError) as exc:
            raise RehearseFailure(str(exc)) from None
    return stopped


def _kept_running(state_dir: Path, running: RunningServices) -> dict[str, str]:
    """How to reach what `--keep-running` leaves running; never a password (the embedded database has none, and a
    given database is described without it)."""
    reach = {}
    if running.kube is not None:
        reach["kubeconfig"] = str(state_dir / rehearsal_cluster.KUBECONFIG)
    reach["database_url" if running.postgres is not None else "database"] = (
        running.postgres.dsn(dbname=DATABASE) if running.postgres is not None
        else db.describe_dsn(running.services.database_url))
    reach["aws_endpoint"] = running.services.aws_endpoint
    return reach


def _kept_running_lines(reach: dict[str, str]) -> list[str]:
    lines = []
    if "kubeconfig" in reach:
        lines.append(f"  Kubernetes: kubectl --kubeconfig {reach['kubeconfig']} get namespaces")
    if "database_url" in reach:
        lines.append(f"  database: psql '{reach['database_url']}'")
    else:
        lines.append(f"  database: {reach['database']} (the --database-url given; its password is not shown)")
    lines.append(f"  AWS emulator: {reach['aws_endpoint']}")
    return lines


def _receiver(app_url: str, fernet_key: str, port: int, say: Callable[[str], None]) -> WebhookReceiver:
    """The receiver on its earlier port (the stack's webhook URLs name it), or on a new one if that is taken."""
    try:
        return WebhookReceiver(app_url, fernet_key, port=port).start()
    except OSError as exc:
        if not port or exc.errno != errno.EADDRINUSE:
            raise RehearseFailure(f"the webhook receiver cannot listen: {exc.strerror}") from None
        say(f"port {port} is taken: the webhook receiver moves, and the checks run again against the new URL")
        return WebhookReceiver(app_url, fernet_key, port=0).start()


def _require_utf8(dsn: str) -> None:
    with db.connect(dsn, autocommit=True) as connection:
        encoding = connection.execute("SHOW server_encoding").fetchone()[0]
    if isinstance(encoding, bytes):  # psycopg hands out bytes where the client encoding is SQL_ASCII
        encoding = encoding.decode("ascii", "replace")
    if encoding.upper() not in ("UTF8", "UTF-8"):
        raise RehearseFailure(f"{db.describe_dsn(dsn)} uses the {encoding} encoding; tenant names and preferences "
                              "need UTF8 (createdb -E UTF8 -T template0)")


def _recorded_rehearsal(tenants_dir: Path, database_url: str | None,
                        state_base: Path | None) -> tuple[Path, Path, RehearsalState]:
    """The project, state folder and state a previous rehearsal left; EngineError when there is none."""
    root = find_project_root(tenants_dir.resolve().parent)
    state_dir = _state_dir(state_base or root / REHEARSAL_DIR, database_url)
    state = RehearsalState.load(state_dir / STATE_FILE)
    if "passphrase" not in state.environment.get("secrets", {}):
        raise engine.EngineError(f"no rehearsal in {state_dir}: run `tenantctl rehearse` first")
    return root, state_dir, state


def existing_stack(tenants_dir: Path, database_url: str | None, state_base: Path | None = None,
                   stack: str = STACK):
    """A rehearsal stack as the last run left it, with its stored config, for refresh, export or a destroy;
    no local service is started. EngineError when there is none."""
    root, state_dir, state = _recorded_rehearsal(tenants_dir, database_url, state_base)
    backend = rehearsal_backend(root, state_dir, state.environment["secrets"]["passphrase"])
    return engine.open_stack(engine.StackSpec(backend, stack), create=False)


def _operate(root: Path, tenants_dir: Path, state: RehearsalState, state_dir: Path, services: LocalServices,
             operation: str, tenants, aws_fresh: bool, version: str, say: Callable[[str], None],
             only: set[str] | None = None, force: bool = False, refresh: bool = False) -> RehearsalResult:
    try:  # made on the first `up` only: a preview records nothing (rule 2)
        environment = recorded_id(rehearsal_records(state_dir), STACK, create=operation == "up")
    except EnvironmentIdError as exc:
        raise RehearseFailure(str(exc)) from None
    spec_for = spec_maker(root, tenants_dir, state, state_dir, services, environment)
    backend = spec_for(STACK, None).backend
    # Before any stack runs.
    upgrade_guard.refuse_unmigrated(engine.StackSpec(backend, STACK), operation,
                                    f"tenantctl migrate-stacks {rehearsal_option(root, state_dir)}")
    candidates = candidate_stacks(STACK, tenants, only, None) if operation != "destroy" else None
    stacks = engine.list_stacks(backend) if candidates is None else engine.existing_stacks(backend, candidates)
    tenant_stacks = _tenant_stacks(stacks)
    if aws_fresh and operation != "preview":
        _refresh_aws_objects(spec_for, tenant_stacks, say)
    if only is not None:
        unknown = sorted(only - {t.slug for t in tenants} - {split_stack_name(n)[1] for n in tenant_stacks})
        if unknown:
            raise RehearseFailure(f"--only names no tenant file or stack: {', '.join(unknown)}")
    if operation == "destroy":
        fleet = destroy_environment(STACK, tenant_stacks, STACK in stacks, spec_for)
        return rehearsal_result(fleet, version)
    try:
        # The rehearsal has no git range: a stack without a file is always an orphan, never a removal.
        selection = select(STACK, tenants, stacks, only, identities=read_identities(backend, tenant_stacks))
    except SelectionRefused as exc:
        raise RehearseFailure(f"refused before anything ran: {len(exc.problems)} problem(s)", exc.problems) from None
    # Every tenant the database holds rows for is counted, declared or not: a loss is a loss.
    counted = known_tenant_ids(services.database_url, [str(t.tenant_id) for t in tenants])
    before = tenant_row_counts(services.database_url, counted) if operation == "up" else {}
    say(f"pulumi {operation} of {len(tenants)} tenant(s), one stack each, on {version}")
    fleet = run_fleet(selection, operation, spec_for, concurrency=REHEARSAL_CONCURRENCY, say=say,
                      platform_applied=STACK in stacks, apply_hint=APPLY_HINT,
                      shared=digest_inputs(root, STACK, operation, backend, spec_for, []),
                      commit=desired_state.deployed_commit(root) if operation == "up" else None,
                      force=force, refresh=refresh)
    result = rehearsal_result(fleet, version)
    if operation == "up":
        after = tenant_row_counts(services.database_url, counted)
        result.rows_lost = sum(max(0, before[t] - after[t]) for t in counted)
        say(f"{result.rows_lost} row(s) lost of the {sum(before.values())} that {len(counted)} tenant(s) had before")
    return result


def _tenant_stacks(stacks: list[str]) -> list[str]:
    return [name for name in stacks if split_stack_name(name)[0] == STACK and split_stack_name(name)[1]]


def _refresh_aws_objects(spec_for, tenant_stacks: list[str], say: Callable[[str], None]) -> None:
    """moto keeps nothing across restarts: let the engine see the AWS objects are gone before it plans. (Only
    those: the Kubernetes objects live in the rehearsal's API server, whose etcd data outlives a restart.)"""
    if not tenant_stacks:
        return
    say("the AWS emulator was restarted: refreshing its objects first")
    with process_pool(REHEARSAL_CONCURRENCY) as pool:
        for future in [run_in_process(pool, StackJob(spec_for(name, None), "refresh", refresh_types="aws:"))
                       for name in tenant_stacks]:
            future.result()


def destroy_environment(env: str, tenant_stacks: list[str], platform: bool, spec_for) -> FleetResult:
    """Every tenant stack offboarded (its guards lifted: rule 4) and removed with its history, then the platform
    stack (only if every tenant went). The guards are lifted in the state, not by running the program: everything
    goes, so nothing of a tenant file needs reading, and a broken one cannot stop the teardown."""
    result = FleetResult(env, "destroy", None, [], [])
    with process_pool(REHEARSAL_CONCURRENCY) as pool:
        futures = [run_in_process(pool, StackJob(spec_for(name, None), "offboard", erase_history=True,
                                                 tenant_file=False))
                   for name in tenant_stacks]
        result.removed = [future.result() for future in futures]
        if platform and all(o.ok for o in result.removed):
            result.platform = run_in_process(pool, StackJob(spec_for(env, None), "destroy", remove_stack=True)).result()
    return result


def rehearsal_result(fleet: FleetResult, version: str) -> RehearsalResult:
    tenants = [tenant_outcome(o.slug, o) for o in fleet.tenants]
    errors = [f"{o.stack}: {e}" for o in [*([fleet.platform] if fleet.platform else []), *fleet.removed]
              for e in o.errors if not o.ok]
    summary: dict[str, int] = {}
    for outcome in fleet.outcomes:
        for op, count in outcome.summary.items():
            summary[op] = summary.get(op, 0) + count
    return RehearsalResult(
        engine=version, operation=fleet.operation, tenants=tenants,
        changes=sum(o.changes for o in fleet.outcomes),
        removed_tenants=sorted(o.slug for o in fleet.removed if o.ok and o.tenant_deleted),
        errors=errors + fleet.notes + orphan_notes(fleet), summary=summary, remarks=list(fleet.remarks),
    )


def known_tenant_ids(database_url: str, declared: list[str]) -> list[str]:
    """The declared tenants and every tenant that has a tenant_configs row."""
    with db.connect(database_url) as connection:
        rows = connection.execute("SELECT tenant_id::text FROM tenant_configs").fetchall()
    return sorted(set(declared) | {row[0] for row in rows})


def orphan_notes(fleet: FleetResult) -> list[str]:
    return [f"{fleet.env}.{slug}: orphan: no tenant file, and nothing removed it by name; left alone (restore its "
            "file, or offboard it by name)" for slug in fleet.orphans]


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
    title = f"Rehearsal ({result.operation}, {result.engine}): {result.changes} change(s)"
    if result.operation == "up":
        title += f", {result.rows_lost} row(s) lost"
    if result.skipped:
        title += f", {len(result.skipped)} tenant(s) skipped"
    table = Table(title=title)
    for column in ("tenant", "status", *change_counts.COLUMNS, "checks"):
        table.add_column(column)
    blank = [""] * len(change_counts.COLUMNS)
    for outcome in result.tenants:
        skipped = outcome.status == "skipped"
        cells = blank if skipped else change_counts.terminal_cells(outcome.counts)
        table.add_row(outcome.slug, outcome.status, *cells, "not run" if skipped else _checks_cell(outcome))
        if outcome.reason and not outcome.errors:  # why it ran, or was skipped (a failure's reason is its error)
            table.add_row("", "", *blank, ("" if skipped else "ran: ") + outcome.reason)
        if outcome.drift:
            table.add_row("", "drift", *blank, ", ".join(f"{n} {op}" for op, n in sorted(outcome.drift.items())))
        for note in outcome.recovered:
            table.add_row("", "recovered", *blank, note)
        if outcome.tier_change:
            table.add_row("", "tier", *blank, outcome.tier_change)
        for error in outcome.errors:  # a skipped tenant's reason too
            table.add_row("", "", *blank, one_line(error))
    for slug in result.removed_tenants:
        table.add_row(slug, "deleted", *blank, "-")
    for error in result.errors:
        table.add_row("(error)", "failed", *blank, one_line(error) if error else "")
    for remark in result.remarks:
        table.add_row("(note)", "", *blank, remark)
    return table


def _checks_cell(outcome) -> str:
    """The checks' verdicts, and when they ran; "not run" when no check ran (a failed stack exports none)."""
    if not outcome.checks or (not outcome.checked_now and not outcome.checked_at):
        return "not run" + (" (the stack failed)" if outcome.status == "failed" else "")
    checks = ", ".join(f"{n} {'ok' if ok else 'FAILED'}" for n, ok in outcome.checks.items())
    return checks if outcome.checked_now else f"{checks} (checked {outcome.checked_at})"


@contextlib.contextmanager
def rehearsal_sources(tenants_dir: Path, database_url: str | None, state_base: Path | None = None,
                      say: Callable[[str], None] = lambda _line: None, *,
                      kubernetes: bool = True) -> Iterator[tuple[Callable, list[str], str]]:
    """The rehearsal environment as `tenantctl status` reads it: its stack specs, its stacks, and a database URL
    (the embedded PostgreSQL is started for the while, and stopped again; one kept running is used as it is), with
    its Kubernetes API server up for the while too where its stacks apply to one and `kubernetes` (an engine run,
    a refresh included, reads their objects back from it)."""
    with rehearsal_cluster_sources(tenants_dir, database_url, state_base, say,
                                   kubernetes=kubernetes) as (spec_for, stacks, url, _kube):
        yield spec_for, stacks, url


@contextlib.contextmanager
def rehearsal_cluster_sources(tenants_dir: Path, database_url: str | None, state_base: Path | None = None,
                              say: Callable[[str], None] = lambda _line: None, *, kubernetes: bool = True
                              ) -> Iterator[tuple[Callable, list[str], str, LocalKubeApiServer | None]]:
    """`rehearsal_sources`, and the running API server (None where the rehearsal renders its objects to files)."""
    root, state_dir, state = _recorded_rehearsal(tenants_dir, database_url, state_base)
    spec_for = spec_maker(root, tenants_dir, state, state_dir, None)
    stacks = engine.list_stacks(spec_for(STACK, None).backend)
    try:
        with contextlib.ExitStack() as services:
            kube = None
            if kubernetes and state.environment.get(rehearsal_cluster.MODE_KEY) == rehearsal_cluster.API_SERVER:
                kube = services.enter_context(rehearsal_cluster.running_cluster(state_dir, say, set_up_cluster=False))
            if database_url is not None:
                yield spec_for, stacks, database_url, kube
                return
            postgres = LocalPostgres(root=state_dir / "postgres", port=state.environment.get("postgres_port"))
            services.callback(postgres.stop)  # an adopted one is only let go
            if not postgres.adopt():
                postgres.start()
            yield spec_for, stacks, postgres.dsn(user="tenant_provisioner", dbname=DATABASE), kube
    except (LocalPostgresError, rehearsal_cluster.ClusterError) as exc:
        raise RehearseFailure(str(exc)) from None


@contextlib.contextmanager
def rehearsal_environment(tenants_dir: Path, database_url: str | None, state_base: Path | None, operation: str,
                          say: Callable[[str], None], *, read_only: bool = False, services: bool = True,
                          wait: bool = False, wait_timeout: float = 900.0) -> Iterator[FleetEnvironment]:
    """The rehearsal as an environment like any other (fleet rule 1), for `tenantctl preview|up|migrate-stacks
    --rehearsal` (`operation`), held for the while: the state a rehearsal left (EngineError when there is none),
    its state folder kept from another rehearsal's run, its environment lock taken (a `read_only` run only
    reports a held one: rule 2), and, with `services`, what its stacks talk to, as `tenantctl rehearse` starts
    it (`_local_services`: the AWS emulator kept running is used, what does not run is started, and all but the
    emulator stopped again; a restarted emulator has its objects refreshed before a run that changes anything).
    The run itself is `fleet.project_runs.run` or `migrate`, with the same selection, waves and summary as on a
    project environment."""
    root, state_dir, _state = _recorded_rehearsal(tenants_dir, database_url, state_base)
    option = rehearsal_option(root, state_dir)
    with (_exclusive(state_dir, wait, wait_timeout),
          _environment_locked(state_dir, f"{operation} --rehearsal", say, read_only=read_only,
                              unlock_hint=f"tenantctl unlock {option} --force", wait=wait,
                              wait_timeout=wait_timeout)):
        state = RehearsalState.load(state_dir / STATE_FILE)  # as the last run left it, now that none runs
        records = rehearsal_records(state_dir)

        def environment_id(create: bool) -> str | None:
            try:
                return recorded_id(records, STACK, create=create)
            except EnvironmentIdError as exc:
                raise engine.EngineError(str(exc)) from None

        def fleet_environment(running: LocalServices | None) -> FleetEnvironment:
            def specs(env_id: str | None):
                return spec_maker(root, tenants_dir, state, state_dir, running, env_id)

            return FleetEnvironment(STACK, specs(None)(STACK, None).backend, specs, environment_id, option,
                                    create_on_preview=True,
                                    database_url=lambda: running.database_url if running else None)

        if not services:
            yield fleet_environment(None)
            return
        with _local_services(root, state_dir, state, database_url, None, say) as running:
            target = fleet_environment(running.services)
            if running.aws_fresh and not read_only:
                _refresh_aws_objects(target.specs(None), _tenant_stacks(engine.list_stacks(target.backend)), say)
            yield target


@contextlib.contextmanager
def rehearsal_stack(tenants_dir: Path, database_url: str | None, state_base: Path | None,
                    stack: str, operation: str, say: Callable[[str], None] = lambda _line: None, *,
                    wait: bool = False, wait_timeout: float = 900.0) -> Iterator[engine.StackSpec]:
    """One rehearsal stack's spec for a command that changes it (`tenantctl destroy|restore --rehearsal`), held
    as any run that changes the rehearsal is: its state folder kept from another rehearsal's run and its
    environment lock taken (rule 5), with the services its resources live in: the embedded PostgreSQL for the
    while, and the AWS emulator, kept running (rule 6). A restarted emulator holds nothing, so the stack's AWS
    objects are refreshed first."""
    from fleet.stack_run import run

    root, state_dir, _ = _recorded_rehearsal(tenants_dir, database_url, state_base)
    with (_exclusive(state_dir, wait, wait_timeout),
          _environment_locked(state_dir, f"{operation} --rehearsal", say, read_only=False,
                              unlock_hint=f"tenantctl unlock {rehearsal_option(root, state_dir)} --force",
                              wait=wait, wait_timeout=wait_timeout),
          rehearsal_sources(tenants_dir, database_url, state_base) as (spec_for, _stacks, _url)):
        try:
            aws = aws_emulator.ensure_running(state_dir)
        except aws_emulator.AwsEmulatorError as exc:
            raise RehearseFailure(str(exc)) from None
        spec = spec_for(stack, None)
        if aws.fresh:
            refreshed = run(StackJob(spec, "refresh", refresh_types="aws:", create=False))
            if not refreshed.ok:
                raise RehearseFailure(f"{stack}: {refreshed.errors[0]}")
        yield spec
