"""Row-level security checks: proof, as the application's own role, that one tenant cannot reach another's rows.

Behaviour decides. Connected as the application role, inside a transaction that is always rolled
back, the checks plant canary rows for the tenant and for other tenants (a made-up one, and real
ones when their ids are given), then, on every table that has a `tenant_id` column:
- under the tenant's context, another tenant's rows must not be visible, an insert for another
  tenant must be refused, and a blind UPDATE and DELETE (no WHERE, no RETURNING, so only the write
  policies apply) must touch no row but the tenant's own;
- with an empty context, and in a fresh session whose context was never set (NULL), no row may be
  visible or changed and no insert accepted.
A catalogue sweep then names what behaviour alone can miss: a tenant table without RLS enabled and
forced, a view, materialized view or SECURITY DEFINER function the role can use that reads a tenant
table with the rights of an owner who bypasses RLS, and TRUNCATE, REFERENCES or TRIGGER on a tenant
table (TRUNCATE ignores RLS). Every failure names the object and the fix. Nothing is ever committed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID, uuid4

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from checks.report import CheckReport, CheckResult
from tenancy import db
from tenancy.app_schema import TENANT_CONFIGS, TENANT_TABLES, TENANT_VARIABLE
from tenancy.redaction import redact as redact_text

CONNECTION = "database_connection"
APP_ROLE = "app_role_privileges"
RLS_FLAGS = "rls_enabled_and_forced"
OWNER_RIGHTS = "no_owner_rights_bypass"
TABLE_PRIVILEGES = "no_rls_bypassing_privileges"
TENANT_CONTEXT = "set_tenant_context"
CROSS_TENANT = "cross_tenant_isolation"
NO_CONTEXT = "no_context_isolation"

# A check must not hang a deployment behind a lock (e.g. a migration holding ACCESS EXCLUSIVE).
STATEMENT_TIMEOUT = "15s"
# Real other tenants probed besides the made-up one: enough to catch a policy that favours some tenants.
MAX_REAL_PEERS = 3
RISKY_PRIVILEGES = {
    "TRUNCATE": "TRUNCATE empties the table for every tenant, ignoring row-level security",
    "REFERENCES": "REFERENCES lets a foreign key probe which tenant_id values exist in other tenants' rows",
    "TRIGGER": "TRIGGER runs the role's code on other tenants' rows",
}
# Columns tenant_configs requires, for a made-up tenant's canary row.
CONFIG_CANARY = {
    "name": "rls-probe", "servicedesk_url": "https://rls-probe.invalid",
    "servicedesk_api_key_encrypted": "rls-probe", "webhook_signing_secret_encrypted": "rls-probe",
}

Outcome = tuple[bool, str]


@dataclass(frozen=True)
class TenantTable:
    schema: str
    name: str
    shown: str  # as the role's search_path shows it
    rls_enabled: bool
    rls_forced: bool

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def run_rls_checks(
    app_dsn: str, tenant_id: UUID | str, *, peer_tenant_ids: Iterable[UUID | str] = (), connect_timeout: float = 5,
) -> CheckReport:
    """Run every RLS check as the DSN's role for `tenant_id`; failures are results, never exceptions.

    `peer_tenant_ids` are other real tenants, whose contexts are probed too (ids that are not UUIDs are ignored).
    """
    try:
        tenant = tenant_id if isinstance(tenant_id, UUID) else UUID(str(tenant_id))
    except ValueError:
        return CheckReport([CheckResult("tenant_id", False, f"tenant id {tenant_id!r} is not a UUID")])
    peers = _real_peers(tenant, peer_tenant_ids)
    try:
        password = conninfo_to_dict(app_dsn).get("password")
    except psycopg.ProgrammingError:
        # libpq quotes the offending text, which may be the password: show none of it.
        return CheckReport([CheckResult(CONNECTION, False, "the application database URL is not a valid "
                                        "PostgreSQL connection string (not shown: it may hold a password)")])

    def redact(text: str) -> str:
        return redact_text(text, [password])

    def connect() -> psycopg.Connection:
        conn = db.connect(app_dsn, connect_timeout=connect_timeout, autocommit=True)
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))
        return conn

    try:
        conn = connect()
    except (db.DatabaseError, psycopg.Error) as exc:
        detail = str(exc) if isinstance(exc, db.DatabaseError) else f"{db.describe_dsn(app_dsn)}: {db.first_line(exc)}"
        return CheckReport([CheckResult(CONNECTION, False, redact(detail))])
    checks: list[tuple[str, Callable[[psycopg.Connection, list[TenantTable]], Outcome]]] = [
        (APP_ROLE, lambda c, _t: _check_app_role(c)),
        (RLS_FLAGS, lambda _c, t: _check_rls_flags(t)),
        (OWNER_RIGHTS, _check_owner_rights),
        (TABLE_PRIVILEGES, _check_table_privileges),
        (TENANT_CONTEXT, lambda c, _t: _check_set_tenant_context(c, tenant)),
        (CROSS_TENANT, lambda c, t: _check_cross_tenant(c, t, tenant, peers)),
        (NO_CONTEXT, lambda c, t: _check_no_context(c, t, tenant, connect)),
    ]
    results = []
    with conn:
        try:
            tables = _tenant_tables(conn)
        except psycopg.Error as exc:
            return CheckReport([CheckResult(CONNECTION, False, redact(f"reading the catalogue: {db.first_line(exc)}"))])
        for name, check in checks:
            try:
                with conn.transaction(force_rollback=True):
                    ok, detail = check(conn, tables)
            except (psycopg.Error, db.DatabaseError) as exc:
                reason = str(exc) if isinstance(exc, db.DatabaseError) else db.first_line(exc)
                ok, detail = False, f"database error: {reason}"
            results.append(CheckResult(name, ok, redact(detail)))
    return CheckReport(results)


def _real_peers(tenant: UUID, given: Iterable[UUID | str]) -> list[UUID]:
    peers: list[UUID] = []
    for value in given:
        try:
            peer = value if isinstance(value, UUID) else UUID(str(value))
        except ValueError:
            continue
        if peer != tenant and peer not in peers:
            peers.append(peer)
    return peers[:MAX_REAL_PEERS]


def _tenant_tables(conn: psycopg.Connection) -> list[TenantTable]:
    """Every table or partition with a tenant_id column outside the system schemas."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
        " ORDER BY 3"
    ).fetchall()
    return [TenantTable(*row) for row in rows]


