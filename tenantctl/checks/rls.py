"""Row-level security checks: proof, as the application's own role, that one tenant cannot see another's rows.

The catalog checks (role attributes, RLS flags, policies) explain *why* isolation would fail; the
behavioural checks (set_tenant_context, canary rows, tenant_configs visibility) prove it holds.
Every check runs in its own transaction that is always rolled back, so nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tenantctl import db
from tenantctl.app_schema import HISTORY_TABLES, TENANT_CONFIGS, TENANT_TABLES, TENANT_VARIABLE
from tenantctl.checks.report import CheckReport, CheckResult

CONNECTION = "database_connection"
APP_ROLE = "app_role_privileges"
RLS_FLAGS = "rls_enabled_and_forced"
POLICIES = "tenant_policies"
TENANT_CONTEXT = "set_tenant_context"
CANARY = "canary_isolation"
CONFIG_VISIBILITY = "tenant_config_isolation"

# A check must not hang a deployment behind a lock (e.g. a migration holding ACCESS EXCLUSIVE).
STATEMENT_TIMEOUT = "15s"

Outcome = tuple[bool, str]


def run_rls_checks(app_dsn: str, tenant_id: UUID | str, *, connect_timeout: float = 5) -> CheckReport:
    """Run every RLS check as the DSN's role for `tenant_id`; failures are results, never exceptions."""
    try:
        tenant = tenant_id if isinstance(tenant_id, UUID) else UUID(str(tenant_id))
    except ValueError:
        return CheckReport([CheckResult("tenant_id", False, f"tenant id {tenant_id!r} is not a UUID")])
    try:
        password = conninfo_to_dict(app_dsn).get("password")
    except psycopg.ProgrammingError:
        # libpq quotes the offending text, which may be the password: show none of it.
        return CheckReport([CheckResult(CONNECTION, False, "the application database URL is not a valid "
                                        "PostgreSQL connection string (not shown: it may hold a password)")])

    def redact(text: str) -> str:
        return text.replace(password, "***") if password else text

    try:
        conn = db.connect(app_dsn, connect_timeout=connect_timeout, autocommit=True)
    except db.DatabaseError as exc:
        return CheckReport([CheckResult(CONNECTION, False, redact(str(exc)))])
    checks: list[tuple[str, Callable[[psycopg.Connection, UUID], Outcome]]] = [
        (APP_ROLE, _check_app_role),
        (RLS_FLAGS, _check_rls_flags),
        (POLICIES, _check_policies),
        (TENANT_CONTEXT, _check_set_tenant_context),
        (CANARY, _check_canary_isolation),
        (CONFIG_VISIBILITY, _check_tenant_config_visibility),
    ]
    results = []
    with conn:
        try:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))
        except psycopg.Error as exc:
            detail = redact(f"{db.describe_dsn(app_dsn)}: {db.first_line(exc)}")
            return CheckReport([CheckResult(CONNECTION, False, detail)])
        for name, check in checks:
            try:
                with conn.transaction(force_rollback=True):
                    ok, detail = check(conn, tenant)
            except psycopg.Error as exc:
                ok, detail = False, f"database error: {db.first_line(exc)}"
            results.append(CheckResult(name, ok, redact(detail)))
    return CheckReport(results)


def _scope_to(conn: psycopg.Connection, tenant: UUID | str) -> None:
    """Set the tenant variable for the current transaction only ('' means no tenant)."""
    conn.execute("SELECT set_config(%s, %s, true)", (TENANT_VARIABLE, str(tenant)))


def _verdict(problems: list[str], success: str) -> Outcome:
    return (False, "; ".join(problems)) if problems else (True, success)


def _check_app_role(conn: psycopg.Connection, _tenant: UUID) -> Outcome:
    role, is_super, bypasses = conn.execute(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if is_super:
        return False, f"{role} is a superuser: it bypasses every row-level security policy"
    problems = [f"{role} has BYPASSRLS: it ignores every row-level security policy"] if bypasses else []
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


def _check_rls_flags(conn: psycopg.Connection, _tenant: UUID) -> Outcome:
    rows = conn.execute(
        "SELECT t.name, c.oid IS NOT NULL, c.relrowsecurity, c.relforcerowsecurity"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n) LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)"
        " ORDER BY t.n",
        (list(TENANT_TABLES),),
    ).fetchall()
    problems = []
    for table, exists, enabled, forced in rows:
        if not exists:
            problems.append(f"{table} does not exist (in the role's search_path)")
        elif not enabled:
            problems.append(f"{table}: row-level security is disabled")
        elif not forced:
            problems.append(f"{table}: row-level security is not forced, so the table's owner bypasses it")
    return _verdict(problems, f"row-level security enabled and forced on {', '.join(TENANT_TABLES)}")


