"""A database URL, parsed and checked once at the edge, described without its password.

Every URL an operator or the stack gives (`--database-url`, `--app-database-url`, `databaseUrl`,
`appDatabaseUrl`) goes through `parse_database_url` before anything connects: a malformed one (a
missing scheme, a password with a space) is a clear error that never quotes the password, and a
connection leaving this machine must verify the server (`sslmode=verify-full` or `verify-ca`), since
libpq's default `prefer` silently falls back to plain text and trusts any certificate.
"""

from __future__ import annotations

import ipaddress

import psycopg
from psycopg.conninfo import conninfo_to_dict

VERIFYING_SSLMODES = ("verify-full", "verify-ca")


class DatabaseUrlError(Exception):
    """What is wrong with a database URL; never contains its password."""


def _is_local(host: str | None) -> bool:
    if not host or host.startswith("/"):  # a unix socket
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_database_url(url: str, *, what: str = "database URL", allow_unverified: bool = False) -> str:
    """`url` unchanged when it is usable; else DatabaseUrlError saying why, without the password."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise DatabaseUrlError(f"the {what} must start with postgresql:// (got something else; not shown: it may "
                               "hold a password)")
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise DatabaseUrlError(
            f"the {what} is malformed (not shown: it may hold a password); expected "
            "postgresql://user:password@host:port/db, with special characters in the password percent-encoded"
        ) from None
    ports = [port for port in str(parts.get("port") or "").split(",") if port]
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports):
        raise DatabaseUrlError(f"the {what} has a port that is not a number from 1 to 65535")
    hosts = [h for h in str(parts.get("host") or "").split(",") if h] or [None]
    sslmode = parts.get("sslmode")
    if not allow_unverified and not all(_is_local(h) for h in hosts) and sslmode not in VERIFYING_SSLMODES:
        shown = f"sslmode={sslmode}" if sslmode else "no sslmode (libpq's default, prefer)"
        raise DatabaseUrlError(
            f"the {what} connects to {','.join(h for h in hosts if h)} with {shown}, which does not verify the "
            "server: add ?sslmode=verify-full (with sslrootcert if needed), or pass the flag that allows it"
        )
    return url