def _scope_to(conn: psycopg.Connection, tenant: UUID | str) -> None:
    """Set the tenant variable for the current transaction only ('' means no tenant)."""
    conn.execute("SELECT set_config(%s, %s, true)", (TENANT_VARIABLE, str(tenant)))


def _verdict(problems: list[str], success: str) -> Outcome:
    return (False, "; ".join(problems)) if problems else (True, success)


def _check_app_role(conn: psycopg.Connection) -> Outcome:
    role, is_super, bypasses = conn.execute(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if is_super:
        return False, (f"{role} is a superuser: it bypasses every row-level security policy "
                       f"(ALTER ROLE {role} NOSUPERUSER)")
    problems = [f"{role} has BYPASSRLS: it ignores every row-level security policy "
                f"(ALTER ROLE {role} NOBYPASSRLS)"] if bypasses else []
    # Membership in the owner counts: a member can act as the owner (SET ROLE), and owners skip unforced RLS.
    owned = conn.execute(
        "SELECT t.name, pg_get_userbyid(c.relowner) FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n)"
        " JOIN pg_class c ON c.oid = to_regclass(t.name)"
        " WHERE pg_has_role(current_user, c.relowner, 'MEMBER') ORDER BY t.n",
        (list(TENANT_TABLES),),
    ).fetchall()
    problems += [
        f"{role} owns {table}" if owner == role else f"{role} can act as {owner}, the owner of {table}"
        for table, owner in owned
    ]
    escalations = conn.execute(
        "SELECT rolname FROM pg_roles WHERE (rolsuper OR rolbypassrls) AND rolname <> current_user"
        " AND pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname"
    ).fetchall()
    problems += [f"{role} can SET ROLE to {name}, which bypasses row-level security" for (name,) in escalations]
    return _verdict(problems, f"{role}: not a superuser, no BYPASSRLS, owns none of {', '.join(TENANT_TABLES)}")


def _check_rls_flags(tables: list[TenantTable]) -> Outcome:
    found = {t.name for t in tables if t.schema == "public"} | {t.shown for t in tables}
    problems = [f"{name} does not exist (or has no tenant_id column) in the role's search_path"
                for name in TENANT_TABLES if name not in found]
    for table in tables:
        if not table.rls_enabled:
            problems.append(f"{table.shown} has a tenant_id column but row-level security is disabled "
                            f"(ALTER TABLE {table.shown} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, "
                            "and add a tenant_isolation policy)")
        elif not table.rls_forced:
            problems.append(f"{table.shown}: row-level security is not forced, so the table's owner bypasses it "
                            f"(ALTER TABLE {table.shown} FORCE ROW LEVEL SECURITY)")
    names = ", ".join(t.shown for t in tables) or "(none)"
    return _verdict(problems, f"row-level security enabled and forced on every table with a tenant_id: {names}")


# The owner of a view or SECURITY DEFINER function reads with its own rights: it escapes RLS when it is a
# superuser, has BYPASSRLS, or is (a member of) the table's owner while the table does not force RLS.
_BYPASSES = (
    "(o.rolsuper OR o.rolbypassrls OR (NOT t.relforcerowsecurity AND pg_has_role(o.oid, t.relowner, 'USAGE')))"
)
_WHY_BYPASS = (
    "CASE WHEN o.rolsuper THEN 'a superuser' WHEN o.rolbypassrls THEN 'BYPASSRLS'"
    " ELSE 'the table''s owner, and the table does not force RLS' END"
)


def _check_owner_rights(conn: psycopg.Connection, tables: list[TenantTable]) -> Outcome:
    oids = [f"{t.schema}.{t.name}" for t in tables]
    # Views and materialized views the role can select, directly or through other views, that read a tenant table.
    views = conn.execute(
        "WITH RECURSIVE reads AS ("
        "  SELECT DISTINCT r.ev_class AS reader, d.refobjid AS read FROM pg_rewrite r"
        "  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"
        "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class),"
        " reachable AS ("
        "  SELECT c.oid AS top, c.oid AS obj FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE c.relkind IN ('v', 'm') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
        "  AND has_table_privilege(current_user, c.oid, 'SELECT')"
        "  UNION SELECT reachable.top, reads.read FROM reachable JOIN reads ON reads.reader = reachable.obj)"
        " SELECT DISTINCT top.oid::regclass::text, v.oid::regclass::text, v.relkind, o.rolname,"
        f" t.oid::regclass::text, {_WHY_BYPASS}"
        " FROM reachable JOIN pg_class v ON v.oid = reachable.obj AND v.relkind IN ('v', 'm')"
        " JOIN pg_class top ON top.oid = reachable.top"
        " JOIN reads ON reads.reader = v.oid"
        " JOIN pg_class t ON t.oid = reads.read AND t.oid = ANY(%s::regclass[])"
        " JOIN pg_roles o ON o.oid = v.relowner"
        f" WHERE {_BYPASSES}"
        " AND (v.relkind = 'm' OR NOT coalesce((SELECT lower(option_value) IN ('true', 'on', '1', 'yes')"
        "      FROM pg_options_to_table(v.reloptions) WHERE option_name = 'security_invoker'), false))"
        " ORDER BY 1, 2, 5",
        (oids,),
    ).fetchall()
    problems = []
    for top, view, kind, owner, table, why in views:
        what = "materialized view" if kind == "m" else "view"
        via = "" if top == view else f" through {top}"
        fix = (f"REVOKE SELECT ON {top} FROM the role, or drop the materialized view" if kind == "m"
               else f"ALTER VIEW {view} SET (security_invoker = true)")
        problems.append(f"{what} {view} reads {table} with the rights of its owner {owner} ({why}), and the role can "
                        f"select it{via}: every tenant's rows leak through it ({fix})")
    problems += _owner_rights_functions(conn, tables)
    return _verdict(problems, "no view, materialized view or SECURITY DEFINER function the role can use reads a "
                              "tenant table with RLS-bypassing owner rights")


def _owner_rights_functions(conn: psycopg.Connection, tables: list[TenantTable]) -> list[str]:
    functions = conn.execute(
        "SELECT p.oid, p.oid::regprocedure::text, o.rolname, coalesce(p.prosrc, '') FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles o ON o.oid = p.proowner"
        " WHERE p.prosecdef AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
        " AND has_function_privilege(current_user, p.oid, 'EXECUTE') ORDER BY 2"
    ).fetchall()
    problems = []
    for oid, signature, owner, source in functions:
        # A body is text to PostgreSQL (only SQL-standard bodies record what they read), so a table counts as
        # read when its name appears in the body; a false alarm costs a look, a miss costs isolation.
        mentioned = [t for t in tables if re.search(rf"(?<![\w$]){re.escape(t.name)}(?![\w$])", source, re.I)]
        depends = {row[0] for row in conn.execute(
            "SELECT refobjid::regclass::text FROM pg_depend WHERE classid = 'pg_proc'::regclass AND objid = %s"
            " AND refclassid = 'pg_class'::regclass", (oid,)).fetchall()}
        read = [t for t in tables if t in mentioned or t.shown in depends]
        for table in read:
            row = conn.execute(
                f"SELECT {_WHY_BYPASS} FROM pg_roles o, pg_class t WHERE o.rolname = %s AND t.oid = %s::regclass"
                f" AND {_BYPASSES}",
                (owner, f"{table.schema}.{table.name}"),
            ).fetchone()
            if row:
                problems.append(
                    f"SECURITY DEFINER function {signature} reads {table.shown} with the rights of its owner {owner} "
                    f"({row[0]}), and the role can execute it (ALTER FUNCTION {signature} OWNER TO a role bound by "
                    "RLS, make it SECURITY INVOKER, or REVOKE EXECUTE from the role and PUBLIC)"
                )
    return problems


def _check_table_privileges(conn: psycopg.Connection, tables: list[TenantTable]) -> Outcome:
    problems = []
    for table in tables:
        for privilege, why in RISKY_PRIVILEGES.items():
            mine, public = conn.execute(
                "SELECT has_table_privilege(current_user, %s::regclass, %s),"
                " has_table_privilege('public', %s::regclass, %s)",
                (f"{table.schema}.{table.name}", privilege) * 2,
            ).fetchone()
            if mine:
                holder = "PUBLIC" if public else "the role"
                problems.append(f"{holder} holds {privilege} on {table.shown}: {why} "
                                f"(REVOKE {privilege} ON {table.shown} FROM PUBLIC and the role)")
    return _verdict(problems, f"no {', '.join(RISKY_PRIVILEGES)} on any tenant table for the role or PUBLIC")


def _check_set_tenant_context(conn: psycopg.Connection, tenant: UUID) -> Outcome:
    try:
        with conn.transaction():
            conn.execute("SELECT set_tenant_context(%s)", (tenant,))
    except psycopg.Error as exc:
        return False, f"set_tenant_context refused tenant {tenant}: {db.first_line(exc)}"
    current = conn.execute("SELECT current_setting(%s, true)", (TENANT_VARIABLE,)).fetchone()[0]
    if current != str(tenant):
        return False, f"set_tenant_context({tenant}) returned, but {TENANT_VARIABLE} is {current!r}"
    unknown = uuid4()
    try:
        with conn.transaction():
            conn.execute("SELECT set_tenant_context(%s)", (unknown,))
    except psycopg.Error as exc:
        refusal = f"{exc.sqlstate}: {db.first_line(exc)}" if exc.sqlstate else db.first_line(exc)
        return True, f"sets {TENANT_VARIABLE} for tenant {tenant}; refuses an unknown tenant ({refusal})"
    return False, (
        f"set_tenant_context accepted the unknown tenant id {unknown}: a mistyped or forged tenant id "
        "gets a tenant context instead of an error"
    )


def _insert_canary(conn: psycopg.Connection, table: TenantTable, tenant: UUID, config_row: bool) -> None:
    """One row owned by `tenant`; tenant_configs needs its required columns."""
    if table.name == TENANT_CONFIGS and config_row:
        columns = ["tenant_id", *CONFIG_CANARY]
        values = [tenant, *CONFIG_CANARY.values()]
    else:
        columns, values = ["tenant_id"], [tenant]
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table.ident,
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join([sql.Placeholder()] * len(values)),
    )
    conn.execute(statement, values)


