"""Small PostgreSQL helpers shared by the dynamic providers, the checks and the CLI (psycopg 3)."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict


class DatabaseError(Exception):
    """A database problem described for an operator, never including a password."""


def first_line(exc: BaseException) -> str:
    """The first line of a database error (libpq adds context lines an operator does not need)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_dsn(dsn: str) -> str:
    """`user@host:port/db` for messages; the password and any other option are left out."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable database URL)"
    host = parts.get("host") or "localhost"
    return f"{parts.get('user') or '(default user)'}@{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def with_user(dsn: str, user: str) -> str:
    """The same database as `dsn`, as another role, as a postgresql:// URL (the password is dropped: that
    role has its own)."""
    from urllib.parse import quote, urlencode

    parts = conninfo_to_dict(dsn)
    parts.pop("password", None)
    parts.pop("user", None)
    host = str(parts.pop("host", "") or "")
    port = parts.pop("port", None)
    dbname = parts.pop("dbname", None)
    shown_host = quote(host, safe="") if host.startswith("/") else f"[{host}]" if ":" in host else host
    netloc = f"{quote(user, safe='')}@{shown_host}" + (f":{port}" if port else "")
    query = f"?{urlencode(parts)}" if parts else ""
    return f"postgresql://{netloc}/{quote(str(dbname or ''), safe='')}{query}"


def connect(dsn: str, connect_timeout: float = 5.0, autocommit: bool = False) -> psycopg.Connection:
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # libpq's parse errors can quote the URL, password included.
        raise DatabaseError("the database URL is malformed (expected postgresql://user:pw@host:port/db)") from None
    try:
        return psycopg.connect(dsn, connect_timeout=max(1, int(connect_timeout)), autocommit=autocommit)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to {describe_dsn(dsn)}: {first_line(exc)}") from None


def set_tenant_variable(cursor: psycopg.Cursor, tenant_id: str) -> None:
    """Scope the current transaction to one tenant (RLS), without requiring the tenant to exist yet."""
    cursor.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