def _check_policies(conn: psycopg.Connection, _tenant: UUID) -> Outcome:
    rows = conn.execute(
        "SELECT t.name, p.polname, p.polpermissive, p.polcmd::text,"
        " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),"
        " EXISTS (SELECT FROM unnest(p.polroles) AS r(oid)"
        "         WHERE CASE WHEN r.oid = 0 THEN true ELSE pg_has_role(current_user, r.oid, 'USAGE') END)"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n)"
        " LEFT JOIN pg_policy p ON p.polrelid = to_regclass(t.name)"
        " ORDER BY t.n, p.polname",
        (list(TENANT_TABLES),),
    ).fetchall()
    commands = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
    filtering: dict[str, list[str]] = {table: [] for table in TENANT_TABLES}
    problems = []
    for table, policy, permissive, command, using, check, applies in rows:
        if policy is None:
            continue
        if using and TENANT_VARIABLE in using:
            filtering[table].append(policy)
        # Permissive policies are OR-ed together: one that ignores the tenant opens the table to all tenants.
        if permissive and applies:
            for clause, expression in (("USING", using), ("WITH CHECK", check)):
                if expression is not None and TENANT_VARIABLE not in expression:
                    always = " is always true" if expression.strip("() ").lower() == "true" else ""
                    problems.append(
                        f"{table}: permissive policy {policy} (FOR {commands.get(command, command)}) "
                        f"{clause} ({expression}){always} and does not filter by {TENANT_VARIABLE}"
                    )
    problems[:0] = [f"{table}: no policy filters rows by {TENANT_VARIABLE}" for table, names in filtering.items()
                    if not names]
    summary = "; ".join(f"{table}: {', '.join(names)}" for table, names in filtering.items())
    return _verdict(problems, f"every table has a policy on {TENANT_VARIABLE} and none that ignores it ({summary})")


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


def _check_canary_isolation(conn: psycopg.Connection, tenant: UUID) -> Outcome:
    problems: list[str] = []
    canaries: dict[str, str] = {}
    _scope_to(conn, tenant)
    # Only tenant_id is guaranteed to exist, so a canary is identified by its ctid,
    # which is stable for the life of this (never committed) transaction.
    insert = "INSERT INTO {} (tenant_id) VALUES (%s) RETURNING ctid::text"
    for table in HISTORY_TABLES:
        try:
            with conn.transaction():
                canaries[table] = conn.execute(sql.SQL(insert).format(sql.Identifier(table)), (tenant,)).fetchone()[0]
        except psycopg.Error as exc:
            reason = db.first_line(exc)
            problems.append(f"{table}: cannot insert a canary row under this tenant's own context: {reason}")

    def visible(table: str) -> bool:
        query = sql.SQL("SELECT count(*) FROM {} WHERE ctid = %s::tid").format(sql.Identifier(table))
        return conn.execute(query, (canaries[table],)).fetchone()[0] > 0

    def writable(table: str) -> bool:
        try:
            with conn.transaction():
                conn.execute(sql.SQL(insert).format(sql.Identifier(table)), (tenant,))
        except psycopg.Error:
            return False
        return True

    def report(failing: list[str], problem: str) -> None:
        if failing:
            problems.append(f"{problem} ({', '.join(failing)})")

    report([t for t in canaries if not visible(t)], "the canary is not visible to its own tenant")
    _scope_to(conn, uuid4())
    report([t for t in canaries if visible(t)], "another tenant's context sees this tenant's canary")
    report([t for t in canaries if writable(t)], "another tenant's context can write rows for this tenant")
    _scope_to(conn, "")
    report([t for t in canaries if visible(t)], "a session with no tenant context sees the canary")
    return _verdict(problems, (
        f"canaries in {', '.join(HISTORY_TABLES)} are visible to this tenant only, not to another tenant "
        "or to a session without a tenant context; another tenant cannot write this tenant's rows (rolled back)"
    ))


def _check_tenant_config_visibility(conn: psycopg.Connection, tenant: UUID) -> Outcome:
    query = sql.SQL("SELECT tenant_id FROM {}").format(sql.Identifier(TENANT_CONFIGS))
    _scope_to(conn, tenant)
    seen = [row[0] for row in conn.execute(query).fetchall()]
    problems = []
    if tenant not in seen:
        problems.append(f"this tenant's {TENANT_CONFIGS} row is not visible under its own context "
                        "(not provisioned yet, or the policy hides it)")
    others = sum(1 for row_tenant in seen if row_tenant != tenant)
    if others:
        problems.append(f"{others} {TENANT_CONFIGS} row(s) of other tenants are visible under this tenant's context")
    _scope_to(conn, "")
    anonymous = len(conn.execute(query).fetchall())
    if anonymous:
        problems.append(f"{anonymous} {TENANT_CONFIGS} row(s) are visible with no tenant context")
    return _verdict(problems, f"under its context this tenant sees exactly its own {TENANT_CONFIGS} row; "
                              "without a context, none")