def _count(conn: psycopg.Connection, table: TenantTable, tenant: UUID | None = None,
           others_of: UUID | None = None) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(table.ident)
    if tenant is not None:
        return conn.execute(query + sql.SQL(" WHERE tenant_id = %s"), (tenant,)).fetchone()[0]
    if others_of is not None:
        return conn.execute(query + sql.SQL(" WHERE tenant_id IS DISTINCT FROM %s"), (others_of,)).fetchone()[0]
    return conn.execute(query).fetchone()[0]


def _plant_canaries(conn: psycopg.Connection, tables: list[TenantTable], tenant: UUID, seed_config_row: bool,
                    problems: list[str], unseeded: dict[str, str]) -> dict[str, int]:
    """Give `tenant` a row in every table it can write under its own context; return what it then sees of its own.

    Its `tenant_configs` row is seeded only when `seed_config_row`: a made-up tenant, or a real peer whose own
    stack has not created its row yet (tenant stacks run in parallel). The checked tenant's row never is."""
    _scope_to(conn, tenant)
    own: dict[str, int] = {}
    for table in tables:
        is_config = table.name == TENANT_CONFIGS
        if not is_config or (seed_config_row and _count(conn, table, tenant=tenant) == 0):
            try:
                with conn.transaction():
                    _insert_canary(conn, table, tenant, config_row=is_config)
            except errors.InsufficientPrivilege as exc:
                problems.append(f"{table.shown}: a tenant cannot insert its own row under its own context: "
                                f"{db.first_line(exc)}")
            except errors.UniqueViolation:
                # The row exists: committed meanwhile by the peer's own stack, or hidden from its own context.
                if is_config and _count(conn, table, tenant=tenant) == 0:
                    problems.append(f"{table.shown}: tenant {tenant}'s own row exists but is not visible under "
                                    "its own context")
                else:
                    unseeded[table.shown] = "a unique key refused the canary"
            except psycopg.Error as exc:  # columns without defaults: the table still gets the other probes
                unseeded[table.shown] = db.first_line(exc)
        own[table.shown] = _count(conn, table, tenant=tenant)
    return own


def _blind_write(conn: psycopg.Connection, table: TenantTable, actor: UUID | str, statement: sql.Composable,
                 params: tuple, owners: dict[UUID, dict[str, int]]) -> tuple[int | None, dict[UUID, int], str | None]:
    """Run a write under `actor`'s context in a savepoint; return its row count, and each tenant's rows it removed
    from that tenant's own view (deleted, or moved to another tenant_id), then undo it."""
    lost: dict[UUID, int] = {}
    try:
        with conn.transaction(force_rollback=True):
            _scope_to(conn, actor)
            affected = conn.execute(statement, params).rowcount
            for owner, seen in owners.items():
                _scope_to(conn, owner)
                lost[owner] = seen[table.shown] - _count(conn, table, tenant=owner)
    except errors.UniqueViolation:
        return None, lost, "reached another tenant's row (a unique tenant_id collided)"
    except errors.InsufficientPrivilege:
        return 0, lost, None  # not allowed at all: nothing reached
    return affected, lost, None


def _check_cross_tenant(conn: psycopg.Connection, tables: list[TenantTable], tenant: UUID,
                        peers: list[UUID]) -> Outcome:
    problems: list[str] = []
    unseeded: dict[str, str] = {}
    made_up = uuid4()
    owners = {tenant: _plant_canaries(conn, tables, tenant, False, problems, unseeded)}
    if not owners[tenant].get(TENANT_CONFIGS):
        problems.append(f"this tenant's {TENANT_CONFIGS} row is not visible under its own context "
                        "(not provisioned yet, or the policy hides it)")
    for peer in [made_up, *peers]:
        owners[peer] = _plant_canaries(conn, tables, peer, True, problems, unseeded)
    for table in tables:
        for peer, seen in owners.items():
            if peer != tenant and seen[table.shown] == 0 and table.shown not in unseeded:
                problems.append(f"{table.shown}: tenant {peer}'s own rows are not visible under its own context")
    _scope_to(conn, tenant)
    for table in tables:
        leaked = _count(conn, table, others_of=tenant)
        if leaked:
            problems.append(f"SELECT: under tenant {tenant}'s context {leaked} row(s) of other tenants in "
                            f"{table.shown} are visible (fix its SELECT/ALL policies)")
        for peer in owners:
            if peer == tenant:
                continue
            try:
                with conn.transaction(force_rollback=True):
                    _scope_to(conn, tenant)
                    _insert_canary(conn, table, peer, config_row=True)
                problems.append(f"INSERT: under tenant {tenant}'s context a row for tenant {peer} was accepted in "
                                f"{table.shown} (fix its INSERT/ALL policies' WITH CHECK)")
            except (errors.InsufficientPrivilege, errors.UniqueViolation) as exc:
                if isinstance(exc, errors.UniqueViolation):
                    problems.append(f"INSERT: under tenant {tenant}'s context the policies of {table.shown} admitted "
                                    f"a row for tenant {peer} (only a unique key stopped it)")
            except psycopg.Error:
                pass  # a table whose other columns have no defaults: reported as unseeded below
        for verb, statement, params in (
            ("UPDATE", sql.SQL("UPDATE {} SET tenant_id = %s").format(table.ident), (tenant,)),
            ("DELETE", sql.SQL("DELETE FROM {}").format(table.ident), ()),
        ):
            affected, lost, error = _blind_write(conn, table, tenant, statement, params, owners)
            if error:
                problems.append(f"blind {verb} under tenant {tenant}'s context on {table.shown} {error} "
                                f"(fix its {verb}/ALL policies' USING)")
                continue
            reached = {peer: n for peer, n in lost.items() if peer != tenant and n}
            own = owners[tenant][table.shown]
            if reached or (affected or 0) > own:
                detail = ", ".join(f"{n} of tenant {peer}'s" for peer, n in reached.items()) or (
                    f"{affected - own} beyond its own {own}")
                problems.append(f"blind {verb} under tenant {tenant}'s context on {table.shown} reached other "
                                f"tenants' rows ({detail}) (fix its {verb}/ALL policies' USING)")
    success = (f"under tenant {tenant}'s context, on {', '.join(t.shown for t in tables)}: no other tenant's row "
               f"visible, no insert for another tenant accepted, blind UPDATE and DELETE reached only its own rows "
               f"(probed against a made-up tenant and {len(peers)} real one(s); rolled back)")
    if unseeded:
        success += "; no canary in " + "; ".join(f"{table} ({reason})" for table, reason in unseeded.items())
    return _verdict(problems, success)


def _check_no_context(conn: psycopg.Connection, tables: list[TenantTable], tenant: UUID,
                      connect: Callable[[], psycopg.Connection]) -> Outcome:
    problems: list[str] = []
    # Canaries make the empty-context probes meaningful even in a database without committed rows.
    for owner, made_up in ((tenant, False), (uuid4(), True)):
        _plant_canaries(conn, tables, owner, made_up, [], {})
    _scope_to(conn, "")
    problems += _probe_without_context(conn, tables, tenant, "with an empty context")
    # A context that was never set reads as NULL, which a policy can treat differently from '': only a session
    # that never set it shows that, and it cannot see this transaction's uncommitted canaries, so it probes
    # the committed rows (this tenant's tenant_configs row at least).
    try:
        fresh = connect()
    except (db.DatabaseError, psycopg.Error) as exc:
        return False, f"cannot open a second session for the never-set probe: {exc}"
    with fresh:
        with fresh.transaction(force_rollback=True):
            default = fresh.execute("SELECT current_setting(%s, true)", (TENANT_VARIABLE,)).fetchone()[0]
            if default is not None:
                problems.append(f"a new session starts with {TENANT_VARIABLE} = {default!r} (a role or database "
                                f"default: ALTER ROLE/DATABASE ... RESET {TENANT_VARIABLE})")
            problems += _probe_without_context(fresh, tables, tenant, "in a session that never set a context")
    return _verdict(problems, f"with an empty context and with none ever set: no row visible, no insert accepted, "
                              f"no row changed on {', '.join(t.shown for t in tables)} (rolled back)")


def _probe_without_context(conn: psycopg.Connection, tables: list[TenantTable], tenant: UUID, where: str) -> list[str]:
    problems = []
    for table in tables:
        visible = _count(conn, table)
        if visible:
            problems.append(f"SELECT {where}: {visible} row(s) of {table.shown} are visible "
                            "(a policy admits rows when the context is empty or unset)")
        try:
            with conn.transaction(force_rollback=True):
                _insert_canary(conn, table, tenant, config_row=True)
            problems.append(f"INSERT {where}: a row for tenant {tenant} was accepted in {table.shown}")
        except errors.UniqueViolation:
            problems.append(f"INSERT {where}: the policies of {table.shown} admitted a row for tenant {tenant} "
                            "(only a unique key stopped it)")
        except psycopg.Error:
            pass
        for verb, statement in (("UPDATE", sql.SQL("UPDATE {} SET tenant_id = tenant_id").format(table.ident)),
                                ("DELETE", sql.SQL("DELETE FROM {}").format(table.ident))):
            try:
                with conn.transaction(force_rollback=True):
                    affected = conn.execute(statement).rowcount
            except errors.InsufficientPrivilege:
                affected = 0
            if affected:
                problems.append(f"blind {verb} {where} changed {affected} row(s) of {table.shown}")
    return problems
